"""wav2vec 2.0 encoder on raw waveforms (Baevski et al., 2020), built on torchaudio's Wav2Vec2Model.

Raw audio reaches the encoder in the pipeline's [B, T, F] layout with F = 1: 16 kHz samples,
zero-padded, ``lengths`` in samples.

    feats [B, S, 1] -> waveform [B, S] (-> zero mean, unit variance per utterance: normalize_waveform)
      -> conv feature encoder (torchaudio's ``feature_extractor``; base: 7 convs, 20 ms stride,
         25 ms receptive field)                                          -> [B, T', C]
      -> feature projection's LayerNorm(C)                               -> latent [B, T', C]
      -> masked frames replaced by the mask embedding [C]
      -> feature projection's Linear(C, E) + dropout (-> channel masking, training only)
      -> Transformer (convolutional position embedding, L layers)       -> context [B, T', E]

``latent`` is the tensor wav2vec 2.0 quantizes for its contrastive targets: the last conv
layer's output (C channels, 512 in every published model) after the feature projection's layer
norm, before its linear map; fairseq's ``unmasked_features`` (before ``dropout_features``), HF's
``extract_features``. latent_dim = C, output_dim = E.

Masking: the contract puts the mask embedding in the latent space ([C]), so a masked frame enters
the Transformer as Linear(mask_embedding): a learned vector, as wav2vec 2.0's own ``mask_emb``
[E], which sits after the projection (so a pre-trained ``mask_emb`` is not carried over).

Module layout (a contract: an importer loads torchaudio-layout weights into ``encoder.model``):
``self.model`` is the torchaudio ``Wav2Vec2Model`` built by ``torchaudio.models.wav2vec2_model``
(no ``aux`` head); the encoder owns no other parameter or buffer, so its state dict is
``model.`` + torchaudio's names, plus ``mask_emb`` [E] when ``mask_prob`` > 0.

Padding: an utterance's latent and context are the same alone or in a padded batch. The convs
have no padding, so a valid output frame only reads valid samples; the one statistic over time,
the group norm of the first conv (``group_norm`` mode: per channel over the utterance), is taken
over the valid frames only; the Transformer's input is zeroed on padding (what its positional
convolution reads beyond an utterance alone) and attention ignores padded keys. Padded frames
are zero in latent and context.

Fine-tuning controls (fairseq's names where they exist):

* ``freeze_feature_encoder`` / ``feature_grad_mult``: the conv feature encoder runs without
  autograd, so its parameters get no gradient (and no update), or its gradient is multiplied by
  ``feature_grad_mult`` (0 freezes it as well).
* ``freeze_transformer_updates`` N: during the first N updates (0..N-1) the feature projection's
  Linear and the Transformer run without gradient (fairseq's ``freeze_finetune_updates``: only the
  heads, and through g's targets the conv encoder, train meanwhile). The trainer must call
  ``encoder.set_update(n)`` (n = updates done so far) before every step (it does, through
  ``AsrModel.set_update``); a training forward pass without it raises.
* ``layer_drop``: each Transformer layer is skipped with this probability in training. The draw
  comes from a generator seeded by the update number given to ``set_update`` (by a count of
  training forward passes when it was never called), never from the global RNG, so with data
  parallel training every rank drops the same layers, each rank's forward pass is its share of
  the same sub-network, and the summed gradients are that sub-network's. All forward passes of
  one update (f, g, an out-of-memory retry in halves) use the same layers.
* ``mask_prob`` / ``mask_length``: in training, on a pass without an unsupervised head's mask
  (the supervised one), spans of ``mask_length`` frames of the Transformer's input are replaced
  by ``mask_emb`` [E], a learned vector after the feature projection, as fairseq's fine-tuning
  does with its ``mask_emb`` (an import carries the pre-trained one over). ``mask_prob`` is the
  expected fraction of frames masked (``masking.span_mask``); fairseq's is the chance of
  a frame starting a span, with overlaps, so its 0.5 at length 10 masks about 0.4 of the frames.
* ``mask_channel_prob`` / ``mask_channel_length``: in training, spans of ``mask_channel_length``
  channels of the Transformer's input are zeroed over the whole utterance, a fraction
  ``mask_channel_prob`` of the channels in expectation. Both masks are drawn from the global RNG,
  like dropout.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.models import wav2vec2_model

from bljust.models.encoder import EncoderOutput, apply_mask, lengths_to_padding_mask, scale_grad
from bljust.models.masking import span_mask

# fairseq's conv_feature_layers of every published wav2vec 2.0: 20 ms stride, 25 ms (400 samples) field
WAV2VEC2_CONV = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2

# The structural fields: they fix the parameter shapes (and what pre-trained weights mean).
STRUCTURE = ("extractor_mode", "conv_layers", "conv_bias", "embed_dim", "num_layers", "num_heads", "ffn_dim",
             "pos_conv_kernel", "pos_conv_groups", "layer_norm_first")

_LARGE = dict(embed_dim=1024, num_layers=24, num_heads=16, ffn_dim=4096, pos_conv_kernel=128, pos_conv_groups=16)
SHAPES = {
    "base": dict(extractor_mode="group_norm", conv_layers=WAV2VEC2_CONV, conv_bias=False, embed_dim=768, num_layers=12,
                 num_heads=12, ffn_dim=3072, pos_conv_kernel=128, pos_conv_groups=16, layer_norm_first=False),
    "large": dict(extractor_mode="group_norm", conv_layers=WAV2VEC2_CONV, conv_bias=False, layer_norm_first=False, **_LARGE),
    "large_lv60k": dict(extractor_mode="layer_norm", conv_layers=WAV2VEC2_CONV, conv_bias=True, layer_norm_first=True,
                        **_LARGE),
    "xlsr_300m": dict(extractor_mode="layer_norm", conv_layers=WAV2VEC2_CONV, conv_bias=True, layer_norm_first=True,
                      **_LARGE),
    # Tests and CPU smoke runs: base's strides and receptive field, tiny widths.
    "tiny": dict(extractor_mode="group_norm", conv_layers=[[32, 10, 5]] + [[32, 3, 2]] * 4 + [[32, 2, 2]] * 2,
                 conv_bias=False, embed_dim=32, num_layers=2, num_heads=2, ffn_dim=64, pos_conv_kernel=16,
                 pos_conv_groups=4, layer_norm_first=False),
}
CUSTOM = "custom"  # no preset: every structural field is given


def _is_int(value, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_prob(value, upper_inclusive: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0


@dataclass
class Wav2Vec2Config:
    # Shape: a preset (base, large, large_lv60k, xlsr_300m, tiny) whose fields below may be
    # overridden one by one, or "custom" with every structural field given.
    shape: str = "base"
    extractor_mode: str | None = None  # group_norm (base, large) or layer_norm (large_lv60k, xlsr)
    conv_layers: list[list[int]] | None = None  # [[channels, kernel, stride], ...] of the conv feature encoder
    conv_bias: bool | None = None
    embed_dim: int | None = None  # E, Transformer width
    num_layers: int | None = None
    num_heads: int | None = None
    ffn_dim: int | None = None
    pos_conv_kernel: int | None = None  # convolutional position embedding
    pos_conv_groups: int | None = None
    layer_norm_first: bool | None = None  # pre-LN Transformer layers (large_lv60k, xlsr)
    normalize_waveform: bool = False  # zero mean, unit variance per utterance (models pre-trained so: lv60k, xlsr)
    # Dropout (fairseq's names in brackets)
    dropout: float = 0.1  # Transformer residual paths [dropout]
    attention_dropout: float = 0.1  # [attention_dropout]
    activation_dropout: float = 0.0  # inside the feed-forward blocks [activation_dropout]
    projection_dropout: float = 0.0  # after the feature projection [dropout_input]
    latent_dropout: float = 0.0  # on the returned latent, i.e. the contrastive targets [dropout_features]
    layer_drop: float = 0.0  # [encoder_layerdrop]
    # Fine-tuning controls (module docstring)
    freeze_feature_encoder: bool = False
    feature_grad_mult: float = 1.0
    freeze_transformer_updates: int = 0  # fairseq's freeze_finetune_updates
    mask_prob: float = 0.0  # time masking of the supervised pass, a fraction of frames (module docstring)
    mask_length: int = 10
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 10

    def __post_init__(self):
        if self.shape != CUSTOM and self.shape not in SHAPES:
            raise ValueError(f"encoder_conf.shape must be one of {', '.join(SHAPES)} or {CUSTOM}, got {self.shape!r}")
        preset = SHAPES.get(self.shape, {})
        for key in STRUCTURE:
            if getattr(self, key) is None:
                if key not in preset:
                    raise ValueError(f"encoder_conf.{key} must be given with shape {CUSTOM}")
                value = preset[key]
                setattr(self, key, [list(layer) for layer in value] if key == "conv_layers" else value)
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"encoder_conf.extractor_mode must be group_norm or layer_norm, got {self.extractor_mode!r}")
        layers = self.conv_layers
        if not isinstance(layers, list) or not layers or not all(
                isinstance(layer, list) and len(layer) == 3 and all(_is_int(v) for v in layer) for layer in layers):
            raise ValueError(f"encoder_conf.conv_layers must be a non-empty list of [channels, kernel, stride] "
                             f"positive integers, got {layers!r}")
        for key in ("embed_dim", "num_layers", "num_heads", "ffn_dim", "pos_conv_kernel", "pos_conv_groups"):
            if not _is_int(getattr(self, key)):
                raise ValueError(f"encoder_conf.{key} must be a positive integer, got {getattr(self, key)!r}")
        for key in ("conv_bias", "layer_norm_first", "normalize_waveform", "freeze_feature_encoder"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"encoder_conf.{key} must be true or false, got {getattr(self, key)!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"encoder_conf.num_heads ({self.num_heads}) must divide encoder_conf.embed_dim ({self.embed_dim})")
        if self.embed_dim % self.pos_conv_groups:
            raise ValueError(f"encoder_conf.pos_conv_groups ({self.pos_conv_groups}) must divide "
                             f"encoder_conf.embed_dim ({self.embed_dim})")
        for key in ("dropout", "attention_dropout", "activation_dropout", "projection_dropout", "latent_dropout",
                    "layer_drop"):
            if not _is_prob(getattr(self, key)):
                raise ValueError(f"encoder_conf.{key} must be in [0, 1), got {getattr(self, key)!r}")
        if isinstance(self.feature_grad_mult, bool) or not isinstance(self.feature_grad_mult, (int, float)) \
                or not self.feature_grad_mult >= 0:
            raise ValueError(f"encoder_conf.feature_grad_mult must be >= 0, got {self.feature_grad_mult!r}")
        if not _is_int(self.freeze_transformer_updates, 0):
            raise ValueError(f"encoder_conf.freeze_transformer_updates must be an integer >= 0, "
                             f"got {self.freeze_transformer_updates!r}")
        if not _is_prob(self.mask_prob, upper_inclusive=True):
            raise ValueError(f"encoder_conf.mask_prob must be in [0, 1], got {self.mask_prob!r}")
        if not _is_int(self.mask_length):
            raise ValueError(f"encoder_conf.mask_length must be a positive integer, got {self.mask_length!r}")
        if not _is_prob(self.mask_channel_prob, upper_inclusive=True):
            raise ValueError(f"encoder_conf.mask_channel_prob must be in [0, 1], got {self.mask_channel_prob!r}")
        if not _is_int(self.mask_channel_length) or self.mask_channel_length > self.embed_dim:
            raise ValueError(f"encoder_conf.mask_channel_length must be in 1..embed_dim ({self.embed_dim}), "
                             f"got {self.mask_channel_length!r}")

    def structure(self) -> dict:
        """The structural fields as an explicit ``shape: custom`` encoder_conf (no preset needed)."""
        return {"shape": CUSTOM, **{k: getattr(self, k) for k in STRUCTURE}}

    def preset_name(self) -> str | None:
        """The preset with exactly this structure, if any."""
        mine = {k: getattr(self, k) for k in STRUCTURE}
        return next((name for name, preset in SHAPES.items() if preset == mine), None)


def _masked_channel_norm(x: torch.Tensor, norm: nn.GroupNorm, valid: torch.Tensor) -> torch.Tensor:
    """GroupNorm with one group per channel whose mean and variance cover only valid frames.
    x [B, C, T], valid [B, 1, T] bool -> [B, C, T] in float32 at least (padded frames: unspecified)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))  # statistics in float32 under autocast too
    n = valid.sum(-1, keepdim=True).clamp(min=1)  # [B, 1, 1]
    mean = x.masked_fill(~valid, 0.0).sum(-1, keepdim=True) / n  # [B, C, 1]
    centred = x - mean
    var = centred.masked_fill(~valid, 0.0).square().sum(-1, keepdim=True) / n
    return centred * torch.rsqrt(var + norm.eps) * norm.weight[:, None] + norm.bias[:, None]


