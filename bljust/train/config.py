"""The training config: what a ``conf/train_*.yaml`` may contain."""
from __future__ import annotations

from dataclasses import dataclass, field

from bljust.config import ConfigError, from_dict, load_yaml, merge
from bljust.features.specaug import SpecAugConfig
from bljust.models.asr_model import ModelConfig
from bljust.models.ctc import CtcConfig

STRATEGIES = ("supervised",)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    anneal: str = "cosine"  # after warm-up: "cosine" (to final_lr_ratio * lr at the last step) or "constant"
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0

    def __post_init__(self):
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if self.anneal not in ("cosine", "constant"):
            raise ConfigError(f"optim.anneal must be 'cosine' or 'constant', got '{self.anneal}'")


@dataclass
class BatchConfig:
    max_frames: int = 20000  # padded input frames per batch (10 ms each)
    shuffle: bool = True


@dataclass
class TrainConfig:
    encoder: str = "cnn_lstm"
    encoder_conf: dict = field(default_factory=dict)
    ctc_conf: CtcConfig = field(default_factory=CtcConfig)
    strategy: str = "supervised"
    max_epochs: int = 10
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    specaug: SpecAugConfig = field(default_factory=SpecAugConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    keep_checkpoints: int = 5  # epoch checkpoints kept on disk (the newest ones)
    num_threads: int = 0  # torch CPU threads; 0 = all cores

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be >= 1, got {self.max_epochs}")

    @property
    def model(self) -> ModelConfig:
        return ModelConfig(self.encoder, self.encoder_conf, self.ctc_conf)


def load_train_config(path: str | None, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML (or start from defaults when ``path`` is None) and apply overrides."""
    data = load_yaml(path) if path else {}
    if overrides:
        data = merge(data, overrides)
    return from_dict(TrainConfig, data, where=str(path) if path else "config")
