"""Checkpoints: one file per finished epoch, written atomically, newest N kept.

``checkpoints/epoch_<N>.pt`` holds everything needed to continue training exactly
(model, optimizers, schedulers, sampler position, RNG states); ``model_<tag>.pt``
holds only what decoding needs (config, dimensions, weights).
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from bljust.fileio import atomic_path

_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")


def save(obj: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def epoch_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(epoch, path) of every epoch checkpoint in ``ckpt_dir``, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), ckpt_dir / name) for name in os.listdir(ckpt_dir) if (m := _EPOCH_RE.match(name))]
    return sorted(found)


def prune(ckpt_dir: str | os.PathLike, keep: int) -> None:
    for _, path in epoch_checkpoints(ckpt_dir)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def load(path: str | os.PathLike) -> dict:
    # weights_only=False: our own checkpoints carry RNG states and config dicts.
    return torch.load(path, map_location="cpu", weights_only=False)
