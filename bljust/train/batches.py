"""An endless, resumable stream of batches over one dataset (labeled or unlabeled).

Labeled and unlabeled data each get their own stream, so their passes (and shuffles)
are independent of each other and of the trainer's phases.

Under data-parallel training every rank holds the same stream: it draws the same global
batch (``max_frames`` per rank, so ``max_frames * world size`` in all) and keeps its shard,
every ``world size``-th utterance of the length-sorted batch, so shards are balanced in
count and padded length.

With ``num_workers`` > 0, worker processes read and collate the next batches ahead of the
trainer (in pinned memory with ``pin_memory``, so that the copy to a GPU overlaps compute).
The batch order depends only on the seed and the epoch, and the stream's position counts
batches handed to the trainer, not batches prefetched, so a resumed stream restarts the
workers at exactly the next batch.
"""
from __future__ import annotations

from typing import Callable

import torch

from bljust.data.dataset import Batch, BucketBatchSampler, FeatureDataset, collate
from bljust.distributed import SINGLE, World


class _Shards(torch.utils.data.Dataset):
    """Item i: this rank's collated shard of global batch i of ``batches`` (run in a worker)."""

    def __init__(self, dataset: FeatureDataset, batches: list[list[str]], world: World):
        self.dataset, self.batches, self.world = dataset, batches, world

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        return collate(self.dataset, self.batches[i][self.world.rank::self.world.size])


class BatchStream:
    def __init__(self, dataset: FeatureDataset, utts: list[str], max_frames: int, shuffle: bool, seed: int,
                 world: World = SINGLE, num_workers: int = 0, pin_memory: bool = False,
                 fits: Callable[[list[str]], bool] | None = None):
        """max_frames: padded audio per batch and rank, in 10 ms frames whatever the dataset's rows are.
        fits: a further limit, given the global batch (all ranks' shards)."""
        self.dataset, self.world = dataset, world
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.sampler = BucketBatchSampler({u: dataset.num_frames[u] for u in utts}, dataset.rows(max_frames) * world.size,
                                          shuffle, seed, min_batch=world.size, fits=fits)
        self.global_utts: list[str] = []  # the whole batch the last next() drew a shard of
        self._start()

    def _start(self) -> None:
        """Begin reading the current epoch at the current position."""
        self._order = self.sampler.epoch_order()
        self._loaded = None
        if self.num_workers > 0:
            shards = _Shards(self.dataset, self._order[self.sampler.position:], self.world)
            self._loaded = iter(torch.utils.data.DataLoader(
                shards, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory,
                prefetch_factor=4))

    @property
    def batches_per_pass(self) -> int:
        return len(self.sampler)

    def next(self) -> Batch:
        """This rank's shard of the next global batch."""
        if self.sampler.position == len(self._order):
            self.sampler.set_epoch(self.sampler.epoch + 1)
            self._start()
        self.global_utts = self._order[self.sampler.position]
        self.sampler.position += 1
        if self._loaded is not None:
            try:
                return next(self._loaded)
            except ValueError as e:  # bad data in a worker: torch puts the worker's traceback into the
                # message ("Caught DumpError in DataLoader worker process 0. Original Traceback ..."),
                # whose last line is "<module>.<class>: <our message>"
                raise type(e)(str(e).strip().splitlines()[-1].split(": ", 1)[-1]) from None
        return collate(self.dataset, self.global_utts[self.world.rank::self.world.size])

    @property
    def share(self) -> float:
        """The last shard's fraction of its global batch's utterances."""
        return len(self.global_utts[self.world.rank::self.world.size]) / len(self.global_utts)

    @property
    def global_seconds(self) -> float:
        """Seconds of audio in the last global batch (every rank's shard)."""
        return sum(self.dataset.num_frames[u] for u in self.global_utts) * self.dataset.frame_shift

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._start()
