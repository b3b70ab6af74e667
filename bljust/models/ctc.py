"""CTC head: the supervised head (phi) on top of an encoder's context vectors.

A supervised head maps the context to per-frame outputs (``forward``), scores them against
a batch's transcripts (``loss``), decodes them greedily (``greedy``) and says how many
frames a transcript needs (``min_frames``): the trainer, validation and decoding use only these.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bljust.decode.greedy import ctc_greedy


@dataclass
class CtcConfig:
    hidden_dim: int = 0  # 0: a single linear layer; >0: Linear -> ReLU -> Linear as in the BL-JUST reference
    dropout: float = 0.0


class CtcHead(nn.Module):
    blank = 0

    def __init__(self, input_dim: int, vocab_size: int, config: CtcConfig = CtcConfig()):
        super().__init__()
        if config.hidden_dim > 0:
            self.net = nn.Sequential(
                nn.Linear(input_dim, config.hidden_dim), nn.ReLU(), nn.Dropout(config.dropout),
                nn.Linear(config.hidden_dim, vocab_size),
            )
        else:
            self.net = nn.Linear(input_dim, vocab_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context [B, T, D] -> log-probabilities [B, T, V]"""
        return F.log_softmax(self.net(context), dim=-1)

    @staticmethod
    def min_frames(target: list[int]) -> int:
        return min_ctc_frames(target)

    def greedy(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """log_probs [B, T, V], lengths [B] -> the best path's token ids per utterance."""
        return ctc_greedy(log_probs, lengths, self.blank)

    def loss(self, log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of per-utterance CTC losses, each divided by its target length.

        log_probs [B, T, V], lengths [B], targets [B, S] (padded), target_lengths [B] -> scalar
        """
        return F.ctc_loss(
            log_probs.transpose(0, 1).to(torch.promote_types(log_probs.dtype, torch.float32)), targets, lengths, target_lengths,
            blank=self.blank, reduction="mean", zero_infinity=True,
        )


def min_ctc_frames(target: list[int]) -> int:
    """Fewest output frames CTC needs for ``target``: one per token plus a blank between repeats."""
    return len(target) + sum(1 for a, b in zip(target, target[1:]) if a == b)
