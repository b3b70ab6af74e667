"""Padding in length-bucketed batches vs random batches with the same frame budget.

    tools/venv/bin/python bench/bench_batching.py [--max_frames 4000 20000] [--utts 28539] [--seed 0]
                                                  [--dump_dir DUMP_DIR] [--threads 1]

Batches are cut by the same rule in both cases: an utterance joins the current batch unless
(utterances in the batch + 1) x (longest of them) would exceed max_frames.
  bucketed  BucketBatchSampler (the trainer's sampler): utterances sorted by length, then cut
  random    utterances in a random order (fixed seed), then cut
For each set of lengths and each max_frames it prints:
  pad %     padding frames / all padded frames, over all batches of one pass (target for
            bucketed: <= 5 %); padded frames of a batch = its utterances x its longest one
  batches   the number of batches in one pass (fewer = larger batches = fewer steps per epoch)
  random / bucketed   the ratio of the two padding fractions and of the two batch counts
and a verdict line per set of lengths.

The lengths are
  librispeech-like  --utts durations (default 28539, the size of LibriSpeech train-clean-100)
                    drawn with a fixed seed: 80 % around 14 s (normal, sd 1.5 s, clipped to
                    10-16.5 s), 18 % uniform in 2-10 s, 2 % uniform in 16.5-24.5 s (mean 12.7 s,
                    as in LibriSpeech train), as 16 kHz fbank frames (10 ms shift, 25 ms window)
  dump              with --dump_dir: the utt2num_frames of a feature dump directory
The numbers are exact counts (no timing), so they do not depend on the machine or its load.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch

from bljust.data.datadir import read_table
from bljust.data.dataset import BucketBatchSampler
from bljust.features.fbank import FbankConfig

TARGET_PAD = 0.05


def librispeech_like(n: int, seed: int) -> dict[str, int]:
    """utt id -> frames, for n durations resembling LibriSpeech train (see the docstring)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n, p=[0.80, 0.18, 0.02])
    seconds = np.where(kind == 0, np.clip(rng.normal(14.0, 1.5, n), 10.0, 16.5),
                       np.where(kind == 1, rng.uniform(2.0, 10.0, n), rng.uniform(16.5, 24.5, n)))
    fbank = FbankConfig()
    return {f"utt{i:06d}": fbank.num_frames(int(round(s * fbank.sample_rate))) for i, s in enumerate(seconds)}


def random_batches(lengths: dict[str, int], max_frames: int, seed: int) -> list[list[str]]:
    """Random order, cut by the sampler's rule: (count + 1) x longest must stay <= max_frames."""
    order = sorted(lengths)
    random.Random(seed).shuffle(order)
    batches, current, longest = [], [], 0
    for utt in order:
        n = lengths[utt]
        if current and (len(current) + 1) * max(longest, n) > max_frames:
            batches.append(current)
            current, longest = [], 0
        current.append(utt)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def padding_fraction(lengths: dict[str, int], batches: list[list[str]]) -> float:
    padded = sum(len(b) * max(lengths[u] for u in b) for b in batches)
    real = sum(lengths[u] for b in batches for u in b)
    return (padded - real) / padded


def report(name: str, lengths: dict[str, int], budgets: list[int], seed: int) -> None:
    frames = np.array(list(lengths.values()))
    print(f"{name}: {len(frames)} utterances, {frames.sum() / 360000:.1f} h, frames min {frames.min()} / "
          f"median {int(np.median(frames))} / max {frames.max()}")
    print(f"  {'max_frames':>10s} {'bucketed pad %':>15s} {'random pad %':>13s} {'random/bucketed':>16s} "
          f"{'bucketed batches':>17s} {'random batches':>15s} {'random/bucketed':>16s}")
    worst = 0.0
    for max_frames in budgets:
        bucketed = list(BucketBatchSampler(lengths, max_frames, shuffle=True, seed=seed))  # one pass, as trained
        rand = random_batches(lengths, max_frames, seed)
        assert sorted(u for b in bucketed for u in b) == sorted(lengths), "the sampler lost or repeated utterances"
        pb, pr = padding_fraction(lengths, bucketed), padding_fraction(lengths, rand)
        worst = max(worst, pb)
        print(f"  {max_frames:10d} {100 * pb:15.2f} {100 * pr:13.2f} {pr / pb if pb else float('inf'):16.1f} "
              f"{len(bucketed):17d} {len(rand):15d} {len(rand) / len(bucketed):16.2f}")
    verdict = "meets" if worst <= TARGET_PAD else "MISSES"
    print(f"  verdict: bucketed padding at most {100 * worst:.2f} % -> {verdict} the target (<= {100 * TARGET_PAD:.0f} %)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max_frames", type=int, nargs="+", default=[4000, 20000],
                   help="frame budgets per batch (the mini recipe uses 4000, the LibriSpeech recipe 20000)")
    p.add_argument("--utts", type=int, default=28539, help="utterances in the LibriSpeech-like set")
    p.add_argument("--seed", type=int, default=0, help="durations, the random order and the sampler's shuffle")
    p.add_argument("--dump_dir", help="also a feature dump directory's lengths (its utt2num_frames)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (nothing here is timed)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    path = Path(args.dump_dir) / "utt2num_frames" if args.dump_dir else None
    if path and not path.exists():
        print(f"ERROR: {path} does not exist", file=sys.stderr)
        return 1
    report("librispeech-like", librispeech_like(args.utts, args.seed), args.max_frames, args.seed)
    if path:
        report(f"dump {args.dump_dir}", {u: int(n) for u, n in read_table(path).items()}, args.max_frames, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
