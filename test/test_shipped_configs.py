"""Every training YAML the recipes ship loads (known keys, valid values) and builds its model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bljust.models.asr_model import AsrModel
from bljust.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("egs/*/conf/train_*.yaml"))


def test_the_recipes_ship_training_configs():
    assert {p.parent.parent.name for p in CONFIGS} == {"covost2", "librispeech", "mini", "tedlium2"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "egs")))
def test_config_loads_and_builds(path):
    config = load_train_config(str(path))
    with torch.device("meta"):  # shapes only: the LibriSpeech and wav2vec 2.0 models are large
        model = AsrModel(1 if config.encoder == "wav2vec2" else 80, 1000, config.model, where=str(path))
    assert sum(p.numel() for p in model.encoder.parameters()) > 0
