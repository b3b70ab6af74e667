"""Model components by registry key, as named in config YAMLs (``encoder: cnn_lstm``, ``sup: ctc``)."""
from bljust.models.cnn_lstm import CnnLstmConfig, CnnLstmEncoder
from bljust.models.conformer import ConformerConfig, ConformerEncoder
from bljust.models.ctc import CtcConfig, CtcHead
from bljust.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder
from bljust.models.rnnt import RnntConfig, RnntHead

# key -> (module class, its config dataclass); an encoder is built as cls(input_dim, config)
ENCODERS = {
    "cnn_lstm": (CnnLstmEncoder, CnnLstmConfig),
    "conformer": (ConformerEncoder, ConformerConfig),
    "wav2vec2": (Wav2Vec2Encoder, Wav2Vec2Config),  # raw audio: feats [B, T, 1]
}

# key -> (module class, its config dataclass); a supervised head (phi) is built as cls(context_dim, vocab_size, config)
SUP_HEADS = {
    "ctc": (CtcHead, CtcConfig),
    "rnnt": (RnntHead, RnntConfig),
}
