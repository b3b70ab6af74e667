"""CPC / InfoNCE loss: the unsupervised (lower-level) loss g of BL-JUST and its head eta.

For every utterance b, step k in 1..K and valid frame t with t + k < lengths[b], the
prediction W_k(c[b, t]) must pick the positive latent[b, t + k] out of N negatives drawn
uniformly from the valid latent frames of the whole batch:

    loss = mean over predictions of  -log softmax([s(p, pos), s(p, neg_1..N)] / temperature)[0]

Negative sampling: per step k, ONE set of N frames is drawn (with replacement) and shared
by all predictions of that step, so the scores are a single [P_k, D] x [D, N] matmul
instead of a [P_k, N, D] gather. A drawn negative that is the row's own positive frame is
masked to -inf (that row then simply has fewer negatives). Sharing makes the predictions
of one step see correlated negatives; the loss is unchanged in expectation and much cheaper.

The context c must not have seen the frames it predicts. A bidirectional encoder's
context has (its backward direction reads the whole utterance), which makes the task
trivial and the learned features useless. So by default (``context: autoregressive``) c
comes from the head's own unidirectional GRU over the encoder's latent frames, as in the
original CPC: the loss then shapes the encoder's front end (theta up to ``latent``) and
the GRU and predictors (eta). ``context: encoder`` uses the encoder's context directly
and is allowed only for encoders that declare themselves causal (``encoder.causal``).

Reproducibility contract (tests rely on it): for k = 1..K in order, the draw is
``torch.randint(V, (N,), generator=generator)`` on the CPU, indexing the V valid frames
of the batch in (b, t) row-major order. Steps without any prediction draw nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask

SIMILARITIES = ("cosine", "dot")
CONTEXTS = ("autoregressive", "encoder")


@dataclass
class CpcConfig:
    steps: int = 6  # K: predict k = 1..K frames ahead
    num_negatives: int = 64
    temperature: float = 0.1
    similarity: str = "cosine"  # or "dot"
    detach_targets: bool = False  # stop gradients through positives/negatives (latent as fixed targets)
    context: str = "autoregressive"  # or "encoder" (causal encoders only): what the predictions read
    ar_dim: int = 256  # GRU units of the autoregressive context

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"unsup_conf.steps must be >= 1, got {self.steps}")
        if self.num_negatives < 1:
            raise ValueError(f"unsup_conf.num_negatives must be >= 1, got {self.num_negatives}")
        if not self.temperature > 0:
            raise ValueError(f"unsup_conf.temperature must be > 0, got {self.temperature}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unsup_conf.similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")
        if self.context not in CONTEXTS:
            raise ValueError(f"unsup_conf.context must be one of {', '.join(CONTEXTS)}, got {self.context!r}")
        if self.ar_dim < 1:
            raise ValueError(f"unsup_conf.ar_dim must be >= 1, got {self.ar_dim}")


class CpcOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    accuracy: torch.Tensor  # scalar float: fraction of predictions whose positive beats every negative
    num_predictions: int


def check_encoder(encoder, config: CpcConfig | None = None) -> None:
    """Fail early if ``encoder`` does not give the CPC head what it needs."""
    for name in ("latent_dim", "output_dim"):
        value = getattr(encoder, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"encoder {type(encoder).__name__} has no positive integer attribute '{name}' "
                f"(got {value!r}); the CPC head needs both latent_dim and output_dim"
            )
    if config is not None and config.context == "encoder" and not getattr(encoder, "causal", False):
        raise ValueError(
            f"unsup_conf.context 'encoder' needs a causal encoder, but {type(encoder).__name__}'s context "
            "sees the future frames CPC predicts; use unsup_conf.context 'autoregressive'"
        )


def info_nce_logits(
    pred: torch.Tensor,
    pos: torch.Tensor,
    negs: torch.Tensor,
    pos_idx: torch.Tensor,
    neg_idx: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Dot-product scores of each prediction against its positive (column 0) and the shared negatives.

    For cosine similarity pass L2-normalised vectors (the head normalises each frame once).
    pred [P, D], pos [P, D], negs [N, D], pos_idx [P], neg_idx [N] (frame ids; equal id = same frame)
    -> logits [P, 1 + N], with -inf where a negative is the row's own positive frame.
    """
    pos_scores = (pred * pos).sum(-1, keepdim=True)  # [P, 1]
    neg_scores = pred @ negs.t()  # [P, N]
    neg_scores = neg_scores.masked_fill(pos_idx[:, None] == neg_idx[None, :], float("-inf"))
    return torch.cat([pos_scores, neg_scores], dim=1) / temperature


