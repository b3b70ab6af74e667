"""CPC / InfoNCE loss: the unsupervised (lower-level) loss g of BL-JUST and its head eta.

For every utterance b, step k in 1..K and valid frame t with t + k < lengths[b], the
prediction W_k(c[b, t]) must pick the positive latent[b, t + k] out of N negatives drawn
uniformly from the valid latent frames of the whole batch (``negatives: batch``) or of the
same utterance (``negatives: utterance``):

    loss = mean over predictions of  -log softmax([s(p, pos), s(p, neg_1..N)] / temperature)[0]

Negative sampling: per step k, ONE set of N frames is drawn (with replacement) and shared
by all predictions of that step (of that utterance, with ``negatives: utterance``), so the
scores are a single [P_k, D] x [D, N] matmul (a [B, N, D] gather) instead of a [P_k, N, D] one. A drawn negative that is the row's own positive frame is
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
of the batch in (b, t) row-major order (``negatives: utterance``: ``torch.rand(B, N)``
scaled to each utterance's valid frames). Steps without any prediction draw nothing.

CPC masks nothing: ``sample_mask`` returns None and the head has no mask embedding.
"""
from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn

from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask
from bljust.models.unsup_head import UnsupOutput, check_dims

SIMILARITIES = ("cosine", "dot")
CONTEXTS = ("autoregressive", "encoder")
NEGATIVES = ("batch", "utterance")


@dataclass
class CpcConfig:
    steps: int = 6  # K: predict k = 1..K frames ahead
    num_negatives: int = 64
    negatives: str = "batch"  # where negatives come from: any valid frame of the "batch", or the same "utterance"
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
        if self.negatives not in NEGATIVES:
            raise ValueError(f"unsup_conf.negatives must be one of {', '.join(NEGATIVES)}, got {self.negatives!r}")
        if self.context not in CONTEXTS:
            raise ValueError(f"unsup_conf.context must be one of {', '.join(CONTEXTS)}, got {self.context!r}")
        if self.ar_dim < 1:
            raise ValueError(f"unsup_conf.ar_dim must be >= 1, got {self.ar_dim}")


def info_nce_logits(
    pred: torch.Tensor,
    pos: torch.Tensor,
    negs: torch.Tensor,
    pos_idx: torch.Tensor,
    neg_idx: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Dot-product scores of each prediction against its positive (column 0) and its negatives.

    For cosine similarity pass L2-normalised vectors (the head normalises each frame once).
    pred [P, D], pos [P, D], negs [N, D] shared by all rows or [P, N, D] per row,
    pos_idx [P], neg_idx [N] or [P, N] (frame ids; equal id = same frame)
    -> logits [P, 1 + N], with -inf where a negative is the row's own positive frame.
    """
    pos_scores = (pred * pos).sum(-1, keepdim=True)  # [P, 1]
    if negs.dim() == 2:
        neg_scores = pred @ negs.t()  # [P, N]
        same = pos_idx[:, None] == neg_idx[None, :]
    else:
        neg_scores = torch.einsum("pd,pnd->pn", pred, negs)
        same = pos_idx[:, None] == neg_idx
    neg_scores = neg_scores.masked_fill(same, float("-inf"))
    return torch.cat([pos_scores, neg_scores], dim=1) / temperature


class CpcHead(nn.Module):
    """The unsupervised head eta: the autoregressive context (a GRU over the latent frames,
    unless ``context: encoder``) and one linear predictor per step k (context -> latent_dim)."""

    mask_embedding = None  # CPC predicts the future; it masks nothing
    metric_names = ("accuracy", "predictions")

    def __init__(self, context_dim: int, latent_dim: int, config: CpcConfig | None = None):
        super().__init__()
        self.config = config or CpcConfig()
        self.reads_context = self.config.context == "encoder"  # else its own GRU over the latent frames
        self.autoregressive = None
        if self.config.context == "autoregressive":
            self.autoregressive = nn.GRU(latent_dim, self.config.ar_dim, batch_first=True)
            context_dim = self.config.ar_dim
        self.predictors = nn.ModuleList(nn.Linear(context_dim, latent_dim) for _ in range(self.config.steps))

    @staticmethod
    def check_encoder(encoder, config: CpcConfig) -> None:
        check_dims(encoder, "CPC")
        if config.context == "encoder" and not getattr(encoder, "causal", False):
            raise ValueError(
                f"unsup_conf.context 'encoder' needs a causal encoder, but {type(encoder).__name__}'s context "
                "sees the future frames CPC predicts; use unsup_conf.context 'autoregressive'"
            )

    def sample_mask(self, lengths: torch.Tensor, max_len: int, generator: torch.Generator | None = None) -> None:
        return None

    def context(self, enc: EncoderOutput) -> torch.Tensor:
        """What the predictions read: [B, T, D_context]; frame t has seen latent frames <= t only
        (autoregressive), or whatever the encoder's context has seen (``context: encoder``)."""
        if self.autoregressive is None:
            return enc.context
        # A forward-only RNN reads padding only after an utterance's last frame, so the padded
        # batch gives the packed result at every valid frame, on a CPU 2-4x faster. Padding is
        # zeroed before (whatever it held cannot reach a gradient) and after.
        pad = lengths_to_padding_mask(enc.lengths.to(enc.latent.device), enc.latent.shape[1]).unsqueeze(-1)
        out, _ = self.autoregressive(enc.latent.masked_fill(pad, 0.0))
        return out.masked_fill(pad, 0.0)

    def _negatives(self, valid: torch.Tensor, has_target: torch.Tensor, generator: torch.Generator | None):
        """Frame ids of the negatives: [N] shared by all predictions (``batch``), or [P_k, N],
        shared by the predictions of one utterance (``utterance``)."""
        n, device = self.config.num_negatives, valid.device
        if self.config.negatives == "batch":
            return torch.randint(int(valid.sum()), (n,), generator=generator).to(device)
        counts = valid.sum(1)  # [B]
        offsets = counts.cumsum(0) - counts
        draw = (torch.rand(len(counts), n, generator=generator).to(device) * counts[:, None]).long()
        per_utt = offsets[:, None] + draw  # [B, N]
        utt_of_prediction = torch.arange(len(counts), device=device)[:, None].expand_as(has_target)[has_target]
        return per_utt[utt_of_prediction]

    def forward(self, enc: EncoderOutput, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> UnsupOutput:
        """enc: latent [B, T, Dl], context [B, T, Dc], lengths [B] -> UnsupOutput (mean InfoNCE over
        predictions; metrics: accuracy, the fraction of predictions whose positive beats every negative)."""
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
            neg_idx = self._negatives(valid, has_target, generator)
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
        return UnsupOutput(loss, {"accuracy": correct.item() / max(count, 1), "predictions": count})
