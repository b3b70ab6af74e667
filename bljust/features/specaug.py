"""SpecAugment: frequency and time masking (Park et al., 2019), applied per utterance."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SpecAugConfig:
    enabled: bool = True
    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width: int = 40
    time_width_ratio: float = 0.05  # a time mask is at most this fraction of the utterance


def _masks(n: int, max_width: torch.Tensor, size: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """Bool [B, length]: ``n`` random spans per row, each of width < max_width[b] inside [0, size[b])."""
    b = size.shape[0]
    pos = torch.arange(length)[None, :]
    mask = torch.zeros(b, length, dtype=torch.bool)
    for _ in range(n):
        width = (torch.rand(b, generator=gen) * max_width.float()).long()
        start = (torch.rand(b, generator=gen) * (size - width).clamp(min=1).float()).long()
        mask |= (pos >= start[:, None]) & (pos < (start + width)[:, None])
    return mask


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, config: SpecAugConfig, gen: torch.Generator) -> torch.Tensor:
    """feats [B, T, F], lengths [B] -> masked copy [B, T, F] (masked bins set to 0, i.e. the CMVN mean)."""
    if not config.enabled:
        return feats
    b, t, f = feats.shape
    lengths = lengths.cpu()
    fmask = _masks(config.freq_masks, torch.full((b,), config.freq_width + 1), torch.full((b,), f), f, gen)
    twidth = torch.minimum(torch.full((b,), config.time_width), (lengths * config.time_width_ratio).long()) + 1
    tmask = _masks(config.time_masks, twidth, lengths, t, gen)
    mask = fmask[:, None, :] | tmask[:, :, None]
    return feats.masked_fill(mask.to(feats.device), 0.0)
