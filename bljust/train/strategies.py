"""Training strategies as plans of phases, and the BL-JUST penalty schedules.

A strategy turns the config into a list of chunks ``(phase, epoch, steps)`` that the
trainer runs in order. Every phase is one of three kinds of step:

    sup    f(theta, phi) on a labeled batch
    unsup  g(theta, eta) on an unlabeled batch
    joint  f + w * g on one labeled and one unlabeled batch, one backward pass

    strategy    per epoch k = 1..K                       after the K epochs
    supervised  train (sup, theta phi)
    pt_ft       pretrain (unsup, theta eta) first, for pretrain_epochs epochs, then finetune (sup) for K epochs
    just        joint (joint, w = lambda, all groups)
    bljust      explore (unsup, N1) + joint (joint, w = gamma_k, N2)   finetune (sup, N3)
"""
from __future__ import annotations

from dataclasses import dataclass

# phase name -> (step kind, parameter groups it updates)
PHASES = {
    "train": ("sup", ("theta", "phi")),
    "pretrain": ("unsup", ("theta", "eta")),
    "finetune": ("sup", ("theta", "phi")),
    "explore": ("unsup", ("theta", "eta")),
    "joint": ("joint", ("theta", "phi", "eta")),
}

STRATEGY_PHASES = {
    "supervised": ("train",),
    "pt_ft": ("pretrain", "finetune"),
    "just": ("joint",),
    "bljust": ("explore", "joint", "finetune"),
}

GAMMA_SCHEDULES = ("epoch_ramp", "step_ramp", "constant")


@dataclass(frozen=True)
class Chunk:
    """``steps`` consecutive steps of one phase; checkpoints and validation happen at chunk ends."""

    phase: str
    epoch: int  # 1-based outer epoch (0 for the final fine-tuning of bljust)
    steps: int

    @property
    def kind(self) -> str:
        return PHASES[self.phase][0]

    @property
    def groups(self) -> tuple[str, ...]:
        return PHASES[self.phase][1]


def build_plan(strategy: str, epochs: int, steps: dict[str, int], pretrain_epochs: int = 0) -> list[Chunk]:
    """steps: phase name -> steps per epoch (total steps for bljust's final finetune)."""
    if strategy == "supervised":
        return [Chunk("train", k, steps["train"]) for k in range(1, epochs + 1)]
    if strategy == "just":
        return [Chunk("joint", k, steps["joint"]) for k in range(1, epochs + 1)]
    if strategy == "pt_ft":
        return ([Chunk("pretrain", k, steps["pretrain"]) for k in range(1, pretrain_epochs + 1)]
                + [Chunk("finetune", k, steps["finetune"]) for k in range(1, epochs + 1)])
    if strategy == "bljust":
        plan = []
        for k in range(1, epochs + 1):
            if steps["explore"] > 0:
                plan.append(Chunk("explore", k, steps["explore"]))
            plan.append(Chunk("joint", k, steps["joint"]))
        if steps["finetune"] > 0:
            plan.append(Chunk("finetune", 0, steps["finetune"]))
        return plan
    raise ValueError(f"unknown strategy '{strategy}'")


def penalty(schedule: str, gamma_max: float, *, epoch: int, epochs: int, joint_steps_done: int,
            gamma_init: float = 0.0, ramp_steps: int = 1) -> float:
    """The penalty gamma for the next joint step.

    epoch_ramp: gamma_k = gamma_max * (k - 1) / K, fixed within epoch k (the BL-JUST papers)
    step_ramp:  gamma_init + (gamma_max - gamma_init) * s / R after s joint steps, capped (PBGD reference code)
    constant:   gamma_max
    """
    if schedule == "epoch_ramp":
        return gamma_max * (epoch - 1) / epochs
    if schedule == "step_ramp":
        return min(gamma_max, gamma_init + (gamma_max - gamma_init) * joint_steps_done / ramp_steps)
    if schedule == "constant":
        return gamma_max
    raise ValueError(f"unknown gamma schedule '{schedule}'")
