"""wav2vec 2.0 encoder on raw waveforms (shapes, lengths, padding, masking, fine-tuning controls,
config) and the import of Hugging Face / fairseq checkpoints (outputs equal to the source model's,
quantizer carried over, missing / mis-shaped tensors named), and an AsrModel built on it."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types

import pytest
import torch
import torchaudio

from bljust.bin import import_pretrained
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.models.wav2vec2 import SHAPES, Wav2Vec2Config, Wav2Vec2Encoder
from bljust.pretrained.init import InitError, load_encoder, load_init, read_init

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference models are built from config objects: never download

TINY = {"shape": "tiny", "dropout": 0.0, "attention_dropout": 0.0}
# The pre-LN, layer-norm feature encoder variant (large_lv60k, xlsr) at tiny widths.
TINY_LN = {**TINY, "extractor_mode": "layer_norm", "conv_bias": True, "layer_norm_first": True}
CONV = SHAPES["tiny"]["conv_layers"]


def make_encoder(seed: int = 0, **conf) -> Wav2Vec2Encoder:
    torch.manual_seed(seed)
    enc = Wav2Vec2Encoder(1, Wav2Vec2Config(**{**TINY, **conf}))
    with torch.no_grad():  # every tensor random, so a swapped or misplaced weight shows in the outputs
        for p in enc.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return enc.eval()


def waves(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random waveforms -> feats [B, max(lengths), 1] zero-padded, lengths [B]."""
    gen = torch.Generator().manual_seed(seed)
    feats = 0.3 * torch.randn(len(lengths), max(lengths), 1, generator=gen)
    lengths = torch.tensor(lengths)
    return feats.masked_fill(torch.arange(feats.shape[1])[None, :, None] >= lengths[:, None, None], 0.0), lengths


def normalize_rows(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """feats [B, S, 1] -> [B, S]: each row's valid samples at zero mean and unit variance (eps 1e-5,
    fairseq's), what a model pre-trained on normalised audio expects; padding 0."""
    rows = []
    for row, n in zip(feats[..., 0], lengths.tolist()):
        x = row[:n]
        rows.append(torch.cat([(x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5), row[n:] * 0]))
    return torch.stack(rows)


def perturb_(module: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))


# ---- (a) the encoder ---------------------------------------------------------------------------

def test_output_lengths_match_real_outputs():
    enc = make_encoder()
    assert enc.latent_dim == 32 and enc.output_dim == 32 and enc.causal is False
    assert enc.min_input_frames == 400  # base's receptive field: one 25 ms frame
    assert int(enc.output_lengths(torch.tensor(399))) == 0 and int(enc.output_lengths(torch.tensor(400))) == 1
    with torch.no_grad():
        for n in (400, 401, 719, 720, 1039, 1040, 5000, 16000):
            feats, lengths = waves([n])
            out = enc(feats, lengths)
            _, ta_lengths = enc.model.feature_extractor(feats[..., 0], lengths)  # torchaudio's own count
            assert int(enc.output_lengths(lengths)) == out.latent.shape[1] == int(out.lengths) == int(ta_lengths)
            assert int(out.lengths) == (n - 400) // 320 + 1  # 20 ms frames
        feats, lengths = waves([16000, 400, 9001, 3200])
        out = enc(feats, lengths)
    assert out.lengths.tolist() == enc.output_lengths(lengths).tolist() == [49, 1, 27, 9]
    assert out.latent.shape == out.context.shape == (4, 49, 32)
    with pytest.raises(ValueError, match="399 samples is shorter"):
        enc(*waves([1000, 399]))
    with pytest.raises(ValueError, match=r"\[B, T, 1\]"):
        enc(torch.zeros(1, 1000, 80), torch.tensor([1000]))


