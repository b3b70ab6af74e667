"""Load a trained model package (``model_best.pt`` / ``model_last.pt``) for inference."""
from __future__ import annotations

import os

import torch

from bljust.config import from_dict
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.train import checkpoint


def load_model(path: str | os.PathLike, device: str = "cpu") -> AsrModel:
    pkg = checkpoint.load(path)
    model = AsrModel(pkg["input_dim"], pkg["vocab_size"], from_dict(ModelConfig, pkg["config"], where=str(path)))
    model.load_state_dict(pkg["model"])
    return model.to(torch.device(device)).eval()
