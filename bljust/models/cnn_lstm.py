"""CNN-LSTM acoustic encoder of the BL-JUST papers.

Residual 2-D convolutions (32 maps, 3x3 kernels) over the time-frequency plane,
then bidirectional LSTM layers. The first ``log2(subsampling)`` conv layers stride
by 2 in time and frequency, which makes the LSTMs affordable on a CPU.

    feats [B, T, F] -> conv stack [B, C, T', F'] -> linear -> latent [B, T', D]
                    -> (masked frames replaced by the mask embedding) -> BiLSTM x L -> context [B, T', 2H]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bljust.models.encoder import EncoderOutput, apply_mask, halve_lengths, lengths_to_padding_mask
from bljust.models.norm import MaskedBatchNorm2d


@dataclass
class CnnLstmConfig:
    cnn_layers: int = 3
    cnn_channels: int = 32
    kernel_size: int = 3
    subsampling: int = 4  # time (and frequency) reduction of the conv stack; a power of 2
    latent_dim: int = 256
    lstm_layers: int = 2
    lstm_units: int = 256  # per direction
    dropout: float = 0.1

    def __post_init__(self):
        strides = int(math.log2(self.subsampling)) if self.subsampling >= 1 else -1
        if 2**strides != self.subsampling:
            raise ValueError(f"encoder_conf.subsampling must be a power of 2, got {self.subsampling}")
        if not 1 <= strides <= self.cnn_layers or self.cnn_layers < 1:
            raise ValueError(f"encoder_conf.cnn_layers ({self.cnn_layers}) must be >= log2(subsampling) ({strides}) and >= 1")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"encoder_conf.kernel_size must be odd, got {self.kernel_size}")
        if self.lstm_layers < 1:
            raise ValueError(f"encoder_conf.lstm_layers must be >= 1, got {self.lstm_layers}")


class ConvLayer(nn.Module):
    """3x3 conv + batch norm over valid frames only + ReLU; residual when input and output shapes agree."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm = MaskedBatchNorm2d(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T, F], valid [B, T/stride] (False: padding) -> [B, C_out, T/stride, F/stride]"""
        y = torch.relu(self.norm(self.conv(x), valid))
        return x + y if self.residual else y


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, T, D], lengths [B] -> each row's first lengths[b] frames in reverse order, padding in
    place (its own inverse)."""
    steps = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    source = lengths[:, None] - 1 - steps
    source = torch.where(source >= 0, source, steps)
    return x.gather(1, source.unsqueeze(-1).expand_as(x))


def bilstm_padded(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A bidirectional, batch-first ``lstm`` on padded x [B, T, D] with lengths [B] -> [B, T, 2H],
    zero at padded frames: what it gives on the packed sequences, computed on padded tensors.

    Why not ``pack_padded_sequence``: on a CPU a packed LSTM runs step by step, 2-4x slower than
    the fused kernel a padded batch gets (bench/bench_lstm.py). Each direction runs on its own:
    the forward one reads padding only after an utterance's last frame, and the backward one
    reads every utterance reversed within its length, so no valid output sees padding."""
    pad = lengths_to_padding_mask(lengths, x.shape[1]).unsqueeze(-1)
    x = x.masked_fill(pad, 0.0)  # whatever padding held cannot reach a gradient
    for layer in range(lstm.num_layers):
        if layer:
            x = nn.functional.dropout(x, lstm.dropout, lstm.training)
        outputs = []
        for suffix in ("", "_reverse"):
            weights = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            inputs = x if not suffix else reverse_padded(x, lengths)
            zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
            out = torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, True)[0]
            outputs.append(out if not suffix else reverse_padded(out, lengths))
        x = torch.cat(outputs, dim=-1).masked_fill(pad, 0.0)
    return x


class CnnLstmEncoder(nn.Module):
    def __init__(self, input_dim: int, config: CnnLstmConfig):
        super().__init__()
        self.config = config
        n_strided = int(math.log2(config.subsampling))
        layers, ch, freq = [], 1, input_dim
        for i in range(config.cnn_layers):
            stride = 2 if i < n_strided else 1
            layers.append(ConvLayer(ch, config.cnn_channels, config.kernel_size, stride))
            ch = config.cnn_channels
            freq = (freq - 1) // stride + 1
        self.convs = nn.ModuleList(layers)
        self.n_strided = n_strided
        self.proj = nn.Linear(ch * freq, config.latent_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.latent_dim, config.lstm_units, num_layers=config.lstm_layers, batch_first=True,
            bidirectional=True, dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.latent_dim = config.latent_dim
        self.output_dim = 2 * config.lstm_units
        self.causal = False  # the backward LSTM direction reads the whole utterance

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the conv stack: each stride-2 conv (padding k//2) maps L to floor((L - 1) / 2) + 1."""
        for _ in range(self.n_strided):
            lengths = halve_lengths(lengths)
        return lengths

    @property
    def min_input_frames(self) -> int:
        """Shortest input that still yields one output frame per stride (the receptive field's step)."""
        return self.config.subsampling

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None = None,
                mask_embedding: torch.Tensor | None = None, need_context: bool = True) -> EncoderOutput:
        """feats [B, T, F], lengths [B], mask [B, T'] bool, mask_embedding [D]
        -> EncoderOutput(latent [B, T', D] (unmasked), context [B, T', 2H] (None without need_context), lengths [B])"""
        x = feats.unsqueeze(1)  # [B, 1, T, F]
        out_lengths = lengths
        for layer in self.convs:
            if layer.conv.stride[0] == 2:
                out_lengths = halve_lengths(out_lengths)
            padding = lengths_to_padding_mask(out_lengths, (x.shape[2] - 1) // layer.conv.stride[0] + 1)
            # Batch statistics come from valid frames only, and padded frames are zeroed after
            # every layer, so an utterance's output does not depend on what it is batched with.
            x = layer(x, ~padding).masked_fill(padding[:, None, :, None], 0.0)
        b, c, t, f = x.shape
        latent = self.proj(x.transpose(1, 2).reshape(b, t, c * f))
        latent = latent.masked_fill(lengths_to_padding_mask(out_lengths, t).unsqueeze(-1), 0.0)
        if not need_context:
            return EncoderOutput(latent, None, out_lengths)
        masked = apply_mask(latent, mask, mask_embedding)
        context = bilstm_padded(self.lstm, self.dropout(masked), out_lengths.to(masked.device))
        return EncoderOutput(latent, self.dropout(context), out_lengths)
