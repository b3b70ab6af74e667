"""Unsupervised heads (eta) and their losses g, by registry key as named in config YAMLs (``unsup: cpc``)."""
from bljust.losses.base import UnsupHead, UnsupOutput
from bljust.losses.contrastive import ContrastiveConfig, ContrastiveHead, ContrastiveMlmConfig, ContrastiveMlmHead
from bljust.losses.cpc import CpcConfig, CpcHead

# key -> (module class, its config dataclass); the head is built as cls(context_dim, latent_dim, config)
UNSUP_HEADS = {
    "cpc": (CpcHead, CpcConfig),
    "contrastive": (ContrastiveHead, ContrastiveConfig),
    "contrastive_mlm": (ContrastiveMlmHead, ContrastiveMlmConfig),
}

__all__ = ["UNSUP_HEADS", "UnsupHead", "UnsupOutput"]
