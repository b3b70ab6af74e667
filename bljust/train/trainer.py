"""The training loop shared by every strategy: the plan's chunks of steps, state, resume and signals.

It names no strategy: the strategy (``strategies.py``) supplies the plan, the weight of g, the loss
of a step and the groups each phase trains. ``setup.py`` builds the run, ``step.py`` computes a
step's gradients, ``logs.py`` writes what happened, ``checkpoint.py`` and ``package.py`` what it
made. A checkpoint (after every chunk) holds everything the next step depends on (model, optimizers,
streams, generators, RNG states, the strategy's counters), so a resumed run continues exactly.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm import tqdm

from bljust import distributed
from bljust.config import ConfigError, to_dict
from bljust.distributed import SINGLE, World
from bljust.features.specaug import spec_augment
from bljust.fileio import atomic_write_text
from bljust.train import checkpoint, diagnostics, logs
from bljust.train.config import TrainConfig
from bljust.train.optim import lr_factor
from bljust.train.package import model_package
from bljust.train.precision import Precision
from bljust.train.progress import Progress
from bljust.train.setup import TrainData, build
from bljust.train.step import GradientStep
from bljust.train.strategies import Chunk

log = logging.getLogger("bljust.train")


class Stopped(Exception):
    """Training stopped by a signal after writing a checkpoint; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, steps: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {steps}; a checkpoint was written")
        self.exit_code = 128 + signum