@pytest.mark.parametrize("conf", [TINY, TINY_LN], ids=["group_norm", "layer_norm"])
def test_matches_torchaudio_without_padding(conf):
    """latent = the feature projection's layer norm of torchaudio's conv features; context = torchaudio's output."""
    enc = make_encoder(**conf)
    feats, lengths = waves([6000, 6000])
    with torch.no_grad():
        out = enc(feats, lengths)
        ref, _ = enc.model(feats[..., 0])
        conv, _ = enc.model.feature_extractor(feats[..., 0], None)
        latent = enc.model.encoder.feature_projection.layer_norm(conv)
    torch.testing.assert_close(out.context, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.latent, latent, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conf", [TINY, TINY_LN], ids=["group_norm", "layer_norm"])
@pytest.mark.parametrize("n", [400, 5000, 9999])
def test_outputs_do_not_depend_on_batch_mates(conf, n):
    enc = make_encoder(**conf)
    x, _ = waves([n], seed=1)
    other, _ = waves([12000], seed=2)
    garbage = 5 * torch.randn(1, 12000 - n, 1)
    with torch.no_grad():
        alone = enc(x, torch.tensor([n]))
        batch = enc(torch.cat([torch.cat([x, garbage], 1), other]), torch.tensor([n, 12000]))
    m = int(alone.lengths[0])
    assert int(batch.lengths[0]) == m
    torch.testing.assert_close(batch.latent[0, :m], alone.latent[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.context[0, :m], alone.context[0], atol=1e-5, rtol=1e-5)
    assert torch.all(batch.latent[0, m:] == 0) and torch.all(batch.context[0, m:] == 0)


def test_mask_and_need_context():
    enc = make_encoder()
    feats, lengths = waves([8000, 5000])
    emb = torch.randn(32)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, 3:8] = True
    mask[1, 10:12] = True
    with torch.no_grad():
        plain = enc(feats, lengths)
        masked = enc(feats, lengths, mask, emb)
        latent_only = enc(feats, lengths, mask, emb, need_context=False)
    assert torch.equal(masked.latent, plain.latent)  # latent comes back unmasked
    assert latent_only.context is None and torch.equal(latent_only.latent, plain.latent)
    assert torch.equal(latent_only.lengths, plain.lengths)
    for row in range(2):  # attention spreads the change over the utterance
        n = int(plain.lengths[row])
        assert (masked.context[row, :n] - plain.context[row, :n]).abs().amax(-1).min() > 1e-4
    with pytest.raises(ValueError, match="mask_embedding"):
        enc(feats, lengths, mask)
    # The mask embedding is trained through the context.
    emb = torch.nn.Parameter(emb)
    enc.train()(feats, lengths, mask, emb).context[mask].sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_normalize_waveform():
    enc = make_encoder(normalize_waveform=True)
    feats, lengths = waves([6000, 4000])
    scaled = (7.0 * feats + 0.5).masked_fill(feats == 0, 0.0)  # gain and DC offset on the valid samples
    with torch.no_grad():
        a, b = enc(feats, lengths), enc(scaled, lengths)
    torch.testing.assert_close(a.context, b.context, atol=1e-4, rtol=1e-4)


def _grads(enc: Wav2Vec2Encoder, use_latent: bool = False, update: int | None = None) -> dict:
    torch.manual_seed(5)
    enc.train()
    if update is not None:
        enc.set_update(update)
    feats, lengths = waves([6000, 4400])
    out = enc(feats, lengths)
    loss = (out.context * torch.linspace(-1, 1, 32)).sum()
    if use_latent:
        loss = loss + (out.latent * torch.linspace(-1, 1, 32)).sum()
    enc.zero_grad(set_to_none=True)
    if loss.requires_grad:  # not when nothing upstream of it trains
        loss.backward()
    return {name: p.grad for name, p in enc.named_parameters()}


def _is_conv(name: str) -> bool:
    return name.startswith("model.feature_extractor.")


def test_frozen_feature_encoder_gets_no_gradient():
    for conf in ({"freeze_feature_encoder": True}, {"feature_grad_mult": 0.0}):
        grads = _grads(make_encoder(**conf), use_latent=True)
        for name, g in grads.items():
            assert (g is None) == _is_conv(name), name


def test_feature_grad_mult_scales_the_conv_gradient():
    full = _grads(make_encoder(), use_latent=True)
    scaled = _grads(make_encoder(feature_grad_mult=0.25), use_latent=True)
    for name in full:
        want = 0.25 * full[name] if _is_conv(name) else full[name]
        torch.testing.assert_close(scaled[name], want, atol=1e-6, rtol=1e-5, msg=name)


def test_transformer_frozen_for_the_first_updates():
    enc = make_encoder(freeze_transformer_updates=2)
    with pytest.raises(RuntimeError, match="set_update"):
        _grads(enc)
    for update in (0, 1):
        grads = _grads(enc, update=update)
        assert all(g is None for g in grads.values())  # nothing reaches back through a frozen Transformer
        grads = _grads(enc, use_latent=True, update=update)  # g's targets still train the front end
        for name, g in grads.items():
            frozen = name.startswith(("model.encoder.transformer.", "model.encoder.feature_projection.projection."))
            assert (g is None) == frozen, name
    grads = _grads(enc, update=2)
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    with torch.no_grad():  # evaluation needs no update count
        make_encoder(freeze_transformer_updates=2)(*waves([4000]))


def test_layer_drop_is_the_same_on_every_copy_for_an_update():
    conf = {"num_layers": 6, "layer_drop": 0.5}
    a, b = make_encoder(**conf).train(), make_encoder(**conf).train()
    feats, lengths = waves([5000, 3000])
    with torch.no_grad():
        full = make_encoder(**conf)(feats, lengths).context  # eval: every layer
        outputs = []
        for update in range(8):
            a.set_update(update)
            b.set_update(update)
            ya, yb = a(feats, lengths).context, b(feats, lengths).context
            assert torch.equal(ya, yb)
            assert torch.equal(a(feats, lengths).context, ya)  # every pass of one update: the same layers
            outputs.append(ya)
        a.eval()
        assert torch.equal(a(feats, lengths).context, full)
    distinct = {tuple(y.flatten()[:8].tolist()) for y in outputs}
    assert len(distinct) > 2  # different updates drop different layers
    assert any(not torch.allclose(y, full) for y in outputs)


def test_channel_masking_only_in_training():
    masked, plain = make_encoder(mask_channel_prob=0.5, mask_channel_length=4), make_encoder()
    feats, lengths = waves([5000, 3000])
    with torch.no_grad():
        assert torch.equal(masked(feats, lengths).context, plain(feats, lengths).context)
        torch.manual_seed(0)
        trained = masked.train()(feats, lengths).context
        same = plain.train()(feats, lengths).context  # no dropout in TINY: training mode alone changes nothing
    assert torch.equal(same, plain.eval()(feats, lengths).context)
    assert not torch.allclose(trained, same, atol=1e-3)


def test_time_masking_replaces_frames_of_the_supervised_pass_in_training():
    """mask_prob: in training, without an unsupervised head's mask, spans of the Transformer's input
    become mask_emb (so the outputs change and mask_emb gets a gradient); in eval mode and on a pass
    with the head's own mask nothing changes."""
    masked, plain = make_encoder(mask_prob=0.5, mask_length=3), make_encoder()
    assert masked.mask_emb.shape == (32,) and "mask_emb" not in plain.state_dict()
    masked.load_state_dict({**plain.state_dict(), "mask_emb": masked.mask_emb.detach()})
    feats, lengths = waves([5000, 3000])
    with torch.no_grad():
        assert torch.equal(masked(feats, lengths).context, plain(feats, lengths).context)
    masked.train(), plain.train()
    torch.manual_seed(0)
    out = masked(feats, lengths)
    with torch.no_grad():
        torch.manual_seed(0)
        reference = plain(feats, lengths).context
    assert not torch.allclose(out.context, reference, atol=1e-3)
    out.context.sum().backward()
    assert masked.mask_emb.grad.abs().sum() > 0
    head_mask = torch.zeros(2, int(out.lengths.max()), dtype=torch.bool)
    head_mask[:, 2:4] = True
    emb = torch.randn(32)
    with torch.no_grad():
        torch.manual_seed(1)
        theirs = plain(feats, lengths, head_mask, emb).context
        torch.manual_seed(1)
        assert torch.equal(masked(feats, lengths, head_mask, emb).context, theirs)


@pytest.mark.parametrize("key,value", [
    ("shape", "huge"), ("extractor_mode", "batch_norm"), ("conv_layers", [[32, 10]]), ("conv_layers", []),
    ("embed_dim", 0), ("num_heads", 5), ("pos_conv_groups", 5), ("dropout", 1.0), ("layer_drop", -0.1),
    ("feature_grad_mult", -1.0), ("freeze_transformer_updates", -1), ("mask_channel_prob", 1.5),
    ("mask_channel_length", 0), ("mask_channel_length", 33), ("conv_bias", 1), ("mask_prob", 1.5),
    ("mask_length", 0),
])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^encoder_conf\.{key}"):
        Wav2Vec2Config(**{**TINY, key: value})


def test_presets_and_custom_shape():
    with pytest.raises(ValueError, match="encoder_conf.embed_dim must be given"):
        Wav2Vec2Config(shape="custom", extractor_mode="group_norm", conv_layers=CONV, conv_bias=False)
    custom = Wav2Vec2Config(**Wav2Vec2Config(shape="tiny").structure())
    assert custom.preset_name() == "tiny" and Wav2Vec2Config(shape="tiny", embed_dim=64).preset_name() is None
    factories = {"base": "wav2vec2_base", "large": "wav2vec2_large", "large_lv60k": "wav2vec2_large_lv60k",
                 "xlsr_300m": "wav2vec2_xlsr_300m"}
    for shape, factory in factories.items():  # the presets are torchaudio's published architectures
        with torch.device("meta"):
            ours = Wav2Vec2Encoder(1, Wav2Vec2Config(shape=shape)).model.state_dict()
            theirs = getattr(torchaudio.models, factory)().state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}, shape
    with pytest.raises(ValueError, match="input_dim 80"):
        Wav2Vec2Encoder(80, Wav2Vec2Config(**TINY))


