"""Tokenizers: token list layout, encode/decode round trips."""
import pytest

from bljust.text.tokenizer import Tokenizer, build_tokenizer

TEXTS = ["THE QUICK BROWN FOX", "JUMPS OVER THE LAZY DOG", "IT'S A DOG'S LIFE"] * 30


@pytest.mark.parametrize("kind", ["char", "unigram", "bpe"])
def test_round_trip(tmp_path, kind):
    tok = build_tokenizer(TEXTS, tmp_path, kind, vocab_size=30)
    lines = (tmp_path / "tokens.txt").read_text().splitlines()
    assert lines[:2] == ["<blank> 0", "<unk> 1"]
    assert [int(l.split()[1]) for l in lines] == list(range(len(lines)))
    for t in TEXTS[:3]:
        ids = tok.encode(t)
        assert 0 not in ids and tok.decode(ids) == t
    again = Tokenizer(tmp_path)
    assert again.encode("THE LAZY FOX") == tok.encode("THE LAZY FOX")
    if kind != "char":
        assert tok.vocab_size == 30


def test_char_unknown_symbol_maps_to_unk(tmp_path):
    tok = build_tokenizer(TEXTS, tmp_path, "char")
    ids = tok.encode("FOX Q!")
    assert ids[-1] == 1 and tok.decode(ids[:-1]) == "FOX Q"
    assert tok.decode([0] + tok.encode("DOG") + [0]) == "DOG"  # blanks are ignored


def test_bad_token_type_and_size(tmp_path):
    with pytest.raises(ValueError, match="token_type must be one of"):
        build_tokenizer(TEXTS, tmp_path, "words")
    with pytest.raises(ValueError, match="unigram with vocab_size 500 failed.*Vocabulary size too high"):
        build_tokenizer(TEXTS, tmp_path, "unigram", vocab_size=500)


@pytest.mark.parametrize("token_type", ["char", "unigram"])
def test_unk_word_is_one_token_and_round_trips(tmp_path, token_type):
    texts = ["THE <unk> SAT ON THE MAT", "<unk> CAT", "A DOG <unk>", "THE CAT SAT ON A DOG"] * 5
    tok = build_tokenizer(texts, tmp_path, token_type, vocab_size=14)
    assert "<" not in "".join(tok.symbols[2:])  # the mark itself is not learned as text
    for text in texts:
        ids = tok.encode(text)
        assert ids.count(1) == text.split().count("<unk>")
        assert tok.decode(ids) == text
