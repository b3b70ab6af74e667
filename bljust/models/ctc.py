"""CTC head: the supervised head (phi, ``sup_head.SupervisedHead``) on top of an encoder's
context vectors.

    context [B, T, D] -> Linear (or Linear -> ReLU -> dropout -> Linear) -> log_softmax -> log-probs [B, T, V]

The loss is torch's ``ctc_loss`` with blank id 0; greedy decoding (``ctc_greedy``) is the
best frame path, written here. A beam search over the log-probabilities, with a lexicon and an
n-gram LM, is ``bljust.decode.beam``'s, so ``own_beam_search`` gives None.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bljust.models.sup_head import Decoder


@dataclass
class CtcConfig:
    hidden_dim: int = 0  # 0: a single linear layer; >0: Linear -> ReLU -> Linear as in the BL-JUST reference
    dropout: float = 0.0


class CtcHead(nn.Module):
    loss_name = "CTC"
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
            # float32 at least: ctc_loss has no half-precision kernels (float64 stays float64)
            log_probs.transpose(0, 1).to(torch.promote_types(log_probs.dtype, torch.float32)), targets, lengths, target_lengths,
            blank=self.blank, reduction="mean", zero_infinity=True,
        )

    def own_beam_search(self, beam_size: int) -> Decoder | None:
        return None  # CTC log-probs: bljust.decode.beam searches them

    def joint_cost(self, utterances: int, frames: int, labels: int) -> int | None:
        return None  # no joint network: memory grows with frames, as batch.max_frames caps


def min_ctc_frames(target: list[int]) -> int:
    """Fewest output frames CTC needs for ``target``: one per token plus a blank between repeats."""
    return len(target) + sum(1 for a, b in zip(target, target[1:]) if a == b)


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Greedy (best-path) CTC decoding, batched: log_probs [B, T, V], lengths [B] -> token ids
    per utterance, repeats merged and blanks removed."""
    best = log_probs.argmax(dim=-1)  # [B, T]
    keep = best != blank
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    best, keep = best.cpu(), keep.cpu()  # one transfer for the whole batch, then per-row slicing on the CPU
    return [best[i, : lengths[i]][keep[i, : lengths[i]]].tolist() for i in range(best.shape[0])]
