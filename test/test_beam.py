"""CTC beam search (lexicon-free, lexicon, KenLM), checkpoint averaging and the decoding CLI."""
from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bljust.bin import decode as decode_cli
from bljust.decode.average import average_checkpoints
from bljust.decode import beam
from bljust.decode.beam import CtcBeamSearch, collapse, write_lexicon
from bljust.models.ctc import ctc_greedy
from bljust.text.tokenizer import Tokenizer, build_tokenizer
from bljust.train import checkpoint
from bljust.train.config import load_train_config
from bljust.train.logs import log_fields
from bljust.train.trainer import Trainer, TrainData

REPO = Path(__file__).resolve().parents[1]
S = "\u2581"  # word boundary

# A bigram LM (KenLM needs order >= 2) in which CAT is far more likely than COT.
ARPA = """\\data\\
ngram 1=6
ngram 2=2

\\1-grams:
-1.0\t</s>\t0
-99\t<s>\t0
-2.0\t<unk>\t0
-0.5\tCAT\t0
-3.0\tCOT\t0
-0.5\tDOG\t0

\\2-grams:
-0.2\t<s> CAT
-0.2\tCAT DOG

\\end\\
"""


def emissions(tok: Tokenizer, frames: list[dict[str, float]]) -> torch.Tensor:
    """Per frame {symbol: probability} (the rest share what is left, thinly) -> log-probs [1, T, V]."""
    p = torch.full((len(frames), tok.vocab_size), 1e-4)
    for t, frame in enumerate(frames):
        for sym, prob in frame.items():
            p[t, tok.index[sym]] = prob
    return (p / p.sum(-1, keepdim=True)).log()[None]


def exhaustive_best(log_probs: torch.Tensor) -> tuple[int, ...]:
    """The most probable label sequence of log_probs [T, V], by summing every one of the V^T paths."""
    T, V = log_probs.shape
    total: dict[tuple[int, ...], float] = {}
    lp = log_probs.tolist()
    for path in itertools.product(range(V), repeat=T):
        key = tuple(collapse(path))
        total[key] = total.get(key, 0.0) + math.exp(sum(lp[t][k] for t, k in enumerate(path)))
    return max(total, key=total.__getitem__)


@pytest.fixture(scope="module")
def ab_tokens(tmp_path_factory) -> Tokenizer:
    return build_tokenizer(["A B"], tmp_path_factory.mktemp("ab"), "char")  # <blank> <unk> ▁ A B


# ---- (a) known best label sequences -------------------------------------------------------------

def test_beam_finds_most_probable_labelling_where_greedy_does_not(ab_tokens):
    # Best path: ▁ B A (0.4 * 0.4 = 0.16). But "▁ A" collects ▁AA, ▁A-, ▁-A = 0.14 + 0.105 + 0.1 = 0.345,
    # more than "▁ B" (0.315) and "▁ B A" (0.16): the best label sequence has no best path.
    lp = emissions(ab_tokens, [{S: 1.0}, {"B": 0.4, "A": 0.35, "<blank>": 0.25}, {"A": 0.4, "B": 0.3, "<blank>": 0.3}])
    lengths = torch.tensor([3])
    assert ctc_greedy(lp, lengths) == [[2, 4, 3]]
    assert CtcBeamSearch(ab_tokens, beam_size=10).decode(lp, lengths) == [[2, 3]]
    assert exhaustive_best(lp[0]) == (2, 3)


def test_beam_and_greedy_agree_on_a_clear_utterance(tiny_corpus):
    tok = Tokenizer(tiny_corpus["token_dir"])
    path = [S, "C", "C", "A", "T", "<blank>", S, "D", "O", "<blank>", "G", "<blank>"]
    lp = emissions(tok, [{sym: 0.9} for sym in path])
    lengths = torch.tensor([len(path)])
    want = tok.encode("CAT DOG")
    assert ctc_greedy(lp, lengths) == [want]
    assert CtcBeamSearch(tok, beam_size=5).decode(lp, lengths) == [want]


def test_a_boundary_in_the_first_frame_is_a_label(ab_tokens):
    # flashlight starts hypotheses with a virtual boundary, which would merge "▁ A" (0.18) with "A" (0.18)
    # and beat the true best "B A" (0.24).
    lp = emissions(ab_tokens, [{S: 0.3, "A": 0.3, "B": 0.4}, {"A": 0.6, "B": 0.4}])
    assert exhaustive_best(lp[0]) == (4, 3)
    assert CtcBeamSearch(ab_tokens, beam_size=10).decode(lp, torch.tensor([2])) == [[4, 3]]


