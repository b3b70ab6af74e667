"""Reading the audio of a data directory: wav.scp entries, segments, resampling.

A wav.scp value is either a file path (anything libsndfile reads: wav, flac, sph, mp3,
...) or a Kaldi pipe, a shell command ending in ``|`` whose stdout is an audio file,
e.g. ``sox in.sph -t wav - |``. Relative paths and commands are taken from the current
folder, as in Kaldi.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from bljust.data.datadir import DataDirError, _read_rows, load_data_dir

log = logging.getLogger(__name__)

# How far a segment may end past its recording before we warn (Kaldi tolerates small overruns).
_SEGMENT_END_TOLERANCE_S = 0.1


class AudioError(RuntimeError):
    """Audio that cannot be read or used; the message names ``wav.scp:line`` and the utterance/recording."""


class _EmptyAudio(AudioError):
    """The file or pipe output has no bytes at all: treated as a recording of 0 samples."""


def _stderr_tail(stderr: bytes, max_chars: int = 2000) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return text[-max_chars:] if text else "(no stderr output)"


def _decode(source, what: str) -> tuple[np.ndarray, int]:
    """Decode with soundfile; return float32 mono ``[num_samples]`` (first channel) and the rate."""
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"cannot decode {what}: {e}") from None
    return np.ascontiguousarray(data[:, 0]), int(sr)


def read_audio(entry: str) -> tuple[np.ndarray, int]:
    """Read one wav.scp value: a file path, or a shell command ending in ``|``.

    Returns ``(samples float32 [num_samples], sample_rate)``; multi-channel audio gives
    its first channel. Raises AudioError for a missing or undecodable file, or a
    command that exits non-zero (with the tail of its stderr).
    """
    entry = entry.strip()
    if entry.endswith("|"):
        cmd = entry[:-1].strip()
        proc = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise AudioError(f"command '{cmd}' exited with status {proc.returncode}: {_stderr_tail(proc.stderr)}")
        if not proc.stdout:
            raise _EmptyAudio(f"command '{cmd}' wrote no audio")
        return _decode(io.BytesIO(proc.stdout), f"the output of '{cmd}'")
    path = Path(entry)
    if not path.is_file():
        raise AudioError(f"no such file '{entry}'")
    if path.stat().st_size == 0:
        raise _EmptyAudio(f"file '{entry}' is empty")
    return _decode(str(path), f"'{entry}'")


def resample(wave: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample ``wave`` float32 ``[num_samples]`` from ``sr`` to ``target_sr`` Hz.

    Output length is ``ceil(num_samples * target_sr / sr)``.
    """
    if sr == target_sr or len(wave) == 0:
        return wave.astype(np.float32, copy=False) if len(wave) else np.zeros(0, np.float32)
    import torch  # imported here: reading a data directory should not pay for torch's import
    import torchaudio

    out = torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), sr, target_sr)
    return out.numpy()


