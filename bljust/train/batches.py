"""An endless, resumable stream of batches over one dataset (labeled or unlabeled).

Labeled and unlabeled data each get their own stream, so their passes (and shuffles)
are independent of each other and of the trainer's phases.

Under data-parallel training every rank holds the same stream: it draws the same global
batch (``max_frames`` per rank, so ``max_frames * world size`` in all) and keeps its shard,
every ``world size``-th utterance of the length-sorted batch, so shards are balanced in
count and padded length.
"""
from __future__ import annotations

from bljust.data.dataset import Batch, BucketBatchSampler, FeatureDataset, collate
from bljust.distributed import SINGLE, World


class BatchStream:
    def __init__(self, dataset: FeatureDataset, utts: list[str], max_frames: int, shuffle: bool, seed: int,
                 world: World = SINGLE):
        self.dataset, self.world = dataset, world
        self.sampler = BucketBatchSampler({u: dataset.num_frames[u] for u in utts}, max_frames * world.size, shuffle,
                                          seed, min_batch=world.size)
        self._iter = iter(self.sampler)
        self.global_utts: list[str] = []  # the whole batch the last next() drew a shard of

    @property
    def batches_per_pass(self) -> int:
        return len(self.sampler)

    def next(self) -> Batch:
        """This rank's shard of the next global batch."""
        try:
            utts = next(self._iter)
        except StopIteration:
            self.sampler.set_epoch(self.sampler.epoch + 1)
            self._iter = iter(self.sampler)
            utts = next(self._iter)
        self.global_utts = utts
        return collate(self.dataset, utts[self.world.rank::self.world.size])

    @property
    def share(self) -> float:
        """The last shard's fraction of its global batch's utterances."""
        return len(self.global_utts[self.world.rank::self.world.size]) / len(self.global_utts)

    @property
    def global_frames(self) -> int:
        return sum(self.dataset.num_frames[u] for u in self.global_utts)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._iter = iter(self.sampler)
