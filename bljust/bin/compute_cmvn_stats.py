"""Accumulate global CMVN statistics over a feats.scp.

    python -m bljust.bin.compute_cmvn_stats dump/fbank/train/feats.scp dump/fbank/train/cmvn.ark
"""
from __future__ import annotations

import argparse
import sys

import kaldiio
from tqdm import tqdm

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.dataset import read_entry
from bljust.data.datadir import read_table
from bljust.features.cmvn import accumulate_stats, save_stats


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.compute_cmvn_stats", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("feats_scp", help="feature list (Kaldi feats.scp) to accumulate over")
    p.add_argument("out", help="statistics file to write (Kaldi stats matrix)")
    args = p.parse_args(argv)
    entries = read_table(args.feats_scp)  # checks every line first, naming a bad one
    if not entries:
        print(f"ERROR: {args.feats_scp}: no utterances to accumulate statistics over", file=sys.stderr)
        return 1
    feats = kaldiio.load_scp(args.feats_scp)
    stats = accumulate_stats(tqdm((read_entry(feats, u, spec) for u, spec in entries.items()), total=len(entries),
                                  desc="cmvn", mininterval=5, file=sys.stderr, disable=None))
    save_stats(args.out, stats)
    print(f"compute_cmvn_stats: {int(stats[0, -1])} frames from {len(feats)} utterances -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
