"""Data-directory tools (the utils/*.sh data scripts call these).

    python -m bljust.bin.datadir validate [--no-text] [--no-wav] [--need-feats] data/train
    python -m bljust.bin.datadir fix data/train
    python -m bljust.bin.datadir subset (--utt-list F | --spk-list F | --first N | --last N | --shortest N) SRC DST
    python -m bljust.bin.datadir combine DST SRC1 SRC2 ...
    python -m bljust.bin.datadir split [--per-utt] data/train 4
    python -m bljust.bin.datadir utt2spk_to_spk2utt [FILE]    (stdin when no FILE; output on stdout)
    python -m bljust.bin.datadir spk2utt_to_utt2spk [FILE]

A problem with the data prints ``ERROR: <file>:<line>: <what>`` and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter, subcommands
from bljust.data import datadir as dd
from bljust.data.datadir_tools import combine_data_dirs, fix_data_dir, split_data_dir, subset_data_dir
from bljust.data.validate import validate_data_dir


def _pairs(lines: list[str], what: str) -> dict[str, str]:
    """``key value`` lines (unsorted allowed) to a dict; a duplicate key is an error."""
    out: dict[str, str] = {}
    for n, line in enumerate(lines, start=1):
        parts = line.split(None, 1)
        if not parts:
            continue
        if parts[0] in out:
            raise dd.DataDirError(f"{what}:{n}: duplicate key '{parts[0]}'")
        out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out


def _read_input(file: str | None) -> tuple[list[str], str]:
    if file is None or file == "-":
        return sys.stdin.read().splitlines(), "<stdin>"
    with open(file, encoding="utf-8") as f:
        return f.read().splitlines(), file


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "validate":
        validate_data_dir(args.dir, require_text=not args.no_text, require_wav=not args.no_wav,
                          require_feats=args.need_feats)
        print(f"Successfully validated data-directory {args.dir}")
    elif args.cmd == "fix":
        n = fix_data_dir(args.dir)
        kept = len(dd.read_table(f"{args.dir}/utt2spk"))
        print(f"fix_data_dir: {args.dir}: kept {kept} utterances, dropped {n}; old files are in {args.dir}/.backup")
    elif args.cmd == "subset":
        subset_data_dir(args.src, args.dst, utt_list=args.utt_list, spk_list=args.spk_list,
                        first=args.first, last=args.last, shortest=args.shortest)
    elif args.cmd == "combine":
        combine_data_dirs(args.dst, args.srcs)
    elif args.cmd == "split":
        split_data_dir(args.dir, args.num, per_utt=args.per_utt)
    elif args.cmd == "utt2spk_to_spk2utt":
        lines, what = _read_input(args.file)
        for spk, utts in dd.utt2spk_to_spk2utt(_pairs(lines, what)).items():
            print(spk, " ".join(utts))
    elif args.cmd == "spk2utt_to_utt2spk":
        lines, what = _read_input(args.file)
        for utt, spk in dd.spk2utt_to_utt2spk(_pairs(lines, what)).items():
            print(utt, spk)
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.datadir", description=__doc__,
                                formatter_class=HelpFormatter)
    command = subcommands(p, "cmd", "COMMAND", "one of the commands below; COMMAND --help lists its options")

    s = command("validate", "check a data directory (Kaldi's validate_data_dir.sh rules)")
    s.add_argument("--no-text", action="store_true", help="the directory has no transcripts")
    s.add_argument("--no-wav", action="store_true", help="the directory need not have wav.scp")
    s.add_argument("--need-feats", action="store_true", help="feats.scp is required")
    s.add_argument("dir", help="the data directory")

    s = command("fix", "keep utterances present in every file, sort, regenerate spk2utt")
    s.add_argument("dir", help="the data directory (fixed in place; the old files go to <dir>/.backup)")

    s = command("subset", "copy a data directory restricted to some utterances")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--utt-list", metavar="FILE", help="utterance ids, one per line")
    g.add_argument("--spk-list", metavar="FILE", help="speaker ids, one per line")
    g.add_argument("--first", type=int, metavar="N", help="the first N utterances (sorted order)")
    g.add_argument("--last", type=int, metavar="N", help="the last N utterances (sorted order)")
    g.add_argument("--shortest", type=int, metavar="N", help="the N shortest utterances")
    s.add_argument("src", help="data directory to copy from")
    s.add_argument("dst", help="data directory to write")

    s = command("combine", "union of data directories")
    s.add_argument("dst", help="data directory to write")
    s.add_argument("srcs", nargs="+", help="data directories to combine")

    s = command("split", "split into DIR/split<N>/1..N (or split<N>utt with --per-utt)")
    s.add_argument("--per-utt", action="store_true", help="balance utterances, ignoring speakers")
    s.add_argument("dir", help="the data directory")
    s.add_argument("num", type=int, help="number of parts")

    for name in ("utt2spk_to_spk2utt", "spk2utt_to_utt2spk"):
        s = command(name, f"convert {name.replace('_to_', ' to ')} (stdin to stdout)")
        s.add_argument("file", nargs="?", help="input file (default: stdin)")

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return _run(args)
    except (dd.DataDirError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
