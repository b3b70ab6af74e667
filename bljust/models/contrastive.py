"""Masked contrastive loss (wav2vec 2.0) and its MLM extension (w2v-BERT / JUST): the
unsupervised loss g of BL-JUST and its head eta.

Spans of latent frames are masked (``masking.span_mask``) and replaced by the learned
mask embedding before the encoder's context network. At every masked frame i the
projected context c_i = final_proj(context_i) must pick its target q_i out of K
distractors q_j taken from other masked frames of the same utterance:

    loss_i = -log softmax([sim(c_i, q_i), sim(c_i, q_j1), ..., sim(c_i, q_jK)] / kappa)[0]
    sim = cosine;  a distractor with the same target as q_i (same code ids, or the same
    latent row without quantizer) is left out (-inf).

Targets are the unmasked latent frames, quantized by a Gumbel product quantizer and
projected (q = project_q(quantize(latent))), or, with ``quantize_targets: false``,
projected and detached (q = target_proj(latent.detach()): the latent is then shaped only
through the context path, since a target that is trained to agree with its own
prediction would collapse). Only the masked frames are quantized; the codebook
perplexity and the diversity loss are computed over those frames.

    g = mean_i loss_i + diversity_weight * diversity + feature_penalty * mean(latent ** 2)

The MLM head adds w2v-BERT's masked language modelling on top: a small Transformer
(owned by the head) reads the encoder's context and predicts, at masked frames, the
quantizer's code ids of the contrastive targets (G classifications of V classes):

    g = contrastive_weight * contrastive + mlm_weight * mlm + diversity_weight * diversity (+ feature penalty)

Reproducibility contract: all draws are on the CPU from ``generator``: first the Gumbel
noise of the quantizer (``torch.rand(M, G, V)``, training mode only), then the distractors
(``torch.rand(M, K, dtype=float64)``). M is the number of masked frames; with M = 0 nothing
is drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask
from bljust.models.masking import span_mask
from bljust.models.quantizer import GumbelProductQuantizer, diversity_loss
from bljust.models.unsup_head import UnsupOutput, check_dims


def _positive_int(name: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f"unsup_conf.{name} must be >= {minimum}, got {value}")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"unsup_conf.{name} must be >= 0, got {value}")


@dataclass
class ContrastiveConfig:
    mask_prob: float = 0.5  # expected fraction of valid latent frames masked
    mask_span: int = 5  # frames per masked span
    min_spans: int = 2  # spans per utterance at least (as far as they fit)
    num_negatives: int = 20  # K distractors per masked frame, from the same utterance
    temperature: float = 0.1  # kappa
    final_dim: int = 128  # space where context and targets are compared
    quantize_targets: bool = True  # False: targets are projected, detached latent frames
    codebook_groups: int = 2  # G
    codebook_entries: int = 64  # V per group
    code_dim: int = 128  # size of a quantized vector (G entries of code_dim / G)
    diversity_weight: float = 0.1
    gumbel_start: float = 2.0  # Gumbel-softmax temperature: max(start * decay ** updates, min)
    gumbel_min: float = 0.5
    gumbel_decay: float = 0.9995
    feature_penalty: float = 0.0  # weight of mean(latent ** 2) over valid frames

    def __post_init__(self):
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"unsup_conf.mask_prob must be in (0, 1], got {self.mask_prob}")
        _positive_int("mask_span", self.mask_span)
        _positive_int("min_spans", self.min_spans, 0)
        _positive_int("num_negatives", self.num_negatives)
        if not self.temperature > 0:
            raise ValueError(f"unsup_conf.temperature must be > 0, got {self.temperature}")
        _positive_int("final_dim", self.final_dim)
        _positive_int("codebook_groups", self.codebook_groups)
        _positive_int("codebook_entries", self.codebook_entries)
        _positive_int("code_dim", self.code_dim)
        if self.code_dim % self.codebook_groups:
            raise ValueError(
                f"unsup_conf.code_dim ({self.code_dim}) must be divisible by unsup_conf.codebook_groups "
                f"({self.codebook_groups})"
            )
        _non_negative("diversity_weight", self.diversity_weight)
        if not self.gumbel_min > 0:
            raise ValueError(f"unsup_conf.gumbel_min must be > 0, got {self.gumbel_min}")
        if not self.gumbel_start >= self.gumbel_min:
            raise ValueError(
                f"unsup_conf.gumbel_start must be >= unsup_conf.gumbel_min ({self.gumbel_min}), got {self.gumbel_start}"
            )
        if not 0 < self.gumbel_decay <= 1:
            raise ValueError(f"unsup_conf.gumbel_decay must be in (0, 1], got {self.gumbel_decay}")
        _non_negative("feature_penalty", self.feature_penalty)


@dataclass
class ContrastiveMlmConfig(ContrastiveConfig):
    mlm_layers: int = 2  # Transformer layers of the head's MLM module (width final_dim); 0: the encoder's
    # context is the MLM module's output (JUST: encoder_conf.contrastive_layers splits the encoder)
    mlm_heads: int = 4
    mlm_ffn_dim: int = 512
    mlm_dropout: float = 0.1
    contrastive_weight: float = 1.0
    mlm_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.quantize_targets:
            raise ValueError(
                "unsup_conf.quantize_targets must be true for contrastive_mlm: the MLM targets are code ids"
            )
        _positive_int("mlm_layers", self.mlm_layers, minimum=0)
        _positive_int("mlm_heads", self.mlm_heads)
        if self.final_dim % self.mlm_heads:
            raise ValueError(
                f"unsup_conf.mlm_heads ({self.mlm_heads}) must divide unsup_conf.final_dim ({self.final_dim}), "
                "the width of the MLM module"
            )
        _positive_int("mlm_ffn_dim", self.mlm_ffn_dim)
        if not 0 <= self.mlm_dropout < 1:
            raise ValueError(f"unsup_conf.mlm_dropout must be in [0, 1), got {self.mlm_dropout}")
        _non_negative("contrastive_weight", self.contrastive_weight)
        _non_negative("mlm_weight", self.mlm_weight)


def sample_distractors(
    mask: torch.Tensor, num_negatives: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """mask [B, T] bool -> (index [M, K] long, valid [M, K] bool), M = mask.sum().

    Masked frames are numbered 0..M-1 in (b, t) row-major order. ``index[i, k]`` is a frame
    drawn uniformly (with replacement across k) from the OTHER masked frames of frame i's
    utterance. An utterance with a single masked frame has no distractor: its row holds the
    frame's own index and ``valid`` is False there (True everywhere else).
    """
    device = mask.device
    counts = mask.sum(1)  # [B] n_b
    offsets = counts.cumsum(0) - counts  # [B] index of each utterance's first masked frame
    utt = mask.nonzero()[:, 0]  # [M] utterance of each masked frame
    rank = (mask.cumsum(1) - 1)[mask]  # [M] position among its utterance's masked frames
    n = counts[utt]  # [M]
    u = torch.rand(len(utt), num_negatives, generator=generator, dtype=torch.float64).to(device)  # [M, K]
    others = (n - 1).clamp(min=1)[:, None]  # [M, 1]
    r = (u * others).floor().long().clamp(max=others - 1)  # uniform in 0..n-2 (0 when n = 1)
    r = r + (r >= rank[:, None]).long()  # skip the frame itself
    alone = (n < 2)[:, None]  # [M, 1]
    r = torch.where(alone, rank[:, None], r)
    return offsets[utt][:, None] + r, (~alone).expand(-1, num_negatives)


def contrastive_logits(
    context: torch.Tensor,
    targets: torch.Tensor,
    distractor_idx: torch.Tensor,
    temperature: float,
    valid: torch.Tensor | None = None,
    keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cosine similarities / temperature of each context frame to its target (column 0) and distractors.

    context [M, D], targets [M, D], distractor_idx [M, K] (rows of ``targets``), valid [M, K] bool,
    keys [M, ...] (default: ``targets``) -> logits [M, 1 + K] in at least float32, -inf where a
    distractor is not valid or its key equals the positive's key exactly. The heads pass as keys
    what the targets are computed from (code ids, or the latent rows), since a projection of two
    equal rows need not give bit-identical outputs.
    """
    dtype = torch.promote_types(torch.promote_types(context.dtype, targets.dtype), torch.float32)
    c = F.normalize(context.to(dtype), dim=-1)  # [M, D]
    t = F.normalize(targets.to(dtype), dim=-1)  # [M, D]
    pos = (c * t).sum(-1, keepdim=True)  # [M, 1]
    neg = (c[:, None, :] * t[distractor_idx]).sum(-1)  # [M, K]
    keys = (targets if keys is None else keys).reshape(len(targets), -1)  # [M, E]
    same = torch.all(keys[distractor_idx] == keys[:, None, :], dim=-1)  # [M, K]
    if valid is not None:
        same = same | ~valid
    neg = neg.masked_fill(same, float("-inf"))
    return torch.cat([pos, neg], dim=1) / temperature


