"""Conformer acoustic encoder: convolutional subsampling x4, then torchaudio's Conformer blocks.

    feats [B, T, F] -> Conv2d(3x3, stride 2) + ReLU -> Conv2d(3x3, stride 2) + ReLU
                    -> [B, C, T', F'] -> linear -> latent [B, T', d_model]
                    -> (masked frames replaced by the mask embedding) -> dropout
                    -> Conformer block x L -> context [B, T', d_model]

Positions: torchaudio's blocks add none besides their convolution modules (``pos_enc: none``, the
default, so older configs and checkpoints keep their meaning). ``pos_enc: rel`` replaces each
block's ``self_attn`` by relative positional self-attention (bljust/models/rel_attention.py:
Transformer-XL style, as in the Conformer paper), called the same way; the block's other modules
and their parameter names stay torchaudio's.

Every stage keeps the padded frames of a batch out of the valid ones, so an utterance's latent
and context are the same alone or padded in a batch with longer utterances:

* the subsampling convs pad time (and frequency) by one zero on each side, and the padded
  frames are zeroed before the first conv and after each conv, so a conv window that runs off
  the end of an utterance reads zeros, as it would for the utterance alone;
* self-attention gets a key padding mask; with ``pos_enc: rel`` its position terms depend on
  offsets i - j only, the same whatever the batch's length;
* each block's convolution module is run here (its modules and parameters are torchaudio's,
  see ``_conv_module``): padded frames are zeroed right before the depthwise convolution, and its
  normalisation (``use_group_norm=True``: one group, so no batch statistics are involved) takes
  its mean and variance over the valid frames of the utterance only;
* padded frames are zeroed between blocks and in the outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.models import Conformer

from bljust.models.encoder import EncoderOutput, apply_mask, halve_lengths, lengths_to_padding_mask
from bljust.models.rel_attention import RelPositionMultiheadAttention


POS_ENCODINGS = ("none", "rel")


@dataclass
class ConformerConfig:
    d_model: int = 144  # latent and context width
    num_heads: int = 4  # attention heads; must divide d_model
    num_layers: int = 4  # Conformer blocks
    ffn_dim: int = 576  # hidden width of the feed-forward modules
    conv_kernel: int = 15  # depthwise convolution kernel (odd, so it is centred)
    dropout: float = 0.1
    # Time reduction of the front end. Only 4 is supported: the front end is exactly two
    # stride-2 convs (10 ms fbank frames -> 40 ms encoder frames, the usual Conformer rate),
    # which fixes the length formula in ``output_lengths``.
    subsampling: int = 4
    subsampling_channels: int = 144  # output channels of each subsampling conv
    # JUST's split: the first contrastive_layers blocks are the contrastive module (their output
    # is EncoderOutput.intermediate, read by the contrastive loss), the others the MLM module
    # (context). 0: no split.
    contrastive_layers: int = 0
    # Positional information in self-attention: "none" (torchaudio's blocks as they are) or "rel"
    # (relative positional self-attention, see bljust/models/rel_attention.py).
    pos_enc: str = "none"

    def __post_init__(self):
        for key in ("d_model", "num_heads", "num_layers", "ffn_dim", "conv_kernel", "subsampling_channels"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"encoder_conf.{key} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"encoder_conf.num_heads ({self.num_heads}) must divide encoder_conf.d_model ({self.d_model})")
        if self.conv_kernel % 2 != 1:
            raise ValueError(f"encoder_conf.conv_kernel must be odd, got {self.conv_kernel}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"encoder_conf.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.contrastive_layers, int) or not 0 <= self.contrastive_layers < self.num_layers:
            raise ValueError(f"encoder_conf.contrastive_layers must be in [0, num_layers = {self.num_layers}), "
                             f"got {self.contrastive_layers!r}")
        if self.subsampling != 4:
            raise ValueError(f"encoder_conf.subsampling must be 4 (two stride-2 convs), got {self.subsampling!r}")
        if self.pos_enc not in POS_ENCODINGS:
            raise ValueError(f"encoder_conf.pos_enc must be one of {', '.join(POS_ENCODINGS)}, got {self.pos_enc!r}")


class ConformerEncoder(nn.Module):
    def __init__(self, input_dim: int, config: ConformerConfig):
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be positive, got {input_dim}")
        self.config, self.input_dim = config, input_dim
        ch = config.subsampling_channels
        self.sub1 = nn.Conv2d(1, ch, 3, stride=2, padding=1)
        self.sub2 = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        freq = (input_dim + 1) // 2
        freq = (freq + 1) // 2  # F' = ceil(ceil(F / 2) / 2)
        self.proj = nn.Linear(ch * freq, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.conformer = Conformer(
            input_dim=config.d_model, num_heads=config.num_heads, ffn_dim=config.ffn_dim,
            num_layers=config.num_layers, depthwise_conv_kernel_size=config.conv_kernel,
            dropout=config.dropout, use_group_norm=True, convolution_first=False,
        )
        for layer in self.conformer.conformer_layers:
            _check_layer(layer)
            if config.pos_enc == "rel":  # same call and dropout as the nn.MultiheadAttention it replaces
                layer.self_attn = RelPositionMultiheadAttention(config.d_model, config.num_heads, config.dropout)
        self.latent_dim = self.output_dim = config.d_model
        self.causal = False  # attention and the centred depthwise conv read future frames
        self.min_input_frames = 1  # ceil(L / 4) >= 1 for every L >= 1

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Input frames [B] -> encoder frames [B]: ceil(ceil(L / 2) / 2) = ceil(L / 4) = floor((L + 3) / 4).

        Each subsampling conv (kernel 3, stride 2, padding 1) maps L to ceil(L / 2)."""
        return halve_lengths(halve_lengths(lengths))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None = None,
                mask_embedding: torch.Tensor | None = None, need_context: bool = True) -> EncoderOutput:
        """feats [B, T, F], lengths [B]; mask [B, T'] bool (True: replace that latent frame by
        ``mask_embedding`` [d_model] before the Conformer blocks)
        -> EncoderOutput(latent [B, T', d_model] unmasked, context [B, T', d_model] (None without
        need_context), lengths [B])
        with T' = ceil(T / 4); frames beyond each utterance's length are zero in latent and context."""
        if feats.dim() != 3 or feats.shape[2] != self.input_dim:
            raise ValueError(f"expected feats [B, T, {self.input_dim}], got {tuple(feats.shape)}")
        if lengths.numel() and int(lengths.min()) < self.min_input_frames:
            raise ValueError(f"utterance of {int(lengths.min())} frames is shorter than the encoder's "
                             f"{self.min_input_frames} frame minimum")
        # Front end: [B, 1, T, F] -> [B, C, T/2, F/2] -> [B, C, T', F'], padded frames zeroed each time.
        x = feats.unsqueeze(1).masked_fill(lengths_to_padding_mask(lengths, feats.shape[1])[:, None, :, None], 0.0)
        len1 = halve_lengths(lengths)
        x = torch.relu(self.sub1(x))
        x = x.masked_fill(lengths_to_padding_mask(len1, x.shape[2])[:, None, :, None], 0.0)
        out_lengths = halve_lengths(len1)
        x = torch.relu(self.sub2(x))
        pad = lengths_to_padding_mask(out_lengths, x.shape[2])  # [B, T'] True on padding
        x = x.masked_fill(pad[:, None, :, None], 0.0)
        b, c, t, f = x.shape
        latent = self.proj(x.transpose(1, 2).reshape(b, t, c * f)).masked_fill(pad.unsqueeze(-1), 0.0)
        if not need_context:
            return EncoderOutput(latent, None, out_lengths)

        x = apply_mask(latent, mask, mask_embedding).masked_fill(pad.unsqueeze(-1), 0.0)
        x = self.dropout(x).transpose(0, 1)  # torchaudio's layers take [T, B, D]
        pad_tb = pad.transpose(0, 1).unsqueeze(-1)  # [T', B, 1]
        intermediate = None
        for i, layer in enumerate(self.conformer.conformer_layers, start=1):
            x = _conformer_layer(layer, x, pad).masked_fill(pad_tb, 0.0)
            if i == self.config.contrastive_layers:
                intermediate = x.transpose(0, 1)
        return EncoderOutput(latent, x.transpose(0, 1), out_lengths, intermediate)


