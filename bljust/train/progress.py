"""Where a training run stands: the counters that logs report and a checkpoint carries."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, fields


@dataclass
class Progress:
    chunk_index: int = 0  # position in the strategy's plan
    step_in_chunk: int = 0
    steps: int = 0  # gradient steps taken (skipped updates included: their batches count as seen)
    phase_steps: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    labeled_hours: float = 0.0  # audio of every rank's shard
    unlabeled_hours: float = 0.0  # only batches that contributed a gradient
    labeled_batches: int = 0  # global batches drawn: what strategies are matched on (budget.json)
    unlabeled_batches: int = 0
    wall_s: float = 0.0  # time spent in steps (validation and checkpoints excluded)
    best_valid: float = math.inf  # lowest validation f so far: model_best.pt's
    weight: float = 0.0  # weight of g in the last step that drew both batches
    chunk_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # this chunk's f, g and metrics

    def count_step(self, phase: str, labeled: float | None, unlabeled: float | None) -> None:
        """A step of ``phase`` done; labeled, unlabeled: seconds of audio in its global batches (None: not drawn)."""
        self.steps += 1
        self.phase_steps[phase] += 1
        if labeled is not None:
            self.labeled_hours += labeled / 3600
            self.labeled_batches += 1
        if unlabeled is not None:
            self.unlabeled_hours += unlabeled / 3600
            self.unlabeled_batches += 1

    def add_step(self, row: dict, g_metrics: dict[str, float]) -> None:
        """Add a logged step's f and g (as rounded in ``row``) and the head's metrics to the chunk's sums."""
        s = self.chunk_sums
        for name in ("f", "g"):
            if row[name] != "":
                s[name] += row[name]
                s[f"n{name}"] += 1
        for name, value in g_metrics.items():
            s[f"g_{name}"] += value

    def chunk_mean(self, name: str) -> float | None:
        """Mean over the chunk's steps that logged ``name`` (f or g); None: none did."""
        s = self.chunk_sums
        return s[name] / s[f"n{name}"] if s[f"n{name}"] else None

    def end_chunk(self) -> None:
        self.chunk_index += 1
        self.step_in_chunk = 0
        self.chunk_sums = defaultdict(float)

    def state_dict(self) -> dict:
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), dict) else v) for f in fields(self)}

    def load_state_dict(self, state: dict) -> None:
        for f in fields(self):  # a checkpoint written before a counter existed leaves it at its default
            if f.name in state:
                setattr(self, f.name, state[f.name])
        self.phase_steps = defaultdict(int, state["phase_steps"])
        self.chunk_sums = defaultdict(float, state["chunk_sums"])
