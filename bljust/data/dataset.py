"""Feature datasets and the length-bucketed dynamic batch sampler.

A dataset reads a dump directory (``feats.scp``, ``utt2num_frames`` and, when labeled,
``text``) and returns CMVN-normalised features and token ids. A dump of raw audio
(``feats_type raw``) holds 16-bit waveforms as Kaldi wav entries and a ``frame_shift``
file (Kaldi's name for the seconds per row: 1/16000); its rows are samples, returned as
float32 [T, 1] in [-1, 1). Lengths are counted in rows; ``frame_shift`` turns them into
seconds, so budgets mean the same audio for any front end.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import kaldiio
import numpy as np
import torch

from bljust.data.datadir import read_table, write_table
from bljust.errors import reason
from bljust.features.cmvn import load_stats
from bljust.features.fbank import ArkWriter
from bljust.text.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FBANK_FRAME_SHIFT = 0.01  # seconds; batch budgets (max_frames) are counted in these frames


class DumpError(ValueError):
    """A dump directory whose files disagree or cannot be read; the message names the file and utterance."""


def _same_utterances(path: Path, table: dict, other_path: Path, other: dict) -> None:
    """Both tables list the same utterances (Kaldi's validate_data_dir.sh rule), else DumpError."""
    for utt in other:
        if utt not in table:
            raise DumpError(f"{path}: no entry for utterance '{utt}' (listed in {other_path})")
    for utt in table:
        if utt not in other:
            raise DumpError(f"{path}: utterance '{utt}' is not in {other_path}")


def read_entry(feats: kaldiio.utils.LazyLoader, utt: str, spec: str):
    """``feats[utt]`` (a matrix, or a Kaldi wav entry (rate, samples)) from ``kaldiio.load_scp``'s
    reader; spec: its feats.scp value "<ark>:<offset>", to name the file when it cannot be read."""
    try:
        with warnings.catch_warnings():  # kaldiio warns before it raises: the error says it all
            warnings.simplefilter("ignore")
            return feats[utt]
    except Exception as e:  # kaldiio's own errors: AssertionError, ValueError, OSError, ...
        ark = spec.rpartition(":")[0] or spec
        raise DumpError(f"{ark}: cannot read utterance '{utt}' at {spec} (truncated or damaged: {reason(e)})") from None


class FeatureDataset:
    """Random access to the utterances of a dump directory.

    ``dataset[utt] -> (feats float32 [T, F], token ids list[int] or None)``
    """

    def __init__(self, dump_dir: str | os.PathLike, cmvn: str | os.PathLike | None = None, tokenizer: Tokenizer | None = None):
        dump_dir = Path(dump_dir)
        self.dir = dump_dir
        self.num_frames = {u: int(n) for u, n in read_table(dump_dir / "utt2num_frames").items()}
        scp = dump_dir / "feats.scp"
        self.entries = read_table(scp)  # utt -> "<ark path>:<offset>"
        _same_utterances(scp, self.entries, dump_dir / "utt2num_frames", self.num_frames)
        self.feats = kaldiio.load_scp(str(scp))
        shift_file = dump_dir / "frame_shift"
        self.frame_shift = float(shift_file.read_text()) if shift_file.exists() else FBANK_FRAME_SHIFT  # s per row
        self.tokenizer = tokenizer
        self.targets: dict[str, list[int]] | None = None
        if tokenizer is not None:
            text = read_table(dump_dir / "text")
            _same_utterances(dump_dir / "text", text, scp, self.entries)
            self.targets = {u: tokenizer.encode(t) for u, t in text.items()}
        self.cmvn = cmvn
        self.mean, self.istd = load_stats(cmvn) if cmvn else (None, None)

    @property
    def utt_ids(self) -> list[str]:
        return list(self.num_frames)

    def __len__(self) -> int:
        return len(self.num_frames)

    def __getitem__(self, utt: str) -> tuple[np.ndarray, list[int] | None]:
        entry = read_entry(self.feats, utt, self.entries[utt])
        if isinstance(entry, tuple):  # a Kaldi wav entry: (sample rate, int16 samples)
            mat = (entry[1].astype(np.float32) / 32768.0).reshape(-1, 1)
        else:
            mat = np.asarray(entry, dtype=np.float32)
        if self.mean is not None:
            if mat.ndim != 2 or mat.shape[1] != self.mean.shape[0]:
                raise DumpError(f"{self.cmvn}: CMVN statistics of dimension {self.mean.shape[0]}, but utterance "
                                f"'{utt}' of {self.dir} has features of dimension {mat.shape[-1]}")
            mat = (mat - self.mean) * self.istd
        return mat, (self.targets[utt] if self.targets is not None else None)

    def fingerprint(self) -> str:
        """A digest of what training reads from this set: its utterance ids, lengths and token ids
        (not the feature values, nor where they are stored, so a moved dump keeps its fingerprint)."""
        digest = hashlib.sha256()
        for utt in sorted(self.num_frames):
            target = "" if self.targets is None else ",".join(map(str, self.targets[utt]))
            digest.update(f"{utt} {self.num_frames[utt]} {target}\n".encode())
        return digest.hexdigest()[:16]

    def hours(self, utts: list[str] | None = None) -> float:
        utts = self.utt_ids if utts is None else utts
        return sum(self.num_frames[u] for u in utts) * self.frame_shift / 3600

    def rows(self, fbank_frames: int) -> int:
        """The rows of this dataset that hold as much audio as ``fbank_frames`` 10 ms frames."""
        return max(1, round(fbank_frames * FBANK_FRAME_SHIFT / self.frame_shift))


def write_dump(path: str | os.PathLike, mats: dict[str, np.ndarray], text: dict[str, str] | None = None) -> None:
    """A dump directory as FeatureDataset reads it: feats.ark/.scp, utt2num_frames and, with ``text``, text."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    writer = ArkWriter(path / "feats.ark")
    for utt, mat in mats.items():
        writer.write(utt, mat)
    writer.close(path / "feats.scp")
    write_table(path / "utt2num_frames", {utt: len(mat) for utt, mat in mats.items()})
    if text is not None:
        write_table(path / "text", text)


@dataclass
class Batch:
    """feats [B, T, F] zero-padded, lengths [B], targets [B, S] zero-padded (or None), target_lengths [B]."""

    utt_ids: list[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None
    target_lengths: torch.Tensor | None

    def halves(self) -> tuple["Batch", "Batch"]:
        """The first and second half of the utterances (the first gets the odd one), padding trimmed."""
        h = (len(self.utt_ids) + 1) // 2
        return self._rows(0, h), self._rows(h, len(self.utt_ids))

    def _rows(self, start: int, end: int) -> "Batch":
        t = int(self.lengths[start:end].max())
        targets = target_lengths = None
        if self.targets is not None:
            target_lengths = self.target_lengths[start:end]
            targets = self.targets[start:end, : max(1, int(target_lengths.max()))]
        return Batch(self.utt_ids[start:end], self.feats[start:end, :t], self.lengths[start:end], targets, target_lengths)

    def pin_memory(self) -> "Batch":
        """The same batch in page-locked memory (DataLoader's pin_memory calls this)."""
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return Batch(self.utt_ids, pin(self.feats), pin(self.lengths), pin(self.targets), pin(self.target_lengths))

    def to(self, device: torch.device) -> "Batch":
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(self.utt_ids, mv(self.feats), mv(self.lengths), mv(self.targets), mv(self.target_lengths))


def collate(dataset: FeatureDataset, utts: list[str]) -> Batch:
    items = [dataset[u] for u in utts]
    lengths = torch.tensor([m.shape[0] for m, _ in items])
    feats = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1])
    for i, (m, _) in enumerate(items):
        feats[i, : m.shape[0]] = torch.from_numpy(m if m.flags.writeable else m.copy())  # torch warns on read-only arrays
    targets = target_lengths = None
    if items[0][1] is not None:
        target_lengths = torch.tensor([len(t) for _, t in items])
        targets = torch.zeros(len(items), max(1, int(target_lengths.max())), dtype=torch.long)
        for i, (_, t) in enumerate(items):
            targets[i, : len(t)] = torch.tensor(t, dtype=torch.long)
    return Batch(utts, feats, lengths, targets, target_lengths)


