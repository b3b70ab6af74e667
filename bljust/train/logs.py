"""Training logs: ``train.log`` (the logging module), ``train_log.csv`` (one row per chunk),
``train_steps.csv`` (one row per step)."""
from __future__ import annotations

import csv
import logging
from io import StringIO
from pathlib import Path

from bljust.fileio import atomic_write_text

LOG_FIELDS = ["chunk", "phase", "epoch", "steps", "train_f", "train_g", "valid_f", "valid_g", "valid_cer", "gamma",
              "labeled_hours", "unlabeled_hours", "wall_s"]
STEP_FIELDS = ["step", "phase", "epoch", "f", "g", "gamma", "lr_theta", "lr_phi", "lr_eta", "cos_fg", "norm_f", "norm_g"]


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

    def __init__(self, path: Path | None, metric_names: tuple[str, ...]):
        self.path = path  # None: keep nothing (a data-parallel rank other than 0)
        self.fields = STEP_FIELDS + [f"g_{m}" for m in metric_names]
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        if self.path is not None:
            self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(self.rows)
        self.rows = []

    def truncate(self, last_step: int) -> None:
        if self.path is None:
            return
        rows = [r for r in read_csv(self.path) if int(r["step"]) <= last_step]
        atomic_write_text(self.path, csv_text(self.fields, rows))