class ContrastiveTerms(NamedTuple):
    """What the contrastive part computes; both heads build their loss from it."""

    mask: torch.Tensor  # [B, T] bool: the masked valid frames actually used
    contrastive: torch.Tensor  # scalar: mean cross-entropy over masked frames (0 without any)
    diversity: torch.Tensor  # scalar: diversity loss of the quantizer (0 without quantizer or masked frames)
    feature_penalty: torch.Tensor  # scalar: mean(latent ** 2) over valid frames (0 if unweighted or unmasked)
    codes: torch.Tensor | None  # [M, G] long: code ids of the targets (None without quantizer)
    metrics: dict[str, float]


class ContrastiveHead(nn.Module):
    """wav2vec 2.0's masked contrastive loss (registry key ``contrastive``).

    eta: the mask embedding [D_latent], the quantizer of the latent frames and its
    projection (or the target projection), and final_proj (context -> final_dim).
    Metrics: accuracy, masked_fraction, and with a quantizer code_perplexity and temperature.
    """

    def __init__(self, context_dim: int, latent_dim: int, config: ContrastiveConfig | None = None):
        super().__init__()
        self.config = cfg = config or ContrastiveConfig()
        self.mask_embedding = nn.Parameter(torch.empty(latent_dim).uniform_())
        self.reads_context = True
        self.quantizer = self.project_q = self.target_proj = None
        if cfg.quantize_targets:
            self.quantizer = GumbelProductQuantizer(
                latent_dim, cfg.codebook_groups, cfg.codebook_entries, cfg.code_dim,
                cfg.gumbel_start, cfg.gumbel_min, cfg.gumbel_decay,
            )
            self.project_q = nn.Linear(cfg.code_dim, cfg.final_dim)
        else:
            self.target_proj = nn.Linear(latent_dim, cfg.final_dim)
        self.final_proj = nn.Linear(context_dim, cfg.final_dim)

    @staticmethod
    def check_encoder(encoder, config=None) -> None:
        """Raise ValueError when ``encoder`` lacks latent_dim / output_dim (any such encoder will do)."""
        check_dims(encoder, "contrastive")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy", "masked_fraction") + (("code_perplexity", "temperature") if self.quantizer else ())

    def sample_mask(self, lengths: torch.Tensor, max_len: int, generator: torch.Generator | None) -> torch.Tensor:
        """lengths [B] in latent frames -> bool [B, max_len] span mask (True: masked)."""
        cfg = self.config
        return span_mask(lengths, max_len, cfg.mask_prob, cfg.mask_span, cfg.min_spans, generator)

    def anchor(self, enc: EncoderOutput) -> torch.Tensor:
        """An exact 0 that depends on every input and parameter, so backward (and
        torch.autograd.grad over eta) never meets an unused one, even without masked frames."""
        return sum(x.narrow(0, 0, 0).sum() for x in (enc.latent, enc.context, *self.parameters()) if x is not None)

    def contrastive_terms(self, enc: EncoderOutput, mask: torch.Tensor | None,
                          generator: torch.Generator | None = None) -> ContrastiveTerms:
        """enc: latent [B, T, Dl] (unmasked), context [B, T, Dc] (from the masked latent), lengths [B];
        mask [B, T] bool or None -> ContrastiveTerms. Mask entries on padding are ignored."""
        cfg = self.config
        # An encoder split as in JUST gives the contrastive module's output separately.
        latent, context = enc.latent, enc.context if enc.intermediate is None else enc.intermediate
        t = latent.shape[1]
        device = latent.device
        valid = ~lengths_to_padding_mask(enc.lengths.to(device), t)  # [B, T]
        mask = valid & (mask.to(device) if mask is not None else torch.zeros_like(valid))
        num_masked, num_valid = int(mask.sum()), int(valid.sum())
        zero = torch.zeros((), device=device)
        metrics = {"accuracy": 0.0, "masked_fraction": num_masked / max(num_valid, 1)}
        if self.quantizer is not None:
            metrics.update(code_perplexity=0.0, temperature=self.quantizer.temperature)
        if num_masked == 0:
            return ContrastiveTerms(mask, zero, zero, zero, None, metrics)

        masked_latent = latent[mask]  # [M, Dl]
        codes = None
        diversity = zero
        if self.quantizer is not None:
            q = self.quantizer(masked_latent, generator)
            targets = self.project_q(q.quantized)  # [M, final_dim]
            codes = q.codes
            diversity = diversity_loss(q.soft_perplexity, cfg.codebook_groups, cfg.codebook_entries)
            metrics.update(code_perplexity=q.code_perplexity.item(), temperature=q.temperature)
        else:
            targets = self.target_proj(masked_latent.detach())
        predictions = self.final_proj(context[mask])  # [M, final_dim]
        distractors, ok = sample_distractors(mask, cfg.num_negatives, generator)
        keys = codes if codes is not None else masked_latent.detach()  # equal keys: identical targets
        logits = contrastive_logits(predictions, targets, distractors, cfg.temperature, ok, keys)  # [M, 1 + K]
        contrastive = F.cross_entropy(logits, torch.zeros(num_masked, dtype=torch.long, device=device))
        # A row whose distractors are all -inf (a lone masked frame) counts as correct.
        metrics["accuracy"] = (logits[:, 0] > logits[:, 1:].max(dim=1).values).float().mean().item()
        penalty = latent[valid].float().pow(2).mean() if cfg.feature_penalty > 0 else zero
        return ContrastiveTerms(mask, contrastive, diversity, penalty, codes, metrics)

    def forward(self, enc: EncoderOutput, mask: torch.Tensor | None,
                generator: torch.Generator | None = None) -> UnsupOutput:
        """enc (see ``contrastive_terms``), mask [B, T] bool or None -> UnsupOutput(g, metrics)."""
        cfg = self.config
        terms = self.contrastive_terms(enc, mask, generator)
        loss = terms.contrastive + cfg.diversity_weight * terms.diversity + cfg.feature_penalty * terms.feature_penalty
        return UnsupOutput(loss + self.anchor(enc), terms.metrics)