# ---- (b) Hugging Face -------------------------------------------------------------------------

HF_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, codevector_dim=16, proj_codevector_dim=12,
               num_codevectors_per_group=8, num_codevector_groups=2, hidden_dropout=0.0, attention_dropout=0.0,
               activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
HF_VARIANTS = {
    "base_like": {},
    "lv60k_like": {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True},
}


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """{variant: (folder, Wav2Vec2ForPreTraining)} built from config objects with random weights."""
    transformers = pytest.importorskip("transformers")
    out = {}
    for name, extra in HF_VARIANTS.items():
        torch.manual_seed(0)
        model = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**HF_TINY, **extra))
        perturb_(model)  # layer norms and biases away from 1 / 0, so a misplaced one shows
        folder = tmp_path_factory.mktemp(f"hf_{name}")
        model.save_pretrained(folder)
        if name == "lv60k_like":  # a hub folder's feature extractor settings: this model wants normalised audio
            (folder / "preprocessor_config.json").write_text('{"do_normalize": true, "sampling_rate": 16000}')
        out[name] = (folder, model.eval())
    return out


def import_cli(args: list, capsys) -> tuple[int, str, str]:
    rc = import_pretrained.main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def encoder_from_init(path) -> Wav2Vec2Encoder:
    init = read_init(path)
    enc = Wav2Vec2Encoder(1, Wav2Vec2Config(**{**init["encoder_conf"], "dropout": 0.0, "attention_dropout": 0.0}))
    load_encoder(enc, init["encoder"], path)
    return enc.eval()


