"""Write <exp_dir>/RESULTS.md and print its score table.

    python -m bljust.bin.make_results exp/asr_train
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bljust.bin import cli
from bljust.score.results import score_table, write_results


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dir")
    args = p.parse_args(argv)
    write_results(args.exp_dir)
    print(f"\n{args.exp_dir}/RESULTS.md:")
    print("\n".join(score_table(Path(args.exp_dir))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
