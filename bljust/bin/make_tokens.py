"""Build the token list (and sentencepiece model) from a Kaldi ``text`` file.

    python -m bljust.bin.make_tokens data/train/text data/token_list/char --token_type char
"""
from __future__ import annotations

import argparse
import sys

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.datadir import read_table
from bljust.text.tokenizer import TOKEN_TYPES, build_tokenizer


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.make_tokens", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("text", help="Kaldi text file: '<utt> <transcript>' per line")
    p.add_argument("out_dir", help="token list directory to write (tokens.txt, and the sentencepiece model)")
    p.add_argument("--token_type", choices=TOKEN_TYPES, default="char",
                   help="char: characters; unigram, bpe: sentencepiece subwords")
    p.add_argument("--vocab_size", type=int, default=100, help="sentencepiece vocabulary size, <blank> included")
    args = p.parse_args(argv)
    texts = list(read_table(args.text).values())
    if not texts:
        print(f"ERROR: {args.text}: no transcripts to build a token list from", file=sys.stderr)
        return 1
    tok = build_tokenizer(texts, args.out_dir, args.token_type, args.vocab_size)
    print(f"make_tokens: {tok.vocab_size} tokens ({args.token_type}) -> {args.out_dir}/tokens.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
