"""What every encoder returns, so heads and training strategies work on any encoder."""
from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderOutput(NamedTuple):
    """latent:  [B, T', D_latent] local features before the sequence model (CPC's prediction targets)
    context: [B, T', D_context] sequence-model output (what the supervised head reads)
    lengths: [B] number of valid frames in each row of latent/context
    """

    latent: torch.Tensor
    context: torch.Tensor
    lengths: torch.Tensor


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """lengths [B] -> bool [B, T], True where the frame is padding."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]
