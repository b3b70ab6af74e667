"""The encoder contract (theta): what every encoder takes and returns, so supervised heads,
unsupervised heads and training strategies work with any encoder.

    feats [B, T, F] -> front end -> latent [B, T', D_latent]
                    -> (masked frames replaced by the mask embedding) -> context network
                    -> context [B, T', D_context]

``latent`` is returned unmasked: masked-prediction losses take their targets from it, so one
encoder pass gives both the targets and the context that must identify them.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

import torch


class EncoderOutput(NamedTuple):
    """latent:  [B, T', D_latent] local features before the context network, never masked
    context: [B, T', D_context] context-network output (what the supervised head reads), or None
             when the caller asked for the latent frames only (``need_context=False``)
    lengths: [B] number of valid frames in each row of latent/context
    intermediate: [B, T', D_context] the output of the context network's first layers when the
             encoder is split as in JUST (contrastive module, then MLM module): the contrastive
             loss reads it, the supervised head and the MLM loss read context; None otherwise
    """

    latent: torch.Tensor
    context: torch.Tensor | None
    lengths: torch.Tensor
    intermediate: torch.Tensor | None = None


class Encoder(Protocol):
    latent_dim: int  # D_latent
    output_dim: int  # D_context
    causal: bool  # True when context frame t has seen input frames <= t only
    min_input_frames: int  # shortest input that yields one output frame per stride

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Input frames [B] -> latent/context frames [B]."""

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None = None,
                mask_embedding: torch.Tensor | None = None, need_context: bool = True) -> EncoderOutput:
        """feats [B, T, F], lengths [B]; mask [B, T'] bool (True: replace that latent frame by
        ``mask_embedding`` [D_latent] before the context network) -> EncoderOutput.
        ``need_context=False`` skips the context network (context None): for a loss that reads
        the latent frames only, running it would cost a forward and a backward of zeros."""


def apply_mask(latent: torch.Tensor, mask: torch.Tensor | None, mask_embedding: torch.Tensor | None) -> torch.Tensor:
    """latent [B, T, D] with the frames where ``mask`` [B, T] is True replaced by ``mask_embedding`` [D]."""
    if mask is None:
        return latent
    if mask_embedding is None:
        raise ValueError("a mask needs a mask_embedding to put in place of the masked frames")
    if mask.shape != latent.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match the latent frames {tuple(latent.shape[:2])}")
    return torch.where(mask.unsqueeze(-1), mask_embedding.to(latent.dtype), latent)


def halve_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after a stride-2 convolution with an odd kernel k and padding k // 2: ceil(L / 2)."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """lengths [B] -> bool [B, T], True where the frame is padding."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient flowing back through ``x`` by ``scale``."""
    return _ScaleGrad.apply(x, scale)
