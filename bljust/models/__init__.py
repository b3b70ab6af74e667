"""Model components by registry key, as named in config YAMLs (``encoder: cnn_lstm``, ``sup: ctc``, ``unsup: cpc``)."""
from bljust.models.cnn_lstm import CnnLstmConfig, CnnLstmEncoder
from bljust.models.conformer import ConformerConfig, ConformerEncoder
from bljust.models.contrastive import ContrastiveConfig, ContrastiveHead, ContrastiveMlmConfig, ContrastiveMlmHead
from bljust.models.cpc import CpcConfig, CpcHead
from bljust.models.ctc import CtcConfig, CtcHead
from bljust.models.rnnt import RnntConfig, RnntHead
from bljust.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder

# key -> (module class, its config dataclass); an encoder is built as cls(input_dim, config)
ENCODERS = {
    "cnn_lstm": (CnnLstmEncoder, CnnLstmConfig),
    "conformer": (ConformerEncoder, ConformerConfig),
    "wav2vec2": (Wav2Vec2Encoder, Wav2Vec2Config),  # raw audio: feats [B, T, 1]
}

# key -> (module class, its config dataclass); a supervised head (phi, models/sup_head.py) is built
# as cls(context_dim, vocab_size, config)
SUP_HEADS = {
    "ctc": (CtcHead, CtcConfig),
    "rnnt": (RnntHead, RnntConfig),
}

# key -> (module class, its config dataclass); an unsupervised head (eta) with its loss g
# (models/unsup_head.py) is built as cls(context_dim, latent_dim, config)
UNSUP_HEADS = {
    "cpc": (CpcHead, CpcConfig),
    "contrastive": (ContrastiveHead, ContrastiveConfig),
    "contrastive_mlm": (ContrastiveMlmHead, ContrastiveMlmConfig),
}