@pytest.mark.parametrize("variant", list(HF_VARIANTS))
def test_hf_import_gives_the_same_outputs(hf_models, variant, tmp_path, capsys):
    folder, hf = hf_models[variant]
    rc, out, err = import_cli(["--format", "hf", folder, tmp_path / "init.pt"], capsys)
    assert rc == 0, err
    assert "mask_emb (fine-tuning time masking, encoder_conf.mask_prob): carried over (wav2vec2.masked_spec_embed)" in out
    enc = encoder_from_init(tmp_path / "init.pt")
    normalize = variant == "lv60k_like"
    assert enc.config.normalize_waveform is normalize
    feats, lengths = waves([8000])
    with torch.no_grad():
        ours = enc(feats, lengths)
        theirs = hf.wav2vec2(normalize_rows(feats, lengths) if normalize else feats[..., 0])
    torch.testing.assert_close(ours.context, theirs.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.latent, theirs.extract_features, atol=1e-5, rtol=1e-5)
    if variant == "lv60k_like":  # HF takes an attention mask for these: a padded batch agrees as well
        feats, lengths = waves([8000, 5000, 3000])
        attention_mask = (torch.arange(8000)[None] < lengths[:, None]).long()
        with torch.no_grad():
            ours = enc(feats, lengths)
            theirs = hf.wav2vec2(normalize_rows(feats, lengths), attention_mask=attention_mask).last_hidden_state
        for row, n in enumerate(ours.lengths.tolist()):
            torch.testing.assert_close(ours.context[row, :n], theirs[row, :n], atol=1e-5, rtol=1e-5)


