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

from bljust.errors import reason
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
    if stats is None or stats[0, -1] == 0:  # an empty feats.scp
        raise ValueError("no feature frames to accumulate CMVN statistics from")
    return stats


def save_stats(path: str | os.PathLike, stats: np.ndarray) -> None:
    with atomic_open(path, "wb", encoding=None) as f:
        kaldiio.save_mat(f, stats)


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, inverse std), each float32 [D]. A file that is not a stats matrix is a ValueError naming it."""
    try:
        stats = np.asarray(kaldiio.load_mat(str(path)), dtype=np.float64)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({reason(e)})") from None
    except Exception as e:  # kaldiio's parse errors: AssertionError, RuntimeError, ValueError, UnicodeDecodeError
        raise ValueError(f"{path}: not a Kaldi CMVN statistics matrix ({reason(e)})") from None
    if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2 or not stats[0, -1] > 0:
        raise ValueError(f"{path}: not a Kaldi CMVN statistics matrix (shape {list(stats.shape)}, expected "
                         "[2, D + 1] with a positive frame count)")
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean**2, 1e-10)
    return mean.astype(np.float32), (1.0 / np.sqrt(var)).astype(np.float32)
