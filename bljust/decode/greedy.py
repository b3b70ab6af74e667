"""Greedy (best-path) CTC decoding, batched."""
from __future__ import annotations

import torch


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """log_probs [B, T, V], lengths [B] -> token ids per utterance, repeats merged and blanks removed."""
    best = log_probs.argmax(dim=-1)  # [B, T]
    keep = best != blank
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    best, keep = best.cpu(), keep.cpu()
    return [best[i, : lengths[i]][keep[i, : lengths[i]]].tolist() for i in range(best.shape[0])]
