"""Gumbel-softmax product quantizer: discrete targets for contrastive and masked-prediction losses.

A frame x is mapped to G groups of V logits. Group g picks one entry of its own codebook
[V, code_dim / G]; the G picked entries are concatenated into the quantized vector
[code_dim], so G groups of V entries can express V ** G different targets.

Training picks entry ``argmax_v (logits + gumbel) / tau`` and passes gradients straight
through: the forward value is the hard one-hot, the backward one that of the Gumbel
softmax, ``hard - soft.detach() + soft``. The temperature anneals with the number of
training updates n (kept in the ``num_updates`` buffer, hence in checkpoints):

    tau(n) = max(t_start * t_decay ** n, t_min)

Evaluation picks ``argmax_v logits`` without noise.

Codebook usage is measured by the perplexity of the mean code distribution over the N
quantized frames, summed over groups (G when every frame uses one entry per group, G * V
when all entries are used equally):

    perplexity = sum_g exp(-sum_v p_gv log p_gv),   p_gv = mean_n probs[n, g, v]

The diversity loss (G * V - perplexity) / (G * V) pushes the soft perplexity up; it is 0
for uniform usage and (G * V - G) / (G * V) when a single entry per group is used.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

_GUMBEL_EPS = 1e-6  # keeps U away from 0 and 1, so -log(-log(U)) stays finite


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor  # [N, code_dim] concatenated codebook entries (straight-through in training)
    codes: torch.Tensor  # [N, G] long: the entry picked in each group (with the Gumbel noise in training)
    soft_perplexity: torch.Tensor  # scalar: perplexity of the noise-free softmax probabilities (differentiable)
    code_perplexity: torch.Tensor  # scalar float: perplexity of the picked codes (no gradient)
    temperature: float  # tau used by this call


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """probs [N, G, V] (each row sums to 1 per group) -> scalar sum_g exp(entropy of mean_n probs[:, g]).

    An empty set (N = 0) counts as using one entry per group: G.
    """
    mean = probs.sum(0) / max(probs.shape[0], 1)  # [G, V]
    entropy = -torch.special.xlogy(mean, mean).sum(-1)  # [G]
    return entropy.exp().sum()


def diversity_loss(soft_perplexity: torch.Tensor, groups: int, entries: int) -> torch.Tensor:
    """(G * V - perplexity) / (G * V): 0 for uniform codebook usage, larger when fewer entries are used."""
    total = groups * entries
    return (total - soft_perplexity) / total


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """Standard Gumbel samples -log(-log(U)), U ~ U(0, 1) drawn on the CPU from ``generator``."""
    u = torch.rand(shape, generator=generator).clamp_(_GUMBEL_EPS, 1.0 - _GUMBEL_EPS)
    return (-torch.log(-torch.log(u))).to(device=device, dtype=dtype)


class GumbelProductQuantizer(nn.Module):
    """x [N, input_dim] -> G codebook entries of size code_dim / G each, concatenated."""

    def __init__(self, input_dim: int, groups: int, entries: int, code_dim: int,
                 t_start: float, t_min: float, t_decay: float):
        super().__init__()
        if groups < 1 or entries < 1:
            raise ValueError(f"groups and entries must be >= 1, got {groups} and {entries}")
        if code_dim % groups:
            raise ValueError(f"code_dim {code_dim} is not divisible by groups {groups}")
        if not 0 < t_min <= t_start or not 0 < t_decay <= 1:
            raise ValueError(f"need 0 < t_min <= t_start and 0 < t_decay <= 1, got {t_min}, {t_start}, {t_decay}")
        self.groups, self.entries, self.code_dim = groups, entries, code_dim
        self.t_start, self.t_min, self.t_decay = t_start, t_min, t_decay
        self.logits = nn.Linear(input_dim, groups * entries)
        self.codebook = nn.Parameter(torch.randn(groups, entries, code_dim // groups))  # [G, V, code_dim / G]
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # persistent: saved in state_dict

    @property
    def temperature(self) -> float:
        return max(self.t_start * self.t_decay ** int(self.num_updates), self.t_min)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        """x [N, input_dim] -> QuantizerOutput. In training mode with gradients enabled, one call
        is one update: ``num_updates`` grows by 1 after the call (the call uses the old tau)."""
        n = x.shape[0]
        tau = self.temperature
        logits = self.logits(x).view(n, self.groups, self.entries)  # [N, G, V]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        probs = logits.softmax(-1)  # [N, G, V] noise-free, for the soft perplexity
        if self.training:
            noisy = logits + gumbel_noise(logits.shape, generator, logits.device, logits.dtype)
            soft = (noisy / tau).softmax(-1)
            codes = noisy.argmax(-1)  # [N, G]
            hard = F.one_hot(codes, self.entries).to(soft.dtype)
            one_hot = hard - soft.detach() + soft  # value: hard; gradient: soft's
            if torch.is_grad_enabled():
                self.num_updates.add_(1)
        else:
            codes = logits.argmax(-1)
            one_hot = F.one_hot(codes, self.entries).to(logits.dtype)
        quantized = torch.einsum("ngv,gvd->ngd", one_hot.to(self.codebook.dtype), self.codebook)  # [N, G, code_dim/G]
        with torch.no_grad():
            code_ppl = perplexity(F.one_hot(codes, self.entries).float())
        return QuantizerOutput(quantized.reshape(n, self.code_dim), codes, perplexity(probs), code_ppl, tau)
