"""Checkpoints, written atomically, newest N kept.

``checkpoints/step_<N>.pt`` (after N gradient steps) holds everything needed to
continue training exactly (model, optimizers, data-stream positions, RNG states);
``model_best.pt`` / ``model_last.pt`` hold only what decoding needs.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from bljust.fileio import atomic_path

_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def save(obj: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def step_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every training checkpoint in ``ckpt_dir``, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), ckpt_dir / name) for name in os.listdir(ckpt_dir) if (m := _STEP_RE.match(name))]
    return sorted(found)


def prune(ckpt_dir: str | os.PathLike, keep: int) -> None:
    for _, path in step_checkpoints(ckpt_dir)[:-keep] if keep > 0 else []:
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
