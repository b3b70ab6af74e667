"""RNN-T supervised head: the loss against every alignment, gradient reach, greedy and beam search,
training with every strategy kind, and beam decoding from the CLI."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from bljust.bin import decode as decode_cli
from bljust.data.dataset import FeatureDataset, collate
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.models.rnnt import RnntConfig, RnntHead
from bljust.text.tokenizer import Tokenizer
from bljust.train.config import load_train_config
from bljust.train.setup import joint_fits
from bljust.train.trainer import Trainer, TrainData
from test_strategies import TINY_MODEL

SMALL = {"embed_dim": 16, "pred_layers": 2, "pred_units": 16, "joint_dim": 16, "max_symbols": 3}


def small_head(vocab_size: int, seed: int, sharpen: float = 4.0, **over) -> RnntHead:
    """A random head whose joint is sharpened, so outputs are far from uniform."""
    torch.manual_seed(seed)
    head = RnntHead(8, vocab_size, RnntConfig(**{**SMALL, **over})).eval()
    with torch.no_grad():
        head.joiner.out.weight.mul_(sharpen)
    return head


def alignment_scores(logp: torch.Tensor, labels: list[int], t: int = 0, u: int = 0) -> list[torch.Tensor]:
    """Log-probability of every alignment from lattice node (t, u) to the end.

    logp [T, U+1, V] (log-softmaxed). At (t, u): emit labels[u] -> (t, u+1), or blank -> (t+1, u);
    the alignment ends with the blank at (T-1, U).
    """
    T, U = logp.shape[0], len(labels)
    if (t, u) == (T - 1, U):
        return [logp[t, u, 0]]
    out = []
    if u < U:
        out += [logp[t, u, labels[u]] + rest for rest in alignment_scores(logp, labels, t, u + 1)]
    if t < T - 1:
        out += [logp[t, u, 0] + rest for rest in alignment_scores(logp, labels, t + 1, u)]
    return out


@pytest.mark.parametrize("fused", [True, False])
def test_loss_is_the_sum_over_all_alignments(fused):
    head = small_head(3, seed=0, fused_log_softmax=fused)
    enc = torch.randn(2, 3, SMALL["joint_dim"])
    lengths, targets, target_lengths = torch.tensor([3, 2]), torch.tensor([[1, 2], [2, 0]]), torch.tensor([2, 1])
    loss = head.loss(enc, lengths, targets, target_lengths)

    logits = head.joint_logits(enc, targets).double()  # [B, T, U+1, V]
    expected = []
    for b in range(2):
        T, U = int(lengths[b]), int(target_lengths[b])
        labels = targets[b, :U].tolist()
        paths = alignment_scores(logits[b, :T, : U + 1].log_softmax(-1), labels)
        assert len(paths) == math.comb(T - 1 + U, U)  # every monotonic path through the T x U lattice
        expected.append(-torch.logsumexp(torch.stack(paths), 0) / U)  # per-utterance loss / target length
    torch.testing.assert_close(loss.double(), torch.stack(expected).mean(), rtol=1e-5, atol=1e-6)


def test_empty_transcript_is_all_blanks():
    head = small_head(3, seed=1)
    enc = torch.randn(1, 4, SMALL["joint_dim"])
    loss = head.loss(enc, torch.tensor([4]), torch.zeros(1, 1, dtype=torch.long), torch.tensor([0]))
    blanks = head.joint_logits(enc, torch.zeros(1, 0, dtype=torch.long))[0, :, 0].log_softmax(-1)[:, 0]
    torch.testing.assert_close(loss, -blanks.sum())
    assert RnntHead.min_frames([]) == RnntHead.min_frames([3, 3, 3, 3]) == 1


TINY_CONFORMER = {"encoder": "conformer", "encoder_conf": {"d_model": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32,
                                                            "conv_kernel": 3, "subsampling_channels": 8, "dropout": 0.0}}


@pytest.mark.parametrize("encoder", ["cnn_lstm", "conformer"])
def test_f_reaches_theta_and_phi_only(tiny_corpus, encoder):
    tok = Tokenizer(tiny_corpus["token_dir"])
    dataset = FeatureDataset(tiny_corpus["train_dir"], tiny_corpus["cmvn"], tok)
    batch = collate(dataset, dataset.utt_ids[:4])
    torch.manual_seed(0)
    conf = {**TINY_MODEL, **(TINY_CONFORMER if encoder == "conformer" else {}), "sup": "rnnt", "sup_conf": SMALL}
    model = AsrModel(80, tok.vocab_size, ModelConfig(**conf)).train()
    model.supervised_loss(batch.feats, batch.lengths, batch.targets, batch.target_lengths).backward()
    groups = model.parameter_groups()
    assert {id(p) for p in groups["phi"]} == {id(p) for p in model.sup.parameters()}
    for name in ("theta", "phi"):
        assert all(p.grad is not None and bool(p.grad.any()) for p in groups[name]), name
    assert all(p.grad is None for p in groups["eta"])


def test_greedy_and_beam_search():
    head = small_head(5, seed=2)
    enc = torch.randn(3, 9, SMALL["joint_dim"])
    lengths = torch.tensor([9, 5, 2])
    greedy = head.greedy(enc, lengths)
    assert len(greedy) == 3 and any(greedy)
    for beam_size in (1, 4):
        hyps = head.beam_search(enc, lengths, beam_size)
        assert len(hyps) == 3
        for ids, n in zip(hyps, lengths.tolist()):
            assert all(isinstance(i, int) and 1 <= i < 5 for i in ids)  # no blanks
            assert len(ids) <= SMALL["max_symbols"] * n
        # frames past an utterance's length are not read
        assert hyps[1] == head.beam_search(enc[1:2, :5], lengths[1:2], beam_size)[0]
    assert head.greedy(enc[2:3, :2], lengths[2:3]) == greedy[2:3]
    # beam 1 keeps the single best of "close the frame" and "emit a label" at each step: greedy's choice
    assert head.beam_search(enc, lengths, 1) == greedy


def test_batched_beam_search_equals_one_utterance_at_a_time():
    """The search runs every utterance of a batch side by side, sharing the network calls and
    the prediction network's state rows (which grow past their first size here), but prunes
    each utterance's beam on its own: its n-best list is the one it gets alone."""
    for seed in range(6):
        head = small_head(6, seed=seed, sharpen=2.0, max_symbols=1 + seed % 3)
        enc = torch.randn(5, 11, SMALL["joint_dim"])
        lengths = torch.tensor([11, 0, 7, 1, 10])
        for beam_size in (2, 6):
            batched = head.nbest(enc, lengths, beam_size)
            assert batched[1] == [([], 0.0)]  # no frames: the empty transcript, probability 1
            for b, n in enumerate(lengths.tolist()):
                alone = head.nbest(enc[b : b + 1, :n], lengths[b : b + 1], beam_size)[0]
                assert [ids for ids, _ in batched[b]] == [ids for ids, _ in alone]
                assert [s for _, s in batched[b]] == pytest.approx([s for _, s in alone], abs=1e-5)
                assert 1 <= len(alone) <= beam_size


