"""Score a decoding: WER and CER, with per-utterance alignments.

    python -m bljust.bin.score dump/fbank/test/text exp/asr/decode_test/text exp/asr/decode_test

writes ``scores.json`` (numbers) and ``alignments.txt`` (REF/HYP/edit lines per utterance).
"""
from __future__ import annotations

import argparse
import json
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.datadir import read_table
from bljust.fileio import atomic_write_text
from bljust.score.wer import score


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.score", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("ref", help="reference Kaldi text file")
    p.add_argument("hyp", help="hypothesis Kaldi text file")
    p.add_argument("out_dir", help="folder scores.json and alignments.txt are written to")
    args = p.parse_args(argv)
    refs = read_table(args.ref)
    hyps = read_table(args.hyp, allow_empty_value=True)
    unknown = [utt for utt in hyps if utt not in refs]
    if unknown:  # a decoding of another set, or of a reference that was cut down since
        print(f"ERROR: {args.hyp}: {len(unknown)} hypotheses for utterances that are not in {args.ref}, "
              f"e.g. '{unknown[0]}'", file=sys.stderr)
        return 1
    summary, alignments = score(refs, hyps)
    if summary["missing_hypotheses"]:
        print(f"WARNING: {len(summary['missing_hypotheses'])} utterances have no hypothesis (scored as empty), "
              f"e.g. {summary['missing_hypotheses'][0]}", file=sys.stderr)
    atomic_write_text(f"{args.out_dir}/scores.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(f"{args.out_dir}/alignments.txt", alignments)
    w, c = summary["wer"], summary["cer"]
    print(f"score: {args.out_dir}: WER {w['rate']:.2f}% ({w['errors']}/{w['ref_len']}), "
          f"CER {c['rate']:.2f}% ({c['errors']}/{c['ref_len']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
