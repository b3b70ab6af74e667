"""Prepare CoVoST 2 data directories (egs/covost2/local/data.sh calls this).

    python -m bljust.bin.prepare_covost2 --commonvoice CV4_DIR --tsv_dir downloads --data_dir data --langs nl ar
    python -m bljust.bin.prepare_covost2 --commonvoice CV4_DIR --langs nl ar --check

Per language <l>: data/train_<l>, dev_<l>, test_<l> and train_unlabeled_<l> (see
bljust/data/corpora/covost2.py). With several languages also train_<l1>_<l2>..., dev_...
and train_unlabeled_... over all of them for multilingual training; they are always
written (a few small text files), so a later multilingual run needs no new preparation.
--check only verifies that Common Voice 4 is where --commonvoice says, and says what to
download if not.
A problem prints ``ERROR: <message>`` and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.corpora import CorpusError
from bljust.data.corpora.covost2 import check_commonvoice, combine_languages, prepare_covost2
from bljust.data.datadir import DataDirError


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.prepare_covost2", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--commonvoice", default="",
                   help="folder holding Common Voice 4 as <lang>/validated.tsv and <lang>/clips/ "
                   "(db.sh's COMMONVOICE; without it, the error says what to download)")
    p.add_argument("--langs", nargs="+", required=True, help="source languages (Common Voice codes)")
    p.add_argument("--tsv_dir", default="downloads", help="folder holding covost_v2.<lang>_en.tsv")
    p.add_argument("--data_dir", default="data", help="folder the data directories are written to")
    p.add_argument("--check", action="store_true", help="only check the Common Voice folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        check_commonvoice(args.commonvoice, args.langs)
        if args.check:
            return 0
        for lang in args.langs:
            prepare_covost2(lang, args.commonvoice, args.tsv_dir, args.data_dir)
        if len(args.langs) > 1:
            name = combine_languages(args.langs, args.data_dir)
            print(f"prepare_covost2: multilingual sets train_{name}, dev_{name}, train_unlabeled_{name}",
                  file=sys.stderr)
    except (CorpusError, DataDirError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
