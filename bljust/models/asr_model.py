"""An ASR model is encoder (theta) + supervised head (phi) + unsupervised head (eta).

Training strategies only see these three parameter groups and the two losses, so
every strategy works with every encoder/head combination.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bljust.config import ConfigError, from_dict
from bljust.losses import UNSUP_HEADS, check_encoder
from bljust.models import ENCODERS
from bljust.models.ctc import CtcConfig, CtcHead
from bljust.models.encoder import EncoderOutput


@dataclass
class ModelConfig:
    encoder: str = "cnn_lstm"
    encoder_conf: dict = field(default_factory=dict)
    ctc_conf: CtcConfig = field(default_factory=CtcConfig)
    unsup: str = "cpc"
    unsup_conf: dict = field(default_factory=dict)


class AsrModel(nn.Module):
    def __init__(self, input_dim: int, vocab_size: int, config: ModelConfig, where: str = "config"):
        super().__init__()
        if config.encoder not in ENCODERS:
            raise ConfigError(f"{where}: unknown encoder '{config.encoder}' (known: {', '.join(ENCODERS)})")
        if config.unsup not in UNSUP_HEADS:
            raise ConfigError(f"{where}: unknown unsup '{config.unsup}' (known: {', '.join(UNSUP_HEADS)})")
        enc_cls, enc_conf_cls = ENCODERS[config.encoder]
        self.encoder = enc_cls(input_dim, from_dict(enc_conf_cls, config.encoder_conf, where, "encoder_conf."))
        self.ctc = CtcHead(self.encoder.output_dim, vocab_size, config.ctc_conf)
        head_cls, head_conf_cls = UNSUP_HEADS[config.unsup]
        head_conf = from_dict(head_conf_cls, config.unsup_conf, where, "unsup_conf.")
        try:
            check_encoder(self.encoder, head_conf)
        except ValueError as e:
            raise ConfigError(f"{where}: encoder '{config.encoder}' cannot be used with unsup '{config.unsup}': {e}") from None
        self.unsup = head_cls(self.encoder.output_dim, self.encoder.latent_dim, head_conf)
        self.input_dim, self.vocab_size = input_dim, vocab_size

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[EncoderOutput, torch.Tensor]:
        """feats [B, T, F], lengths [B] -> (encoder output, CTC log-probs [B, T', V])"""
        enc = self.encoder(feats, lengths)
        return enc, self.ctc(enc.context)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """theta: encoder, phi: supervised head, eta: unsupervised head."""
        return {
            "theta": list(self.encoder.parameters()),
            "phi": list(self.ctc.parameters()),
            "eta": list(self.unsup.parameters()),
        }
