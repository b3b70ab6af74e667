"""Compare finished experiments: a markdown table of test WER/CER with each run's budget.

    python -m bljust.bin.compare --test_set test --out exp/compare.md exp/asr_pt_ft exp/asr_bljust

Experiments whose names differ only by a trailing ``_seed<N>`` are aggregated
(mean ± std). With --plot, a PNG shows the systems' test error rates and validation curves.

With --reference (an experiment, or a group of seeds: its tag without ``_seed<N>``), a second
table gives every other system's ΔWER and ΔCER against it (system − reference, in points):
a paired bootstrap over the test utterances (Bisani and Ney, 2004; fixed seed, so the same
numbers every time) with its 95 % percentile interval and two-sided p, and with 2 or more
seeds on both sides a paired t-test over the seeds of the same number
(bljust/score/significance.py has the definitions):

    python -m bljust.bin.compare --reference train_supervised --ref_text dump/fbank/test/text \
        exp/asr_train_supervised_seed{0,1,2} exp/asr_train_bljust_seed{0,1,2}
"""
from __future__ import annotations

import argparse
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.fileio import atomic_write_text
from bljust.score.compare import collect, examples, pivot_table, significance, significance_table, table
from bljust.score.significance import RESAMPLES, SEED


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.compare", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("exp_dirs", nargs="+", help="experiment folders (exp/asr_<tag>); tags differing only by "
                   "_seed<N> are aggregated")
    p.add_argument("--test_set", default="test", help="test set whose decodings decode_<test_set>_* are compared")
    p.add_argument("--decode", nargs="+", help="decoding name(s) (decode_<test_set>_<decode>), side by side; "
                   "needed when an experiment has several")
    p.add_argument("--examples", type=int, default=0, help="also print this many aligned test utterances per system")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("--plot", help="write a PNG comparing the systems (test WER/CER per decoding, validation CER)")
    p.add_argument("--pivot", action="store_true",
                   help="one row per setting (tag without its strategy suffix), one WER column per strategy")
    p.add_argument("--reference", metavar="EXP",
                   help="compare every other system with this one (an experiment's folder or name, or a group "
                   "of seeds: the tag without _seed<N>): ΔWER/ΔCER with a paired bootstrap's 95%% CI and p, "
                   "and a paired t-test over seeds")
    p.add_argument("--ref_text", help="the reference Kaldi text the scoring used, to recompute per-utterance counts "
                   "from it and each decoding's text (default: rebuilt from each decoding's alignments.txt)")
    p.add_argument("--bootstrap", type=int, default=RESAMPLES, metavar="B",
                   help="bootstrap resamples of the test utterances")
    p.add_argument("--bootstrap_seed", type=int, default=SEED, help="seed of the bootstrap resampling")
    args = p.parse_args(argv)
    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be a positive integer, got {args.bootstrap}")
    try:
        records = collect(args.exp_dirs, args.test_set, args.decode)
        text = pivot_table(records) if args.pivot else table(records)
        if args.reference is not None:
            ref_text = None
            if args.ref_text:
                from bljust.data.datadir import read_table

                ref_text = read_table(args.ref_text)
            text += "\n\n" + significance_table(significance(
                records, args.reference, ref_text, resamples=args.bootstrap, seed=args.bootstrap_seed,
                ref_name=args.ref_text or "--ref_text"), args.test_set)
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
