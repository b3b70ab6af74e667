"""An endless, resumable stream of batches over one dataset (labeled or unlabeled).

Labeled and unlabeled data each get their own stream, so their passes (and shuffles)
are independent of each other and of the trainer's phases.
"""
from __future__ import annotations

from bljust.data.dataset import Batch, BucketBatchSampler, FeatureDataset, collate


class BatchStream:
    def __init__(self, dataset: FeatureDataset, utts: list[str], max_frames: int, shuffle: bool, seed: int):
        self.dataset = dataset
        self.sampler = BucketBatchSampler({u: dataset.num_frames[u] for u in utts}, max_frames, shuffle, seed)
        self._iter = iter(self.sampler)

    @property
    def batches_per_pass(self) -> int:
        return len(self.sampler)

    def next(self) -> Batch:
        try:
            utts = next(self._iter)
        except StopIteration:
            self.sampler.set_epoch(self.sampler.epoch + 1)
            self._iter = iter(self.sampler)
            utts = next(self._iter)
        return collate(self.dataset, utts)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._iter = iter(self.sampler)
