"""Decoding settings (a decode YAML such as ``conf/decode_lm.yaml``) and the model package they pick.

``DecodeConfig`` holds the search (greedy or beam, its sizes, the lexicon and LM files and their
weights) and which model to decode (``checkpoint``, or the mean of several with ``average``).
``bljust.bin.decode`` decodes a dump with it, ``bljust.bin.pack`` packs it with its model, and
``Speech2Text`` takes its search keys.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bljust.config import from_dict, load_yaml, merge, parse_overrides
from bljust.decode.average import BY, average_checkpoints
from bljust.train import checkpoint

METHODS = ("greedy", "beam")


@dataclass
class AverageConfig:
    n: int = 0  # > 0: decode the mean weights of n training checkpoints
    by: str = "best"  # which: "best" (lowest validation CTC loss) or "last" (newest)

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.by not in BY:
            raise ValueError(f"by must be 'best' or 'last', got '{self.by}'")


@dataclass
class DecodeConfig:
    method: str = "greedy"  # greedy (best path) or beam (CTC beam search; an RNN-T head's own)
    checkpoint: str = "best"  # which model package: "best" (lowest validation loss) or "last"
    max_frames: int = 40000  # padded audio per batch in 10 ms frames (raw audio: the same duration in samples)
    # beam search only (an RNN-T head's own search reads beam_size alone):
    beam_size: int = 10  # hypotheses kept per frame
    beam_size_token: int | None = None  # tokens tried per frame; null = all
    beam_threshold: float = 50.0  # prune hypotheses scoring this much below the best
    lm: str | None = None  # KenLM n-gram (ARPA or binary): over tokens without a lexicon, over words with one
    lm_weight: float = 1.0
    word_score: float = 0.0  # added per word (without a lexicon: per word-boundary token)
    lexicon: str | None = None  # "WORD t o k e n s" per line (python -m bljust.decode.beam); null = lexicon-free
    log_add: bool = True  # a hypothesis scores the sum (not the max) over its alignments
    average: AverageConfig = field(default_factory=AverageConfig)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be 'greedy' or 'beam', got '{self.method}'")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got '{self.checkpoint}'")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.beam_size_token is not None and self.beam_size_token < 1:
            raise ValueError(f"beam_size_token must be >= 1 or null, got {self.beam_size_token}")
        if self.beam_threshold <= 0:
            raise ValueError(f"beam_threshold must be > 0, got {self.beam_threshold}")
        for key in ("lm", "lexicon"):
            path = getattr(self, key)
            if path is not None and self.method != "beam":  # an LM silently ignored would be a trap
                raise ValueError(f"{key} needs method: beam (method is '{self.method}')")
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key}: no such file '{path}'")


SEARCH_KEYS = ("method", "beam_size", "beam_size_token", "beam_threshold", "lm_weight", "word_score", "log_add")


def load_decode_config(path: str | None, overrides: list[str]) -> DecodeConfig:
    """A decode YAML (None: the defaults) with ``--key value`` overrides; ConfigError names what is wrong."""
    data = merge(load_yaml(path) if path else {}, parse_overrides(overrides))
    return from_dict(DecodeConfig, data, where=path or "decode config")


def chosen_package(exp_dir: str | os.PathLike, config: DecodeConfig) -> tuple[dict, Path, Path]:
    """(package, its path, the package whose token list and CMVN it carries) that ``config`` decodes:
    ``model_<checkpoint>.pt``, or with ``average.n`` > 0 the mean of n training checkpoints, saved as
    ``model_avg<n>_<by>.pt`` (atomically: decoding jobs of several test sets may write it at once)."""
    exp_dir, avg = Path(exp_dir), config.average
    if avg.n == 0:
        path = exp_dir / f"model_{config.checkpoint}.pt"
        return checkpoint.load(path), path, path
    package = average_checkpoints(exp_dir, avg.n, avg.by)
    path = exp_dir / f"model_avg{avg.n}_{avg.by}.pt"
    checkpoint.save(package, path)
    return package, path, exp_dir / "model_last.pt"