def tiny_asr_model(unsup_conf: dict | None = None, encoder_conf: dict | None = None) -> AsrModel:
    unsup = {"mask_prob": 0.5, "mask_span": 2, "num_negatives": 4, "final_dim": 12, "codebook_groups": 2,
             "codebook_entries": 8, "code_dim": 16, **(unsup_conf or {})}
    return AsrModel(1, 6, ModelConfig(encoder="wav2vec2", encoder_conf={**TINY, **(encoder_conf or {})}, sup="ctc",
                                      unsup="contrastive", unsup_conf=unsup))


HF_STRUCTURE = {"conv_layers": [[16] + layer[1:] for layer in CONV], "pos_conv_kernel": 16}


def test_hf_quantizer_carried_over(hf_models, tmp_path, capsys):
    folder, hf = hf_models["base_like"]
    path = tmp_path / "init.pt"
    assert import_cli(["--format", "hf", folder, path], capsys)[0] == 0
    init = read_init(path)
    assert init["unsup_conf"] == {"quantize_targets": True, "codebook_groups": 2, "codebook_entries": 8,
                                  "code_dim": 16, "final_dim": 12}
    model = tiny_asr_model(encoder_conf=HF_STRUCTURE).eval()
    lines = load_init(model, path)
    assert any("unsup.quantizer: carried over" in line for line in lines), lines
    assert any("unsup.project_q: carried over" in line for line in lines)
    assert any("unsup.final_proj: carried over" in line for line in lines)
    feats, lengths = waves([8000])
    with torch.no_grad():
        enc = model.encoder(feats, lengths)
        theirs = hf.wav2vec2(feats[..., 0])
        codes_hf, _ = hf.quantizer(theirs.extract_features)  # eval: argmax codes
        q = model.unsup.quantizer(enc.latent[0])
        torch.testing.assert_close(q.quantized, codes_hf[0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model.unsup.project_q(q.quantized), hf.project_q(codes_hf[0]), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model.unsup.final_proj(enc.context[0]), hf.project_hid(theirs.last_hidden_state[0]),
                                   atol=1e-5, rtol=1e-5)
    # A head of another codebook size keeps its own (fresh) quantizer; the encoder still loads.
    other = tiny_asr_model({"codebook_entries": 16}, HF_STRUCTURE)
    before = other.unsup.quantizer.codebook.detach().clone()
    lines = load_init(other, path)
    assert any(line.startswith("unsup.quantizer: re-initialised") for line in lines), lines
    assert torch.equal(other.unsup.quantizer.codebook, before)
    assert any("project_q: carried over" in line for line in lines)


def test_hf_ctc_model_from_pytorch_bin(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**HF_TINY, vocab_size=7)).eval()
    perturb_(hf)
    hf.save_pretrained(tmp_path / "hf")
    # An older hub folder: the weights as a pickled state dict instead of safetensors.
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(hf.state_dict(), tmp_path / "hf" / "pytorch_model.bin")
    rc, out, err = import_cli(["--format", "hf", tmp_path / "hf", tmp_path / "init.pt"], capsys)
    assert rc == 0, err
    assert "lm_head.weight" in out and "quantizer: none in the checkpoint" in out
    assert read_init(tmp_path / "init.pt")["quantizer"] is None
    feats, lengths = waves([6000])
    with torch.no_grad():
        ours = encoder_from_init(tmp_path / "init.pt")(feats, lengths).context
        theirs = hf.wav2vec2(feats[..., 0]).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# ---- (c) fairseq ------------------------------------------------------------------------------

