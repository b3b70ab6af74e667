"""Write <exp_dir>/RESULTS.md and print its score table.

    python -m bljust.bin.make_results exp/asr_train
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.score.results import score_table, write_results


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.make_results", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("exp_dir", help="experiment folder with scored decodings (decode_*/scores.json)")
    args = p.parse_args(argv)
    if not any(Path(args.exp_dir).glob("decode_*/scores.json")):
        print(f"ERROR: {args.exp_dir}: no scored decoding (decode_*/scores.json); run the decoding and scoring "
              "stages first", file=sys.stderr)
        return 1
    write_results(args.exp_dir)
    print(f"\n{args.exp_dir}/RESULTS.md:")
    print("\n".join(score_table(Path(args.exp_dir))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
