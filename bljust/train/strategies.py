"""Training strategies as small objects (see docs/algorithm.md for the algorithm and notation).

A strategy says what to train and when; the trainer (``train/trainer.py``) runs it and
names no strategy. A strategy supplies:

- ``phases``: its phases by name (the YAML's ``phases:`` keys); each phase draws a labeled
  batch (f), an unlabeled batch (g) or both, and updates some of the groups theta, phi, eta;
- ``plan(steps)``: the phases in order, as chunks of steps (validation and a checkpoint
  follow every chunk);
- ``weight(chunk)``: the weight w of g in a step that draws both batches (gamma or lambda);
- ``loss(...)``: the objective of one step, minimised with one backward pass;
- ``lr_factor``: an extra factor on the phase's learning rates (PBGD step scaling);
- ``state_dict``: what a checkpoint must carry for an exact resume;
- ``Settings``: the dataclass of its ``strategy_conf:`` keys, ``optional_phases`` (phases
  whose ``steps`` may be 0) and ``weight_name``: how logs name the weight of g (gamma, lambda).

A strategy reads no training config: it is built from its own settings and the number of
epochs, so ``train/config.py`` can check a YAML against the registry without a cycle.

    strategy    per epoch k = 1..K                                  after the K epochs
    supervised  train (f; theta, phi)
    pt_ft       pretrain (g; theta, eta) for pretrain_epochs epochs, then finetune (f; theta, phi) for K epochs
    just        joint (f + lambda g; theta, phi, eta)
    bljust      explore (g; theta, eta; N1) + joint (f + gamma_k g; all; N2)   finetune (f; theta, phi; N3)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch

from bljust.config import from_dict
from bljust.data.dataset import Batch
from bljust.models.asr_model import AsrModel

GAMMA_SCHEDULES = ("epoch_ramp", "step_ramp", "constant")


@dataclass(frozen=True)
class Phase:
    labeled: bool  # draws a labeled batch: the step's loss has f
    unlabeled: bool  # draws an unlabeled batch: the step's loss has g
    groups: tuple[str, ...]  # parameter groups the phase updates

    @property
    def joint(self) -> bool:
        """Draws both batches: its steps minimise f + w g."""
        return self.labeled and self.unlabeled


SUP = Phase(labeled=True, unlabeled=False, groups=("theta", "phi"))
UNSUP = Phase(labeled=False, unlabeled=True, groups=("theta", "eta"))
JOINT = Phase(labeled=True, unlabeled=True, groups=("theta", "phi", "eta"))


@dataclass(frozen=True)
class Chunk:
    """``steps`` consecutive steps of one phase; checkpoints and validation happen at chunk ends."""

    phase: str
    epoch: int  # 1-based outer epoch (0 for the final fine-tuning of bljust)
    steps: int
    part: int = 1  # a long stretch of a phase is cut into parts (``cut_long``): this is part `part` of `parts`
    parts: int = 1


def cut_long(plan: list[Chunk], max_steps: int) -> list[Chunk]:
    """The plan with every chunk longer than ``max_steps`` (> 0) cut into parts of at most that many
    steps, as equal as can be, so that a long phase still validates, saves its model and
    checkpoints every ``max_steps`` steps. Nothing a step computes depends on where chunks end."""
    out = []
    for chunk in plan:
        parts = -(-chunk.steps // max_steps) if max_steps > 0 else 1
        sizes = [chunk.steps // parts + (i < chunk.steps % parts) for i in range(parts)]
        out += [Chunk(chunk.phase, chunk.epoch, n, i + 1, parts) for i, n in enumerate(sizes)]
    return out


class StepLoss(NamedTuple):
    total: torch.Tensor  # what one backward pass minimises
    f: torch.Tensor | None
    g: torch.Tensor | None
    g_metrics: dict[str, float]


@dataclass
class NoSettings:
    """A strategy without ``strategy_conf:`` keys."""


class Strategy:
    name: ClassVar[str]
    phases: ClassVar[dict[str, Phase]]
    optional_phases: ClassVar[tuple[str, ...]] = ()  # phases whose steps may be 0 (the others need > 0)
    weight_name: ClassVar[str | None] = None  # the log column of the weight of g in joint steps
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings: dict, max_epochs: int):
        """settings: the YAML's ``strategy_conf:`` (checked here: unknown keys and bad values raise
        ValueError naming the key); max_epochs: K."""
        self.settings = self.parse_settings(settings)
        self.max_epochs = max_epochs

    @classmethod
    def parse_settings(cls, settings: dict):
        return from_dict(cls.Settings, settings, where=None, prefix="strategy_conf.")

    @classmethod
    def uses_unlabeled(cls) -> bool:
        return any(p.unlabeled for p in cls.phases.values())

    def plan(self, steps: dict[str, int]) -> list[Chunk]:
        """steps: phase name -> steps per epoch -> the chunks in order."""
        raise NotImplementedError

    def weight(self, chunk: Chunk) -> float:
        """The weight w of g in the next step of ``chunk`` (used when the phase draws both batches)."""
        return 1.0

    def lr_factor(self, chunk: Chunk, weight: float) -> float:
        return 1.0

    def weight_column(self, chunk: Chunk, weight: float) -> tuple[str, float] | None:
        """(log column, value) of the weight of g in a step or at the end of a chunk of a joint
        phase; None in the other phases."""
        return (self.weight_name, weight) if self.phases[chunk.phase].joint else None

    def draws(self, chunk: Chunk, weight: float) -> tuple[bool, bool]:
        """(labeled, unlabeled): the batches the step needs. With w = 0, g is not computed at all."""
        phase = self.phases[chunk.phase]
        return phase.labeled, phase.unlabeled and (weight > 0 or not phase.joint)

    def theta_grad_scale(self, chunk: Chunk, weight: float) -> float | None:
        """None: a joint step minimises f + w g. A number s: g enters the sum unweighted and the
        gradient it sends into theta is scaled by s (``AsrModel.unsupervised_loss``)."""
        return None

    def loss(self, model: AsrModel, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float,
             generator: torch.Generator | None) -> StepLoss:
        """f, g or f + w * g: one backward gives theta grad f + w grad g, phi grad f, eta w grad g."""
        f = g = None
        metrics: dict[str, float] = {}
        scale = self.theta_grad_scale(chunk, weight) if labeled is not None else None
        if labeled is not None:
            f = model.supervised_loss(labeled.feats, labeled.lengths, labeled.targets, labeled.target_lengths)
        if unlabeled is not None:
            g, metrics = model.unsupervised_loss(unlabeled.feats, unlabeled.lengths, generator, theta_grad_scale=scale)
        if f is None:
            return StepLoss(g, None, g, metrics)
        if g is None:
            return StepLoss(f, f, None, metrics)
        return StepLoss(f + (weight if scale is None else 1.0) * g, f, g, metrics)

    def after_step(self, chunk: Chunk) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Supervised(Strategy):
    name = "supervised"
    phases = {"train": SUP}

    def plan(self, steps):
        return [Chunk("train", k, steps["train"]) for k in range(1, self.max_epochs + 1)]


@dataclass
class PtFtSettings:
    pretrain_epochs: int = 0  # epochs of pre-training before the max_epochs of fine-tuning; 0 = max_epochs

    def __post_init__(self):
        if self.pretrain_epochs < 0:
            raise ValueError(f"strategy_conf.pretrain_epochs must be >= 0, got {self.pretrain_epochs}")


class PtFt(Strategy):
    name = "pt_ft"
    phases = {"pretrain": UNSUP, "finetune": SUP}
    optional_phases = ("pretrain",)  # no pre-training: PT+FT's matched control
    Settings = PtFtSettings

    def plan(self, steps):
        pretrain_epochs = (self.settings.pretrain_epochs or self.max_epochs) if steps["pretrain"] > 0 else 0
        return ([Chunk("pretrain", k, steps["pretrain"]) for k in range(1, pretrain_epochs + 1)]
                + [Chunk("finetune", k, steps["finetune"]) for k in range(1, self.max_epochs + 1)])


@dataclass
class JustSettings:
    weight: float = 1.0  # lambda in f + lambda * g

    def __post_init__(self):
        if self.weight < 0:
            raise ValueError(f"strategy_conf.weight must be >= 0, got {self.weight}")


class Just(Strategy):
    """The single-level weighted sum f + lambda g (``strategy_conf.weight``), every group updated together."""

    name = "just"
    phases = {"joint": JOINT}
    weight_name = "lambda"
    Settings = JustSettings

    def plan(self, steps):
        return [Chunk("joint", k, steps["joint"]) for k in range(1, self.max_epochs + 1)]

    def weight(self, chunk):
        return self.settings.weight


@dataclass
class BljustSettings:
    gamma_max: float = 1.0
    gamma_init: float = 0.0  # step_ramp only
    gamma_schedule: str = "epoch_ramp"  # epoch_ramp (the papers), step_ramp (PBGD reference code), constant
    ramp_steps: int = 1000  # step_ramp: joint steps from gamma_init to gamma_max
    pbgd_step_scaling: bool = False  # scale joint-phase learning rates by min(1, 1/gamma)
    eta_grad_scale: str = "gamma"  # eta's joint-phase gradient: gamma * grad g (docs/algorithm.md) or "one" (reference code)

    def __post_init__(self):
        for name in ("gamma_max", "gamma_init"):
            if getattr(self, name) < 0:
                raise ValueError(f"strategy_conf.{name} must be >= 0, got {getattr(self, name)}")
        if self.gamma_schedule not in GAMMA_SCHEDULES:
            raise ValueError(f"strategy_conf.gamma_schedule must be one of {', '.join(GAMMA_SCHEDULES)}, "
                             f"got '{self.gamma_schedule}'")
        if self.ramp_steps < 1:
            raise ValueError(f"strategy_conf.ramp_steps must be >= 1, got {self.ramp_steps}")
        if self.eta_grad_scale not in ("gamma", "one"):
            raise ValueError(f"strategy_conf.eta_grad_scale must be 'gamma' or 'one', got '{self.eta_grad_scale}'")


class Bljust(Strategy):
    """Penalty-based bilevel gradient descent (docs/algorithm.md): exploration on g, joint steps on
    f + gamma_k g with the penalty gamma ramping up, final fine-tuning on f."""

    name = "bljust"
    phases = {"explore": UNSUP, "joint": JOINT, "finetune": SUP}
    optional_phases = ("explore", "finetune")  # N1 = 0 or N3 = 0: the papers' ablations
    weight_name = "gamma"
    Settings = BljustSettings

    def __init__(self, settings, max_epochs):
        super().__init__(settings, max_epochs)
        self.joint_steps = 0  # joint steps taken (the step_ramp schedule counts these)

    def plan(self, steps):
        plan = []
        for k in range(1, self.max_epochs + 1):
            if steps["explore"] > 0:
                plan.append(Chunk("explore", k, steps["explore"]))
            plan.append(Chunk("joint", k, steps["joint"]))
        if steps["finetune"] > 0:
            plan.append(Chunk("finetune", 0, steps["finetune"]))
        return plan

    def weight(self, chunk):
        b = self.settings
        return penalty(b.gamma_schedule, b.gamma_max, epoch=chunk.epoch, epochs=self.max_epochs,
                       joint_steps_done=self.joint_steps, gamma_init=b.gamma_init, ramp_steps=b.ramp_steps)

    def lr_factor(self, chunk, weight):
        if chunk.phase == "joint" and self.settings.pbgd_step_scaling and weight > 0:
            return min(1.0, 1.0 / weight)
        return 1.0

    def theta_grad_scale(self, chunk, weight):
        # The reference code's variant: eta gets grad g, theta still gets grad f + gamma grad g.
        return weight if chunk.phase == "joint" and self.settings.eta_grad_scale == "one" else None

    def after_step(self, chunk):
        if chunk.phase == "joint":
            self.joint_steps += 1

    def state_dict(self):
        return {"joint_steps": self.joint_steps}

    def load_state_dict(self, state):
        self.joint_steps = state["joint_steps"]


STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Supervised, PtFt, Just, Bljust)}
DEFAULT_STRATEGY = Supervised.name
# Every phase name means the same phase in every strategy that has it.
ALL_PHASES: dict[str, Phase] = {name: phase for cls in STRATEGIES.values() for name, phase in cls.phases.items()}


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
