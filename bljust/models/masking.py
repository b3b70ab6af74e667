"""Span masks for masked-prediction losses: which latent frames the context network must not see.

Each utterance gets ``n`` non-overlapping spans of ``span`` consecutive frames inside its
valid frames. ``mask_prob`` is the expected fraction of valid frames masked: the number of
spans is the stochastically rounded ``mask_prob * L / span``,

    n = floor(mask_prob * L / span + u),   u ~ U[0, 1)   so that   E[n * span] = mask_prob * L,

then raised to ``min_spans`` and capped at ``L // span`` (both clip the expectation, so the
fraction is exact only while neither applies). This differs from wav2vec 2.0, where
``mask_prob`` is the probability of a frame starting a span and spans overlap, so the
masked fraction there is well below ``mask_prob * span``.

Placement is uniform over all non-overlapping arrangements: ``n`` spans in ``L`` frames
leave ``L - n * span`` unmasked frames, i.e. ``L - n * (span - 1)`` "slots" of which the
spans take ``n``. Drawing ``n`` distinct sorted slots ``s_0 < ... < s_{n-1}`` and putting
span i at ``s_i + i * (span - 1)`` maps every n-subset of slots to exactly one arrangement
(spans may touch but never overlap, the last one ends at most at frame L).

Reproducibility contract: all draws are on the CPU from ``generator`` (the global CPU
generator when None), first ``torch.rand(B, dtype=float64)`` for the rounding of every
utterance, then, for each utterance b in order that gets spans placed by slots,
``torch.randperm(L_b - n_b * (span - 1))``. The same generator state gives the same mask.
"""
from __future__ import annotations

import math

import torch


def span_mask(
    lengths: torch.Tensor,
    max_len: int,
    mask_prob: float,
    span: int,
    min_spans: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """lengths [B] (valid frames per utterance) -> bool [B, max_len], True where a frame is masked.

    Only the first ``min(lengths[b], max_len)`` frames of row b can be masked; padding never is.
    An utterance shorter than ``span`` (but not empty) has no room for a whole span: it is
    masked entirely when it would get at least one span (``n > 0``, in particular whenever
    ``min_spans > 0``), and not at all otherwise.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if span < 1:
        raise ValueError(f"span must be >= 1, got {span}")
    if min_spans < 0:
        raise ValueError(f"min_spans must be >= 0, got {min_spans}")
    lens = lengths.detach().to("cpu", torch.long).clamp(0, max_len).tolist()
    mask = torch.zeros(len(lens), max_len, dtype=torch.bool)
    rounding = torch.rand(len(lens), generator=generator, dtype=torch.float64).tolist()
    offsets = torch.arange(span)
    for b, (length, u) in enumerate(zip(lens, rounding)):
        if length == 0:
            continue
        n = max(math.floor(mask_prob * length / span + u), min_spans)
        if length < span:
            if n > 0:
                mask[b, :length] = True
            continue
        n = min(n, length // span)
        if n == 0:
            continue
        slots = torch.randperm(length - n * (span - 1), generator=generator)[:n].sort().values  # [n]
        starts = slots + torch.arange(n) * (span - 1)  # [n], consecutive starts >= span apart
        mask[b, (starts[:, None] + offsets).flatten()] = True
    return mask.to(lengths.device)
