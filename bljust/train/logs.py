"""Training logs: ``train.log`` (the logging module), ``train_log.csv`` (one row per chunk),
``train_steps.csv`` (one row per step), TensorBoard scalars, and ``budget.json``.

The weight of g in joint steps gets the column its strategy names (``gamma`` for BL-JUST,
``lambda`` for JUST); a strategy without joint steps has no such column.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
from io import StringIO
from pathlib import Path

from bljust.fileio import atomic_write_text
from bljust.train import diagnostics
from bljust.train.config import TrainConfig
from bljust.train.progress import Progress
from bljust.train.strategies import Chunk

log = logging.getLogger("bljust.train")


def log_fields(weight_name: str | None) -> list[str]:
    """Columns of ``train_log.csv``."""
    return (["chunk", "phase", "epoch", "steps", "train_f", "train_g", "valid_f", "valid_g", "valid_cer"]
            + ([weight_name] if weight_name else []) + ["labeled_hours", "unlabeled_hours", "wall_s"])


def step_fields(weight_name: str | None, metric_names: tuple[str, ...]) -> list[str]:
    """Columns of ``train_steps.csv``: the unsupervised head's metrics as g_<name>, and last wall_s,
    the time spent in steps so far (the one column two runs of the same steps differ in)."""
    return (["step", "phase", "epoch", "f", "g"] + ([weight_name] if weight_name else [])
            + ["lr_theta", "lr_phi", "lr_eta", "cos_fg", "norm_f", "norm_g"] + [f"g_{m}" for m in metric_names]
            + ["wall_s"])


def setup_logging(exp_dir: Path, rank: int = 0) -> None:
    """INFO and above to ``exp_dir/train.log`` and to stderr (one handler of each, however often called).
    A data-parallel rank other than 0 writes no file and reports only errors, to stderr."""
    root = logging.getLogger("bljust")
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if rank:
        root.setLevel(logging.ERROR)
        if not root.handlers:
            sh = logging.StreamHandler()
            sh.setFormatter(logging.Formatter(f"[rank {rank}] %(levelname)s %(message)s"))
            root.addHandler(sh)
        return
    target = str((exp_dir / "train.log").resolve())
    for h in [h for h in root.handlers if isinstance(h, logging.FileHandler) and h.baseFilename != target]:
        root.removeHandler(h)
        h.close()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        fh = logging.FileHandler(target)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)


def csv_text(fields: list[str], rows: list[dict]) -> str:
    buf = StringIO()
    w = csv.DictWriter(buf, fields)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class StepLog:
    """``train_steps.csv``: rows are buffered and appended at each checkpoint, so after a crash the
    file holds no step past the newest checkpoint (``truncate`` drops any that a resume redoes)."""

    def __init__(self, path: Path | None, fields: list[str]):
        self.path = path  # None: keep nothing (a data-parallel rank other than 0)
        self.fields = fields
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        if self.path is not None:
            self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        new = not self.path.exists()
        size = 0 if new else self.path.stat().st_size
        try:
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, self.fields, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerows(self.rows)
        except OSError as e:  # a full disk: a half-written row would corrupt the file, so cut it back
            with contextlib.suppress(OSError):
                os.truncate(self.path, size)
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self.rows = []

    def truncate(self, last_step: int) -> None:
        if self.path is None:
            return
        rows = [r for r in read_csv(self.path) if int(r["step"]) <= last_step]
        atomic_write_text(self.path, csv_text(self.fields, rows))


def log_model(config: TrainConfig, setup) -> None:
    """``train.log``: the model's groups and sizes, the share of theta each loss reaches, the plan.
    setup: ``setup.Setup``."""
    sizes = {k: sum(p.numel() for p in v) / 1e6 for k, v in setup.groups.items()}
    c = config
    unsup = "no unsupervised head" if setup.model.unsup is None else f"{c.unsup} head {sizes['eta']:.2f} M (eta)"
    log.info("model: %s encoder %.2f M (theta), %s head %.2f M (phi), %s; %d tokens",
             c.encoder, sizes["theta"], c.sup, sizes["phi"], unsup, setup.tokenizer.vocab_size)
    reach = diagnostics.theta_reach(setup.model, setup.valid_batches[0])
    for loss in reach:
        log.info("%s reaches %.1f%% of theta", loss, diagnostics.reach_percent(reach[loss]))
    log.info("strategy %s: %s", c.strategy, ", ".join(f"{p} {n} steps" for p, n in setup.phase_total.items()))


def chunk_label(chunk: Chunk, plan: list[Chunk]) -> str:
    """'joint 3/10': the chunk's phase and epoch of that phase's epochs (a phase after the epochs: its
    name), and 'part 2/9' for a part of a long one."""
    label = chunk.phase
    if chunk.epoch:
        label += f" {chunk.epoch}/{max(c.epoch or 0 for c in plan if c.phase == chunk.phase)}"
    return label + (f" part {chunk.part}/{chunk.parts}" if chunk.parts > 1 else "")


def log_chunk(label: str, progress: Progress, row: dict, valid: tuple[float, float | None, float],
              weight: tuple[str, float] | None) -> None:
    """``train.log``'s line at the end of a chunk: its training means, head metrics and validation."""
    sums = progress.chunk_sums
    metrics = "".join(f" {k[2:]} {v / sums['ng']:.3f}" for k, v in sums.items() if k.startswith("g_") and sums["ng"])
    train = "".join(f" {k} {row['train_' + k]}" for k in ("f", "g") if row["train_" + k] != "")
    train += f" ({metrics.strip()})" if metrics and row["train_g"] != "" else ""
    valid_g = "" if valid[1] is None else f" g {valid[1]:.3f}"
    log.info("%s done (step %d): train%s | valid f %.3f%s CER %.2f%%%s", label, progress.steps, train,
             valid[0], valid_g, 100 * valid[2], f" | {weight[0]} {weight[1]:.3f}" if weight else "")


