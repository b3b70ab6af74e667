"""CPC / InfoNCE unsupervised loss: values, masking, padding, gradients and learning."""
import math
import types

import pytest
import torch

from bljust.config import ConfigError, from_dict
from typing import NamedTuple

from bljust.models import UNSUP_HEADS
from bljust.models.cnn_lstm import CnnLstmConfig, CnnLstmEncoder
from bljust.models.cpc import CpcConfig, CpcHead, info_nce_logits
from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask


def random_enc(lengths, t=None, dl=32, dc=24, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    t = t or int(lengths.max())
    pad = lengths_to_padding_mask(lengths, t)[..., None]
    latent = torch.randn(len(lengths), t, dl, generator=g).masked_fill(pad, 0.0)
    context = torch.randn(len(lengths), t, dc, generator=g)
    return EncoderOutput(latent.requires_grad_(requires_grad), context.requires_grad_(requires_grad), lengths)


class Out(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor
    num_predictions: int


def call(head, enc, gen):
    out = head(enc, head.sample_mask(enc.lengths, enc.latent.shape[1], gen), gen)
    return Out(out.loss, torch.tensor(out.metrics["accuracy"]), out.metrics["predictions"])


def run(head, enc, seed=123):
    return call(head, enc, torch.Generator().manual_seed(seed))


def check_encoder(encoder, config=CpcConfig()):
    CpcHead.check_encoder(encoder, config)


def identity_head(dim, **conf):
    head = CpcHead(dim, dim, CpcConfig(context="encoder", **conf)).double()
    with torch.no_grad():
        for lin in head.predictors:
            lin.weight.copy_(torch.eye(dim))
            lin.bias.zero_()
    return head


def test_shapes_and_untrained_loss_near_log_n_plus_1():
    torch.manual_seed(0)
    enc = random_enc([50, 44, 37, 20], dl=256, dc=128)
    head = CpcHead(128, 256, CpcConfig(steps=4, num_negatives=64))
    out = run(head, enc)
    assert out.loss.dim() == 0 and out.accuracy.dim() == 0 and out.accuracy.dtype == torch.float32
    assert out.num_predictions == sum(max(n - k, 0) for n in (50, 44, 37, 20) for k in range(1, 5))
    # Random cosine scores / 0.1 spread a little around 0: the loss is a bit above log(N + 1).
    assert math.log(65) - 0.5 < out.loss.item() < math.log(65) + 1.0
    assert out.accuracy.item() < 0.1  # chance is 1/65


def test_padding_never_leaks():
    enc = random_enc([9, 5, 2], requires_grad=True)
    head = CpcHead(24, 32, CpcConfig(steps=3, num_negatives=16))
    pad = lengths_to_padding_mask(enc.lengths)[..., None]
    dirty = EncoderOutput(
        enc.latent.detach().masked_fill(pad, float("nan")).requires_grad_(),
        enc.context.detach().masked_fill(pad, 1e6).requires_grad_(),
        enc.lengths,
    )
    clean_out, dirty_out = run(head, enc), run(head, dirty)
    assert torch.equal(clean_out.loss, dirty_out.loss) and clean_out.num_predictions == dirty_out.num_predictions
    dirty_out.loss.backward()
    assert torch.isfinite(dirty.latent.grad).all() and (dirty.latent.grad.masked_select(pad) == 0).all()
    assert dirty.context.grad is None and not head.reads_context  # its own GRU reads the latent frames
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_negative_equal_to_positive_is_masked():
    logits = info_nce_logits(
        torch.randn(3, 4), torch.randn(3, 4), torch.randn(4, 4),
        pos_idx=torch.tensor([0, 1, 2]), neg_idx=torch.tensor([2, 0, 5, 2]),
    )
    expected = torch.tensor([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(torch.isneginf(logits), expected)


def test_collisions_do_not_count_as_negatives():
    """Two frames, 50 negatives: the positive (frame 1) is certainly drawn as a negative.

    Frame 0 scores cosine -1 and the positive +1, so with masking the loss is ~n0 * e^-20;
    counting a collision as a negative would add at least log(2).
    """
    e1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    enc = EncoderOutput(torch.stack([-e1, e1])[None], torch.stack([e1, e1])[None], torch.tensor([2]))
    draws = torch.randint(2, (50,), generator=torch.Generator().manual_seed(123))
    assert 0 < int(draws.sum()) < 50  # both frames drawn, i.e. collisions happen
    out = run(identity_head(3, steps=1, num_negatives=50, temperature=0.1), enc, seed=123)
    assert out.num_predictions == 1 and out.accuracy.item() == 1.0
    n0 = 50 - int(draws.sum())
    assert out.loss.item() == pytest.approx(math.log1p(n0 * math.exp(-20.0)), rel=1e-9)


def loop_cpc(enc, steps, n, temperature, similarity, seed):
    """Plain loops over utterances, steps and frames, sampling as documented in bljust.models.cpc."""
    g = torch.Generator().manual_seed(seed)
    lengths = enc.lengths.tolist()
    pool = [(b, t) for b in range(len(lengths)) for t in range(lengths[b])]

    def score(p, x):
        s = float(p @ x)
        return s / (p.norm() * x.norm()).item() if similarity == "cosine" else s

    losses, correct = [], 0
    for k in range(1, steps + 1):
        rows = [(b, t) for b in range(len(lengths)) for t in range(lengths[b]) if t + k < lengths[b]]
        if not rows:
            continue
        negs = [pool[i] for i in torch.randint(len(pool), (n,), generator=g).tolist()]
        for b, t in rows:
            p = enc.context[b, t]  # identity projection
            s_pos = score(p, enc.latent[b, t + k])
            s_neg = [score(p, enc.latent[nb, nt]) for nb, nt in negs if (nb, nt) != (b, t + k)]
            denom = sum(math.exp(s / temperature) for s in [s_pos] + s_neg)
            losses.append(-(s_pos / temperature - math.log(denom)))
            correct += all(s_pos > s for s in s_neg)
    return sum(losses) / len(losses), correct / len(losses), len(losses)


@pytest.mark.parametrize("similarity,temperature", [("cosine", 0.1), ("dot", 0.5)])
def test_matches_loop_implementation(similarity, temperature):
    # Utterance 1 is too short for k = 3; the batch has padding; 4 negatives over 9 valid frames.
    g = torch.Generator().manual_seed(7)
    lengths = torch.tensor([6, 3])
    pad = lengths_to_padding_mask(lengths)[..., None]
    latent = torch.randn(2, 6, 4, generator=g, dtype=torch.float64).masked_fill(pad, 0.0)
    enc = EncoderOutput(latent, torch.randn(2, 6, 4, generator=g, dtype=torch.float64), lengths)
    head = identity_head(4, steps=3, num_negatives=4, temperature=temperature, similarity=similarity)
    out = run(head, enc, seed=5)
    loss, acc, n = loop_cpc(enc, 3, 4, temperature, similarity, seed=5)
    assert out.num_predictions == n == (5 + 4 + 3) + (2 + 1)
    assert out.loss.item() == pytest.approx(loss, rel=1e-9)
    assert out.accuracy.item() == pytest.approx(acc)


def test_same_seed_same_loss_and_different_seed_differs():
    enc = random_enc([20, 15])
    head = CpcHead(24, 32, CpcConfig(steps=2, num_negatives=8))
    assert torch.equal(run(head, enc, 1).loss, run(head, enc, 1).loss)
    assert run(head, enc, 1).loss.item() != run(head, enc, 2).loss.item()


def test_gradients_reach_latent_context_and_head():
    enc = random_enc([12, 8, 5], requires_grad=True)
    head = CpcHead(24, 32, CpcConfig(steps=3, num_negatives=8, context="encoder"))
    run(head, enc).loss.backward()
    assert enc.latent.grad.abs().sum() > 0 and enc.context.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())

    enc = random_enc([12, 8, 5], requires_grad=True)
    run(CpcHead(24, 32, CpcConfig(steps=3, num_negatives=8, context="encoder", detach_targets=True)), enc).loss.backward()
    assert enc.latent.grad is None or enc.latent.grad.abs().sum() == 0
    assert enc.context.grad.abs().sum() > 0

    # Autoregressive context: everything goes through the latent frames and the head's GRU.
    enc = random_enc([12, 8, 5], requires_grad=True)
    head = CpcHead(24, 32, CpcConfig(steps=3, num_negatives=8, ar_dim=16))
    run(head, enc).loss.backward()
    assert enc.latent.grad.abs().sum() > 0 and enc.context.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_autoregressive_context_never_sees_the_future():
    """Changing latent frame s changes no context (hence no prediction) of a frame before s."""
    enc = random_enc([12, 9], dl=8)
    head = CpcHead(24, 8, CpcConfig(steps=2, ar_dim=6))
    before = head.context(enc)
    latent = enc.latent.clone()
    latent[:, 5:] += torch.randn_like(latent[:, 5:])
    after = head.context(EncoderOutput(latent, enc.context, enc.lengths))
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:9], after[:, 5:9])


def test_bidirectional_encoder_cannot_feed_its_context_to_cpc():
    encoder = CnnLstmEncoder(16, CnnLstmConfig(cnn_layers=1, subsampling=2, latent_dim=8, lstm_layers=1, lstm_units=8))
    check_encoder(encoder, CpcConfig())
    with pytest.raises(ValueError, match="unsup_conf.context 'encoder' needs a causal encoder"):
        check_encoder(encoder, CpcConfig(context="encoder"))


def test_no_prediction_gives_connected_zero_loss():
    enc = random_enc([1, 1], t=3, requires_grad=True)
    head = CpcHead(24, 32, CpcConfig(steps=2))
    out = run(head, enc)
    assert out.num_predictions == 0 and out.loss.item() == 0.0 and out.accuracy.item() == 0.0
    grads = torch.autograd.grad(out.loss, [enc.latent, *head.parameters()])  # the context is not read (own GRU)
    assert all((g == 0).all() for g in grads)


def sinusoid_batch(b=4, t=64, f=16, seed=0):
    """Each utterance: a chirp-like pattern that moves across frequency, with its own speed and phase."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t, dtype=torch.float32)[:, None]
    freq = torch.arange(f, dtype=torch.float32)[None, :]
    rows = []
    for i in range(b):
        speed, phase = 0.15 + 0.1 * i, float(torch.rand(1, generator=g)) * 6.28
        rows.append(torch.sin(speed * time + 0.6 * freq + phase) + 0.05 * torch.randn(t, f, generator=g))
    return torch.stack(rows), torch.tensor([t, t - 8, t - 16, t - 28])


def test_training_cnn_lstm_with_cpc_lowers_loss():
    torch.manual_seed(0)
    enc_conf = CnnLstmConfig(cnn_layers=1, cnn_channels=4, subsampling=2, latent_dim=16,
                             lstm_layers=1, lstm_units=16, dropout=0.0)
    encoder = CnnLstmEncoder(16, enc_conf)
    check_encoder(encoder)
    head_cls, conf_cls = UNSUP_HEADS["cpc"]
    head = head_cls(encoder.output_dim, encoder.latent_dim, conf_cls(steps=3, num_negatives=16))
    feats, lengths = sinusoid_batch()
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)

    def evaluate():
        with torch.no_grad():
            return run(head, encoder(feats, lengths), seed=99)

    before = evaluate()
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss = call(head, encoder(feats, lengths), gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert after.loss.item() < 0.7 * before.loss.item()
    assert after.accuracy.item() > before.accuracy.item() + 0.2


def test_utterance_negatives_come_from_the_same_utterance():
    lengths, t = torch.tensor([10, 6, 3, 8]), 10
    valid = ~lengths_to_padding_mask(lengths, t)
    has_target = valid[:, 2:]  # predictions of step k = 2
    rows = torch.arange(4)[:, None]
    frame_utt = rows.expand(4, t)[valid]  # utterance of each frame of the pool
    pred_utt = rows.expand(4, t - 2)[has_target]
    head = CpcHead(8, 8, CpcConfig(num_negatives=200, negatives="utterance"))
    idx = head._negatives(valid, has_target, torch.Generator().manual_seed(0))  # [P, N]
    assert idx.shape == (int(has_target.sum()), 200)
    assert (frame_utt[idx] == pred_utt[:, None]).all()
    assert set(idx[pred_utt == 2].flatten().tolist()) == {16, 17, 18}  # all of utterance 2's frames, nothing else
    batch_idx = CpcHead(8, 8, CpcConfig(num_negatives=200))._negatives(valid, has_target, torch.Generator().manual_seed(0))
    assert batch_idx.shape == (200,) and len(set(frame_utt[batch_idx].tolist())) == 4


def test_config_validation_names_the_key():
    for kwargs, msg in [
        ({"steps": 0}, "unsup_conf.steps must be >= 1"),
        ({"num_negatives": 0}, "unsup_conf.num_negatives must be >= 1"),
        ({"temperature": 0.0}, "unsup_conf.temperature must be > 0"),
        ({"similarity": "l2"}, "unsup_conf.similarity must be one of cosine, dot"),
        ({"context": "future"}, "unsup_conf.context must be one of autoregressive, encoder"),
        ({"negatives": "corpus"}, "unsup_conf.negatives must be one of batch, utterance"),
    ]:
        with pytest.raises(ValueError, match=msg):
            CpcConfig(**kwargs)
    with pytest.raises(ConfigError, match="train.yaml: unsup_conf.temperature must be > 0"):
        from_dict(CpcConfig, {"temperature": -1}, "train.yaml", "unsup_conf.")


def test_check_encoder():
    check_encoder(types.SimpleNamespace(latent_dim=8, output_dim=16))
    with pytest.raises(ValueError, match="latent_dim"):
        check_encoder(types.SimpleNamespace(output_dim=16))
    with pytest.raises(ValueError, match="output_dim"):
        check_encoder(types.SimpleNamespace(latent_dim=8, output_dim=16.0))
