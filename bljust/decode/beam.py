"""CTC beam search: flashlight's decoder (through torchaudio), lexicon-free or with a word lexicon, optional KenLM n-gram.

Greedy decoding keeps the single most probable frame path. Beam search keeps the
``beam_size`` best label prefixes and (with ``log_add``) sums the probabilities of all
alignments of a prefix, so it finds the most probable *label sequence* even when no
single path of it is the best path. Two modes:

* lexicon-free (default): any token sequence; an ``lm`` is then a *token* n-gram
  (KenLM over token strings, e.g. "▁ C A T ▁ D O G" for characters);
* with a ``lexicon`` ("WORD t o k e n s" per line, made by ``write_lexicon``): only the
  lexicon's words come out; an ``lm`` is a *word* n-gram.

The word boundary "▁" (``tokenizer.WORD_BOUNDARY``, the same for characters and
sentencepiece) is flashlight's silence token. Lexicon spellings leave it out because the
decoder puts silence between words itself.

Make a lexicon from transcripts (a Kaldi ``text`` file) or a word list::

    python -m bljust.decode.beam --token_dir data/token_list/char --text data/train/text --out data/lang/lexicon.txt
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Iterable

import torch

from bljust.fileio import atomic_write_text
from bljust.text.tokenizer import BLANK, UNK, WORD_BOUNDARY, Tokenizer

# Log-probability for "impossible" entries we add to the emissions. Finite on purpose:
# flashlight's log-add of two -inf scores gives NaN.
_IMPOSSIBLE = -1e9


@contextlib.contextmanager
def _native_stderr_silenced():
    """KenLM writes its loading progress ("Reading <file>", a bar of stars) to file descriptor 2,
    past Python; for a packed model <file> is a temporary one. Its errors reach us as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class CtcBeamSearch:
    """Batched CTC beam search over a model's log-probabilities.

    Args:
        tokenizer: the model's tokenizer (``<blank>`` = 0, ``<unk>`` = 1).
        beam_size: hypotheses kept after each frame.
        beam_size_token: tokens tried per frame (None: all).
        beam_threshold: hypotheses scoring this far below the best are pruned.
        lm: KenLM model (ARPA or binary) or None. Token n-gram without a lexicon, word n-gram with one.
        lm_weight: weight of the LM score.
        word_score: added per word; without a lexicon, per word-boundary token "▁".
        lexicon: lexicon file or None (lexicon-free).
        log_add: sum (True) rather than max over the alignments of a hypothesis.
    """

    def __init__(self, tokenizer: Tokenizer, beam_size: int = 10, beam_size_token: int | None = None,
                 beam_threshold: float = 50.0, lm: str | os.PathLike | None = None, lm_weight: float = 1.0,
                 word_score: float = 0.0, lexicon: str | os.PathLike | None = None, log_add: bool = True):
        # Imported here: only beam search needs flashlight-text.
        from torchaudio.models.decoder import ctc_decoder

        self.tokenizer = tokenizer
        self.lexicon = str(lexicon) if lexicon else None
        symbols = list(tokenizer.symbols)
        # flashlight needs a silence token; a sentencepiece vocabulary may have no standalone "▁".
        # Then it gets an extra column the model never emits (see decode).
        self.extra_boundary = WORD_BOUNDARY not in tokenizer.index
        if self.extra_boundary:
            symbols.append(WORD_BOUNDARY)
        if self.lexicon:
            check_lexicon(self.lexicon, set(symbols))
        if lm and not Path(lm).is_file():
            raise ValueError(f"language model not found: {lm}")
        try:
            with _native_stderr_silenced():
                self.decoder = ctc_decoder(
                    lexicon=self.lexicon, tokens=symbols, lm=str(lm) if lm else None,
                    beam_size=beam_size, beam_size_token=beam_size_token, beam_threshold=beam_threshold,
                    lm_weight=lm_weight, word_score=word_score,
                    # Lexicon-free flashlight has no word score; a word starts at each boundary token.
                    sil_score=0.0 if self.lexicon else word_score,
                    log_add=log_add, blank_token=BLANK, sil_token=WORD_BOUNDARY, unk_word=UNK)
        except RuntimeError as e:  # KenLM's FormatLoadException and the like, which name no file
            # KenLM's message ends with what is wrong ("Word DO was not seen in the unigrams ...").
            what = [line for line in str(e).splitlines() if line.strip()]
            raise ValueError(f"{lm}: not a valid ARPA or KenLM binary language model "
                             f"({what[-1].strip() if what else type(e).__name__})") from None

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """log_probs [B, T, V] (CTC log-probabilities, blank 0), lengths [B] -> best token ids per utterance.

        The ids are like ``ctc_greedy``'s: repeats merged, blanks removed. With a lexicon they are the
        tokenizer's spelling of the decoded words.
        """
        em = log_probs.detach().to("cpu", torch.float32)
        B, T, V = em.shape
        if V != self.tokenizer.vocab_size:
            raise ValueError(f"log_probs have {V} tokens, the tokenizer {self.tokenizer.vocab_size}")
        if self.extra_boundary:
            em = torch.cat([em, em.new_full((B, T, 1), _IMPOSSIBLE)], dim=2)
        # One certain blank frame in front: flashlight starts every hypothesis with a virtual
        # silence token, which would swallow a real "▁" in frame 0 ("▁A" and "A" would become one
        # hypothesis but "-▁A" another). After a blank, every real token counts as CTC says.
        lead = em.new_full((B, 1, em.shape[2]), _IMPOSSIBLE)
        lead[..., 0] = 0.0
        em = torch.cat([lead, em], dim=1).contiguous()
        hyps = []
        for b in range(B):
            frames = em[b, : int(lengths[b]) + 1]  # a view into contiguous memory, as flashlight reads it
            results = self.decoder.decoder.decode(frames.data_ptr(), frames.shape[0], frames.shape[1])
            hyps.append(self._best(results))
        return hyps

    def _best(self, results) -> list[int]:
        """Token ids of flashlight's best hypothesis (its final step merges hypotheses with the same labels)."""
        if not results:
            return []
        if self.lexicon:
            words = [self.decoder.word_dict.get_entry(w) for w in results[0].words if w >= 0]
            return self.tokenizer.encode(" ".join(words))
        return collapse(results[0].tokens[2:-1])  # virtual start, our lead blank, the frames, virtual end