class Trainer:
    def __init__(self, config: TrainConfig, data: TrainData, exp_dir: str | os.PathLike, device: str | torch.device = "cpu",
                 world: World = SINGLE):
        self.config, self.exp_dir, self.world = config, Path(exp_dir), world
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        logs.setup_logging(self.exp_dir, world.rank)
        self.device = torch.device(device)
        self.precision = Precision(config.precision, self.device)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        s = build(config, data, self.exp_dir, self.device, world)
        self.setup, self.strategy, self.model, self.groups = s, s.strategy, s.model, s.groups
        self.labeled, self.unlabeled, self.plan, self.optimizers = s.labeled, s.unlabeled, s.plan, s.optimizers
        self.init_pending = bool(config.init)  # load_init() before the first step, unless a resume replaces it
        self.specaug_gen = torch.Generator().manual_seed(config.seed + 7919 * world.rank)
        self.unsup_gen = torch.Generator().manual_seed(config.seed + 2 + 7919 * world.rank)  # masks, negatives, Gumbel noise
        self.gradients = GradientStep(self.model, self.strategy, self.precision, self.unsup_gen, world.distributed,
                                      config.max_nonfinite_in_a_row)
        self.progress = Progress()  # all of it goes into checkpoints
        self.log_fields = logs.log_fields(self.strategy.weight_name)
        self.step_log = logs.StepLog(self.exp_dir / "train_steps.csv" if world.is_main else None,
                                     logs.step_fields(self.strategy.weight_name, s.model.unsup.metric_names if s.model.unsup else ()))
        self.progress_line = logs.ProgressLine(config.log_interval * world.is_main, self.plan, s.phase_total)
        self._last_plot = time.time()
        self._stop_signal = 0  # a SIGTERM or SIGINT received: checkpoint after this step and stop
        self.tensorboard: logs.TensorBoard | None = None  # opened by fit() on rank 0
        self.on_step: Callable[[Trainer], None] | None = None  # test hook, called after every step
        logs.log_model(config, s)

    # ---- state -------------------------------------------------------------------------------

    def _rank_state(self) -> dict:
        """What differs between data-parallel ranks: their generators and RNG states."""
        return {"specaug_gen": self.specaug_gen.get_state(), "unsup_gen": self.unsup_gen.get_state(),
                "rng": checkpoint.rng_state()}

    def state_dict(self) -> dict:
        """The checkpoint; every rank must call it (it gathers the ranks' RNG states), rank 0's is complete."""
        ranks = distributed.gather(self._rank_state(), self.world)
        return {
            **self.progress.state_dict(), **self.gradients.state_dict(), "strategy": self.strategy.state_dict(),
            "model": checkpoint.finite_state(self.model, self.progress.steps), "optimizers": self.optimizers.state_dict(),
            "labeled": self.labeled.state_dict(), "unlabeled": self.unlabeled.state_dict() if self.unlabeled else None,
            "ranks": ranks, "config": to_dict(self.config), "fingerprints": self.setup.fingerprints,
            "loss_scaler": self.precision.scaler.state_dict() if self.precision.scaler else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.progress.load_state_dict(state)
        self.gradients.load_state_dict(state)
        self.strategy.load_state_dict(state["strategy"])
        self.model.load_state_dict(state["model"])
        self.optimizers.load_state_dict(state["optimizers"])
        if self.precision.scaler and state.get("loss_scaler"):
            self.precision.scaler.load_state_dict(state["loss_scaler"])
        self.labeled.load_state_dict(state["labeled"])
        if self.unlabeled:
            self.unlabeled.load_state_dict(state["unlabeled"])
        if len(state["ranks"]) == self.world.size:
            mine = state["ranks"][self.world.rank]
            self.specaug_gen.set_state(mine["specaug_gen"])
            self.unsup_gen.set_state(mine["unsup_gen"])
            checkpoint.set_rng_state(mine["rng"])
        # otherwise (a resume with another number of processes, allowed by the caller) each rank keeps its fresh seeds

    def save_checkpoint(self) -> None:
        """Every rank calls this at the same step; rank 0 writes."""
        state = self.state_dict()
        if self.world.is_main:
            self.step_log.flush()
            if self.tensorboard:
                self.tensorboard.flush()
            checkpoint.save(state, self.ckpt_dir / f"step_{self.progress.steps}.pt")
            checkpoint.prune(self.ckpt_dir, self.config.keep_checkpoints)

    def load_init(self) -> None:
        """Copy ``init:`` (an import_pretrained file or a model package) into the model: a new run
        starts from it, a resumed one does not read it (so it may be gone by then)."""
        from bljust.pretrained.init import load_init

        for line in load_init(self.model, self.config.init):
            log.info("init %s: %s", self.config.init, line)
        self.init_pending = False

    def resume(self, allow_config_change: bool = False) -> bool:
        """Continue from the newest readable checkpoint (False: there is none). A checkpoint written
        with other settings, or by another number of processes, is refused unless allowed."""
        found = checkpoint.newest_readable(self.ckpt_dir, log.warning)
        if found is None:
            return False
        path, state = found
        changes = checkpoint.resume_changes(state, to_dict(self.config), self.world.size, self.setup.fingerprints)
        if changes:
            listing = "; ".join(changes)
            if not allow_config_change:
                raise ConfigError(f"{path} was written with other settings ({listing}). Resuming would mix two "
                                  "configurations: use another --exp_dir, or pass --allow_config_change to continue anyway")
            log.warning("%s was written with other settings (%s); continuing with the current ones", path, listing)
        self.load_state_dict(state)
        self.init_pending = False
        p = self.progress
        self.step_log.truncate(p.steps)  # steps after the checkpoint will be redone
        where = (f"{self.plan[p.chunk_index].phase} phase, step {p.step_in_chunk} of "
                 f"{self.plan[p.chunk_index].steps}" if p.chunk_index < len(self.plan) else "finished")
        log.info("resumed from %s (%d steps done; %s)", path, p.steps, where)
        return True

    # ---- training ----------------------------------------------------------------------------

    def fit(self) -> None:
        """Train to the end of the plan. SIGTERM or SIGINT (a cluster's notice before preemption, or
        Ctrl-C) finishes the current step, writes a checkpoint and raises ``Stopped``; a second
        signal acts at once."""
        p = self.progress
        if self.world.is_main:
            atomic_write_text(self.exp_dir / "config.yaml", yaml.safe_dump(to_dict(self.config), sort_keys=False))
        if p.chunk_index >= len(self.plan):
            log.info("training already finished (%d steps), nothing to do", p.steps)
            return
        if self.init_pending:
            self.load_init()
        if self.world.is_main and self.config.tensorboard:
            self.tensorboard = logs.TensorBoard(self.exp_dir, p.steps)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while p.chunk_index < len(self.plan):
                self._run_chunk(self.plan[p.chunk_index])
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; rerun the same command to continue from the last checkpoint", p.steps)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.tensorboard:
                self.tensorboard.close()
        if self.world.is_main:
            budget = self.budget()
            atomic_write_text(self.exp_dir / "budget.json", json.dumps(budget, indent=2) + "\n")
            log.info("training finished: %s", ", ".join(f"{k} {v}" for k, v in budget.items()))

    def budget(self) -> dict:
        inference_params = sum(p.numel() for g in ("theta", "phi") for p in self.groups[g])
        return logs.budget(self.progress, inference_params, self.gradients.skipped_steps)

    def _on_signal(self, signum: int, frame) -> None:
        self._stop_signal = signum
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        log.warning("received %s: stopping after this step", signal.Signals(signum).name)

    def _stop_requested(self) -> int:
        """The signal that stops training (0: none); under data-parallel training, any rank's."""
        if not self.world.distributed:
            return self._stop_signal
        return int(distributed.max_(torch.tensor([self._stop_signal], device=self.device)))

    def _run_chunk(self, chunk: Chunk) -> None:
        p = self.progress
        # A redrawn bar is for a person at a terminal; a log file gets the chunk's summary line.
        bar = tqdm(total=chunk.steps, initial=p.step_in_chunk, desc=logs.chunk_label(chunk, self.plan), leave=False,
                   dynamic_ncols=True, disable=not (sys.stderr.isatty() and self.world.is_main))
        interval = self.config.checkpoint_interval
        while p.step_in_chunk < chunk.steps:
            start = time.time()
            row = self._train_step(chunk)
            p.step_in_chunk += 1
            p.wall_s += time.time() - start
            self.step_log.add({**row, "wall_s": round(p.wall_s, 2)})
            self.progress_line.add(p, chunk, row, self.strategy.weight_column(chunk, p.weight))
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("f", "g") if row[k] != ""})
            if self.on_step:
                self.on_step(self)
            signum = self._stop_requested()
            if signum:
                bar.close()
                self.save_checkpoint()
                raise Stopped(signum, p.steps)
            if interval and p.steps % interval == 0 and p.step_in_chunk < chunk.steps:
                self.save_checkpoint()
        bar.close()
        self._end_chunk(chunk)

    def _train_step(self, chunk: Chunk) -> dict:
        p, strategy = self.progress, self.strategy
        weight = strategy.weight(chunk)
        if strategy.phases[chunk.phase].joint:
            p.weight = weight
        draw_labeled, draw_unlabeled = strategy.draws(chunk, weight)
        labeled = self.labeled.next().to(self.device) if draw_labeled else None
        unlabeled = self.unlabeled.next().to(self.device) if draw_unlabeled else None
        if labeled is not None:
            labeled = replace(labeled, feats=spec_augment(labeled.feats, labeled.lengths, self.config.specaug,
                                                          self.specaug_gen))
        self.model.set_update(p.steps)
        share = (self.labeled if labeled is not None else self.unlabeled).share if self.world.distributed else 1.0
        result = self.gradients.run(p.steps + 1, chunk, labeled, unlabeled, weight, share)
        lrs = {}
        if result.finite:
            phase_config = self.config.phases[chunk.phase]
            factor = lr_factor(p.phase_steps[chunk.phase], phase_config.warmup_steps, self.setup.phase_total[chunk.phase],
                               phase_config.anneal, phase_config.final_lr_ratio) * strategy.lr_factor(chunk, weight)
            lrs = self.optimizers.step(chunk.phase, factor)
        strategy.after_step(chunk)

        p.count_step(chunk.phase, labeled=self.labeled.global_seconds if labeled is not None else None,
                     unlabeled=self.unlabeled.global_seconds if unlabeled is not None else None)
        row = logs.step_row(p, chunk.phase, chunk.epoch, self.strategy.weight_column(chunk, weight), lrs, result.values,
                            result.finite, result.loss.g_metrics)
        p.add_step(row, result.loss.g_metrics)
        if self.config.diag_interval and p.steps % self.config.diag_interval == 0 and self.world.is_main:
            row.update(diagnostics.gradient_conflict(self.model, self.setup.valid_batches[0]))
        if self.tensorboard:
            self.tensorboard.add("train", row, p.steps)
        return row

    def _end_chunk(self, chunk: Chunk) -> None:
        p, s = self.progress, self.setup
        valid = diagnostics.validate(self.model, s.valid_batches, s.tokenizer, s.valid_set.targets)
        weight = self.strategy.weight_column(chunk, p.weight)
        row = logs.chunk_row(p, chunk.phase, chunk.epoch, valid, weight)
        if self.world.is_main:
            logs.write_chunk_row(self.exp_dir / "train_log.csv", self.log_fields, row)
        if self.tensorboard:
            self.tensorboard.add("chunk", {k: v for k, v in row.items() if k.startswith(("train_", "valid_"))}, p.steps)
        logs.log_chunk(logs.chunk_label(chunk, self.plan), p, row, valid, weight)
        # Every rank validated the same model on the same batches, so they agree on the best one.
        best = self.strategy.phases[chunk.phase].labeled and valid[0] < p.best_valid
        if best:
            p.best_valid = valid[0]
        if self.world.is_main:
            package = model_package(self.model, to_dict(self.config.model), p.steps, s.inference)
            if best:
                checkpoint.save(package, self.exp_dir / "model_best.pt")
            checkpoint.save(package, self.exp_dir / "model_last.pt")
        p.end_chunk()
        self.save_checkpoint()
        if self.world.is_main and (time.time() - self._last_plot > 60 or p.chunk_index == len(self.plan)):
            self.plot()

    def plot(self) -> None:
        """Redraw training_curves.png (at most once a minute during training: it takes a second)."""
        self._last_plot = time.time()
        try:
            from bljust.train.plots import plot_experiment

            plot_experiment(self.exp_dir, f_name=self.model.sup.loss_name, weight_name=self.strategy.weight_name)
        except Exception as e:  # a plot must never stop a training run
            log.warning("could not draw training curves: %s", e)