def to_fairseq(enc: Wav2Vec2Encoder, old_weight_norm: bool = True) -> dict:
    """Our (torchaudio-layout) state dict under fairseq's wav2vec 2.0 names, written independently
    of the importer's map."""
    group_norm = enc.config.extractor_mode == "group_norm"
    out = {}
    for key, value in enc.state_dict().items():
        parts = key.split(".")[1:]  # drop "model."
        if parts[0] == "feature_extractor":  # feature_extractor.conv_layers.i.{conv,layer_norm}.x
            i, kind, leaf = parts[2], parts[3], parts[4]
            sub = "0" if kind == "conv" else ("2" if group_norm else "2.1")
            name = f"feature_extractor.conv_layers.{i}.{sub}.{leaf}"
        elif parts[1] == "feature_projection":
            name = {"layer_norm": "layer_norm", "projection": "post_extract_proj"}[parts[2]] + "." + parts[3]
        elif parts[2] == "pos_conv_embed":
            leaf = parts[-1]
            if leaf != "bias":
                leaf = ("weight_g" if leaf == "original0" else "weight_v") if old_weight_norm else \
                    f"parametrizations.weight.{leaf}"
            name = f"encoder.pos_conv.0.{leaf}"
        elif parts[2] == "layer_norm":
            name = f"encoder.layer_norm.{parts[3]}"
        else:  # encoder.transformer.layers.i....
            i, rest = parts[3], parts[4:]
            sub = {"attention": f"self_attn.{rest[1] if len(rest) > 1 else ''}", "layer_norm": "self_attn_layer_norm",
                   "final_layer_norm": "final_layer_norm"}.get(rest[0])
            if rest[0] == "feed_forward":
                sub = {"intermediate_dense": "fc1", "output_dense": "fc2"}[rest[1]]
            name = f"encoder.layers.{i}.{sub.rstrip('.')}.{rest[-1]}"
        out[name] = value.clone()
    return out


FAIRSEQ_MODEL_CFG = {
    "_name": "wav2vec2", "extractor_mode": "default", "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] * 2",
    "conv_bias": False, "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2, "activation_fn": "gelu", "conv_pos": 16, "conv_pos_groups": 4, "layer_norm_first": False,
    "latent_vars": 8, "latent_groups": 2, "latent_dim": 0, "final_dim": 12, "quantize_targets": True, "dropout": 0.1,
}


