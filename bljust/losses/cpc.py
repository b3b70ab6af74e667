"""CPC / InfoNCE loss: the unsupervised (lower-level) loss g of BL-JUST and its head eta.

For every utterance b, step k in 1..K and valid frame t with t + k < lengths[b], the
prediction W_k(context[b, t]) must pick the positive latent[b, t + k] out of N
negatives drawn uniformly from the valid latent frames of the whole batch:

    loss = mean over predictions of  -log softmax([s(p, pos), s(p, neg_1..N)] / temperature)[0]

Negative sampling: per step k, ONE set of N frames is drawn (with replacement) and shared
by all predictions of that step, so the scores are a single [P_k, D] x [D, N] matmul
instead of a [P_k, N, D] gather. A drawn negative that is the row's own positive frame is
masked to -inf (that row then simply has fewer negatives). Sharing makes the predictions
of one step see correlated negatives; the loss is unchanged in expectation and much cheaper.

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

from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask

SIMILARITIES = ("cosine", "dot")


@dataclass
class CpcConfig:
    steps: int = 6  # K: predict k = 1..K frames ahead
    num_negatives: int = 64
    temperature: float = 0.1
    similarity: str = "cosine"  # or "dot"
    detach_targets: bool = False  # stop gradients through positives/negatives (latent as fixed targets)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"unsup_conf.steps must be >= 1, got {self.steps}")
        if self.num_negatives < 1:
            raise ValueError(f"unsup_conf.num_negatives must be >= 1, got {self.num_negatives}")
        if not self.temperature > 0:
            raise ValueError(f"unsup_conf.temperature must be > 0, got {self.temperature}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unsup_conf.similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")


class CpcOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    accuracy: torch.Tensor  # scalar float: fraction of predictions whose positive beats every negative
    num_predictions: int


def check_encoder(encoder) -> None:
    """Fail early if ``encoder`` does not tell the CPC head its latent and context sizes."""
    for name in ("latent_dim", "output_dim"):
        value = getattr(encoder, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"encoder {type(encoder).__name__} has no positive integer attribute '{name}' "
                f"(got {value!r}); the CPC head needs both latent_dim and output_dim"
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
    """The unsupervised head eta: one linear predictor per step k (context_dim -> latent_dim)."""

    def __init__(self, context_dim: int, latent_dim: int, config: CpcConfig | None = None):
        super().__init__()
        self.config = config or CpcConfig()
        self.predictors = nn.ModuleList(nn.Linear(context_dim, latent_dim) for _ in range(self.config.steps))

    def forward(self, enc: EncoderOutput, generator: torch.Generator | None = None) -> CpcOutput:
        """enc: latent [B, T, Dl], context [B, T, Dc], lengths [B] -> CpcOutput (mean InfoNCE over predictions)"""
        cfg = self.config
        latent, context = enc.latent, enc.context
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
        anchor = sum(x.narrow(0, 0, 0).sum() for x in (latent, context, *self.parameters()))
        loss = total / max(count, 1) + anchor
        return CpcOutput(loss, correct.float() / max(count, 1), count)
