"""Compare finished experiments: a markdown table of test WER/CER with each run's budget.

    python -m bljust.bin.compare --test_set test --out exp/compare.md exp/asr_pt_ft exp/asr_bljust

Experiments whose names differ only by a trailing ``_seed<N>`` are aggregated
(mean ± std). With --plot, a PNG shows the systems' test error rates and validation curves.
"""
from __future__ import annotations

import argparse
import sys

from bljust.fileio import atomic_write_text
from bljust.score.compare import collect, examples, pivot_table, table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dirs", nargs="+")
    p.add_argument("--test_set", default="test")
    p.add_argument("--decode", nargs="+", help="decoding name(s) (decode_<test_set>_<decode>), side by side; "
                   "needed when an experiment has several")
    p.add_argument("--examples", type=int, default=0, help="also print this many aligned test utterances per system")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("--plot", help="write a PNG comparing the systems (test WER/CER per decoding, validation CER)")
    p.add_argument("--pivot", action="store_true",
                   help="one row per setting (tag without its strategy suffix), one WER column per strategy")
    args = p.parse_args(argv)
    try:
        records = collect(args.exp_dirs, args.test_set, args.decode)
        text = pivot_table(records) if args.pivot else table(records)
    except FileNotFoundError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    if args.examples:
        text += "\n\nExamples (REF: reference, HYP: hypothesis, EDT: substitution/deletion/insertion):\n\n" + examples(
            records, args.test_set, args.examples)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    if args.plot:
        from bljust.train.plots import plot_comparison

        plot_comparison(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
