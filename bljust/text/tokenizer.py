"""Text <-> token id conversion: characters or sentencepiece (unigram / BPE).

A token directory holds ``tokens.txt`` ("symbol id" per line, Kaldi/icefall style,
with ``<blank>`` = 0 and ``<unk>`` = 1), ``tokenizer.yaml`` (the kind) and, for
sentencepiece, ``sp.model``. Word boundaries are the sentencepiece marker "▁" in
both kinds, so decoding is the same for both.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import yaml

from bljust.errors import reason
from bljust.fileio import atomic_path, atomic_write_text

BLANK, UNK = "<blank>", "<unk>"
WORD_BOUNDARY = "\u2581"
TOKEN_TYPES = ("char", "unigram", "bpe")


class TokenListError(ValueError):
    """A token directory that cannot be read; the message names the file and line."""


class Tokenizer:
    def __init__(self, token_dir: str | os.PathLike):
        token_dir = Path(token_dir)
        self.source = token_dir
        self.token_type: str = _read_info(token_dir / "tokenizer.yaml")
        tokens = token_dir / "tokens.txt"
        self.symbols: list[str] = []
        self.index: dict[str, int] = {}
        try:
            lines = tokens.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenListError(f"{tokens}: cannot be read ({reason(e)})") from None
        for lineno, line in enumerate(lines, 1):
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) != lineno - 1:
                raise TokenListError(f"{tokens}:{lineno}: expected '<symbol> {lineno - 1}', got '{line}'")
            if fields[0] in self.index:
                raise TokenListError(f"{tokens}:{lineno}: symbol '{fields[0]}' again (first on line "
                                     f"{self.index[fields[0]] + 1})")
            self.index[fields[0]] = len(self.symbols)
            self.symbols.append(fields[0])
        if self.symbols[:2] != [BLANK, UNK]:
            raise TokenListError(f"{tokens}: ids 0 and 1 must be {BLANK} and {UNK}")
        self._sp = None
        self.sp_model_bytes = b""  # sp.model as read (model packages carry it; empty for char)
        if self.token_type != "char":
            import sentencepiece as spm

            model = token_dir / "sp.model"
            try:
                self.sp_model_bytes = model.read_bytes()
                self._sp = spm.SentencePieceProcessor(model_proto=self.sp_model_bytes)
            except (OSError, RuntimeError) as e:
                raise TokenListError(f"{model}: not a readable sentencepiece model ({reason(e)})") from None

    def fingerprint(self) -> str:
        """A digest of the token type, the symbols in id order and the sentencepiece model."""
        digest = hashlib.sha256(f"{self.token_type}\n{chr(10).join(self.symbols)}\n".encode())
        digest.update(self.sp_model_bytes)
        return digest.hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def pieces(self, text: str) -> list[str]:
        if self._sp is None:
            return list(WORD_BOUNDARY + WORD_BOUNDARY.join(text.split()))
        return self._sp.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        """The word ``<unk>`` (a corpus's own unknown-word mark, as in TED-LIUM) becomes the
        ``<unk>`` token, so it survives a round trip and is scored as one word."""
        unk, ids = self.index[UNK], []
        for i, chunk in enumerate(f" {text} ".split(f" {UNK} ")):
            if i > 0:
                ids.append(unk)
            if chunk.strip():
                ids += [self.index.get(p, unk) for p in self.pieces(chunk)]
        return ids

    def decode(self, ids: list[int]) -> str:
        """``<unk>`` comes out as a word of its own."""
        pieces = [WORD_BOUNDARY + UNK + WORD_BOUNDARY if i == 1 else self.symbols[i] for i in ids if i != 0]
        return " ".join("".join(pieces).replace(WORD_BOUNDARY, " ").split())


def _read_info(path: Path) -> str:
    """The token type that ``tokenizer.yaml`` names."""
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise TokenListError(f"{path}: cannot be read ({reason(e)})") from None
    if not isinstance(info, dict) or info.get("token_type") not in TOKEN_TYPES:
        raise TokenListError(f"{path}: expected 'token_type: <{'|'.join(TOKEN_TYPES)}>'")
    return info["token_type"]


def build_tokenizer(texts: list[str], out_dir: str | os.PathLike, token_type: str = "char", vocab_size: int = 100) -> Tokenizer:
    """Train a tokenizer on ``texts`` (transcripts without utterance ids) and write it to ``out_dir``."""
    if token_type not in TOKEN_TYPES:
        raise ValueError(f"token_type must be one of {', '.join(TOKEN_TYPES)}, got '{token_type}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(w for w in t.split() if w != UNK) for t in texts]  # <unk> is a token already, not text
    if token_type == "char":
        chars = sorted({c for t in texts for c in t.replace(" ", "")})
        symbols = [WORD_BOUNDARY] + [c for c in chars if c != WORD_BOUNDARY]
    else:
        symbols = _train_sentencepiece(texts, out_dir, token_type, vocab_size)
    atomic_write_text(out_dir / "tokens.txt", "".join(f"{s} {i}\n" for i, s in enumerate([BLANK, UNK] + symbols)))
    atomic_write_text(out_dir / "tokenizer.yaml", yaml.safe_dump({"token_type": token_type, "vocab_size": len(symbols) + 2}))
    return Tokenizer(out_dir)


def _train_sentencepiece(texts: list[str], out_dir: Path, model_type: str, vocab_size: int) -> list[str]:
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        # <blank> takes id 0 in tokens.txt, so sentencepiece's own ids are remapped by symbol.
        try:
            spm.SentencePieceTrainer.train(
                input=str(corpus), model_prefix=str(Path(tmp) / "sp"), model_type=model_type,
                vocab_size=vocab_size - 1, character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1,
                unk_surface=UNK, input_sentence_size=10_000_000, shuffle_input_sentence=True, minloglevel=2,
            )
        except RuntimeError as e:  # e.g. "Vocabulary size too high (39). Please set it to a value <= 32."
            raise ValueError(f"sentencepiece {model_type} with vocab_size {vocab_size} failed: {e}") from None
        with atomic_path(out_dir / "sp.model") as tmp_model:
            os.replace(Path(tmp) / "sp.model", tmp_model)
        sp = spm.SentencePieceProcessor(model_file=str(out_dir / "sp.model"))
    return [sp.id_to_piece(i) for i in range(1, sp.get_piece_size())]
