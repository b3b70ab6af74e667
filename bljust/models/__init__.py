"""Model components by registry key, as named in config YAMLs (``encoder: cnn_lstm``)."""
from bljust.models.cnn_lstm import CnnLstmConfig, CnnLstmEncoder

# key -> (module class, its config dataclass); the module is built as cls(input_dim, config)
ENCODERS = {
    "cnn_lstm": (CnnLstmEncoder, CnnLstmConfig),
}