def step_row(progress: Progress, phase: str, epoch: int, weight: tuple[str, float] | None, lrs: dict[str, float],
             values: dict, finite: bool, g_metrics: dict[str, float]) -> dict:
    """A row of ``train_steps.csv`` for the step ``progress`` has just counted. weight: (column, value)
    in a joint step; f and g stay empty where the step had none, or skipped its update."""
    row = {"step": progress.steps, "phase": phase, "epoch": epoch, "f": "", "g": "",
           **({weight[0]: round(weight[1], 6)} if weight else {}),
           **{f"lr_{k}": f"{lrs[k]:.3e}" if k in lrs else "" for k in ("theta", "phi", "eta")}}
    for name, value in values.items():
        if value is not None and finite:
            row[name] = round(value.item(), 5)
    for name, value in g_metrics.items():
        row[f"g_{name}"] = round(value, 5)
    return row


def chunk_row(progress: Progress, phase: str, epoch: int, valid: tuple[float, float | None, float],
              weight: tuple[str, float] | None) -> dict:
    """A row of ``train_log.csv`` at the end of the chunk ``progress`` stands in."""
    train = {k: round(m, 4) if (m := progress.chunk_mean(k)) is not None else "" for k in ("f", "g")}
    valid_f, valid_g, valid_cer = valid
    return {"chunk": progress.chunk_index + 1, "phase": phase, "epoch": epoch, "steps": progress.steps,
            "train_f": train["f"], "train_g": train["g"],
            "valid_f": round(valid_f, 4), "valid_g": "" if valid_g is None else round(valid_g, 4), "valid_cer": round(valid_cer, 4),
            **({weight[0]: round(weight[1], 6)} if weight else {}),
            "labeled_hours": round(progress.labeled_hours, 4), "unlabeled_hours": round(progress.unlabeled_hours, 4),
            "wall_s": round(progress.wall_s, 1)}


def write_chunk_row(path: Path, fields: list[str], row: dict) -> None:
    """Rewrite ``train_log.csv`` with ``row`` after the rows of the chunks before it (a resumed run
    redoes a chunk: its old row goes)."""
    rows = [r for r in read_csv(path) if int(r["chunk"]) < row["chunk"]]
    atomic_write_text(path, csv_text(fields, rows + [row]))