class BucketBatchSampler:
    """Groups utterances of similar length into batches of at most ``max_frames`` padded frames.

    Batches are fixed once (sorted by length, then cut; ``min_batch`` utterances at least, so that
    every data-parallel rank gets a share); each epoch shuffles their
    order with ``seed + epoch``, so the order is reproducible and resumable from
    ``state_dict()`` (epoch and position within the epoch).
    """

    def __init__(self, lengths: dict[str, int], max_frames: int, shuffle: bool = True, seed: int = 0,
                 min_batch: int = 1, fits: Callable[[list[str]], bool] | None = None):
        """fits: a further limit, e.g. on a transducer joint's memory; a batch grows only while
        ``fits(batch)`` holds (or it has fewer than ``min_batch`` utterances)."""
        if len(lengths) < min_batch:
            raise ValueError(f"{len(lengths)} utterances cannot fill batches of at least {min_batch}")
        self.shuffle, self.seed = shuffle, seed
        self.epoch, self.position = 1, 0
        ordered = sorted(lengths, key=lambda u: (lengths[u], u))
        self.batches: list[list[str]] = []
        current: list[str] = []
        for utt in ordered:
            # Sorted ascending, so the newest utterance is the longest: padded size = count * its length.
            if len(current) >= min_batch and ((len(current) + 1) * lengths[utt] > max_frames
                                              or (fits is not None and not fits(current + [utt]))):
                self.batches.append(current)
                current = []
            current.append(utt)
        if len(current) < min_batch:  # a short tail joins the batch before it
            current = self.batches.pop() + current
        self.batches.append(current)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def epoch_order(self) -> list[list[str]]:
        order = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        return order

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = self.epoch_order()
        while self.position < len(order):
            batch = order[self.position]
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