def test_wide_beam_equals_exhaustive_search(ab_tokens):
    g = torch.Generator().manual_seed(0)
    search = CtcBeamSearch(ab_tokens, beam_size=100)
    greedy_wrong = 0
    for _ in range(15):
        lp = (2 * torch.randn(1, 5, ab_tokens.vocab_size, generator=g)).log_softmax(-1)
        best = exhaustive_best(lp[0])
        assert tuple(search.decode(lp, torch.tensor([5]))[0]) == best
        greedy_wrong += tuple(ctc_greedy(lp, torch.tensor([5]))[0]) != best
    assert greedy_wrong > 0  # the cases are not all trivial


# ---- (b) batches ------------------------------------------------------------------------------

def test_batched_decode_equals_one_by_one(tiny_corpus):
    tok = Tokenizer(tiny_corpus["token_dir"])
    g = torch.Generator().manual_seed(1)
    lp = (3 * torch.randn(4, 30, tok.vocab_size, generator=g)).log_softmax(-1)
    lengths = torch.tensor([30, 12, 25, 1])
    search = CtcBeamSearch(tok, beam_size=8)
    one_by_one = [search.decode(lp[i : i + 1, : int(n)], lengths[i : i + 1])[0] for i, n in enumerate(lengths)]
    assert search.decode(lp, lengths) == one_by_one  # frames past a length are ignored
    assert any(one_by_one)


# ---- (c) lexicon and language model -------------------------------------------------------------

def test_lexicon_and_lm_pull_toward_known_words(tiny_corpus, tmp_path):
    tok = Tokenizer(tiny_corpus["token_dir"])
    lexicon = tmp_path / "lexicon.txt"
    assert write_lexicon(["DOG", "CAT", "COT", "ZOO", "CAT"], tok, lexicon) == ["ZOO"]  # no Z among the tokens
    assert lexicon.read_text() == "CAT C A T\nCOT C O T\nDOG D O G\n"
    (tmp_path / "text").write_text("u1 DOG CAT\nu2 COT ZOO\n")  # the same through the command line
    assert beam.main(["--token_dir", tiny_corpus["token_dir"], "--text", str(tmp_path / "text"), "--out", str(tmp_path / "l2")]) == 0
    assert (tmp_path / "l2").read_text() == lexicon.read_text()
    only_cat_dog = tmp_path / "cat_dog.txt"
    write_lexicon(["CAT", "DOG"], tok, only_cat_dog)
    lm = tmp_path / "lm.arpa"
    lm.write_text(ARPA)

    # The acoustics say "COT DOG": O beats A in the vowel frame.
    path = [{S: 0.9}, {"C": 0.9}, {"O": 0.55, "A": 0.4}, {"T": 0.9}, {S: 0.9}, {"D": 0.9}, {"O": 0.9}, {"G": 0.9}, {"<blank>": 0.9}]
    lp, lengths = emissions(tok, path), torch.tensor([len(path)])
    decode = lambda **kw: tok.decode(CtcBeamSearch(tok, beam_size=10, **kw).decode(lp, lengths)[0])  # noqa: E731
    assert decode() == "COT DOG"
    assert decode(lexicon=lexicon) == "COT DOG"  # COT is a word too
    assert decode(lexicon=only_cat_dog) == "CAT DOG"  # but not in this lexicon
    assert decode(lexicon=lexicon, lm=lm, lm_weight=1.0) == "CAT DOG"  # the LM prefers CAT
    assert decode(lexicon=lexicon, lm=lm, lm_weight=0.0) == "COT DOG"
    assert CtcBeamSearch(tok, lexicon=lexicon, lm=lm).decode(lp, lengths) == [tok.encode("CAT DOG")]

    bad = tmp_path / "bad.txt"
    bad.write_text("CAT C A T\nZOO Z O O\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: token\(s\) Z"):
        CtcBeamSearch(tok, lexicon=bad)


# ---- (d) checkpoint averaging -------------------------------------------------------------------

