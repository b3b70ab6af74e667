"""The unsupervised-head contract (eta): what every lower-level loss g supplies.

A head is built as ``cls(context_dim, latent_dim, config)`` and used in two calls, so that
one encoder pass serves masked-prediction losses:

    mask = head.sample_mask(lengths, max_len, generator)     # None: the head masks nothing
    enc = encoder(feats, lengths, mask, head.mask_embedding)
    out = head(enc, mask, generator)                          # UnsupOutput(loss, metrics)

Everything a head owns (mask embedding, quantizer, projections, predictors, extra layers)
is eta: only g uses it.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from bljust.models.encoder import EncoderOutput


class UnsupOutput(NamedTuple):
    loss: torch.Tensor  # scalar g
    metrics: dict[str, float]  # what the training log shows besides g (accuracy, code perplexity, ...)


class UnsupHead(Protocol):
    mask_embedding: torch.Tensor | None  # [D_latent], or None for heads that mask nothing
    metric_names: tuple[str, ...]  # the keys of UnsupOutput.metrics (columns g_<name> of train_steps.csv)
    reads_context: bool  # False: the loss reads only the latent frames, so the encoder skips its context network

    @staticmethod
    def check_encoder(encoder, config) -> None:
        """Raise ValueError when ``encoder`` cannot serve this head."""

    def sample_mask(self, lengths: torch.Tensor, max_len: int, generator: torch.Generator | None) -> torch.Tensor | None:
        """lengths [B] in latent frames -> bool [B, max_len] (True: masked), or None."""

    def forward(self, enc: EncoderOutput, mask: torch.Tensor | None, generator: torch.Generator | None) -> UnsupOutput:
        """enc: latent [B, T', D_latent] (unmasked), context [B, T', D_context] (computed with ``mask``'s
        frames replaced by ``mask_embedding``; None when not ``reads_context``), lengths [B];
        mask: ``sample_mask``'s bool [B, T'] or None -> UnsupOutput (scalar g, metrics)."""


def check_dims(encoder, head_name: str) -> None:
    """Fail early if ``encoder`` lacks the positive integer sizes every head is built from."""
    for name in ("latent_dim", "output_dim"):
        value = getattr(encoder, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"encoder {type(encoder).__name__} has no positive integer attribute '{name}' "
                f"(got {value!r}); the {head_name} head needs both latent_dim and output_dim"
            )