def test_wide_beam_scores_are_exact_log_likelihoods():
    """A beam that prunes nothing (3 frames, 2 labels, <= 2 per frame: 127 prefixes) sums every
    alignment: its score of a sequence of <= 2 labels is -(unnormalised) RNN-T loss, and its best
    is at least as probable as greedy's labels."""
    head = small_head(3, seed=3, max_symbols=2)
    enc = torch.randn(1, 3, SMALL["joint_dim"])
    nbest = head.nbest(enc, torch.tensor([3]), beam_size=1000)[0]
    assert len(nbest) == 2 ** 7 - 1
    scores = {tuple(ids): s for ids, s in nbest}
    for labels in [(), (1,), (2,), (1, 2), (2, 2)]:
        targets = torch.tensor([list(labels) or [0]])
        nll = head.loss(enc, torch.tensor([3]), targets, torch.tensor([len(labels)])) * max(len(labels), 1)
        assert scores[labels] == pytest.approx(-nll.item(), abs=1e-5)
    assert nbest[0][1] >= scores[tuple(head.greedy(enc, torch.tensor([3]))[0])]


def train_config(strategy: str, phases: dict):
    return load_train_config(None, {
        **TINY_MODEL, "sup": "rnnt", "sup_conf": SMALL, "batch": {"max_frames": 800}, "diag_interval": 0,
        "strategy": strategy, "max_epochs": 1, "phases": phases})