def budget(progress: Progress, inference_params: int, skipped_steps: int) -> dict:
    """``budget.json``: what a run spent, to report beside its error rates."""
    return {"steps": progress.steps, **{f"{p}_steps": n for p, n in progress.phase_steps.items()},
            "params_m": round(inference_params / 1e6, 3),
            "labeled_batches": progress.labeled_batches, "unlabeled_batches": progress.unlabeled_batches,
            "labeled_hours": round(progress.labeled_hours, 3), "unlabeled_hours": round(progress.unlabeled_hours, 3),
            "wall_s": round(progress.wall_s, 1), **({"skipped_steps": skipped_steps} if skipped_steps else {})}


class ProgressLine:
    """``train.log``'s line every ``interval`` steps: where the run is and when it will end.

        joint 3/10 | step 420/1420 (joint 300/1100) | f 1.234 g 2.345 | gamma 0.200 | lr 5.00e-03 |
        2.7 steps/s, 41 s audio/s | ETA phase 5m, run 6m

    f and g are means over the steps of the phase since the previous line; speeds count time in steps only
    (validation and checkpoints excluded), so the ETAs leave those out too."""

    def __init__(self, interval: int, plan: list[Chunk], phase_total: dict[str, int]):
        self.interval, self.plan, self.phase_total = interval, plan, phase_total
        self.plan_total = sum(c.steps for c in plan)
        self._since: dict[str, list[float]] = {"f": [], "g": []}
        self._start: tuple[int, float, float] | None = None  # (steps, wall_s, audio hours) at the previous line
        self._phase = ""

    def add(self, progress: Progress, chunk: Chunk, row: dict, weight: tuple[str, float] | None) -> None:
        """After each step (its time counted): collect its f and g; every ``interval`` steps write the line."""
        if self._start is None:  # a fresh or resumed run: speeds are measured from its first step on
            self._start = (progress.steps, progress.wall_s, progress.labeled_hours + progress.unlabeled_hours)
        if chunk.phase != self._phase:  # f and g are means over this phase's steps only
            self._since, self._phase = {"f": [], "g": []}, chunk.phase
        for name in ("f", "g"):
            if row[name] != "":
                self._since[name].append(row[name])
        steps0, wall0, hours0 = self._start
        if not self.interval or progress.steps % self.interval or progress.steps == steps0:
            return
        elapsed = max(progress.wall_s - wall0, 1e-9)
        rate = (progress.steps - steps0) / elapsed
        audio = (progress.labeled_hours + progress.unlabeled_hours - hours0) * 3600 / elapsed
        phase_left = self.phase_total[chunk.phase] - progress.phase_steps[chunk.phase]
        losses = " ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in self._since.items() if v)
        lr = next((row[k] for k in ("lr_theta", "lr_phi", "lr_eta") if row.get(k)), "")
        log.info("%s | step %d/%d (%s %d/%d) | %s%s%s | %.2f steps/s, %.0f s audio/s | ETA phase %s, run %s",
                 chunk_label(chunk, self.plan), progress.steps, self.plan_total, chunk.phase,
                 progress.phase_steps[chunk.phase], self.phase_total[chunk.phase], losses or "skipped",
                 f" | {weight[0]} {weight[1]:.3f}" if weight else "", f" | lr {lr}" if lr else "", rate, audio,
                 _duration(phase_left / rate), _duration((self.plan_total - progress.steps) / rate))
        self._since = {"f": [], "g": []}
        self._start = (progress.steps, progress.wall_s, progress.labeled_hours + progress.unlabeled_hours)


def _duration(seconds: float) -> str:
    """'45s', '12m', '3h05m'."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


class TensorBoard:
    """The logged numbers as TensorBoard scalars in ``<exp_dir>/tensorboard`` (``tensorboard: true``).
    A resumed run's events replace those logged after its checkpoint."""

    SKIP = ("step", "steps", "chunk", "phase", "epoch")

    def __init__(self, exp_dir: Path, resumed_at: int):
        from torch.utils.tensorboard import SummaryWriter  # slow to import: only when used

        self.writer = SummaryWriter(exp_dir / "tensorboard", purge_step=resumed_at + 1 if resumed_at else None)

    def add(self, section: str, row: dict, step: int) -> None:
        for key, value in row.items():
            if key not in self.SKIP and value != "":
                self.writer.add_scalar(f"{section}/{key}", float(value), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
