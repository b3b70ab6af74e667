"""The training config: what a ``conf/train_*.yaml`` may contain."""
from __future__ import annotations

from dataclasses import dataclass, field

from bljust.config import from_dict, load_yaml, merge, to_dict
from bljust.features.specaug import SpecAugConfig
from bljust.models.asr_model import NO_UNSUP, ModelConfig
from bljust.train.precision import PRECISIONS
from bljust.train.strategies import DEFAULT_STRATEGY, STRATEGIES


@dataclass
class PhaseConfig:
    """Steps and learning rates of one phase of the strategy (its rates in docs/algorithm.md)."""

    steps: int | None = None  # steps per epoch (a phase after the epochs: in total); None = one pass over the phase's data
    lr: float = 1e-3
    lr_theta: float | None = None  # per-group overrides of lr
    lr_phi: float | None = None
    lr_eta: float | None = None
    warmup_steps: int = 0
    anneal: str = "constant"  # or "cosine": down to final_lr_ratio * lr over the phase's total steps
    final_lr_ratio: float = 0.05

    def __post_init__(self):
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        for name in ("lr", "lr_theta", "lr_phi", "lr_eta"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.anneal not in ("cosine", "constant"):
            raise ValueError(f"anneal must be 'cosine' or 'constant', got '{self.anneal}'")

    def group_lr(self, group: str) -> float:
        override = getattr(self, f"lr_{group}")
        return self.lr if override is None else override


OPTIMIZERS = ("adamw", "sgd")


@dataclass
class OptimConfig:
    """The optimizer of every phase (docs/config.md, "Optimizer semantics")."""

    type: str = "adamw"  # adamw, or sgd (AdamW normalises away a constant scale of a group's gradient: docs/algorithm.md)
    weight_decay: float = 0.01  # decoupled; never on norm/bias (1-d) parameters nor on those without a gradient
    momentum: float = 0.0  # sgd only
    grad_clip: float = 5.0  # max gradient norm of each group (theta, phi, eta) on its own; 0 = off
    share_state: bool = False  # one optimizer state per group across phases (else one per phase and group)

    def __post_init__(self):
        if self.type not in OPTIMIZERS:
            raise ValueError(f"optim.type must be one of {', '.join(OPTIMIZERS)}, got '{self.type}'")
        for name in ("weight_decay", "momentum", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class BatchConfig:
    max_frames: int = 20000  # padded audio per batch in 10 ms frames (raw audio: the same duration in samples), labeled and unlabeled alike; per process
    shuffle: bool = True
    num_workers: int = 0  # processes that read and collate batches ahead of training, per stream (0: in the training process)
    # sup: rnnt only: at most this many joint logits B x T' x (U+1) x V per labeled batch and process
    # (T' encoder frames, U labels, V tokens; 4 bytes each, twice over with their gradient); 0 = no cap
    max_joint: int = 0

    def __post_init__(self):
        if self.max_frames < 1:
            raise ValueError(f"batch.max_frames must be >= 1, got {self.max_frames}")
        for name in ("num_workers", "max_joint"):
            if getattr(self, name) < 0:
                raise ValueError(f"batch.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    encoder: str = "cnn_lstm"
    encoder_conf: dict = field(default_factory=dict)
    sup: str = "ctc"  # supervised head phi and its loss f
    sup_conf: dict = field(default_factory=dict)
    unsup: str = "cpc"  # unsupervised head eta and its loss g
    unsup_conf: dict = field(default_factory=dict)
    input_norm: str = "none"  # "utterance": subtract each utterance's mean feature vector (a model setting, so decoding does too)
    init: str = ""  # initial weights: python -m bljust.bin.import_pretrained output, or a model_best.pt; "" = random
    strategy: str = DEFAULT_STRATEGY  # a key of train/strategies.py's registry (docs/algorithm.md)
    strategy_conf: dict = field(default_factory=dict)  # the strategy's own settings (its Settings dataclass)
    max_epochs: int = 10  # K
    phases: dict[str, PhaseConfig] = field(default_factory=dict)
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    specaug: SpecAugConfig = field(default_factory=SpecAugConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    checkpoint_interval: int = 0  # also checkpoint every this many steps (0: only at the end of each chunk)
    chunk_steps: int = 1000  # a longer stretch of one phase is cut into chunks of at most this many steps; 0 = never
    log_interval: int = 100  # a progress line in train.log every this many steps (ETA, speed, f, g); 0 = off
    diag_interval: int = 25  # every this many steps log cos(grad_theta f, grad_theta g) and their norms; 0 = off
    keep_checkpoints: int = 5  # newest checkpoints kept on disk
    max_nonfinite_in_a_row: int = 10  # steps with a non-finite loss or gradient skip their update; this many in a row stop training
    num_threads: int = 0  # torch CPU threads; 0 = all cores
    tensorboard: bool = True  # also write the logged scalars to <exp_dir>/tensorboard
    precision: str = "float32"  # float32, bfloat16 or float16 (mixed precision: the encoder under autocast, losses in float32)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        for name in ("chunk_steps", "log_interval", "diag_interval", "checkpoint_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_nonfinite_in_a_row < 1:
            raise ValueError(f"max_nonfinite_in_a_row must be >= 1, got {self.max_nonfinite_in_a_row}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        strategy = STRATEGIES[self.strategy]
        # resolved, so that config.yaml shows every setting and a resume compares them all
        self.strategy_conf = to_dict(strategy.parse_settings(self.strategy_conf))
        for name in self.phases:
            if name not in strategy.phases:
                raise ValueError(f"phases.{name} is not a phase of strategy '{self.strategy}' "
                                 f"(its phases: {', '.join(strategy.phases)})")
        for name in strategy.phases:
            self.phases.setdefault(name, PhaseConfig())
            if self.phases[name].steps == 0 and name not in strategy.optional_phases:
                raise ValueError(f"phases.{name}.steps must be > 0 for strategy '{self.strategy}'")

    @property
    def uses_unlabeled(self) -> bool:
        return STRATEGIES[self.strategy].uses_unlabeled()

    def build_strategy(self):
        """A fresh object of the configured strategy."""
        return STRATEGIES[self.strategy](self.strategy_conf, self.max_epochs)

    @property
    def model(self) -> ModelConfig:
        """The network; a run that reads no unlabeled speech builds no unsupervised head."""
        unsup = self.unsup if self.uses_unlabeled else NO_UNSUP
        return ModelConfig(self.encoder, self.encoder_conf, self.sup, self.sup_conf, unsup, self.unsup_conf,
                           self.input_norm)


def load_train_config(path: str | None, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML (or start from defaults when ``path`` is None) and apply overrides."""
    data = load_yaml(path) if path else {}
    if overrides:
        data = merge(data, overrides)
    return from_dict(TrainConfig, data, where=str(path) if path else "config")
