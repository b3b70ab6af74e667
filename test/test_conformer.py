"""Conformer encoder (lengths, padding independence, masking, gradients, config) and the
masked batch norm."""
import pytest
import torch
from torch import nn

from bljust.models.conformer import ConformerConfig, ConformerEncoder
from bljust.models.norm import MaskedBatchNorm2d

F = 20  # feature dim of the tiny tests


def make_encoder(seed: int = 0, **conf) -> ConformerEncoder:
    torch.manual_seed(seed)
    conf = {"d_model": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32, "conv_kernel": 5,
            "dropout": 0.0, "subsampling_channels": 4, **conf}
    return ConformerEncoder(F, ConformerConfig(**conf)).eval()


def test_output_lengths_match_real_outputs():
    enc = make_encoder()
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


@pytest.mark.parametrize("n", [37, 40, 1, 6])
def test_outputs_do_not_depend_on_batch_mates(n):
    """Alone vs. first or second in a batch with a longer utterance and garbage in the padding."""
    enc = make_encoder()
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


def test_blocks_match_torchaudio_without_padding():
    """With no padding the step-by-step blocks compute what torchaudio's Conformer does."""
    enc = make_encoder()
    x, lengths = torch.randn(3, 30, F), torch.tensor([30, 30, 30])
    with torch.no_grad():
        out = enc(x, lengths)
        ref, _ = enc.conformer(out.latent, out.lengths)
    assert torch.allclose(out.context, ref, atol=1e-5)


def test_mask_changes_context_not_latent():
    enc = make_encoder()
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


def test_gradients_reach_every_parameter():
    enc = make_encoder(dropout=0.1).train()
    x, lengths = torch.randn(3, 45, F), torch.tensor([45, 30, 9])
    out = enc(x, lengths)
    (out.context * torch.randn_like(out.context)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_masked_loss_trains_mask_embedding():
    enc = make_encoder().train()
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
    ("subsampling", 8), ("subsampling_channels", 0), ("d_model", 2.5),
])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^encoder_conf\.{key}"):
        ConformerConfig(**{key: value})


def test_default_config_builds():
    enc = ConformerEncoder(80, ConformerConfig())
    assert enc.proj.in_features == 144 * 20
    assert len(enc.conformer.conformer_layers) == 4


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