class ContrastiveMlmHead(ContrastiveHead):
    """w2v-BERT's contrastive + masked language modelling loss (registry key ``contrastive_mlm``).

    Besides the contrastive head's eta it owns the MLM module: Linear(context_dim, final_dim),
    ``mlm_layers`` pre-norm Transformer layers (padding masked out, no positional encoding:
    position comes from the encoder's context), a final LayerNorm and one Linear(final_dim, G * V)
    predicting the G code ids of each masked frame's target. Metrics add mlm_accuracy (over
    masked frames and groups), contrastive_loss and mlm_loss.
    """

    def __init__(self, context_dim: int, latent_dim: int, config: ContrastiveMlmConfig | None = None):
        config = config or ContrastiveMlmConfig()
        super().__init__(context_dim, latent_dim, config)
        d = config.final_dim
        self.mlm_in = nn.Linear(context_dim, d)
        self.mlm_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, config.mlm_heads, config.mlm_ffn_dim, config.mlm_dropout,
                                       batch_first=True, norm_first=True)
            for _ in range(config.mlm_layers)
        )
        self.mlm_norm = nn.LayerNorm(d)
        self.mlm_classifier = nn.Linear(d, config.codebook_groups * config.codebook_entries)

    @staticmethod
    def check_encoder(encoder, config=None) -> None:
        """Raise ValueError when ``encoder`` lacks latent_dim / output_dim (any such encoder will do)."""
        check_dims(encoder, "contrastive_mlm")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return super().metric_names + ("mlm_accuracy", "contrastive_loss", "mlm_loss")

    def mlm_logits(self, enc: EncoderOutput) -> torch.Tensor:
        """enc.context [B, T, Dc], enc.lengths [B] -> code-id logits [B, T, G, V]."""
        cfg = self.config
        b, t = enc.context.shape[:2]
        lengths = enc.lengths.to(enc.context.device)
        padding = lengths_to_padding_mask(lengths, t)  # [B, T]
        # Zeroed padding: attention gives it weight 0, and 0 * a non-finite value would still leak.
        h = self.mlm_in(enc.context.masked_fill(padding[..., None], 0.0))
        keys = padding.clone()
        keys[lengths == 0, 0] = False  # an empty row attends to one (zeroed) frame rather than to nothing
        for layer in self.mlm_layers:
            h = layer(h, src_key_padding_mask=keys)
        return self.mlm_classifier(self.mlm_norm(h)).view(b, t, cfg.codebook_groups, cfg.codebook_entries)

    def mlm_loss(self, enc: EncoderOutput, mask: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, float]:
        """mask [B, T] bool with M masked frames, codes [M, G] target ids -> (mean cross-entropy over
        frames and groups, accuracy)."""
        logits = self.mlm_logits(enc)[mask]  # [M, G, V]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        codes = codes.detach()
        loss = F.cross_entropy(logits.flatten(0, 1), codes.flatten())
        accuracy = (logits.argmax(-1) == codes).float().mean().item()
        return loss, accuracy

    def forward(self, enc: EncoderOutput, mask: torch.Tensor | None,
                generator: torch.Generator | None = None) -> UnsupOutput:
        """enc (see ``contrastive_terms``), mask [B, T] bool or None -> UnsupOutput(g, metrics)."""
        cfg = self.config
        terms = self.contrastive_terms(enc, mask, generator)
        mlm, mlm_accuracy = terms.contrastive, 0.0  # zero tensor when nothing is masked
        if terms.codes is not None:
            mlm, mlm_accuracy = self.mlm_loss(enc, terms.mask, terms.codes)
        loss = (cfg.contrastive_weight * terms.contrastive + cfg.mlm_weight * mlm
                + cfg.diversity_weight * terms.diversity + cfg.feature_penalty * terms.feature_penalty)
        metrics = dict(terms.metrics, mlm_accuracy=mlm_accuracy,
                       contrastive_loss=terms.contrastive.item(), mlm_loss=mlm.item())
        return UnsupOutput(loss + self.anchor(enc), metrics)
