"""Interpolated modified Kneser-Ney: hand-computed values, normalisation, ARPA, and its effect on decoding."""
from __future__ import annotations

import math
import random

import pytest
import torch

from bljust.decode.beam import CtcBeamSearch, write_lexicon
from bljust.lm.kneser_ney import BOS, EOS, UNK, estimate, read_arpa
from bljust.text.tokenizer import WORD_BOUNDARY as S
from bljust.text.tokenizer import Tokenizer


def p(lm, word, *context):
    return 10 ** lm.score(word, context)


def test_bigram_matches_hand_computed_values():
    """Corpus "a b", "a". Unigram counts (distinct left words): a 1, b 1, </s> 2, <unk> 0 ->
    count-of-counts t1 = 2, t2 = 1: Y = 0.5, D1 = 1 - 2 Y t2 / t1 = 0.5; D2, D3 undefined (t3 = 0)
    -> Y. S = 4, b() = (0.5 * 2 + 0.5 * 1) / 4 = 0.375, |V| = 4 (a, b, </s>, <unk>).
    Bigram raw counts <s> a 2, a b 1, a </s> 1, b </s> 1: t1 = 3, t2 = 1, Y = 0.6, D1 = 1 - 2 * 0.6 / 3 = 0.6."""
    lm = estimate([["a", "b"], ["a"]], order=2)
    assert lm.discounts[0] == pytest.approx((0.5, 0.5, 0.5))
    assert lm.discounts[1] == pytest.approx((0.6, 0.6, 0.6))
    assert p(lm, "a") == pytest.approx(0.5 / 4 + 0.375 / 4)
    assert p(lm, "b") == pytest.approx(0.21875)
    assert p(lm, EOS) == pytest.approx(1.5 / 4 + 0.375 / 4)
    assert p(lm, UNK) == pytest.approx(0.09375)
    assert lm.logprob[0][(BOS,)] == -99.0
    # context <s>: a(<s> a) = 2 (D2 = 0.6), S = 2, b(<s>) = 0.6 * 1 / 2
    assert 10 ** lm.backoff[0][(BOS,)] == pytest.approx(0.3)
    assert p(lm, "a", BOS) == pytest.approx(1.4 / 2 + 0.3 * 0.21875)
    # context a: a b 1, a </s> 1, S = 2, b(a) = 0.6 * 2 / 2
    assert 10 ** lm.backoff[0][("a",)] == pytest.approx(0.6)
    assert p(lm, "b", "a") == pytest.approx(0.4 / 2 + 0.6 * 0.21875)
    assert p(lm, EOS, "a") == pytest.approx(0.4 / 2 + 0.6 * 0.46875)
    assert p(lm, "a", "a") == pytest.approx(0.6 * 0.21875)  # unseen: backs off
    assert p(lm, EOS, "b") == pytest.approx(0.4 + 0.6 * 0.46875)
    assert p(lm, "zebra", "a") == pytest.approx(0.6 * 0.09375)  # an unknown word scores as <unk>


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_distribution_sums_to_one(order):
    rng = random.Random(order)
    words = ["the", "cat", "dog", "sat", "on", "mat", "a", "big"]
    corpus = [[rng.choice(words) for _ in range(rng.randint(1, 8))] for _ in range(60)]
    lm = estimate(corpus, order)
    vocab = [w for w in lm.vocabulary if w != BOS]
    assert set(vocab) == set(words) | {EOS, UNK}
    contexts = [(), (BOS,), ("cat",), ("the", "cat"), (BOS, "the"), ("mat", "mat", "on"), ("big", "a", "dog")]
    for context in contexts:
        assert sum(p(lm, w, *context) for w in vocab) == pytest.approx(1.0, abs=1e-9), context
    for level in lm.logprob:
        assert all(v <= 0 for v in level.values())


