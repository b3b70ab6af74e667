"""Conformer encoder (lengths, padding independence, masking, gradients, config), its relative
positional self-attention (pos_enc: rel) and the masked batch norm."""
import math

import pytest
import torch
from torch import nn

from bljust.models.conformer import ConformerConfig, ConformerEncoder
from bljust.models.norm import MaskedBatchNorm2d
from bljust.models.rel_attention import RelPositionMultiheadAttention, rel_shift, relative_sinusoids

F = 20  # feature dim of the tiny tests


def make_encoder(seed: int = 0, **conf) -> ConformerEncoder:
    torch.manual_seed(seed)
    conf = {"d_model": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32, "conv_kernel": 5,
            "dropout": 0.0, "subsampling_channels": 4, **conf}
    return ConformerEncoder(F, ConformerConfig(**conf)).eval()


@pytest.mark.parametrize("pos_enc", ["none", "rel"])
def test_output_lengths_match_real_outputs(pos_enc):
    enc = make_encoder(pos_enc=pos_enc)
    assert enc.latent_dim == enc.output_dim == 16 and enc.causal is False
    assert enc.min_input_frames == 1
    assert int(enc.output_lengths(torch.tensor(enc.min_input_frames - 1))) == 0
    with torch.no_grad():
        for n in list(range(enc.min_input_frames, 26)) + [37, 64, 101]:
            out = enc(torch.randn(1, n, F), torch.tensor([n]))
            expect = -(-n // 4)  # ceil(n / 4)
            assert int(enc.output_lengths(torch.tensor(n))) == expect == out.lengths.item()
            assert out.latent.shape == (1, expect, 16) and out.context.shape == (1, expect, 16)
        lengths = torch.tensor([50, 1, 13, 49, 4, 5])
        out = enc(torch.randn(6, 50, F), lengths)
    assert out.lengths.tolist() == enc.output_lengths(lengths).tolist() == [13, 1, 4, 13, 1, 2]
    assert out.latent.shape == out.context.shape == (6, 13, 16)
    with pytest.raises(ValueError, match="shorter"):
        enc(torch.randn(2, 8, F), torch.tensor([8, 0]))


@pytest.mark.parametrize("pos_enc,split", [("none", 0), ("rel", 0), ("rel", 1)])
@pytest.mark.parametrize("n", [37, 40, 1, 6])
def test_outputs_do_not_depend_on_batch_mates(n, pos_enc, split):
    """Alone vs. first or second in a batch with a longer utterance and garbage in the padding."""
    enc = make_encoder(pos_enc=pos_enc, contrastive_layers=split)
    torch.manual_seed(1)
    x, other = torch.randn(1, n, F), torch.randn(1, 90, F)
    garbage = 100 * torch.randn(1, 90 - n, F)
    with torch.no_grad():
        alone = enc(x, torch.tensor([n]))
        first = enc(torch.cat([torch.cat([x, garbage], 1), other]), torch.tensor([n, 90]))
        second = enc(torch.cat([other, torch.cat([x, garbage], 1)]), torch.tensor([90, n]))
    m = int(alone.lengths[0])
    for out, row in ((first, 0), (second, 1)):
        assert int(out.lengths[row]) == m
        assert torch.allclose(alone.latent[0], out.latent[row, :m], atol=1e-5)
        assert torch.allclose(alone.context[0], out.context[row, :m], atol=1e-5)
        assert torch.all(out.latent[row, m:] == 0) and torch.all(out.context[row, m:] == 0)
        if split:
            assert torch.allclose(alone.intermediate[0], out.intermediate[row, :m], atol=1e-5)
            assert torch.all(out.intermediate[row, m:] == 0)


@pytest.mark.parametrize("pos_enc", ["none", "rel"])
def test_blocks_match_torchaudio_without_padding(pos_enc):
    """With no padding the step-by-step blocks compute what torchaudio's Conformer does (with
    pos_enc rel, torchaudio's blocks call the relative attention in their self_attn slot)."""
    enc = make_encoder(pos_enc=pos_enc)
    x, lengths = torch.randn(3, 30, F), torch.tensor([30, 30, 30])
    with torch.no_grad():
        out = enc(x, lengths)
        ref, _ = enc.conformer(out.latent, out.lengths)
    assert torch.allclose(out.context, ref, atol=1e-5)


@pytest.mark.parametrize("pos_enc", ["none", "rel"])
def test_mask_changes_context_not_latent(pos_enc):
    enc = make_encoder(pos_enc=pos_enc)
    x, lengths = torch.randn(2, 40, F), torch.tensor([40, 27])
    emb = torch.randn(16)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 2:5] = True
    mask[1, 6] = True
    with torch.no_grad():
        plain = enc(x, lengths)
        none = enc(x, lengths, mask=None, mask_embedding=emb)
        masked = enc(x, lengths, mask=mask, mask_embedding=emb)
    assert torch.equal(plain.latent, none.latent) and torch.equal(plain.context, none.context)
    assert torch.equal(masked.latent, plain.latent)  # latent comes back unmasked
    for row in range(2):  # attention spreads the change over the whole utterance
        n = int(plain.lengths[row])
        assert (masked.context[row, :n] - plain.context[row, :n]).abs().amax(-1).min() > 1e-4
    with pytest.raises(ValueError, match="mask_embedding"):
        enc(x, lengths, mask=mask)


