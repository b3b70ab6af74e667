"""Checkpoints, written atomically, newest N kept.

``checkpoints/step_<N>.pt`` (after N gradient steps) holds everything needed to
continue training exactly (model, optimizers, data-stream positions, every rank's generators
and CPU and CUDA RNG states). "Exactly" holds on the same kind of device with the same number
of processes and threads: the resumed run then computes the same numbers as an uninterrupted
one (bit for bit on CPUs; on GPUs as far as the kernels are deterministic, which cuDNN's RNNs
and atomics-based reductions are not unless ``torch.use_deterministic_algorithms`` is set);
``model_best.pt`` / ``model_last.pt`` hold only what decoding needs (``package.py``).

A resume reads the newest checkpoint that can be read (one damaged by a crash mid-write on
another file system falls back to the one before) and lists every setting that differs from
the current configuration, so that two configurations are never mixed unnoticed.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from bljust.fileio import atomic_path
from bljust.train.errors import NonFiniteError

_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def save(obj: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def finite_state(module: torch.nn.Module, steps: int) -> dict:
    """``module``'s state dict; a non-finite value anywhere is an error, so it is never saved."""
    state = module.state_dict()
    bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteError(f"non-finite values in {', '.join(bad)} after step {steps}; nothing was saved")
    return state


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
    """The global RNG states as tensors, lists and numbers only, so checkpoints load without unpickling."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian],
            # the current device's generator (dropout on the GPU), once CUDA is in use
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None}


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class CheckpointError(ValueError):
    """A checkpoint or model package that cannot be read, or that carries more than data."""


def load(path: str | os.PathLike) -> dict:
    """A checkpoint or model package, read with ``weights_only=True``: tensors, numbers, strings,
    lists and dicts only. Anything else (a pickled object, which could run code) is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(f"{path}: refused, it carries a pickled payload beyond tensors and plain "
                                  f"data (an object of {found.group(1)})") from None
        raise CheckpointError(f"{path}: unreadable (not a checkpoint, or a damaged one)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def newest_readable(ckpt_dir: str | os.PathLike, warn) -> tuple[Path, dict] | None:
    """(path, state) of the newest training checkpoint that can be read, None if there is none.
    An unreadable one (a crash mid-write elsewhere) is reported through ``warn`` and the one before
    is tried; if none can be read, CheckpointError."""
    found = step_checkpoints(ckpt_dir)
    if not found:
        return None
    for _, path in reversed(found):
        try:
            return path, load(path)
        except CheckpointError as e:
            warn(f"{e}; falling back to the previous checkpoint")
    raise CheckpointError(f"{ckpt_dir}: none of the {len(found)} checkpoints can be read "
                          "(see the warnings above); move them away to start afresh")


# Settings that change how a run is carried out, not what it computes: a resume may change them.
OPERATIONAL_KEYS = ("num_threads", "keep_checkpoints", "checkpoint_interval", "diag_interval", "log_interval",
                    "max_nonfinite_in_a_row", "tensorboard", "batch.num_workers")


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """'key: saved -> current' for every setting that differs, nested keys dotted."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def resume_changes(state: dict, config: dict, world_size: int, fingerprints: dict | None = None) -> list[str]:
    """What would change if the run that wrote ``state`` went on with ``config`` on ``world_size``
    processes (operational settings aside) and with the data of ``fingerprints``
    (``setup.data_fingerprints``; a checkpoint written before they were kept is not compared)."""
    changes = [d for d in config_differences(state["config"], config) if d.split(":")[0] not in OPERATIONAL_KEYS]
    saved = state.get("fingerprints") or {}
    for name, now in (fingerprints or {}).items():
        if name in saved and saved[name]["sha"] != now["sha"]:
            changes.append(f"{name}: {saved[name]['source']} (fingerprint {saved[name]['sha']}) -> "
                           f"{now['source']} (fingerprint {now['sha']})")
    if len(state["ranks"]) != world_size:
        changes.append(f"processes: {len(state['ranks'])} -> {world_size}")
    return changes
