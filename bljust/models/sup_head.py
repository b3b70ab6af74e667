"""The supervised-head contract (phi): what every upper-level loss f supplies.

A head is built as ``cls(context_dim, vocab_size, config)`` on top of an encoder's context
vectors, and used in one forward call whose output the others read:

    out = head(enc.context)                                   # [B, T', *]: log-probs (CTC), transcriber output (RNN-T)
    f = head.loss(out, enc.lengths, targets, target_lengths)  # scalar
    ids = head.greedy(out, enc.lengths)                       # token ids per utterance
    search = head.own_beam_search(beam_size)                  # None: CTC beam search of bljust.decode.beam

Training, validation and decoding use only these members, so every strategy and decoder
works with every head.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

# (head output [B, T', *], lengths [B]) -> token ids per utterance, blanks removed
Decoder = Callable[[torch.Tensor, torch.Tensor], list[list[int]]]


class SupervisedHead(Protocol):
    loss_name: str  # how logs and plots name f: "CTC", "RNN-T"
    blank: int  # the blank's token id (0, the tokenizer's <blank>)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context [B, T', D_context] -> the head's output [B, T', *] that loss, greedy and a beam search read."""

    def loss(self, out: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
        """f: out [B, T', *], lengths [B], targets [B, S] (padded), target_lengths [B] -> scalar,
        the mean over the batch of per-utterance losses, each divided by its target length."""

    @staticmethod
    def min_frames(target: list[int]) -> int:
        """The fewest encoder frames the loss can align ``target`` (token ids) with."""

    def greedy(self, out: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """out [B, T', *], lengths [B] -> the best path's token ids per utterance."""

    def own_beam_search(self, beam_size: int) -> Decoder | None:
        """The head's own beam search keeping ``beam_size`` hypotheses, as a Decoder (RNN-T), or
        None when its output is CTC log-probabilities [B, T', V], which ``bljust.decode.beam``
        searches (with a lexicon and an n-gram LM where given)."""

    def joint_cost(self, utterances: int, frames: int, labels: int) -> int | None:
        """The joint logits B x T' x (U+1) x V that a batch of ``utterances`` utterances of at most
        ``frames`` encoder frames and ``labels`` tokens materialises in ``loss`` (what
        ``batch.max_joint`` caps), or None for a head without a joint network (CTC)."""
