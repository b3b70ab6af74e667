"""Global cepstral mean and variance normalisation (CMVN).

Statistics are kept in Kaldi's layout, a float64 matrix of shape [2, D + 1]:
row 0 holds the per-dimension sums and the frame count in the last column, row 1
holds the per-dimension sums of squares. ``compute-cmvn-stats`` writes the same.
"""
from __future__ import annotations

import os
from typing import Iterable

import kaldiio
import numpy as np

from bljust.fileio import atomic_open


def accumulate_stats(feats: Iterable[np.ndarray]) -> np.ndarray:
    """feats: iterable of [frames, D] matrices -> stats [2, D + 1]."""
    stats = None
    for mat in feats:
        mat = np.asarray(mat, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, mat.shape[1] + 1))
        stats[0, :-1] += mat.sum(axis=0)
        stats[1, :-1] += (mat**2).sum(axis=0)
        stats[0, -1] += mat.shape[0]
    if stats is None or stats[0, -1] == 0:
        raise ValueError("no feature frames to accumulate CMVN statistics from")
    return stats


def save_stats(path: str | os.PathLike, stats: np.ndarray) -> None:
    with atomic_open(path, "wb", encoding=None) as f:
        kaldiio.save_mat(f, stats)


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, inverse std), each float32 [D]."""
    stats = kaldiio.load_mat(str(path))
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean**2, 1e-10)
    return mean.astype(np.float32), (1.0 / np.sqrt(var)).astype(np.float32)
