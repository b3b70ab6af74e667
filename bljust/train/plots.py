"""PNG plots of training curves: one per experiment, and one comparing experiments."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bljust.fileio import atomic_path  # noqa: E402


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


def plot_experiment(exp_dir: str | os.PathLike) -> Path:
    """exp_dir/training_curves.png: f and g, gamma and learning rates, gradient conflict, validation."""
    exp_dir = Path(exp_dir)
    steps = _columns(exp_dir / "train_steps.csv", "step", ["f", "g", "gamma", "lr_theta", "cos_fg", "norm_f", "norm_g"])
    epochs = _columns(exp_dir / "train_log.csv", "steps", ["valid_f", "valid_g", "valid_cer"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    for key, name in (("f", "f (CTC)"), ("g", "g (unsupervised)")):
        ax.plot(*steps[key], lw=0.8, label=f"train {name}")
    for key, name in (("valid_f", "valid f"), ("valid_g", "valid g")):
        ax.plot(*epochs[key], "o-", ms=3, label=name)
    ax.set(title="losses", xlabel="step")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    ax.plot(*steps["gamma"], label="gamma / weight of g")
    ax.set(title="penalty and learning rate", xlabel="step")
    ax2 = ax.twinx()
    ax2.plot(*steps["lr_theta"], color="tab:red", lw=0.8, label="lr theta")
    ax2.set_yscale("log")
    ax.legend(loc="upper left", fontsize=7)
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


def plot_comparison(exp_dirs: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Validation CER, valid f and valid g against gradient steps for several experiments."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for exp_dir in map(Path, exp_dirs):
        cols = _columns(exp_dir / "train_log.csv", "steps", ["valid_cer", "valid_f", "valid_g"])
        xs, ys = cols["valid_cer"]
        axes[0].plot(xs, [100 * y for y in ys], "o-", ms=3, label=exp_dir.name)
        axes[1].plot(*cols["valid_f"], "o-", ms=3, label=exp_dir.name)
        axes[2].plot(*cols["valid_g"], "o-", ms=3, label=exp_dir.name)
    for ax, title in zip(axes, ("validation CER (%)", "validation f (CTC)", "validation g (unsupervised)")):
        ax.set(title=title, xlabel="gradient step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    _save(fig, out)
    return out
