"""Build a decoding lang directory from the labeled training transcripts only.

    python -m bljust.bin.make_lang --text data/train/text --token_dir data/token_list/char \\
        --out_dir data/lang/char [--word_order 3] [--token_order 6]

Writes into out_dir:
  lexicon.txt    "WORD t o k e n s" for every word of the transcripts the token list can spell
  lm_word.arpa   word n-gram (interpolated modified Kneser-Ney, bljust.lm.kneser_ney): with the lexicon
  lm_token.arpa  token n-gram over the same transcripts: for lexicon-free beam search (out-of-vocabulary words)
Never give it dev/test text (or an unlabeled set's transcripts): the LM must not see what is scored.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.datadir import read_table
from bljust.decode.beam import write_lexicon
from bljust.lm.kneser_ney import estimate
from bljust.text.tokenizer import Tokenizer


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.make_lang", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--text", required=True, help="Kaldi text file of the labeled training set")
    p.add_argument("--token_dir", required=True, help="token list directory (from make_tokens)")
    p.add_argument("--out_dir", required=True, help="lang directory to write")
    p.add_argument("--word_order", type=int, default=3, help="n-gram order of lm_word.arpa")
    p.add_argument("--token_order", type=int, default=6, help="n-gram order of lm_token.arpa")
    args = p.parse_args(argv)
    try:
        tokenizer = Tokenizer(args.token_dir)
        texts = [t for t in read_table(args.text).values() if t.strip()]
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sentences = [t.split() for t in texts]
        skipped = write_lexicon([w for s in sentences for w in s], tokenizer, out / "lexicon.txt")
        word_lm = estimate(sentences, args.word_order)
        word_lm.write_arpa(out / "lm_word.arpa")
        token_lm = estimate([tokenizer.pieces(t) for t in texts], args.token_order)
        token_lm.write_arpa(out / "lm_token.arpa")
    except (OSError, ValueError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    words = len({w for s in sentences for w in s})
    print(f"make_lang: {len(texts)} transcripts, {words} words ({words - len(skipped)} in lexicon.txt"
          + (f", {len(skipped)} not spellable with the tokens, e.g. {skipped[0]}" if skipped else "") + "); "
          f"lm_word.arpa {args.word_order}-gram ({', '.join(str(len(x)) for x in word_lm.logprob)} n-grams), "
          f"lm_token.arpa {args.token_order}-gram -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