def assert_finite_run(exp: Path, n_steps: int) -> None:
    with open(exp / "train_steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    assert len(steps) == n_steps
    assert all(math.isfinite(float(r[k])) for r in steps for k in ("f", "g") if r[k])
    assert any(r["f"] for r in steps)
    with open(exp / "train_log.csv", newline="") as f:
        chunks = list(csv.DictReader(f))
    assert chunks and all(math.isfinite(float(r["valid_f"])) for r in chunks)


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory) -> Path:
    exp = tmp_path_factory.mktemp("rnnt_exp")
    Trainer(train_config("supervised", {"train": {"steps": 3}}), TrainData(**tiny_corpus), exp).fit()
    return exp


def test_supervised_training(trained):
    assert_finite_run(trained, 3)


def test_bljust_training(tiny_corpus, tmp_path):
    cfg = train_config("bljust", {"explore": {"steps": 1}, "joint": {"steps": 2}, "finetune": {"steps": 1}})
    Trainer(cfg, TrainData(**{**tiny_corpus}), tmp_path).fit()
    assert_finite_run(tmp_path, 4)


def test_cli_beam_decoding(tiny_corpus, trained, tmp_path, capsys):
    args = ["--exp_dir", str(trained), "--data_dir", tiny_corpus["valid_dir"], "--token_dir", tiny_corpus["token_dir"],
            "--cmvn", tiny_corpus["cmvn"], "--method", "beam", "--beam_size", "3"]
    assert decode_cli.main([*args, "--out_dir", str(tmp_path / "beam")]) == 0
    lines = (tmp_path / "beam" / "text").read_text().splitlines()
    utts = sorted(line.split()[0] for line in (Path(tiny_corpus["valid_dir"]) / "feats.scp").read_text().splitlines())
    assert [line.split(" ", 1)[0] for line in lines] == utts

    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("CAT C A T\n")
    assert decode_cli.main([*args, "--lexicon", str(lexicon), "--out_dir", str(tmp_path / "lex")]) == 1
    assert "lm / lexicon: supported by CTC beam search only" in capsys.readouterr().err
    assert not (tmp_path / "lex" / "text").exists()


def test_auxiliary_ctc_on_the_transcriber():
    """ctc_weight w: the loss is (1 - w) * RNN-T + w * CTC over a Linear of the transcriber's output."""
    torch.manual_seed(0)
    plain = RnntHead(6, 5, RnntConfig(embed_dim=4, pred_units=8, joint_dim=8))
    mixed = RnntHead(6, 5, RnntConfig(embed_dim=4, pred_units=8, joint_dim=8, ctc_weight=0.3))
    mixed.load_state_dict(plain.state_dict(), strict=False)
    context, lengths = torch.randn(2, 7, 6), torch.tensor([7, 5])
    targets, target_lengths = torch.tensor([[1, 2, 3], [4, 1, 0]]), torch.tensor([3, 2])
    enc = mixed(context)
    ctc = torch.nn.functional.ctc_loss(mixed.ctc(enc).log_softmax(-1).transpose(0, 1), targets, lengths,
                                       target_lengths, reduction="mean", zero_infinity=True)
    rnnt = plain.loss(plain(context), lengths, targets, target_lengths)
    loss = mixed.loss(enc, lengths, targets, target_lengths)
    torch.testing.assert_close(loss, 0.7 * rnnt + 0.3 * ctc)
    loss.backward()
    assert mixed.ctc.weight.grad.abs().sum() > 0 and mixed.transcriber.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ctc_weight must be in"):
        RnntConfig(ctc_weight=1.0)