def fairseq_checkpoint(enc: Wav2Vec2Encoder, layer_norm: bool = False, style: str = "cfg") -> dict:
    """A fairseq-style checkpoint dict of ``enc`` plus a quantizer (2 groups x 8 entries of 6 dims)."""
    gen = torch.Generator().manual_seed(3)
    state = to_fairseq(enc, old_weight_norm=style != "cfg")
    state.update({"quantizer.vars": torch.randn(1, 16, 6, generator=gen),
                  "quantizer.weight_proj.weight": torch.randn(16, 32, generator=gen),
                  "quantizer.weight_proj.bias": torch.randn(16, generator=gen),
                  "project_q.weight": torch.randn(12, 12, generator=gen), "project_q.bias": torch.randn(12, generator=gen),
                  "final_proj.weight": torch.randn(12, 32, generator=gen), "final_proj.bias": torch.randn(12, generator=gen),
                  "mask_emb": torch.randn(32, generator=gen)})
    model_cfg = dict(FAIRSEQ_MODEL_CFG)
    if layer_norm:
        model_cfg.update(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
    task = {"_name": "audio_pretraining", "normalize": layer_norm, "sample_rate": 16000}
    if style == "args":  # old checkpoints: one argparse Namespace
        args = {k: v for k, v in {**model_cfg, **task}.items() if k != "_name"}
        return {"args": argparse.Namespace(**args, arch="wav2vec2", task="audio_pretraining"), "model": state}
    if style == "finetuned":  # Wav2VecCtc: the network under w2v_encoder.w2v_model, its config in w2v_args
        state = {f"w2v_encoder.w2v_model.{k}": v for k, v in state.items()
                 if not k.startswith(("quantizer", "project_q", "final_proj"))}
        state["w2v_encoder.proj.weight"], state["w2v_encoder.proj.bias"] = torch.randn(7, 32), torch.randn(7)
        return {"cfg": {"model": {"_name": "wav2vec_ctc", "w2v_args": {"model": model_cfg, "task": task}},
                        "task": task}, "model": state}
    return {"cfg": {"common": {"seed": 1}, "model": model_cfg, "task": task}, "model": state, "optimizer_history": []}


@pytest.mark.parametrize("layer_norm,style", [(False, "cfg"), (True, "cfg"), (False, "args"), (False, "finetuned")])
def test_fairseq_import_gives_the_same_outputs(layer_norm, style, tmp_path, capsys):
    source = make_encoder(**(TINY_LN if layer_norm else TINY))
    torch.save(fairseq_checkpoint(source, layer_norm, style), tmp_path / "w2v.pt")
    rc, out, err = import_cli(["--format", "fairseq", tmp_path / "w2v.pt", tmp_path / "init.pt"], capsys)
    assert rc == 0, err
    init = read_init(tmp_path / "init.pt")
    assert init["encoder_conf"]["normalize_waveform"] is layer_norm
    enc = encoder_from_init(tmp_path / "init.pt")
    feats, lengths = waves([7000, 4000])
    with torch.no_grad():
        ours = enc(feats, lengths).context
        ref, _ = source.model(normalize_rows(feats, lengths)[:1] if layer_norm else feats[:1, :, 0])  # torchaudio's, unpadded
    torch.testing.assert_close(ours[:1], ref, atol=1e-5, rtol=1e-5)
    if style == "finetuned":
        assert init["quantizer"] is None and "w2v_encoder.proj.weight" in out
    else:
        assert "mask_emb (fine-tuning time masking, encoder_conf.mask_prob): carried over (mask_emb)" in out
        assert init["unsup_conf"]["codebook_groups"] == 2 and init["unsup_conf"]["code_dim"] == 12
        model = tiny_asr_model({"code_dim": 12}, {**TINY_LN, "normalize_waveform": True} if layer_norm else None)
        lines = load_init(model, tmp_path / "init.pt")
        assert any("unsup.quantizer: carried over" in line for line in lines), lines
        vars_ = fairseq_checkpoint(source, layer_norm, style)["model"]["quantizer.vars"]
        assert torch.equal(model.unsup.quantizer.codebook.detach(), vars_.view(2, 8, 6))
        with torch.no_grad():
            torch.testing.assert_close(model.encoder(feats, lengths).context, ours)
        masking = tiny_asr_model({"code_dim": 12}, {**(TINY_LN if layer_norm else TINY), "mask_prob": 0.5})
        assert "encoder.mask_emb: carried over" in load_init(masking, tmp_path / "init.pt")
        assert torch.equal(masking.encoder.mask_emb.detach(), fairseq_checkpoint(source, layer_norm, style)["model"]["mask_emb"])


def test_source_names_of_absent_tensors(tmp_path):
    """The names an error gives for a tensor the source lacks are the source's own names."""
    from bljust.pretrained.fairseq import read_fairseq
    from bljust.pretrained.hf import read_huggingface

    for layer_norm in (False, True):
        torch.save(fairseq_checkpoint(make_encoder(**(TINY_LN if layer_norm else TINY)), layer_norm, "finetuned"),
                   tmp_path / "w2v.pt")
        conv = read_fairseq(tmp_path / "w2v.pt")
        names, conv.names = conv.names, {}
        assert all(conv.source_name(k) == names[k] for k in conv.encoder)
    transformers = pytest.importorskip("transformers")
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**HF_TINY)).save_pretrained(tmp_path / "hf")
    conv = read_huggingface(tmp_path / "hf")
    names, conv.names = conv.names, {}
    assert all(conv.source_name(k) == names[k] for k in conv.encoder) and len(names) == 51  # with masked_spec_embed


# ---- (d) errors -------------------------------------------------------------------------------