class AudioReader:
    """The audio of a data directory's utterances, at ``target_sr``.

    ``for utt, samples, sr in AudioReader("data/train")`` yields utterances in sorted
    order, ``samples`` float32 ``[num_samples]`` and ``sr == target_sr``. With a segments
    file each utterance is its slice of the recording; the current recording is cached,
    since sorted segments usually come grouped by recording. Audio below ``target_sr`` is
    an AudioError (upsampling cannot restore the missing band); higher rates are
    resampled down. An utterance with a NaN or infinite sample is an AudioError too
    (a float WAV can hold them, and every feature computed from them would be garbage).
    A zero-length recording is yielded with 0 samples.
    """

    def __init__(self, data_dir: str | os.PathLike, target_sr: int = 16000):
        self.dir = Path(data_dir)
        dd = load_data_dir(self.dir)
        if dd.wav_scp is None:
            raise DataDirError(f"{self.dir / 'wav.scp'}: no such file")
        self.target_sr = int(target_sr)
        self.wav_scp = dd.wav_scp
        self.wav_line = {k: n for k, (_, n) in _read_rows(self.dir / "wav.scp").items()}
        self.segments = dd.segments
        self.utt_ids = dd.utt_ids
        self._cache: tuple[str, np.ndarray] | None = None  # (recording id, samples at target_sr)

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, int]]:
        for utt in self.utt_ids:
            yield utt, self.read(utt), self.target_sr

    def _where(self, reco: str) -> str:
        return f"{self.dir / 'wav.scp'}:{self.wav_line[reco]}"

    @staticmethod
    def _who(reco: str, utt: str) -> str:
        return f"utterance '{utt}'" if reco == utt else f"recording '{reco}' (utterance '{utt}')"

    def describe(self, utt: str) -> str:
        """``<wav.scp>:<line>: utterance '<utt>' ('<entry>')``, to start a message about ``utt``'s audio."""
        reco = utt if self.segments is None else self.segments[utt][0]
        return f"{self._where(reco)}: {self._who(reco, utt)} ('{self.wav_scp[reco]}')"

    def _recording(self, reco: str, utt: str) -> np.ndarray:
        """The samples of recording ``reco`` at target_sr (``utt`` is for messages)."""
        if self._cache is not None and self._cache[0] == reco:
            return self._cache[1]
        who = self._who(reco, utt)
        if reco not in self.wav_scp:
            raise AudioError(f"{self.dir / 'segments'}: utterance '{utt}' refers to recording '{reco}', "
                             f"which is not in wav.scp")
        entry = self.wav_scp[reco]
        try:
            wave, sr = read_audio(entry)
        except _EmptyAudio as e:
            log.warning("%s: %s: %s; using 0 samples", self._where(reco), who, e)
            wave, sr = np.zeros(0, np.float32), self.target_sr
        except AudioError as e:
            raise AudioError(f"{self._where(reco)}: {who}: {e}") from None
        if len(wave) and sr < self.target_sr:
            raise AudioError(f"{self._where(reco)}: {who} ('{entry}') has sample rate {sr} Hz, below the target "
                             f"{self.target_sr} Hz; upsampling cannot restore the missing band, so lower the "
                             f"target rate (--fs) or leave this audio out")
        wave = resample(wave, sr, self.target_sr)
        self._cache = (reco, wave)
        return wave

    def read(self, utt: str) -> np.ndarray:
        """The samples of utterance ``utt``: float32 ``[num_samples]`` at target_sr."""
        if self.segments is None:
            if utt not in self.wav_scp:
                raise AudioError(f"{self.dir / 'wav.scp'}: no entry for utterance '{utt}'")
            return self._finite(utt, self._recording(utt, utt))
        if utt not in self.segments:
            raise AudioError(f"{self.dir / 'segments'}: no entry for utterance '{utt}'")
        reco, start, end = self.segments[utt]
        wave = self._recording(reco, utt)
        duration = len(wave) / self.target_sr
        if end > duration + _SEGMENT_END_TOLERANCE_S:
            log.warning("%s: utterance '%s' ends at %.3f s, past the end of recording '%s' (%.3f s); truncated",
                        self.dir / "segments", utt, end, reco, duration)
        b = int(round(start * self.target_sr))
        e = min(int(round(end * self.target_sr)), len(wave))
        # A copy, since callers may modify it; only the utterance's own samples are checked,
        # since a bad stretch that no segment uses is harmless.
        return self._finite(utt, wave[b:e].copy() if b < e else np.zeros(0, np.float32))

    def _finite(self, utt: str, wave: np.ndarray) -> np.ndarray:
        """``wave``, or an AudioError naming ``utt`` if a sample is NaN or infinite."""
        finite = np.isfinite(wave)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise AudioError(f"{self.describe(utt)}: {len(bad)} of its {len(wave)} samples are NaN or infinite "
                             f"(the first at {bad[0] / self.target_sr:.3f} s into the utterance)")
        return wave