def _normalize_waveform(wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """wave [B, S] -> zero mean, unit variance over each row's first lengths[b] samples (fairseq's
    layer norm of the waveform, eps 1e-5); padding stays 0."""
    valid = ~lengths_to_padding_mask(lengths, wave.shape[1])
    n = lengths.clamp(min=1)[:, None].to(wave.dtype)
    mean = wave.masked_fill(~valid, 0.0).sum(1, keepdim=True) / n
    var = (wave - mean).masked_fill(~valid, 0.0).square().sum(1, keepdim=True) / n
    return ((wave - mean) * torch.rsqrt(var + 1e-5)).masked_fill(~valid, 0.0)


def _check_model(model: nn.Module) -> None:
    """Fail early if a torchaudio release changes the structure this encoder runs step by step."""
    try:
        t = model.encoder.transformer
        ok = (
            model.aux is None
            and all(isinstance(b.conv, nn.Conv1d) and isinstance(b.kernel_size, int) and isinstance(b.stride, int)
                    for b in model.feature_extractor.conv_layers)
            and all(isinstance(getattr(model.encoder.feature_projection, n), nn.Module)
                    for n in ("layer_norm", "projection", "dropout"))
            and all(isinstance(getattr(t, n), nn.Module) for n in ("pos_conv_embed", "layer_norm", "dropout", "layers"))
            and isinstance(t.layer_norm_first, bool)
        )
    except AttributeError:
        ok = False
    if not ok:
        raise RuntimeError("Wav2Vec2Encoder: this torchaudio's Wav2Vec2Model does not have the structure "
                           "bljust/models/wav2vec2.py runs step by step; check the installed torchaudio version")


class Wav2Vec2Encoder(nn.Module):
    """The encoder contract (``models/encoder.py``) on raw audio; see the module docstring."""

    reads_waveform = True  # feats [B, T, 1]: 16 kHz samples

    def __init__(self, input_dim: int, config: Wav2Vec2Config):
        super().__init__()
        if input_dim != 1:
            raise ValueError(f"the wav2vec2 encoder reads raw audio, feats [B, T, 1]; got input_dim {input_dim} "
                             "(dump the data with feats_type raw)")
        self.config = c = config
        self.input_dim = input_dim
        self.model = wav2vec2_model(
            extractor_mode=c.extractor_mode, extractor_conv_layer_config=[tuple(layer) for layer in c.conv_layers],
            extractor_conv_bias=c.conv_bias, encoder_embed_dim=c.embed_dim,
            encoder_projection_dropout=c.projection_dropout, encoder_pos_conv_kernel=c.pos_conv_kernel,
            encoder_pos_conv_groups=c.pos_conv_groups, encoder_num_layers=c.num_layers, encoder_num_heads=c.num_heads,
            encoder_attention_dropout=c.attention_dropout, encoder_ff_interm_features=c.ffn_dim,
            encoder_ff_interm_dropout=c.activation_dropout, encoder_dropout=c.dropout,
            encoder_layer_norm_first=c.layer_norm_first,
            encoder_layer_drop=0.0,  # dropped here, rank-consistently (module docstring)
            aux_num_out=None,
        )
        _check_model(self.model)
        self.latent_dropout = c.latent_dropout
        self.mask_emb = nn.Parameter(torch.empty(c.embed_dim).uniform_()) if c.mask_prob > 0 else None
        # Frozen: the convs run without autograd, so their parameters never get a gradient. They keep
        # requires_grad, as the trainer's optimizers and gradient diagnostics expect of theta; both
        # skip a parameter without a gradient (no update, no weight decay).
        self.feature_encoder_frozen = c.freeze_feature_encoder or c.feature_grad_mult == 0
        self.latent_dim = c.conv_layers[-1][0]  # C
        self.output_dim = c.embed_dim  # E
        self.causal = False  # attention and the positional convolution read the whole utterance
        field = 1  # receptive field of one output frame, in samples
        for _, kernel, stride in reversed(c.conv_layers):
            field = (field - 1) * stride + kernel
        self.min_input_frames = field
        self._update: int | None = None  # set_update's n
        self._forward_calls = 0  # training forward passes, the layer-drop seed without set_update

    def set_update(self, n: int) -> None:
        """The number of optimizer updates done so far; the trainer calls it before every step.
        It drives ``freeze_transformer_updates`` (frozen while n < N) and seeds ``layer_drop``."""
        if not _is_int(n, 0):
            raise ValueError(f"set_update needs an integer >= 0, got {n!r}")
        self._update = n

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples [...] -> frames [...]: each conv (kernel k, stride s, no padding) maps L to
        max(floor((L - k) / s) + 1, 0), as torchaudio's conv stack does."""
        for _, kernel, stride in self.config.conv_layers:
            lengths = (torch.div(lengths - kernel, stride, rounding_mode="floor") + 1).clamp(min=0)
        return lengths

    # --- the two halves of the network ---------------------------------------------------------

    def _conv_features(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """wave [B, S] (padding zeroed), lengths [B] -> conv features [B, T', C] (padded frames: unspecified)."""
        x = wave.unsqueeze(1)  # [B, 1, S]
        n = lengths
        for block in self.model.feature_extractor.conv_layers:
            x = block.conv(x)
            n = (torch.div(n - block.kernel_size, block.stride, rounding_mode="floor") + 1).clamp(min=0)
            norm = block.layer_norm
            if isinstance(norm, nn.GroupNorm):
                valid = ~lengths_to_padding_mask(n, x.shape[-1]).unsqueeze(1)  # [B, 1, T_i]
                # Without padding the stock module computes the same thing, fused.
                x = norm(x) if bool(valid.all()) else _masked_channel_norm(x, norm, valid)
            elif norm is not None:
                x = norm(x)  # per frame: nothing crosses frames
            x = F.gelu(x)
        return x.transpose(1, 2)

    def _kept_layers(self) -> list[bool]:
        """Which Transformer layers run in this forward pass (all of them outside training)."""
        num = len(self.model.encoder.transformer.layers)
        if not self.training or self.config.layer_drop == 0:
            return [True] * num
        seed = self._update if self._update is not None else self._forward_calls
        gen = torch.Generator().manual_seed(0x5D2A_0000 + seed)  # an offset, so it shares no stream with seed-n generators
        return (torch.rand(num, generator=gen) >= self.config.layer_drop).tolist()

    def _fine_tuning_masks(self, x: torch.Tensor, pad: torch.Tensor, time: bool) -> torch.Tensor:
        """x [B, T', E] -> x with spans of frames (``time``) replaced by mask_emb, then spans of
        channels zeroed per utterance (training only; module docstring)."""
        b, n, e = x.shape
        c = self.config
        if time and c.mask_prob > 0:
            frames = span_mask((~pad).sum(1).cpu(), n, c.mask_prob, c.mask_length).to(x.device)  # [B, T']
            x = torch.where(frames.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        if c.mask_channel_prob > 0:
            channels = span_mask(torch.full((b,), e), e, c.mask_channel_prob, c.mask_channel_length)  # [B, E]
            x = x.masked_fill(channels.to(x.device).unsqueeze(1), 0.0)
        return x

    def _context(self, x: torch.Tensor, pad: torch.Tensor, time_mask: bool) -> torch.Tensor:
        """x [B, T', C] (latent, masked frames replaced), pad [B, T'] bool (True: padding) -> context [B, T', E].
        time_mask: apply ``mask_prob`` (in training)."""
        c = self.config
        projection = self.model.encoder.feature_projection
        t = self.model.encoder.transformer
        frozen = self.training and c.freeze_transformer_updates > 0
        if frozen:
            if self._update is None:
                raise RuntimeError("encoder_conf.freeze_transformer_updates needs the trainer to call "
                                   "encoder.set_update(n) before every step")
            frozen = self._update < c.freeze_transformer_updates
        with torch.no_grad() if frozen else contextlib.nullcontext():
            x = projection.dropout(projection.projection(x))
            if self.training:
                x = self._fine_tuning_masks(x, pad, time_mask)
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)  # what the positional conv reads beyond an utterance alone
            b, n, _ = x.shape
            attention = None if not bool(pad.any()) else (~pad)[:, None, None, :].expand(b, 1, n, n)  # True: attend
            # torchaudio's Transformer.forward, with rank-consistent layer drop
            x = x + t.pos_conv_embed(x)
            if t.layer_norm_first:  # torchaudio's flag: True for post-LN layers (base, large)
                x = t.layer_norm(x)
            x = t.dropout(x)
            for layer, keep in zip(t.layers, self._kept_layers()):
                if keep:
                    x, _ = layer(x, attention)
            if not t.layer_norm_first:
                x = t.layer_norm(x)
        return x.masked_fill(pad.unsqueeze(-1), 0.0)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None = None,
                mask_embedding: torch.Tensor | None = None, need_context: bool = True) -> EncoderOutput:
        """feats [B, S, 1] waveform samples, lengths [B] in samples; mask [B, T'] bool (True: replace
        that latent frame by ``mask_embedding`` [C] before the feature projection's Linear)
        -> EncoderOutput(latent [B, T', C] unmasked, context [B, T', E] (None without need_context),
        lengths [B] = output_lengths(lengths)); frames beyond each utterance's length are zero."""
        if feats.dim() != 3 or feats.shape[2] != 1:
            raise ValueError(f"expected a waveform batch feats [B, T, 1], got {tuple(feats.shape)}")
        lengths = lengths.to(feats.device)
        if lengths.numel() and int(lengths.min()) < self.min_input_frames:
            raise ValueError(f"utterance of {int(lengths.min())} samples is shorter than the encoder's "
                             f"{self.min_input_frames} sample receptive field")
        if self.training:
            self._forward_calls += 1
        wave = feats[..., 0].masked_fill(lengths_to_padding_mask(lengths, feats.shape[1]), 0.0)  # [B, S]
        if self.config.normalize_waveform:
            wave = _normalize_waveform(wave, lengths)
        mult = self.config.feature_grad_mult
        with torch.no_grad() if self.feature_encoder_frozen else contextlib.nullcontext():
            x = self._conv_features(wave, lengths)  # [B, T', C]
        if not self.feature_encoder_frozen and mult != 1.0 and x.requires_grad:
            x = scale_grad(x, mult)
        out_lengths = self.output_lengths(lengths)
        pad = lengths_to_padding_mask(out_lengths, x.shape[1])  # [B, T'] True on padding
        latent = self.model.encoder.feature_projection.layer_norm(x).masked_fill(pad.unsqueeze(-1), 0.0)
        targets = F.dropout(latent, self.latent_dropout, self.training) if self.latent_dropout > 0 else latent
        if not need_context:
            return EncoderOutput(targets, None, out_lengths)
        context = self._context(apply_mask(latent, mask, mask_embedding), pad, time_mask=mask is None)
        return EncoderOutput(targets, context, out_lengths)