def write_log(exp_dir: Path, rows: list[tuple[str, int, float]]) -> None:
    with open(exp_dir / "train_log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, log_fields("gamma"), restval="")
        w.writeheader()
        w.writerows({"chunk": i + 1, "phase": phase, "steps": step, "valid_f": loss} for i, (phase, step, loss) in enumerate(rows))


def test_average_checkpoints(tmp_path):
    states = {}
    for step in (5, 10, 20, 30, 40):
        torch.manual_seed(step)
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        model[1].running_mean.normal_()
        model[1].num_batches_tracked.fill_(step)
        states[step] = model.state_dict()
        checkpoint.save({"model": states[step], "optimizers": {}}, tmp_path / "checkpoints" / f"step_{step}.pt")
    checkpoint.save({"config": {"x": 1}, "input_dim": 3, "vocab_size": 2, "steps": 40, "model": states[40]},
                    tmp_path / "model_last.pt")
    # step 5 ends an unsupervised phase (its CTC loss does not count, as for model_best.pt);
    # step 50 has the lowest loss but its checkpoint was pruned.
    write_log(tmp_path, [("explore", 5, 0.1), ("joint", 10, 3.0), ("joint", 20, 1.0), ("joint", 30, 2.0),
                         ("finetune", 40, 5.0), ("finetune", 50, 0.5)])

    def check(package, steps):
        assert package["averaged"]["steps"] == steps and package["steps"] == steps[-1]
        assert package["input_dim"] == 3 and package["config"] == {"x": 1}
        for k, v in package["model"].items():
            if v.is_floating_point():
                torch.testing.assert_close(v, torch.stack([states[s][k] for s in steps]).mean(0))
            else:  # counters come from the newest, not averaged
                assert v.dtype == torch.int64 and int(v) == steps[-1]

    check(average_checkpoints(tmp_path, 2, "best"), [20, 30])
    check(average_checkpoints(tmp_path, 3, "best"), [10, 20, 30])
    check(average_checkpoints(tmp_path, 2, "last"), [30, 40])
    with pytest.raises(ValueError, match=rf"{tmp_path}: cannot average 5 checkpoints by best: only 4"):
        average_checkpoints(tmp_path, 5, "best")
    with pytest.raises(ValueError, match="only 5 checkpoints"):
        average_checkpoints(tmp_path, 6, "last")


# ---- (e) the decoding CLI -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory) -> Path:
    """A tiny supervised model: 2 epochs of 2 steps, so checkpoints step_2 and step_4."""
    exp = tmp_path_factory.mktemp("exp")
    config = load_train_config(None, {
        "encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16, "dropout": 0.0},
        "unsup_conf": {"steps": 3, "num_negatives": 8, "ar_dim": 32}, "batch": {"max_frames": 800}, "diag_interval": 0,
        "strategy": "supervised", "max_epochs": 2, "phases": {"train": {"steps": 2}}})
    Trainer(config, TrainData(**tiny_corpus), exp).fit()
    return exp


def cli_args(tiny_corpus, exp: Path, out: Path) -> list[str]:
    return ["--exp_dir", str(exp), "--data_dir", tiny_corpus["valid_dir"], "--token_dir", tiny_corpus["token_dir"],
            "--cmvn", tiny_corpus["cmvn"], "--out_dir", str(out)]


def test_cli_beam_with_averaging(tiny_corpus, trained, tmp_path):
    out = tmp_path / "decode"
    args = ["--config", str(REPO / "egs/mini/conf/decode_beam.yaml"), *cli_args(tiny_corpus, trained, out),
            "--average.n", "2", "--average.by", "last", "--beam_size", "4"]
    proc = subprocess.run([sys.executable, "-m", "bljust.bin.decode", *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = (out / "text").read_text().splitlines()
    utts = sorted(line.split()[0] for line in (Path(tiny_corpus["valid_dir"]) / "feats.scp").read_text().splitlines())
    assert [line.split(" ", 1)[0] for line in lines] == utts
    package = checkpoint.load(trained / "model_avg2_last.pt")
    assert package["averaged"] == {"by": "last", "steps": [2, 4]}

    # greedy, the default, on model_best.pt as before
    assert decode_cli.main(cli_args(tiny_corpus, trained, tmp_path / "greedy")) == 0
    assert len((tmp_path / "greedy" / "text").read_text().splitlines()) == len(utts)


def test_cli_rejects_bad_decode_configs(tiny_corpus, trained, tmp_path, capsys):
    args = cli_args(tiny_corpus, trained, tmp_path / "decode")
    assert decode_cli.main([*args, "--method", "beam", "--beam_sizee", "3"]) == 1
    assert "unknown key 'beam_sizee'" in capsys.readouterr().err
    assert decode_cli.main([*args, "--method", "beam", "--average.n", "3"]) == 1
    assert f"{trained}: cannot average 3 checkpoints" in capsys.readouterr().err
    assert decode_cli.main([*args, "--lm", str(tmp_path / "missing.arpa"), "--method", "beam"]) == 1
    assert "lm: no such file" in capsys.readouterr().err
    assert not (tmp_path / "decode" / "text").exists()
