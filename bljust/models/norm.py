"""Normalisation layers that ignore padded time frames.

A padded batch holds utterances of different lengths; ordinary batch norm would count the
padding in its statistics, so an utterance's output (and the running statistics) would depend
on what it is batched with and on how much padding the batch has.
"""
from __future__ import annotations

import torch
from torch import nn

from bljust import distributed


class MaskedBatchNorm2d(nn.Module):
    """Batch norm over [B, C, T, F] whose statistics use only the valid time frames.

    A drop-in for ``nn.BatchNorm2d(num_features)``: same parameters and buffers (``weight``,
    ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``), same defaults
    (``eps`` 1e-5, ``momentum`` 0.1; ``momentum=None`` gives the cumulative average), and the
    running variance is updated with the unbiased batch variance, as torch does.

    Training: per channel, mean and (biased) variance over the valid (b, t, f) positions
    normalise the input, and update the running statistics. Evaluation: running statistics.
    Padded positions of the output hold unspecified values (callers zero them); they never
    influence valid outputs, the statistics or the gradients of valid outputs.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, T, F], valid [B, T] bool (True: a real frame; None: all frames real)
        -> [B, C, T, F]"""
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"expected input [B, {self.num_features}, T, F], got {tuple(x.shape)}")
        if valid is not None and valid.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"valid {tuple(valid.shape)} does not match the batch and time of {tuple(x.shape)}")
        shape = (1, -1, 1, 1)
        if valid is None:
            valid = torch.ones(x.shape[0], x.shape[2], dtype=torch.bool, device=x.device)
        keep = valid[:, None, :, None]  # [B, 1, T, 1]
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        # torch.where, not a product: padded inf/nan must reach neither the statistics nor
        # (through 0 * inf in the backward pass) the gradients
        x = torch.where(keep, x, zero)
        if not self.training:
            mean, var = self.running_mean, self.running_var
        else:
            # Under data-parallel training the sums run over every rank's shard, so the statistics
            # are those of the global batch (``differentiable_sum`` is the identity otherwise).
            n = int(distributed.sum_(valid.sum().reshape(1))) * x.shape[3]
            if n == 0:
                raise ValueError("MaskedBatchNorm2d: no valid frame in the batch")
            mean = distributed.differentiable_sum(x.sum(dim=(0, 2, 3))) / n  # padded positions are 0 here
            var = distributed.differentiable_sum(torch.where(keep, x - mean.view(shape), zero).square().sum(dim=(0, 2, 3))) / n
            if n < 2:
                raise ValueError(f"MaskedBatchNorm2d: need more than 1 value per channel when training, got {n}")
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                self.running_var.mul_(1 - factor).add_(factor * var.detach() * (n / (n - 1)))
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
