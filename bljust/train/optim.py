"""Optimizers of the parameter groups theta, phi, eta, and the learning-rate schedule.

Semantics (docs/config.md, "Optimizer semantics"):
- one optimizer per phase and group (``optim.share_state: false``), or per group across all
  phases (``true``); a phase steps only the groups it trains, so it never touches the others;
- weight decay is decoupled and never shrinks 1-d parameters (biases, norm scales, the mask
  embedding), nor a parameter that got no gradient in the step: such a parameter is left
  exactly as it is (no decay, no momentum);
- gradients are clipped per group, so a spike in g cannot shrink phi's update.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bljust.train.config import OptimConfig, PhaseConfig


def lr_factor(step: int, warmup: int, total: int, anneal: str, final_ratio: float) -> float:
    """Linear warm-up to 1, then constant or cosine down to ``final_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if anneal == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _make(params: list[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": ps, "weight_decay": wd} for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0)) if ps]
    if config.type == "sgd":
        return torch.optim.SGD(groups, lr=1.0, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=1.0)


class GroupOptimizers:
    def __init__(self, groups: dict[str, list[nn.Parameter]], phases: dict[str, tuple[PhaseConfig, tuple[str, ...]]],
                 config: OptimConfig):
        """groups: name -> parameters; phases: phase name -> (its config, the groups it trains)."""
        self.groups, self.phases, self.config = groups, phases, config
        self.optimizers = {self._key(p, g): _make(groups[g], config) for p, (_, gs) in phases.items() for g in gs}

    def _key(self, phase: str, group: str) -> str:
        return group if self.config.share_state else f"{phase}.{group}"

    def step(self, phase: str, factor: float) -> dict[str, float]:
        """Update the groups ``phase`` trains from their .grad, at the phase's rates x ``factor``;
        returns the learning rate used per group."""
        phase_config, group_names = self.phases[phase]
        lrs = {}
        for name in group_names:
            params = self.groups[name]
            for p in params:
                if p.grad is not None and not p.grad.any():
                    p.grad = None  # no gradient this step: no decay, no momentum, no change
            with_grad = [p for p in params if p.grad is not None]
            if self.config.grad_clip > 0 and with_grad:
                nn.utils.clip_grad_norm_(with_grad, self.config.grad_clip)
            lrs[name] = phase_config.group_lr(name) * factor
            optimizer = self.optimizers[self._key(phase, name)]
            for group in optimizer.param_groups:
                group["lr"] = lrs[name]
            optimizer.step()
        return lrs

    def state_dict(self) -> dict:
        return {k: o.state_dict() for k, o in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[k])