# --- torchaudio's ConformerLayer, run step by step ------------------------------------------------
# torchaudio.models.conformer.ConformerLayer.forward(x [T, B, D], key_padding_mask) applies:
#   x = x + 0.5 * ffn1(x); [conv module if convolution_first]
#   x = x + self_attn_dropout(self_attn(self_attn_layer_norm(x), key_padding_mask))
#   [conv module if not convolution_first]; x = x + 0.5 * ffn2(x); final_layer_norm(x)
# and its conv module: layer_norm -> sequential[pointwise conv, GLU, depthwise conv, GroupNorm,
# SiLU, pointwise conv, dropout]. The functions below repeat that with the same submodules
# (so parameters and state dicts are torchaudio's), adding the padding handling the stock
# forward lacks: it would feed padded frames to the depthwise conv and count them in the
# group norm's statistics. ``_check_layer`` fails early if a torchaudio release changes this.
# With pos_enc rel, ``layer.self_attn`` is a RelPositionMultiheadAttention, called the same way.

def _check_layer(layer: nn.Module) -> None:
    try:
        conv = layer.conv_module
        seq = conv.sequential
        kinds = [type(m) for m in seq]
        ok = (
            kinds == [nn.Conv1d, nn.GLU, nn.Conv1d, nn.GroupNorm, nn.SiLU, nn.Conv1d, nn.Dropout]
            and seq[3].num_groups == 1 and seq[3].affine
            and isinstance(conv.layer_norm, nn.LayerNorm)
            and all(isinstance(getattr(layer, n), nn.Module) for n in
                    ("ffn1", "ffn2", "self_attn", "self_attn_layer_norm", "self_attn_dropout", "final_layer_norm"))
            and isinstance(layer.convolution_first, bool)
        )
    except (AttributeError, IndexError, TypeError):
        ok = False
    if not ok:
        raise RuntimeError("ConformerEncoder: this torchaudio's ConformerLayer does not have the structure "
                           "bljust/models/conformer.py runs step by step; check the installed torchaudio version")


