"""Masked contrastive (wav2vec 2.0) and contrastive + MLM (w2v-BERT) unsupervised losses:
span masks, distractors, the quantizer, loss values, gradients and config checks."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bljust.config import ConfigError, from_dict
from bljust.models.contrastive import (
    ContrastiveConfig,
    ContrastiveHead,
    ContrastiveMlmConfig,
    ContrastiveMlmHead,
    contrastive_logits,
    sample_distractors,
)
from bljust.models.encoder import EncoderOutput, apply_mask, lengths_to_padding_mask
from bljust.models.masking import span_mask
from bljust.models.quantizer import GumbelProductQuantizer, QuantizerOutput, diversity_loss, perplexity


class TinyEncoder(nn.Module):
    """Linear front end (latent) + 1-layer bidirectional GRU (context) over the masked latent."""

    causal = False
    min_input_frames = 1

    def __init__(self, feat_dim=6, latent_dim=8, hidden=5):
        super().__init__()
        self.latent_dim, self.output_dim = latent_dim, 2 * hidden
        self.front = nn.Linear(feat_dim, latent_dim)
        self.rnn = nn.GRU(latent_dim, hidden, batch_first=True, bidirectional=True)

    def output_lengths(self, lengths):
        return lengths

    def forward(self, feats, lengths, mask=None, mask_embedding=None):
        latent = self.front(feats)
        context, _ = self.rnn(apply_mask(latent, mask, mask_embedding))
        return EncoderOutput(latent, context, lengths)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small_conf(cls=ContrastiveConfig, **kw):
    base = dict(num_negatives=5, final_dim=8, codebook_groups=2, codebook_entries=6, code_dim=8, mask_span=2)
    if cls is ContrastiveMlmConfig:
        base.update(mlm_layers=1, mlm_heads=2, mlm_ffn_dim=16)
    base.update(kw)
    return cls(**base)


def run_protocol(head, encoder, lengths=(20, 14, 9), seed=0):
    """The two-call protocol of bljust.models.unsup_head on random features."""
    lengths = torch.tensor(lengths)
    feats = torch.randn(len(lengths), int(lengths.max()), 6, generator=gen(seed))
    g = gen(seed + 1)
    mask = head.sample_mask(lengths, feats.shape[1], g)
    enc = encoder(feats, lengths, mask, head.mask_embedding)
    return head(enc, mask, g), mask


# ---------------------------------------------------------------- span masks


def runs(row):
    """Lengths of the runs of True in a 1-d bool tensor."""
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_span_mask_respects_lengths_and_span_size():
    lengths = torch.randint(0, 60, (200,), generator=gen(0))
    mask = span_mask(lengths, 64, 0.4, 4, 1, gen(1))
    assert mask.shape == (200, 64) and mask.dtype == torch.bool
    assert not (mask & lengths_to_padding_mask(lengths, 64)).any()
    for row, length in zip(mask, lengths.tolist()):
        if length >= 4:
            assert all(r % 4 == 0 for r in runs(row))  # whole spans; touching spans merge into multiples
            assert row.sum() >= 4  # min_spans = 1
        else:
            assert row.sum() == length  # too short for a span: all or (for empty rows) nothing


@pytest.mark.parametrize("prob", [0.5, 0.3])
def test_span_mask_hits_mask_prob_on_average(prob):
    mask = span_mask(torch.full((2000,), 200), 200, prob, 5, 0, gen(3))
    assert abs(mask.float().mean().item() - prob) < 0.02
    # Uneven lengths: the stochastic rounding keeps the expectation (lengths not multiples of span).
    lengths = torch.randint(50, 200, (2000,), generator=gen(4))
    mask = span_mask(lengths, 200, prob, 7, 0, gen(5))
    assert abs(mask.sum().item() / lengths.sum().item() - prob) < 0.02


def test_span_mask_min_spans_and_short_utterances():
    lengths = torch.tensor([30, 7, 3, 0, 30])
    mask = span_mask(lengths, 30, 0.01, 5, 2, gen(0))
    assert mask.sum(1).tolist() == [10, 5, 3, 0, 10]  # 2 spans; capped at 7 // 5 = 1; whole; nothing
    none = span_mask(torch.tensor([3, 30]), 30, 0.01, 5, 0, gen(0))
    assert none[0].sum() in (0, 3) and none[1].sum() in (0, 5)  # n = floor(0.006 + u), floor(0.06 + u): 0 or 1
    full = span_mask(torch.tensor([20]), 20, 1.0, 5, 0, gen(0))
    assert full.all()


def test_span_mask_reproducible_and_seed_dependent():
    lengths = torch.randint(10, 100, (16,), generator=gen(0))
    a = span_mask(lengths, 100, 0.5, 5, 2, gen(7))
    b = span_mask(lengths, 100, 0.5, 5, 2, gen(7))
    c = span_mask(lengths, 100, 0.5, 5, 2, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- distractors


def test_distractors_stay_in_their_utterance_and_skip_themselves():
    for seed in range(40):
        lengths = torch.randint(0, 25, (5,), generator=gen(seed))
        mask = span_mask(lengths, 25, 0.3, 2, 0, gen(1000 + seed))
        idx, ok = sample_distractors(mask, 8, gen(2000 + seed))
        frames = mask.nonzero()  # [M, 2] (b, t) of each masked frame
        m = len(frames)
        assert idx.shape == ok.shape == (m, 8) and idx.dtype == torch.long
        if m == 0:
            continue
        assert ((idx >= 0) & (idx < m)).all()
        utt, pos = frames[:, 0], frames[:, 1]
        assert torch.equal(utt[idx], utt[:, None].expand(-1, 8))  # same utterance
        assert (pos[idx] < lengths[utt[idx]]).all()  # never padding
        n = mask.sum(1)[utt]
        own = torch.arange(m)[:, None]
        several = (n >= 2)[:, None].expand(-1, 8)
        assert (idx[several] != own.expand(-1, 8)[several]).all() and ok[several].all()
        assert (idx[~several] == own.expand(-1, 8)[~several]).all() and not ok[~several].any()


def test_distractors_are_uniform_over_the_other_frames():
    mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    idx, ok = sample_distractors(mask, 6000, gen(0))
    assert ok[:4].all() and not ok[4].any() and (idx[4] == 4).all()
    for i in range(4):
        freq = torch.bincount(idx[i], minlength=5).float() / 6000
        assert freq[i] == 0 and freq[4] == 0
        assert torch.allclose(freq[[j for j in range(4) if j != i]], torch.full((3,), 1 / 3), atol=0.03)


def test_sample_distractors_reproducible():
    mask = span_mask(torch.tensor([30, 20]), 30, 0.5, 3, 1, gen(0))
    assert torch.equal(sample_distractors(mask, 7, gen(5))[0], sample_distractors(mask, 7, gen(5))[0])


# ---------------------------------------------------------------- logits and loss values


def test_contrastive_logits_mask_identical_and_invalid_distractors():
    ctx = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    idx = torch.tensor([[1, 2], [0, 2], [0, 1]])
    valid = torch.tensor([[True, True], [True, False], [True, True]])
    logits = contrastive_logits(ctx, tgt, idx, 0.5, valid)
    s = 1 / math.sqrt(2)
    expected = torch.tensor([
        [1.0, -math.inf, 0.0],  # distractor 1 has the positive's very target
        [0.0, -math.inf, -math.inf],  # identical target, then not valid
        [s, s, s],
    ]) / 0.5
    assert torch.allclose(logits, expected) and torch.equal(torch.isneginf(logits), torch.isneginf(expected))
    # With keys (e.g. code ids), identity is decided on the keys, not on the target vectors.
    by_keys = contrastive_logits(ctx, tgt, idx, 0.5, keys=torch.tensor([[0, 1], [2, 3], [0, 1]]))
    assert torch.equal(torch.isneginf(by_keys[:, 1:]), torch.tensor([[False, True], [False, False], [True, False]]))


def test_loss_equals_per_frame_loop():
    torch.manual_seed(0)
    kappa, k = 0.3, 12
    head = ContrastiveHead(6, 5, small_conf(quantize_targets=False, num_negatives=k, temperature=kappa)).double()
    lengths = torch.tensor([9, 6, 4])
    latent = torch.randn(3, 9, 5, dtype=torch.double)
    latent[0, 4] = latent[0, 1]  # equal targets: must not count as a distractor of each other
    context = torch.randn(3, 9, 6, dtype=torch.double)
    enc = EncoderOutput(latent, context, lengths)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[0, [1, 4, 5, 6]] = True
    mask[1, [0, 2, 3]] = True
    mask[2, 3] = True  # a lone masked frame: no distractor, its term is 0
    out = head(enc, mask, gen(11))

    idx, ok = sample_distractors(mask, k, gen(11))  # the head draws nothing else without a quantizer
    with torch.no_grad():
        rows = latent[mask].tolist()  # equal latent rows mean identical targets
        tgt = head.target_proj(latent[mask]).tolist()
        ctx = head.final_proj(context[mask]).tolist()

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    losses, correct, same_seen = [], 0, False
    for i in range(len(tgt)):
        scores = [cos(ctx[i], tgt[i]) / kappa]
        for j, valid in zip(idx[i].tolist(), ok[i].tolist()):
            if not valid or rows[j] == rows[i]:
                same_seen |= valid
                scores.append(-math.inf)
            else:
                scores.append(cos(ctx[i], tgt[j]) / kappa)
        top = max(scores)
        losses.append(-(scores[0] - top - math.log(sum(math.exp(s - top) for s in scores))))
        correct += scores[0] > max(scores[1:])
    assert same_seen  # the identical-target case was exercised
    assert abs(out.loss.item() - sum(losses) / len(losses)) < 1e-6
    assert abs(out.metrics["accuracy"] - correct / len(tgt)) < 1e-12
    assert out.metrics["masked_fraction"] == 8 / 19


def test_untrained_loss_near_log_k_plus_1_and_metrics():
    encoder = TinyEncoder()
    head = ContrastiveHead(encoder.output_dim, encoder.latent_dim, small_conf(num_negatives=10, mask_span=3))
    out, mask = run_protocol(head, encoder, lengths=(60, 50, 45, 30))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert set(out.metrics) == {"accuracy", "masked_fraction", "code_perplexity", "temperature"}
    assert all(isinstance(v, float) for v in out.metrics.values())
    assert out.metrics["masked_fraction"] == mask.sum().item() / 185
    assert out.metrics["temperature"] == 2.0 and head.quantizer.num_updates.item() == 1
    assert 1.0 <= out.metrics["code_perplexity"] <= 12.0
    # Near-random scores: roughly log(K + 1) plus a diversity term in [0, 0.1].
    assert math.log(11) - 1.0 < out.loss.item() < math.log(11) + 1.5


def test_padding_never_leaks():
    head = ContrastiveMlmHead(7, 5, small_conf(ContrastiveMlmConfig, mlm_dropout=0.0, feature_penalty=0.5)).eval()
    lengths = torch.tensor([10, 6])
    pad = lengths_to_padding_mask(lengths)[..., None]
    latent, context = torch.randn(2, 10, 5), torch.randn(2, 10, 7)
    mask = span_mask(lengths, 10, 0.5, 2, 1, gen(0))
    mask_with_padding = mask | pad[..., 0]  # mask entries on padding are ignored
    clean = head(EncoderOutput(latent, context, lengths), mask, gen(1))
    dirty_latent = latent.masked_fill(pad, float("nan")).requires_grad_()
    dirty_context = context.masked_fill(pad, float("inf")).requires_grad_()
    dirty = head(EncoderOutput(dirty_latent, dirty_context, lengths), mask_with_padding, gen(1))
    assert torch.equal(clean.loss, dirty.loss) and clean.metrics == dirty.metrics
    dirty.loss.backward()
    assert torch.isfinite(dirty_latent.grad).all() and torch.isfinite(dirty_context.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


# ---------------------------------------------------------------- quantizer and diversity


def test_perplexity_and_diversity_loss():
    g, v = 2, 4
    uniform = torch.full((5, g, v), 1 / v)
    assert perplexity(uniform).item() == pytest.approx(g * v)
    assert diversity_loss(perplexity(uniform), g, v).item() == pytest.approx(0.0, abs=1e-7)
    one_code = F.one_hot(torch.full((5, g), 2), v).float()
    assert perplexity(one_code).item() == pytest.approx(g)
    assert diversity_loss(perplexity(one_code), g, v).item() == pytest.approx((g * v - g) / (g * v))
    # Hand-made: mean distribution [1/4, 1/2, 1/4, 0] has entropy 1.5 ln 2 -> perplexity 2 ** 1.5.
    probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]], [[0.0, 0.5, 0.5, 0.0]]])
    assert perplexity(probs).item() == pytest.approx(2 ** 1.5)
    # Groups add up: this group plus a one-code group.
    both = torch.cat([probs, F.one_hot(torch.tensor([[1], [1]]), 4).float()], dim=1)
    assert perplexity(both).item() == pytest.approx(2 ** 1.5 + 1)


def make_quantizer(**kw):
    args = dict(input_dim=4, groups=2, entries=5, code_dim=6, t_start=2.0, t_min=0.5, t_decay=0.9)
    args.update(kw)
    torch.manual_seed(0)
    return GumbelProductQuantizer(**args)


def test_quantizer_temperature_schedule_and_state():
    q = make_quantizer()
    x = torch.randn(7, 4)
    for n in range(20):
        assert q.temperature == pytest.approx(max(2.0 * 0.9 ** n, 0.5))
        assert q(x, gen(n)).temperature == pytest.approx(max(2.0 * 0.9 ** n, 0.5))
    assert q.num_updates.item() == 20 and q.temperature == 0.5
    q.eval()
    q(x)
    q.train()
    with torch.no_grad():
        q(x, gen(0))
    assert q.num_updates.item() == 20  # neither eval mode nor no_grad advance the schedule
    state = q.state_dict()
    assert "num_updates" in state
    fresh = make_quantizer()
    fresh.load_state_dict(state)
    assert fresh.num_updates.item() == 20 and fresh.temperature == q.temperature


def test_quantizer_straight_through_and_outputs():
    q = make_quantizer()
    x = torch.randn(9, 4)
    out = q(x, gen(3))
    assert out.quantized.shape == (9, 6) and out.codes.shape == (9, 2) and out.codes.dtype == torch.long
    picked = torch.cat([q.codebook[g][out.codes[:, g]] for g in range(2)], dim=1)
    assert torch.allclose(out.quantized, picked, atol=1e-6)  # hard codes forward
    (out.quantized * torch.randn(9, 6, generator=gen(1))).sum().backward()
    assert q.logits.weight.grad.abs().sum() > 0 and q.codebook.grad.abs().sum() > 0  # soft gradient backward
    with torch.no_grad():
        probs = q.logits(x).view(9, 2, 5).softmax(-1)
    assert out.soft_perplexity.item() == pytest.approx(perplexity(probs).item(), rel=1e-5)
    assert out.code_perplexity.item() == pytest.approx(perplexity(F.one_hot(out.codes, 5).float()).item())
    # Same generator state, same codes; eval mode is the noise-free argmax.
    assert torch.equal(q(x, gen(3)).codes, out.codes)
    q.eval()
    assert torch.equal(q(x).codes, probs.argmax(-1))


# ---------------------------------------------------------------- MLM


def test_mlm_targets_are_the_quantizer_codes_at_masked_frames():
    torch.manual_seed(0)
    head = ContrastiveMlmHead(7, 5, small_conf(ContrastiveMlmConfig, mlm_dropout=0.0)).eval()
    lengths = torch.tensor([12, 8])
    enc = EncoderOutput(torch.randn(2, 12, 5), torch.randn(2, 12, 7), lengths)
    mask = span_mask(lengths, 12, 0.5, 2, 1, gen(0))
    m = int(mask.sum())
    known = torch.stack([torch.arange(m) % 6, (torch.arange(m) * 5 + 1) % 6], dim=1)  # [M, G] chosen ids
    real_forward = head.quantizer.forward
    seen = {}

    def stub(x, generator=None):
        seen["rows"] = x.detach().clone()
        real = real_forward(x, generator)
        return QuantizerOutput(real.quantized, known, real.soft_perplexity, real.code_perplexity, real.temperature)

    head.quantizer.forward = stub
    cfg = head.config
    out = head(enc, mask, gen(1))
    assert torch.equal(seen["rows"], enc.latent[mask])  # the unmasked latent of the masked frames
    with torch.no_grad():
        logits = head.mlm_logits(enc)[mask]  # [M, G, V]
        terms = head.contrastive_terms(enc, mask, gen(1))
    expected_mlm = F.cross_entropy(logits.flatten(0, 1), known.flatten())
    assert out.metrics["mlm_loss"] == pytest.approx(expected_mlm.item(), rel=1e-6)
    assert out.metrics["mlm_accuracy"] == pytest.approx((logits.argmax(-1) == known).float().mean().item())
    expected = (cfg.contrastive_weight * terms.contrastive + cfg.mlm_weight * expected_mlm
                + cfg.diversity_weight * terms.diversity)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Without the stub the targets are the quantizer's own ids (eval mode: noise-free argmax).
    head.quantizer.forward = real_forward
    assert torch.equal(head.contrastive_terms(enc, mask, gen(1)).codes, head.quantizer(enc.latent[mask]).codes)


# ---------------------------------------------------------------- gradients


def test_unquantized_targets_are_detached():
    lengths = torch.tensor([15, 11])
    mask = span_mask(lengths, 15, 0.5, 2, 1, gen(0))
    for quantize in (False, True):
        torch.manual_seed(0)
        head = ContrastiveHead(7, 5, small_conf(quantize_targets=quantize))
        latent = torch.randn(2, 15, 5, requires_grad=True)
        context = torch.randn(2, 15, 7, requires_grad=True)  # independent of the latent here
        head(EncoderOutput(latent, context, lengths), mask, gen(1)).loss.backward()
        reached = latent.grad is not None and latent.grad.abs().sum().item() > 0
        assert reached == quantize  # only the quantized target branch carries gradient to the latent
        assert context.grad[mask].abs().sum() > 0
    # Through an encoder, the latent still learns via the masked context path.
    torch.manual_seed(0)
    encoder = TinyEncoder(latent_dim=5)
    head = ContrastiveHead(encoder.output_dim, 5, small_conf(quantize_targets=False))
    feats = torch.randn(2, 15, 6)
    enc = encoder(feats, lengths, mask, head.mask_embedding)
    enc.latent.retain_grad()
    head(enc, mask, gen(1)).loss.backward()
    assert enc.latent.grad[~mask & ~lengths_to_padding_mask(lengths)].abs().sum() > 0
    assert encoder.front.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mlm", [False, True])
def test_every_parameter_gets_a_gradient(mlm):
    torch.manual_seed(0)
    encoder = TinyEncoder()
    conf = small_conf(ContrastiveMlmConfig, feature_penalty=0.01) if mlm else small_conf(feature_penalty=0.01)
    head = (ContrastiveMlmHead if mlm else ContrastiveHead)(encoder.output_dim, encoder.latent_dim, conf)
    out, _ = run_protocol(head, encoder)
    if mlm:
        assert {"mlm_accuracy", "mlm_loss", "contrastive_loss"} <= set(out.metrics)
    out.loss.backward()
    for name, p in list(head.named_parameters()) + list(encoder.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name  # a real gradient, mask_embedding included
    assert "mask_embedding" in dict(head.named_parameters())


@pytest.mark.parametrize("mlm", [False, True])
def test_nothing_masked_still_backpropagates(mlm):
    encoder = TinyEncoder()
    conf = small_conf(ContrastiveMlmConfig) if mlm else small_conf()
    head = (ContrastiveMlmHead if mlm else ContrastiveHead)(encoder.output_dim, encoder.latent_dim, conf)
    lengths = torch.tensor([8, 5])
    feats = torch.randn(2, 8, 6)
    for mask in (None, torch.zeros(2, 8, dtype=torch.bool)):
        head.zero_grad()
        encoder.zero_grad()
        enc = encoder(feats, lengths, mask, head.mask_embedding)
        out = head(enc, mask, gen(0))
        assert out.loss.item() == 0.0 and out.metrics["masked_fraction"] == 0.0
        grads = torch.autograd.grad(out.loss, list(head.parameters()), retain_graph=True)
        assert all(g is not None and not g.any() for g in grads)  # no parameter of eta is unused
        out.loss.backward()
        assert all(p.grad is not None for p in head.parameters())
        assert all(p.grad is not None for p in encoder.parameters())
    assert head.quantizer.num_updates.item() == 0  # no quantization happened


def test_check_encoder():
    ContrastiveHead.check_encoder(TinyEncoder(), ContrastiveConfig())
    ContrastiveMlmHead.check_encoder(TinyEncoder(), ContrastiveMlmConfig())
    with pytest.raises(ValueError, match="latent_dim.*contrastive_mlm"):
        ContrastiveMlmHead.check_encoder(nn.Linear(2, 2), None)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("cls, key, value", [
    (ContrastiveConfig, "mask_prob", 0.0),
    (ContrastiveConfig, "mask_prob", 1.5),
    (ContrastiveConfig, "mask_span", 0),
    (ContrastiveConfig, "min_spans", -1),
    (ContrastiveConfig, "num_negatives", 0),
    (ContrastiveConfig, "temperature", 0.0),
    (ContrastiveConfig, "final_dim", 0),
    (ContrastiveConfig, "codebook_groups", 0),
    (ContrastiveConfig, "codebook_entries", 0),
    (ContrastiveConfig, "code_dim", 127),
    (ContrastiveConfig, "diversity_weight", -0.1),
    (ContrastiveConfig, "gumbel_min", 0.0),
    (ContrastiveConfig, "gumbel_start", 0.1),
    (ContrastiveConfig, "gumbel_decay", 1.5),
    (ContrastiveConfig, "feature_penalty", -1.0),
    (ContrastiveMlmConfig, "quantize_targets", False),
    (ContrastiveMlmConfig, "mlm_layers", -1),
    (ContrastiveMlmConfig, "mlm_heads", 3),
    (ContrastiveMlmConfig, "mlm_ffn_dim", 0),
    (ContrastiveMlmConfig, "mlm_dropout", 1.0),
    (ContrastiveMlmConfig, "contrastive_weight", -1.0),
    (ContrastiveMlmConfig, "mlm_weight", -1.0),
])
def test_bad_config_names_the_key(cls, key, value):
    with pytest.raises(ValueError, match=rf"^unsup_conf\.{key} "):
        cls(**{key: value})
    with pytest.raises(ConfigError, match=rf"unsup_conf\.{key}"):
        from_dict(cls, {key: value}, where="conf.yaml")


def test_default_configs_build():
    for cls, head_cls in ((ContrastiveConfig, ContrastiveHead), (ContrastiveMlmConfig, ContrastiveMlmHead)):
        head = head_cls(16, 12, from_dict(cls, {}))
        assert head.mask_embedding.shape == (12,)
    assert ContrastiveHead(16, 12, ContrastiveConfig(quantize_targets=False)).quantizer is None


def test_just_split_contrastive_module_then_mlm_module():
    """JUST as published: conformer blocks 1..k are the contrastive module (the contrastive loss
    reads their output), blocks k+1..L the MLM module (the MLM loss and the supervised head read
    the final output). The contrastive term alone reaches only the first k blocks."""
    from bljust.models.conformer import ConformerConfig, ConformerEncoder

    torch.manual_seed(0)
    encoder = ConformerEncoder(6, ConformerConfig(d_model=16, num_heads=2, num_layers=3, ffn_dim=32, conv_kernel=3,
                                                  dropout=0.0, subsampling_channels=4, contrastive_layers=2))
    head = ContrastiveMlmHead(encoder.output_dim, encoder.latent_dim,
                              small_conf(ContrastiveMlmConfig, mlm_layers=0, mlm_weight=0.0, mask_prob=0.5))
    lengths, feats = torch.tensor([80, 64]), torch.randn(2, 80, 6, generator=gen(0))
    out_lengths = encoder.output_lengths(lengths)
    mask = head.sample_mask(out_lengths, int(out_lengths.max()), gen(1))
    enc = encoder(feats, lengths, mask, head.mask_embedding)
    assert mask.any() and enc.intermediate.shape == enc.context.shape
    assert not torch.equal(enc.intermediate, enc.context)
    head(enc, mask, gen(2)).loss.backward()
    reached = {n.split(".")[2] for n, p in encoder.named_parameters()
               if n.startswith("conformer.conformer_layers") and p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {"0", "1"}  # the MLM module (block 3) gets nothing from the contrastive term
    with pytest.raises(ValueError, match=r"contrastive_layers must be in \[0, num_layers = 3\), got 3"):
        ConformerConfig(num_layers=3, contrastive_layers=3)
