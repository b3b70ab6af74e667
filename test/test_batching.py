"""The length-bucketed batch sampler keeps every batch within ``max_frames`` of padded audio."""
from __future__ import annotations

import random

import pytest

from bljust.data.dataset import BucketBatchSampler


@pytest.mark.parametrize("seed", range(5))
def test_every_batch_keeps_utterances_times_longest_within_max_frames(seed):
    rng = random.Random(seed)
    lengths = {f"utt{i:03d}": rng.randint(50, 900) for i in range(rng.randint(30, 200))}
    lengths["long"] = 1500  # longer than max_frames: a batch of its own
    max_frames = rng.choice([1000, 1600, 2500, 4000])
    sampler = BucketBatchSampler(lengths, max_frames, shuffle=True, seed=seed)
    batches = sampler.batches
    assert sorted(u for b in batches for u in b) == sorted(lengths)  # each utterance exactly once
    for batch in batches:
        padded = len(batch) * max(lengths[u] for u in batch)
        assert padded <= max_frames or len(batch) == 1, (batch, padded, max_frames)
    # Greedy filling: a batch closes only when the next utterance would not fit.
    ordered = sorted(lengths, key=lambda u: (lengths[u], u))
    flat = [u for b in batches for u in b]
    assert flat == ordered
    for batch, following in zip(batches, batches[1:]):
        assert (len(batch) + 1) * lengths[following[0]] > max_frames


def test_a_further_limit_and_a_minimum_batch_are_kept():
    lengths = {f"utt{i:02d}": 100 + 10 * i for i in range(40)}
    fits = lambda batch: len(batch) <= 3  # noqa: E731
    sampler = BucketBatchSampler(lengths, 10_000, shuffle=False, fits=fits)
    assert all(len(b) <= 3 for b in sampler.batches) and len(sampler) == 14
    sampler = BucketBatchSampler(lengths, 600, shuffle=False, min_batch=2)
    assert all(len(b) >= 2 for b in sampler.batches)
    # Over max_frames only where the minimum forces it: batches of exactly 2 utterances, or the
    # short tail that joins the batch before it.
    over = [b for b in sampler.batches[:-1] if len(b) * max(lengths[u] for u in b) > 600]
    assert over and all(len(b) == 2 for b in over)