def _masked_group_norm(x: torch.Tensor, norm: nn.GroupNorm, valid: torch.Tensor) -> torch.Tensor:
    """GroupNorm(1 group) whose mean and variance cover only valid frames.
    x [B, C, T], valid [B, 1, T] bool -> [B, C, T] (padded frames: unspecified)."""
    n = valid.sum(dim=(1, 2), keepdim=True) * x.shape[1]  # [B, 1, 1]
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    mean = torch.where(valid, x, zero).sum(dim=(1, 2), keepdim=True) / n
    var = torch.where(valid, x - mean, zero).square().sum(dim=(1, 2), keepdim=True) / n
    y = (x - mean) * torch.rsqrt(var + norm.eps)
    return y * norm.weight.view(1, -1, 1) + norm.bias.view(1, -1, 1)


def _conv_module(layer: nn.Module, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Residual convolution module. x [T, B, D], pad [B, T] bool (True: padding) -> [T, B, D]"""
    conv = layer.conv_module
    pointwise1, glu, depthwise, norm, act, pointwise2, drop = conv.sequential
    y = conv.layer_norm(x).permute(1, 2, 0)  # [B, D, T]
    y = glu(pointwise1(y))
    valid = ~pad.unsqueeze(1)  # [B, 1, T]
    y = depthwise(y.masked_fill(~valid, 0.0))  # zeros beyond the end, as the utterance alone would see
    y = drop(pointwise2(act(_masked_group_norm(y, norm, valid))))
    return x + y.permute(2, 0, 1)


def _conformer_layer(layer: nn.Module, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """One Conformer block. x [T, B, D], pad [B, T] bool (True: padding) -> [T, B, D]"""
    x = x + 0.5 * layer.ffn1(x)
    if layer.convolution_first:
        x = _conv_module(layer, x, pad)
    y = layer.self_attn_layer_norm(x)
    y, _ = layer.self_attn(query=y, key=y, value=y, key_padding_mask=pad, need_weights=False)
    x = x + layer.self_attn_dropout(y)
    if not layer.convolution_first:
        x = _conv_module(layer, x, pad)
    x = x + 0.5 * layer.ffn2(x)
    return layer.final_layer_norm(x)