@pytest.mark.parametrize("pos_enc", ["none", "rel"])
def test_gradients_reach_every_parameter(pos_enc):
    """With rel this includes each block's pos_bias_u, pos_bias_v and pos_proj."""
    enc = make_encoder(dropout=0.1, pos_enc=pos_enc).train()
    x, lengths = torch.randn(3, 45, F), torch.tensor([45, 30, 9])
    out = enc(x, lengths)
    (out.context * torch.randn_like(out.context)).sum().backward()
    names = [name for name, p in enc.named_parameters()]
    assert (sum(n.endswith(("pos_bias_u", "pos_bias_v", "pos_proj.weight")) for n in names)
            == (3 * 2 if pos_enc == "rel" else 0))
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("pos_enc", ["none", "rel"])
def test_masked_loss_trains_mask_embedding(pos_enc):
    enc = make_encoder(pos_enc=pos_enc).train()
    emb = nn.Parameter(torch.randn(16))
    x, lengths = torch.randn(2, 40, F), torch.tensor([40, 22])
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 3:6] = True
    mask[1, 1:3] = True
    out = enc(x, lengths, mask=mask, mask_embedding=emb)
    (out.context[mask] * torch.randn(int(mask.sum()), 16)).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


@pytest.mark.parametrize("key,value", [
    ("d_model", 0), ("num_heads", 0), ("num_heads", 5), ("num_layers", 0), ("ffn_dim", -1),
    ("conv_kernel", 4), ("conv_kernel", 0), ("dropout", 1.0), ("dropout", -0.1), ("subsampling", 2),
    ("subsampling", 8), ("subsampling_channels", 0), ("d_model", 2.5), ("pos_enc", "abs"), ("pos_enc", None),
])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^encoder_conf\.{key}"):
        ConformerConfig(**{key: value})


def test_default_config_builds():
    enc = ConformerEncoder(80, ConformerConfig())
    assert enc.proj.in_features == 144 * 20
    assert len(enc.conformer.conformer_layers) == 4
    assert ConformerConfig().pos_enc == "none"  # older configs and checkpoints keep their meaning
    assert all(type(layer.self_attn) is nn.MultiheadAttention for layer in enc.conformer.conformer_layers)


# --- relative positional self-attention (pos_enc: rel) --------------------------------------------

def test_rel_replaces_only_self_attention():
    """Same names (and, from the same seed, values) for every other parameter; the relative
    attention keeps nn.MultiheadAttention's projection names and adds W_pos, u and v."""
    none, rel = make_encoder(pos_enc="none"), make_encoder(pos_enc="rel")
    sd_none, sd_rel = none.state_dict(), rel.state_dict()
    others = [k for k in sd_none if ".self_attn." not in k]
    assert others == [k for k in sd_rel if ".self_attn." not in k]
    assert all(torch.equal(sd_none[k], sd_rel[k]) for k in others)
    extra = set(sd_rel) - set(sd_none)
    assert extra == {f"conformer.conformer_layers.{i}.self_attn.{n}"
                     for i in range(2) for n in ("pos_proj.weight", "pos_bias_u", "pos_bias_v")}
    assert set(sd_none) <= set(sd_rel)  # a pos_enc none model's weights load by name (strict=False)
    missing, unexpected = rel.load_state_dict(sd_none, strict=False)
    assert set(missing) == extra and not unexpected
    for layer in rel.conformer.conformer_layers:
        assert isinstance(layer.self_attn, RelPositionMultiheadAttention)
        assert layer.self_attn.dropout == rel.config.dropout
        assert layer.self_attn.pos_proj.bias is None and layer.self_attn.pos_bias_u.shape == (2, 8)


