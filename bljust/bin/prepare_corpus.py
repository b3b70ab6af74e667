"""Prepare Kaldi data directories from a real corpus on disk (one subcommand per corpus).

    python -m bljust.bin.prepare_corpus librispeech --corpus_dir downloads --data_dir data \\
        [--unlabeled_parts train-clean-360,train-other-500]
    python -m bljust.bin.prepare_corpus tedlium2 --corpus_dir downloads --data_dir data \\
        [--labeled_hours H] [--seed N]

``--corpus_dir`` is the folder holding ``LibriSpeech/`` or ``TEDLIUM_release2/``. Prints
the sets written with their sizes. A problem with the corpus prints ``ERROR: <message>``
(naming the file and line) and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter, subcommands
from bljust.data.corpora import CorpusError
from bljust.data.datadir import DataDirError


def _parts(value: str) -> list[str]:
    """A comma- or space-separated list (commas survive the recipes' unquoted option passing)."""
    return [p for p in value.replace(",", " ").split() if p]


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.prepare_corpus", description=__doc__,
                                formatter_class=HelpFormatter)
    command = subcommands(p, "corpus", "CORPUS", "one of the corpora below; CORPUS --help lists its options")

    s = command("librispeech", "LibriSpeech (openslr SLR12)")
    s.add_argument("--corpus_dir", required=True, help="folder holding LibriSpeech/<part>")
    s.add_argument("--data_dir", required=True, help="folder the data directories are written to")
    s.add_argument("--unlabeled_parts", default="train-clean-360,train-other-500",
                   help="training parts combined into train_unlabeled (comma-separated; empty: none; "
                        "'train-clean-100' is the CNN-LSTM study's setting)")

    s = command("tedlium2", "TED-LIUM release 2 (openslr SLR19)")
    s.add_argument("--corpus_dir", required=True, help="folder holding TEDLIUM_release2/")
    s.add_argument("--data_dir", required=True, help="folder the data directories are written to")
    s.add_argument("--labeled_hours", type=float, default=None,
                   help="label only about this many hours of train (whole talks); the rest becomes "
                        "train_unlabeled (default: all of train labeled, and all of it also unlabeled)")
    s.add_argument("--seed", type=int, default=0, help="order in which talks are drawn for --labeled_hours")

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        if args.corpus == "librispeech":
            from bljust.data.corpora.librispeech import prepare_librispeech

            summary = prepare_librispeech(args.corpus_dir, args.data_dir, _parts(args.unlabeled_parts))
        else:
            from bljust.data.corpora.tedlium2 import prepare_tedlium2

            summary = prepare_tedlium2(args.corpus_dir, args.data_dir, args.labeled_hours, args.seed)
    except (CorpusError, DataDirError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print(f"{'set':<18} {'utts':>8} {'hours':>8}")
    for name, (n, hours) in summary.items():
        print(f"{name:<18} {n:>8} {hours:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
