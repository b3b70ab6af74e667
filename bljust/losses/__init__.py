"""Unsupervised heads (eta) by registry key, as named in config YAMLs (``unsup: cpc``)."""
from bljust.losses.cpc import CpcConfig, CpcHead, CpcOutput, check_encoder

# key -> (module class, its config dataclass); the head is built as cls(context_dim, latent_dim, config)
UNSUP_HEADS = {
    "cpc": (CpcHead, CpcConfig),
}

__all__ = ["UNSUP_HEADS", "CpcConfig", "CpcHead", "CpcOutput", "check_encoder"]