def test_arpa_round_trip_and_counts(tmp_path):
    lm = estimate([["a", "b", "c"], ["a", "c"], ["b"]], order=3)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    text = path.read_text()
    assert text.startswith("\n\\data\\\nngram 1=6\n") and text.rstrip().endswith("\\end\\")
    back = read_arpa(path)
    assert back.order == 3
    for n in range(3):
        assert back.logprob[n] == pytest.approx(lm.logprob[n], abs=1e-6)
    for n in range(2):
        for g, v in lm.backoff[n].items():
            assert back.backoff[n][g] == pytest.approx(v, abs=1e-6)
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n")
    with pytest.raises(ValueError, match="bad.arpa:5"):
        read_arpa(bad)


def test_bad_input():
    with pytest.raises(ValueError, match="reserved word </s>"):
        estimate([["a", "</s>"]])
    with pytest.raises(ValueError, match="no sentences"):
        estimate([])
    with pytest.raises(ValueError, match="order must be >= 1"):
        estimate([["a"]], order=0)


def test_estimated_lm_loads_in_the_decoder_and_moves_the_best_path(tiny_corpus, tmp_path):
    """Acoustics slightly prefer "COT DOG"; a word LM from transcripts that say "CAT DOG" turns it."""
    tok = Tokenizer(tiny_corpus["token_dir"])
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(["CAT", "COT", "DOG"], tok, lexicon)
    lm = tmp_path / "lm.arpa"
    estimate([["CAT", "DOG"]] * 5 + [["COT"]], order=2).write_arpa(lm)
    frames = [{S: 0.9}, {"C": 0.9}, {"O": 0.55, "A": 0.4}, {"T": 0.9}, {S: 0.9}, {"D": 0.9}, {"O": 0.9}, {"G": 0.9},
              {"<blank>": 0.9}]
    probs = torch.full((len(frames), tok.vocab_size), 1e-4)
    for t, frame in enumerate(frames):
        for sym, prob in frame.items():
            probs[t, tok.index[sym]] = prob
    log_probs = (probs / probs.sum(-1, keepdim=True)).log()[None]
    lengths = torch.tensor([len(frames)])

    def decode(**kw):
        return tok.decode(CtcBeamSearch(tok, beam_size=10, lexicon=lexicon, **kw).decode(log_probs, lengths)[0])

    assert decode() == "COT DOG"
    assert decode(lm=lm, lm_weight=1.0) == "CAT DOG"
    assert decode(lm=lm, lm_weight=0.0) == "COT DOG"
    assert math.isclose(10 ** read_arpa(lm).score("DOG", ("CAT",)), 10 ** estimate([["CAT", "DOG"]] * 5 + [["COT"]], 2).score("DOG", ("CAT",)), rel_tol=1e-5)


def test_make_lang_covers_exactly_the_labeled_vocabulary(tiny_corpus, tmp_path, capsys):
    from bljust.bin import make_lang
    from bljust.data.datadir import read_table

    out = tmp_path / "lang"
    assert make_lang.main(["--text", f"{tiny_corpus['train_dir']}/text", "--token_dir", tiny_corpus["token_dir"],
                           "--out_dir", str(out), "--word_order", "2", "--token_order", "4"]) == 0
    words = {w for t in read_table(f"{tiny_corpus['train_dir']}/text").values() for w in t.split()}
    lexicon = dict(line.split(" ", 1) for line in (out / "lexicon.txt").read_text().splitlines())
    assert set(lexicon) == words and lexicon["CAT"] == "C A T"
    word_lm, token_lm = read_arpa(out / "lm_word.arpa"), read_arpa(out / "lm_token.arpa")
    assert set(word_lm.vocabulary) == words | {BOS, EOS, UNK} and word_lm.order == 2
    assert S in token_lm.vocabulary and token_lm.order == 4
    assert "make_lang: 24 transcripts" in capsys.readouterr().err
    assert make_lang.main(["--text", str(tmp_path / "missing"), "--token_dir", tiny_corpus["token_dir"],
                           "--out_dir", str(out)]) == 1
