"""PNG plots of training curves: one per experiment, and one comparing experiments."""
from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bljust.fileio import atomic_path  # noqa: E402
from bljust.score.compare import by_group  # noqa: E402


def _columns(path: Path, x: str, ys: list[str]) -> dict[str, tuple[list[float], list[float]]]:
    """For each y column: (x values, y values) of the rows where y is present."""
    out: dict[str, tuple[list[float], list[float]]] = {y: ([], []) for y in ys}
    if not path.exists():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for y in ys:
                if row.get(y) not in (None, ""):
                    out[y][0].append(float(row[x]))
                    out[y][1].append(float(row[y]))
    return out


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def plot_experiment(exp_dir: str | os.PathLike, f_name: str, weight_name: str | None) -> Path:
    """exp_dir/training_curves.png: f and g, the weight of g and learning rates, gradient conflict, validation.

    f_name: the supervised loss's name ("CTC", "RNN-T"); weight_name: the strategy's column of the
    weight of g in ``train_steps.csv`` ("gamma", "lambda"; None: the strategy has no joint steps)."""
    exp_dir = Path(exp_dir)
    weight = [weight_name] if weight_name else []
    steps = _columns(exp_dir / "train_steps.csv", "step", ["f", "g", *weight, "lr_theta", "cos_fg", "norm_f", "norm_g"])
    epochs = _columns(exp_dir / "train_log.csv", "steps", ["valid_f", "valid_g", "valid_cer"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    for key, name in (("f", f"f ({f_name})"), ("g", "g (unsupervised)")):
        ax.plot(*steps[key], lw=0.8, label=f"train {name}")
    for key, name in (("valid_f", "valid f"), ("valid_g", "valid g")):
        ax.plot(*epochs[key], "o-", ms=3, label=name)
    ax.set(title="losses", xlabel="step")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    ax.set(title="weight of g and learning rate", xlabel="step")
    if weight_name:
        ax.plot(*steps[weight_name], label=f"{weight_name} (weight of g)")
        ax.legend(loc="upper left", fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(*steps["lr_theta"], color="tab:red", lw=0.8, label="lr theta")
    ax2.set_yscale("log")
    ax2.legend(loc="upper right", fontsize=7)
    ax = axes[1][0]
    ax.plot(*steps["cos_fg"], "o-", ms=2, label="cos(grad f, grad g)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(title="gradient conflict on theta", xlabel="step", ylim=(-1, 1))
    ax2 = ax.twinx()
    ax2.plot(*steps["norm_f"], color="tab:green", lw=0.8, label="|grad f|")
    ax2.plot(*steps["norm_g"], color="tab:purple", lw=0.8, label="|grad g|")
    ax2.set_yscale("log")
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    ax = axes[1][1]
    xs, ys = epochs["valid_cer"]
    ax.plot(xs, [100 * y for y in ys], "o-", ms=3)
    ax.set(title="validation CER (%)", xlabel="step")
    fig.suptitle(exp_dir.name)
    fig.tight_layout()
    out = exp_dir / "training_curves.png"
    _save(fig, out)
    return out


def plot_comparison(records: list[dict], out: str | os.PathLike) -> Path:
    """Systems side by side: test WER and CER per decoding (bars; mean and sample std over seeds), and
    validation CER against labeled hours processed (pre-training, which processes none, is left out).

    ``records``: ``bljust.score.compare.collect``'s, one per experiment.
    """
    groups = by_group(records)
    decodes = list(records[0]["rates"]) if records else []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    width = 0.8 / max(1, len(decodes))
    for k, (ax, title) in enumerate(zip(axes[:2], ("test WER (%)", "test CER (%)"))):
        for j, name in enumerate(decodes):
            values = [[r["rates"][name][k] for r in rs] for rs in groups.values()]
            means = [statistics.mean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            xs = [i + (j - (len(decodes) - 1) / 2) * width for i in range(len(groups))]
            bars = ax.bar(xs, means, width, yerr=stds, capsize=3, label=name or "decode")
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize=8)
        ax.set(title=title)
        ax.legend(fontsize=7)
    ax = axes[2]
    for color, (group, rs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10, groups.items()):
        for i, r in enumerate(rs):
            cols = _columns(Path(r["dir"]) / "train_log.csv", "labeled_hours", ["valid_cer"])
            points = [(x, 100 * y) for x, y in zip(*cols["valid_cer"]) if x > 0]
            ax.plot(*zip(*points) if points else ([], []), "o-", ms=3, color=color, label=group if i == 0 else None)
    ax.set(title="validation CER (%)", xlabel="labeled hours processed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    _save(fig, out)
    return out