def collapse(path: Iterable[int], blank: int = 0) -> list[int]:
    """A frame path [T] -> its CTC labels: repeats merged, then blanks removed."""
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def spelling(word: str, tokenizer: Tokenizer) -> list[str] | None:
    """The lexicon spelling of ``word``: its tokens without a leading boundary "▁"; None if a token is unknown."""
    pieces = tokenizer.pieces(word)
    if pieces and pieces[0] == WORD_BOUNDARY:
        pieces = pieces[1:]  # the decoder emits boundaries between words as silence
    if not pieces or any(p not in tokenizer.index or p in (BLANK, UNK) for p in pieces):
        return None
    return pieces


def write_lexicon(words: Iterable[str], tokenizer: Tokenizer, path: str | os.PathLike) -> list[str]:
    """Write "WORD t o k e n s" for each distinct word; returns the words skipped (not spellable with the tokens)."""
    lines, skipped = [], []
    for word in sorted(set(words)):
        pieces = spelling(word, tokenizer)
        if pieces is None:
            skipped.append(word)
        else:
            lines.append(f"{word} {' '.join(pieces)}\n")
    if not lines:
        raise ValueError(f"{path}: none of the {len(skipped)} words can be spelled with the token list")
    atomic_write_text(path, "".join(lines))
    return skipped


def check_lexicon(path: str | os.PathLike, symbols: set[str]) -> None:
    """Fail with file and line for what flashlight would reject obscurely (or, if empty, silently ignore)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"lexicon not found: {path}") from None
    entries = 0
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'WORD t o k e n s', got '{line}'")
        unknown = [t for t in fields[1:] if t not in symbols]
        if unknown:
            raise ValueError(f"{path}:{lineno}: token(s) {' '.join(unknown)} not in the token list")
        entries += 1
    if not entries:
        raise ValueError(f"{path}: the lexicon is empty")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a beam-search lexicon for a token list.")
    p.add_argument("--token_dir", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="Kaldi text file: '<utt> words ...' per line")
    src.add_argument("--words", help="one word per line")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with open(args.text or args.words, encoding="utf-8") as f:
        words = [w for line in f for w in (line.split()[1:] if args.text else line.split()[:1])]
    try:
        skipped = write_lexicon(words, Tokenizer(args.token_dir), args.out)
    except ValueError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print(f"lexicon: {len(set(words)) - len(skipped)} words -> {args.out}"
          + (f" ({len(skipped)} skipped, e.g. {skipped[0]})" if skipped else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
