"""Checkpoint averaging: decode with the mean weights of several training checkpoints.

The mean of the last few (or the best few) checkpoints of a run usually decodes better
than any one of them, as it smooths out the noise of the last updates.

``by="best"`` takes the ``n`` checkpoints of lowest validation CTC loss (``valid_f`` in
``train_log.csv``, matched to ``checkpoints/step_<N>.pt`` by its ``steps``; like
``model_best.pt``, rows of unsupervised phases do not count); ``by="last"`` the ``n``
newest. Only checkpoints still on disk can be used (training keeps the newest
``keep_checkpoints``), and asking for more than there are is an error rather than a
silent average of fewer: the averaged model is named after ``n``, and a name that lies
about what was averaged would mislead every comparison made with it.

Floating-point tensors are averaged; integer tensors (BatchNorm's num_batches_tracked)
are counters, not weights, and are taken from the newest averaged checkpoint.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from bljust.train import checkpoint
from bljust.train.strategies import ALL_PHASES

BY = ("best", "last")


def validation_losses(log_csv: str | os.PathLike) -> dict[int, float]:
    """steps -> valid_f from ``train_log.csv``, for chunks of phases that train the supervised head."""
    losses: dict[int, float] = {}
    if not Path(log_csv).is_file():
        return losses
    with open(log_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not ALL_PHASES.get(row["phase"], ALL_PHASES["train"]).labeled or not row["valid_f"]:
                continue
            step, loss = int(row["steps"]), float(row["valid_f"])
            losses[step] = min(loss, losses.get(step, loss))
    return losses


def select_checkpoints(exp_dir: str | os.PathLike, n: int, by: str = "best") -> list[tuple[int, Path]]:
    """The (step, path) of the ``n`` checkpoints to average, oldest first."""
    if by not in BY:
        raise ValueError(f"by must be 'best' or 'last', got '{by}'")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    exp_dir = Path(exp_dir)
    found = checkpoint.step_checkpoints(exp_dir / "checkpoints")
    if by == "last":
        chosen = found[-n:]
    else:
        losses = validation_losses(exp_dir / "train_log.csv")
        found = [(s, p) for s, p in found if s in losses]
        chosen = sorted(found, key=lambda sp: (losses[sp[0]], -sp[0]))[:n]  # ties: the newer
    if len(chosen) < n:
        what = "checkpoints" if by == "last" else "checkpoints with a validation loss in train_log.csv"
        steps = ", ".join(str(s) for s, _ in found) or "none"
        raise ValueError(f"{exp_dir}: cannot average {n} checkpoints by {by}: only {len(found)} {what} "
                         f"in {exp_dir / 'checkpoints'} (steps: {steps}); lower average.n or raise keep_checkpoints")
    return sorted(chosen)


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Mean of the "model" state dicts in the checkpoint files ``paths`` (oldest first); integers from the last.

    Loads one checkpoint at a time (each also holds optimizer states, several times the model's size).
    """
    total: dict[str, torch.Tensor] = {}
    newest: dict[str, torch.Tensor] = {}
    for i, path in enumerate(paths):
        state = checkpoint.load(path)["model"]
        if i and state.keys() != total.keys():
            raise ValueError(f"{path}: its model has other parameters than {paths[0]}; cannot average them")
        for k, v in state.items():
            if v.is_floating_point():  # summed in float64 so that the order of summation hardly matters
                total[k] = total[k] + v.double() if i else v.double()
            else:
                total[k] = v
        newest = state
    return {k: (total[k] / len(paths)).to(v.dtype) if v.is_floating_point() else v.clone() for k, v in newest.items()}


def average_checkpoints(exp_dir: str | os.PathLike, n: int, by: str = "best") -> dict:
    """A model package (like ``model_best.pt``) holding the mean weights of ``n`` checkpoints chosen ``by``.

    The architecture (config, input_dim, vocab_size) comes from ``model_last.pt``; the package
    also records which steps were averaged under "averaged".
    """
    exp_dir = Path(exp_dir)
    chosen = select_checkpoints(exp_dir, n, by)
    template = exp_dir / "model_last.pt"
    if not template.is_file():
        raise ValueError(f"{exp_dir}: no model_last.pt to take the model's architecture from")
    package = checkpoint.load(template)
    weights = average_state_dicts([p for _, p in chosen])
    if weights.keys() != package["model"].keys():
        raise ValueError(f"{exp_dir}: the checkpoints' model differs from model_last.pt's; cannot average")
    steps = [s for s, _ in chosen]
    return {**package, "model": weights, "steps": steps[-1], "averaged": {"by": by, "steps": steps}}