def joint_cost(dataset, model, utts: list[str], ranks: int = 1) -> int:
    """A rank's joint logits for a global batch: ceil(n / ranks) utterances x T' x (U+1) x V of its longest."""
    frames = max(int(model.encoder.output_lengths(torch.tensor(dataset.num_frames[u]))) for u in utts)
    labels = max(len(dataset.targets[u]) for u in utts) + 1
    return -(-len(utts) // ranks) * frames * labels * model.vocab_size


def test_batches_respect_the_joint_cap(tiny_corpus, tmp_path):
    """batch.max_joint: every labeled and validation batch's B x T' x (U+1) x V stays within the cap
    (or is one utterance), with data parallelism a rank's shard does, and the cap is refused for a
    head without a joint network."""
    def trainer_with(cap: int, sup: str = "rnnt") -> Trainer:
        cfg = load_train_config(None, {**TINY_MODEL, "sup": sup, "sup_conf": SMALL if sup == "rnnt" else {},
                                       "diag_interval": 0, "max_epochs": 1, "phases": {"train": {"steps": 1}},
                                       "batch": {"max_frames": 100000, "max_joint": cap}})
        return Trainer(cfg, TrainData(**tiny_corpus), tmp_path / f"{sup}{cap}")

    def batches(trainer: Trainer) -> list[tuple[int, int]]:
        """(utterances, joint logits) of every labeled and validation batch"""
        labeled = [(trainer.setup.train_set, b) for b in trainer.labeled.sampler.batches]
        valid = [(trainer.setup.valid_set, b.utt_ids) for b in trainer.setup.valid_batches]
        return [(len(utts), joint_cost(data, trainer.model, utts)) for data, utts in labeled + valid]

    free = batches(trainer_with(0))
    cap = max(size for _, size in free) // 4
    capped = batches(trainer_with(cap))
    assert len(capped) > len(free)
    assert all(size <= cap or count == 1 for count, size in capped)

    trainer = trainer_with(1)
    train_set = trainer.setup.train_set
    utts = train_set.utt_ids[:3]
    trainer.config.batch.max_joint = joint_cost(train_set, trainer.model, utts, ranks=2)
    for ranks, fits in ((1, False), (2, True), (3, True)):  # shards of 3, 2, 1 utterances
        assert joint_fits(trainer.config, trainer.model, train_set, world_size=ranks)(utts) is fits

    with pytest.raises(ValueError, match="batch.max_joint caps a transducer's joint network; sup 'ctc' has none"):
        trainer_with(1000, sup="ctc")


def test_init_from_a_ctc_trained_encoder(tiny_corpus, tmp_path):
    """init: model_best.pt of a CTC run starts an RNN-T run from that encoder (the head fresh), the
    run trains from there, and a resume reads its checkpoint, not the init file (gone by then)."""
    ctc_exp = tmp_path / "ctc"
    ctc = load_train_config(None, {**TINY_MODEL, "batch": {"max_frames": 800}, "diag_interval": 0, "max_epochs": 1,
                                   "phases": {"train": {"steps": 2}}})
    Trainer(ctc, TrainData(**tiny_corpus), ctc_exp).fit()
    trained_encoder = {k[len("encoder."):]: v for k, v in torch.load(ctc_exp / "model_best.pt")["model"].items()
                       if k.startswith("encoder.")}
    cfg = train_config("supervised", {"train": {"steps": 2}})
    cfg.init = str(ctc_exp / "model_best.pt")
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "rnnt")
    trainer.load_init()
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(v.cpu(), trained_encoder[k]), k
    trainer.fit()
    assert_finite_run(tmp_path / "rnnt", 2)
    log = (tmp_path / "rnnt" / "train.log").read_text()
    assert "sup: freshly initialised (the package's ctc head does not fit rnnt of this config)" in log

    (ctc_exp / "model_best.pt").unlink()
    resumed = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "rnnt")
    assert resumed.resume() and not resumed.init_pending
    resumed.fit()  # already finished: nothing to do, and no init file read
    fresh = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "fresh")
    with pytest.raises(ValueError, match="init file not found"):
        fresh.fit()