class CpcHead(nn.Module):
    """The unsupervised head eta: the autoregressive context (a GRU over the latent frames,
    unless ``context: encoder``) and one linear predictor per step k (context -> latent_dim)."""

    def __init__(self, context_dim: int, latent_dim: int, config: CpcConfig | None = None):
        super().__init__()
        self.config = config or CpcConfig()
        self.autoregressive = None
        if self.config.context == "autoregressive":
            self.autoregressive = nn.GRU(latent_dim, self.config.ar_dim, batch_first=True)
            context_dim = self.config.ar_dim
        self.predictors = nn.ModuleList(nn.Linear(context_dim, latent_dim) for _ in range(self.config.steps))

    def context(self, enc: EncoderOutput) -> torch.Tensor:
        """What the predictions read: [B, T, D_context]; frame t has seen latent frames <= t only
        (autoregressive), or whatever the encoder's context has seen (``context: encoder``)."""
        if self.autoregressive is None:
            return enc.context
        t = enc.latent.shape[1]
        packed = pack_padded_sequence(enc.latent, enc.lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, _ = self.autoregressive(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=t)[0]

    def forward(self, enc: EncoderOutput, generator: torch.Generator | None = None) -> CpcOutput:
        """enc: latent [B, T, Dl], context [B, T, Dc], lengths [B] -> CpcOutput (mean InfoNCE over predictions)"""
        cfg = self.config
        latent, context = enc.latent, self.context(enc)
        b, t = latent.shape[:2]
        device = latent.device
        valid = ~lengths_to_padding_mask(enc.lengths.to(device), t)  # [B, T]
        # Positives and negatives are gathered from the V valid frames only, so padded values
        # never reach the loss or its gradient. Frame ids are positions in this pool.
        frames = (latent.detach() if cfg.detach_targets else latent)[valid]  # [V, Dl]
        if cfg.similarity == "cosine":
            frames = F.normalize(frames, dim=-1)  # once per frame, not once per use
        frame_ids = valid.flatten().cumsum(0).view(b, t) - 1  # [B, T], meaningful where valid

        total: torch.Tensor | float = 0.0
        correct = torch.zeros((), dtype=torch.long, device=device)
        count = 0
        for k, predictor in enumerate(self.predictors, start=1):
            if k >= t:
                break
            has_target = valid[:, k:]  # [B, T-k]: t + k is a valid frame (so is t)
            p_k = int(has_target.sum())
            if p_k == 0:
                continue
            pred = predictor(context[:, : t - k][has_target])  # [P_k, Dl]
            if cfg.similarity == "cosine":
                pred = F.normalize(pred, dim=-1)
            pos_idx = frame_ids[:, k:][has_target]  # [P_k]
            neg_idx = torch.randint(len(frames), (cfg.num_negatives,), generator=generator).to(device)  # [N]
            logits = info_nce_logits(pred, frames[pos_idx], frames[neg_idx], pos_idx, neg_idx, cfg.temperature)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # softmax in >= fp32 under AMP
            total = total + F.cross_entropy(logits, logits.new_zeros(p_k, dtype=torch.long), reduction="sum")
            correct = correct + (logits[:, 0] > logits[:, 1:].max(dim=1).values).sum()
            count += p_k

        # An empty slice of every input and parameter adds exactly 0 but keeps them all in the
        # graph: a batch (or step) without predictions still backpropagates, and
        # torch.autograd.grad over eta never meets an unused parameter.
        anchor = sum(x.narrow(0, 0, 0).sum() for x in (latent, enc.context, context, *self.parameters()))
        loss = total / max(count, 1) + anchor
        return CpcOutput(loss, correct.float() / max(count, 1), count)
