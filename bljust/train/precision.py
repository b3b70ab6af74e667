"""Mixed precision: the encoder's forward pass in bfloat16 or float16 under ``torch.autocast``
(the heads and losses stay in float32, see ``models/asr_model.py``), and for float16 dynamic
loss scaling, so that small gradients do not underflow.

The loss scaler follows ``torch.amp.GradScaler``'s rule and defaults (start at 2**16, halve on a
non-finite gradient and skip that update, double after 2000 finite steps in a row), written out
here because the trainer reduces gradients across ranks and decides on skipped updates itself;
its state goes into checkpoints.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LossScaler:
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        self.scale, self.growth_factor, self.backoff_factor = init_scale, growth_factor, backoff_factor
        self.growth_interval, self.good_steps = growth_interval, 0

    def unscale_(self, params: list[torch.nn.Parameter]) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.div_(self.scale)

    def update(self, finite: bool) -> None:
        if not finite:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.good_steps = state["scale"], state["good_steps"]


class Precision:
    """``precision``: float32, bfloat16 or float16, on ``device``."""

    def __init__(self, precision: str, device: torch.device):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        self.name, self.device = precision, device
        self.scaler = LossScaler() if precision == "float16" else None

    def autocast(self):
        if self.name == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.name])

    @property
    def loss_scale(self) -> float:
        return self.scaler.scale if self.scaler else 1.0
