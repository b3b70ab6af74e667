"""An ASR model is encoder (theta) + supervised head (phi) + unsupervised head (eta).

Training strategies only see these three parameter groups and the two losses, so every
strategy works with every encoder / head combination:

    f(theta, phi) = model.supervised_loss(feats, lengths, targets, target_lengths)
    g(theta, eta) = model.unsupervised_loss(feats, lengths, generator).loss

Under mixed precision (``torch.autocast``) only the encoder runs in bfloat16 / float16: both
heads, and so both losses, are computed in float32 from the encoder's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bljust.config import ConfigError, from_dict
from bljust.models import ENCODERS, SUP_HEADS, UNSUP_HEADS
from bljust.models.encoder import EncoderOutput, lengths_to_padding_mask, scale_grad
from bljust.models.sup_head import SupervisedHead
from bljust.models.unsup_head import UnsupHead, UnsupOutput


def float32(enc: EncoderOutput) -> EncoderOutput:
    """The encoder's output in float32 when autocast made it bfloat16 / float16 (float64 stays)."""
    def up(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t

    return EncoderOutput(up(enc.latent), up(enc.context), enc.lengths, up(enc.intermediate))


def no_autocast(like: torch.Tensor):
    """A context in which the heads run in float32, whatever autocast the caller set."""
    return torch.autocast(like.device.type, enabled=False)


@dataclass
class ModelConfig:
    encoder: str = "cnn_lstm"
    encoder_conf: dict = field(default_factory=dict)
    sup: str = "ctc"
    sup_conf: dict = field(default_factory=dict)
    unsup: str = "cpc"  # "none": no unsupervised head (a run that uses no unlabeled speech)
    unsup_conf: dict = field(default_factory=dict)
    # "utterance": subtract each utterance's mean feature vector (over its valid frames) before the
    # encoder, on top of the global CMVN of the data: removes a voice's and a channel's average
    # spectrum. "none": the features as given.
    input_norm: str = "none"


INPUT_NORMS = ("none", "utterance")
NO_UNSUP = "none"


def utterance_mean_norm(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """feats [B, T, F], lengths [B] -> feats minus each row's mean over its first lengths[b] frames (padding stays 0)."""
    valid = ~lengths_to_padding_mask(lengths, feats.shape[1]).unsqueeze(-1)
    mean = (feats * valid).sum(1, keepdim=True) / lengths.clamp(min=1)[:, None, None].to(feats.dtype)
    return (feats - mean) * valid


def _build(registry: dict, kind: str, key: str, conf: dict, where: str):
    if key not in registry:
        raise ConfigError(f"{where}: unknown {kind} '{key}' (known: {', '.join(registry)})")
    cls, conf_cls = registry[key]
    return cls, from_dict(conf_cls, conf, where, f"{kind}_conf.")


class AsrModel(nn.Module):
    def __init__(self, input_dim: int, vocab_size: int, config: ModelConfig, where: str = "config"):
        super().__init__()
        enc_cls, enc_conf = _build(ENCODERS, "encoder", config.encoder, config.encoder_conf, where)
        sup_cls, sup_conf = _build(SUP_HEADS, "sup", config.sup, config.sup_conf, where)
        self.encoder = enc_cls(input_dim, enc_conf)
        self.sup: SupervisedHead = sup_cls(self.encoder.output_dim, vocab_size, sup_conf)
        self.unsup: UnsupHead | None = None
        if config.unsup != NO_UNSUP:
            unsup_cls, unsup_conf = _build(UNSUP_HEADS, "unsup", config.unsup, config.unsup_conf, where)
            try:
                unsup_cls.check_encoder(self.encoder, unsup_conf)
            except ValueError as e:
                raise ConfigError(f"{where}: encoder '{config.encoder}' cannot be used with unsup '{config.unsup}': {e}") from None
            self.unsup = unsup_cls(self.encoder.output_dim, self.encoder.latent_dim, unsup_conf)
        if config.input_norm not in INPUT_NORMS:
            raise ConfigError(f"{where}: unknown input_norm '{config.input_norm}' (known: {', '.join(INPUT_NORMS)})")
        self.utterance_norm = config.input_norm == "utterance"
        self.input_dim, self.vocab_size, self.config = input_dim, vocab_size, config

    def _normalize(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return utterance_mean_norm(feats, lengths.to(feats.device)) if self.utterance_norm else feats

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[EncoderOutput, torch.Tensor]:
        """feats [B, T, F], lengths [B] -> (encoder output, supervised head output, e.g. CTC log-probs [B, T', V])"""
        enc = float32(self.encoder(self._normalize(feats, lengths), lengths))
        with no_autocast(feats):
            return enc, self.sup(enc.context)

    def supervised_loss(self, feats: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                        target_lengths: torch.Tensor) -> torch.Tensor:
        """f: feats [B, T, F], lengths [B], targets [B, S] (padded), target_lengths [B] -> scalar"""
        enc, out = self(feats, lengths)
        with no_autocast(feats):
            return self.sup.loss(out, enc.lengths, targets, target_lengths)

    def unsupervised_loss(self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None,
                          theta_grad_scale: float | None = None) -> UnsupOutput:
        """g on one encoder pass: the head samples its mask, the encoder puts the head's mask
        embedding in place of the masked latent frames, the head scores the result.

        theta_grad_scale s: the gradient g sends into the encoder is multiplied by s while eta's
        stays grad g (BL-JUST's ``eta_grad_scale: one``, where g enters the joint loss unweighted).
        """
        head = self.unsup
        if head is None:
            raise ValueError("this model has no unsupervised head (unsup: none), so it has no loss g")
        out_lengths = self.encoder.output_lengths(lengths)
        mask = head.sample_mask(out_lengths, int(self.encoder.output_lengths(torch.tensor(feats.shape[1]))), generator)
        mask_embedding = head.mask_embedding
        if theta_grad_scale is not None and mask_embedding is not None:
            # Its gradient comes back through the encoder, which scales it by s: undo that.
            mask_embedding = scale_grad(mask_embedding, 1.0 / theta_grad_scale)
        enc = self.encoder(self._normalize(feats, lengths), lengths, mask, mask_embedding, need_context=head.reads_context)
        enc = float32(enc)
        if theta_grad_scale is not None:
            scaled = lambda t: None if t is None else scale_grad(t, theta_grad_scale)  # noqa: E731
            enc = EncoderOutput(scaled(enc.latent), scaled(enc.context), enc.lengths, scaled(enc.intermediate))
        with no_autocast(feats):
            return head(enc, mask, generator)

    def set_update(self, n: int) -> None:
        """Tell the encoder, where its behaviour depends on the update number (a wav2vec 2.0
        encoder's freezing for the first N updates and its layer drop), that ``n`` updates are done.
        No head depends on it: neither head contract (sup_head, unsup_head) has set_update."""
        if hasattr(self.encoder, "set_update"):
            self.encoder.set_update(n)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """theta: encoder, phi: supervised head, eta: unsupervised head."""
        return {
            "theta": list(self.encoder.parameters()),
            "phi": list(self.sup.parameters()),
            "eta": [] if self.unsup is None else list(self.unsup.parameters()),
        }