def test_missing_and_mis_shaped_tensors_are_named(tmp_path, capsys):
    ckpt = fairseq_checkpoint(make_encoder())
    del ckpt["model"]["encoder.layers.1.fc2.bias"]
    ckpt["model"]["encoder.layers.0.fc1.weight"] = torch.zeros(65, 32)
    torch.save(ckpt, tmp_path / "bad.pt")
    rc, out, err = import_cli(["--format", "fairseq", tmp_path / "bad.pt", tmp_path / "init.pt"], capsys)
    assert rc == 1 and not (tmp_path / "init.pt").exists()
    assert "missing: encoder.layers.1.fc2.bias [32] " \
           "(bljust: model.encoder.transformer.layers.1.feed_forward.output_dense.bias)" in err
    assert "mis-shaped: encoder.layers.0.fc1.weight is [65, 32], expected [64, 32] " \
           "(bljust: model.encoder.transformer.layers.0.feed_forward.intermediate_dense.weight)" in err
    # As a command: exit status 1, the message, no traceback.
    proc = subprocess.run([sys.executable, "-m", "bljust.bin.import_pretrained", "--format", "fairseq",
                           str(tmp_path / "bad.pt"), str(tmp_path / "init.pt")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "encoder.layers.0.fc1.weight" in proc.stderr and "output_dense.bias" in proc.stderr


def test_config_mismatch_and_untrusted_pickle(tmp_path, capsys):
    torch.save(fairseq_checkpoint(make_encoder()), tmp_path / "w2v.pt")
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text("encoder: wav2vec2\nencoder_conf: {shape: tiny, num_layers: 3}\nunsup: contrastive\n"
                         "unsup_conf: {codebook_groups: 2, codebook_entries: 8, code_dim: 12, final_dim: 12}\n"
                         "init: somewhere.pt\n")
    rc, _, err = import_cli(["--format", "fairseq", tmp_path / "w2v.pt", tmp_path / "init.pt", "--config", yaml_path],
                            capsys)
    assert rc == 1 and "encoder_conf.num_layers: the weights have 2, the config 3" in err
    yaml_path.write_text(yaml_path.read_text().replace(", num_layers: 3", "").replace("entries: 8", "entries: 16"))
    rc, out, err = import_cli(["--format", "fairseq", tmp_path / "w2v.pt", tmp_path / "init.pt", "--config", yaml_path],
                              capsys)
    assert rc == 0, err
    assert "unsup.quantizer: re-initialised" in out and "unsup.project_q: carried over" in out
    assert read_init(tmp_path / "init.pt")["quantizer"].keys() == {"project_q.weight", "project_q.bias",
                                                                   "final_proj.weight", "final_proj.bias"}
    # A model of another structure refuses the init file, naming the differences.
    with pytest.raises(InitError, match="encoder_conf.embed_dim: the weights have 32, the config 64"):
        load_init(tiny_asr_model(encoder_conf={"embed_dim": 64}), tmp_path / "init.pt")
    with pytest.raises(InitError, match="need encoder: wav2vec2"):
        load_init(AsrModel(80, 6, ModelConfig(encoder="conformer", unsup="contrastive")), tmp_path / "init.pt")
    # fairseq files often pickle objects of fairseq's own classes: refused unless trusted.
    meters = types.ModuleType("fake_fairseq_meters")
    meters.Meter = type("Meter", (), {"__module__": "fake_fairseq_meters"})
    sys.modules["fake_fairseq_meters"] = meters
    try:
        ckpt = fairseq_checkpoint(make_encoder())
        ckpt["extra_state"] = {"metrics": meters.Meter()}
        torch.save(ckpt, tmp_path / "pickled.pt")
    finally:
        del sys.modules["fake_fairseq_meters"]
    rc, _, err = import_cli(["--format", "fairseq", tmp_path / "pickled.pt", tmp_path / "init2.pt"], capsys)
    assert rc == 1 and "--trust_pickle" in err
    rc, _, err = import_cli(["--format", "fairseq", tmp_path / "pickled.pt", tmp_path / "init2.pt", "--trust_pickle"],
                            capsys)
    assert rc == 0, err
    rc, _, err = import_cli(["--format", "hf", tmp_path, tmp_path / "init3.pt"], capsys)
    assert rc == 1 and "config.json" in err


# ---- (e) AsrModel -----------------------------------------------------------------------------

def test_asr_model_losses_reach_their_groups():
    torch.manual_seed(0)
    model = tiny_asr_model().train()
    groups = model.parameter_groups()
    feats, lengths = waves([16000, 12000, 9000])
    targets, target_lengths = torch.tensor([[1, 2, 3, 4], [2, 3, 4, 0], [5, 1, 0, 0]]), torch.tensor([4, 3, 2])

    def reached(loss) -> dict[str, bool]:
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {k: [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in ps] for k, ps in groups.items()}

    f = reached(model.supervised_loss(feats, lengths, targets, target_lengths))
    assert all(f["theta"]) and all(f["phi"]) and not any(f["eta"])
    out = model.unsupervised_loss(feats, lengths, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and out.metrics["masked_fraction"] > 0
    g = reached(out.loss)
    assert all(g["theta"]) and all(g["eta"]) and not any(g["phi"])
    assert model.unsup.mask_embedding.grad.abs().sum() > 0
