"""Log-mel filterbank features, Kaldi-compatible, and their storage as ark/scp.

Features are computed with torchaudio's port of Kaldi's ``compute-fbank-feats``
and stored in Kaldi's binary ark format so any Kaldi/ESPnet tool can read them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import kaldiio
import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from bljust.fileio import atomic_open


@dataclass(frozen=True)
class FbankConfig:
    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0  # 0 keeps features deterministic; Kaldi's default is 1.0

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi produces for ``num_samples`` (snip_edges=True)."""
        window = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return 0 if num_samples < window else 1 + (num_samples - window) // shift


def compute_fbank(samples: np.ndarray, config: FbankConfig = FbankConfig()) -> np.ndarray:
    """samples: float32 [num_samples] in [-1, 1] at config.sample_rate -> float32 [frames, num_mel_bins]."""
    # Kaldi works on 16-bit sample values; scaling keeps log energies comparable with Kaldi's.
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * 32768.0
    feats = kaldi.fbank(
        wave,
        sample_frequency=config.sample_rate,
        num_mel_bins=config.num_mel_bins,
        frame_length=config.frame_length_ms,
        frame_shift=config.frame_shift_ms,
        dither=config.dither,
        energy_floor=0.0,
    )
    return feats.numpy()


SPEECH_FEATURE_COMPRESSION = 2  # Kaldi's CompressionMethod kSpeechFeature


class ArkWriter:
    """Write matrices to ``<prefix>.ark`` plus the matching ``<prefix>.scp``, both atomically.

    The scp is written only on a clean close, so a crash never leaves an scp that
    points into a missing or truncated ark.
    """

    def __init__(self, ark_path: str | os.PathLike, compress: bool = False):
        self.ark_path = Path(ark_path)
        # Kaldi's compressed matrix for speech features (compute-fbank-feats --compress=true):
        # one byte per value plus per-column quantiles, about a quarter of float32's size.
        self.compression = SPEECH_FEATURE_COMPRESSION if compress else None
        self._ctx = atomic_open(self.ark_path, "wb", encoding=None)
        self._fd = self._ctx.__enter__()
        self._scp_lines: list[str] = []

    def write(self, key: str, mat: np.ndarray | tuple[int, np.ndarray]) -> None:
        """A feature matrix, or (sample rate, int16 samples): a Kaldi wav entry."""
        offset = self._fd.tell() + len(key.encode()) + 1  # scp points just past "key "
        kaldiio.save_ark(self._fd, {key: mat}, compression_method=None if isinstance(mat, tuple) else self.compression)
        self._scp_lines.append(f"{key} {self.ark_path}:{offset}\n")

    def close(self, scp_path: str | os.PathLike) -> None:
        self._ctx.__exit__(None, None, None)
        with atomic_open(scp_path) as f:
            f.writelines(self._scp_lines)

    def abort(self, exc: BaseException) -> None:
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)


def read_scp_lines(paths: Iterable[str | os.PathLike]) -> list[str]:
    lines: list[str] = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            lines.extend(line for line in f if line.strip())
    return lines