def _attention(seed: int = 0, d: int = 16, heads: int = 2) -> RelPositionMultiheadAttention:
    torch.manual_seed(seed)
    att = RelPositionMultiheadAttention(d, heads).eval()
    with torch.no_grad():  # nonzero biases (they start at zero)
        att.pos_bias_u.normal_()
        att.pos_bias_v.normal_()
    return att


def _sinusoid(r: int, d: int) -> torch.Tensor:
    """s(r) [d], written out: sin / cos pairs of r * 10000^(-2m / d)."""
    return torch.tensor([math.sin(r * 10000 ** (-2 * (c // 2) / d)) if c % 2 == 0
                         else math.cos(r * 10000 ** (-2 * (c // 2) / d)) for c in range(d)])


def test_relative_sinusoids_cover_offsets_in_descending_order():
    table = relative_sinusoids(5, 6)
    assert table.shape == (9, 6)
    for c, r in enumerate(range(4, -5, -1)):
        assert torch.allclose(table[c], _sinusoid(r, 6), atol=1e-6)
    assert relative_sinusoids(3, 5).shape == (5, 5)  # odd width


@pytest.mark.parametrize("t", [1, 2, 3, 7])
def test_rel_shift_picks_the_offset_of_each_pair(t):
    x = torch.randn(2, 3, t, 2 * t - 1)
    out = rel_shift(x)
    assert out.shape == (2, 3, t, t)
    for i in range(t):
        for j in range(t):
            assert torch.equal(out[..., i, j], x[..., i, t - 1 - i + j])  # column of offset i - j


def test_rel_scores_equal_a_direct_computation():
    """The shifted scores equal ((q_i + u) . k_j + (q_i + v) . W_pos s(i - j)) / sqrt(d_k) computed
    pair by pair with explicit offsets; padded keys are -inf."""
    att = _attention()
    t, d, h, dk = 9, 16, 2, 8
    x = torch.randn(t, 2, d)
    pad = torch.zeros(2, t, dtype=torch.bool)
    pad[1, 6:] = True
    with torch.no_grad():
        got = att.scores(x, pad)  # [B, H, T, T]
        w, b = att.in_proj_weight, att.in_proj_bias
        q = (x @ w[:d].T + b[:d]).view(t, 2, h, dk)
        k = (x @ w[d : 2 * d].T + b[d : 2 * d]).view(t, 2, h, dk)
        u, v = att.pos_bias_u, att.pos_bias_v
        for i in range(t):
            for j in range(t):
                p = (att.pos_proj.weight @ _sinusoid(i - j, d)).view(h, dk)
                want = (((q[i] + u) * k[j]).sum(-1) + ((q[i] + v) * p).sum(-1)) / math.sqrt(dk)  # [B, H]
                assert torch.allclose(got[0, :, i, j], want[0], atol=1e-5)
                if j < 6:
                    assert torch.allclose(got[1, :, i, j], want[1], atol=1e-5)
                else:
                    assert torch.all(got[1, :, i, j] == float("-inf"))


def test_rel_scores_depend_on_the_offset_only():
    """With the content terms zeroed (W_q, W_k and their biases: q = k = 0), score[i, j] = v . p_{i-j}
    / sqrt(d_k): the same along each diagonal i - j, whatever the input and its length, and
    different for different offsets (also for r and -r: the sines tell them apart)."""
    att = _attention()
    with torch.no_grad():
        att.in_proj_weight[:32].zero_()
        att.in_proj_bias[:32].zero_()
        long = att.scores(torch.randn(12, 1, 16))[0]  # [H, 12, 12]
        short = att.scores(torch.randn(7, 1, 16))[0]
    assert torch.allclose(short, long[:, :7, :7], atol=1e-6)
    for r in range(-11, 12):
        diag = torch.diagonal(long, offset=-r, dim1=-2, dim2=-1)  # entries with i - j = r, [H, 12 - |r|]
        assert torch.allclose(diag, diag[:, :1].expand_as(diag), atol=1e-6)
    by_offset = torch.stack([torch.diagonal(long, offset=-r, dim1=-2, dim2=-1)[:, 0] for r in range(-11, 12)], 1)
    assert (by_offset[:, :, None] - by_offset[:, None, :]).abs().add(torch.eye(23)).amin() > 1e-4  # all distinct


def test_rel_attention_gradients_reach_u_v_and_pos_proj():
    att = _attention().train()
    att.dropout = 0.1
    x = torch.randn(10, 3, 16)
    pad = torch.arange(10)[None, :] >= torch.tensor([10, 6, 1])[:, None]
    out, weights = att(x, x, x, key_padding_mask=pad, need_weights=True)
    assert out.shape == (10, 3, 16) and weights.shape == (3, 2, 10, 10)
    (out * torch.randn_like(out)).sum().backward()
    for name in ("pos_bias_u", "pos_bias_v", "pos_proj.weight", "in_proj_weight", "out_proj.weight"):
        grad = att.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="self-attention"):
        att(x, x.clone(), x)


def test_rel_encoder_runs_under_cpu_bf16_autocast():
    enc = make_encoder(pos_enc="rel")
    x, lengths = torch.randn(2, 50, F), torch.tensor([50, 31])
    with torch.no_grad():
        ref = enc(x, lengths).context
    enc.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(x, lengths)
    out.context.float().square().sum().backward()
    assert torch.isfinite(out.context.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    assert enc.conformer.conformer_layers[0].self_attn.pos_bias_v.grad.abs().sum() > 0
    assert (out.context.float() - ref).abs().max() < 0.1  # bf16 rounding only (dropout 0)


# --- MaskedBatchNorm2d ----------------------------------------------------------------------------

def _pair(seed: int = 0):
    torch.manual_seed(seed)
    ref = nn.BatchNorm2d(3)
    ours = MaskedBatchNorm2d(3)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(3))
        ref.bias.copy_(torch.randn(3))
    ours.load_state_dict(ref.state_dict())  # same names, shapes and buffers
    return ref, ours


def _assert_same_stats(ref, ours):
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(getattr(ref, name).float(), getattr(ours, name).float(), atol=1e-5), name


def test_masked_batch_norm_equals_batch_norm_without_padding():
    ref, ours = _pair()
    valid = torch.ones(4, 7, dtype=torch.bool)
    for step in range(3):
        x = torch.randn(4, 3, 7, 5) * 2 + step
        assert torch.allclose(ref(x), ours(x, valid), atol=1e-5)
        assert torch.allclose(ref(x), ours(x), atol=1e-5)
    _assert_same_stats(ref, ours)
    ref.eval(), ours.eval()
    x = torch.randn(2, 3, 6, 5)
    assert torch.allclose(ref(x), ours(x, torch.ones(2, 6, dtype=torch.bool)), atol=1e-5)


def test_masked_batch_norm_uses_only_valid_frames():
    ref, ours = _pair()
    lengths = [7, 3, 5]
    x = torch.randn(3, 3, 7, 5)
    valid = torch.arange(7)[None, :] < torch.tensor(lengths)[:, None]
    y = ours(x, valid)
    packed = torch.cat([x[b : b + 1, :, :n] for b, n in enumerate(lengths)], dim=2)  # [1, C, sum(L), F]
    y_ref = ref(packed)
    assert torch.allclose(torch.cat([y[b : b + 1, :, :n] for b, n in enumerate(lengths)], 2), y_ref, atol=1e-5)
    _assert_same_stats(ref, ours)

    # padded values, even inf, do not change valid outputs, running stats or gradients
    _, ours1 = _pair()
    _, ours2 = _pair()
    x2 = x.clone().requires_grad_()
    x_bad = x.clone()
    x_bad[~valid[:, None, :, None].expand_as(x)] = float("inf")
    x_bad.requires_grad_()
    out1, out2 = ours1(x2, valid), ours2(x_bad, valid)
    keep = valid[:, None, :, None].expand_as(x)
    assert torch.allclose(out1[keep], out2[keep], atol=1e-6)
    assert torch.allclose(ours1.running_mean, ours2.running_mean) and torch.allclose(ours1.running_var, ours2.running_var)
    w = torch.randn_like(x)
    (out1[keep] * w[keep]).sum().backward()
    (out2[keep] * w[keep]).sum().backward()
    assert torch.allclose(x2.grad[keep], x_bad.grad[keep], atol=1e-5)

    ours.eval()
    assert torch.allclose(ours(x_bad, valid)[keep], ref.eval()(x)[keep], atol=1e-5)
