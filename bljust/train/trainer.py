"""The training loop shared by every strategy: data streams, the plan's chunks, optimizer steps,
validation, logs and checkpoints. It names no strategy: the strategy object (``strategies.py``)
supplies the plan, the weight of g, the loss of a step and the groups each phase trains.

At the end of each chunk the trainer validates (f, g and greedy CER on the validation set),
appends a row to ``train_log.csv`` and writes a checkpoint atomically; with
``checkpoint_interval`` it also checkpoints inside a chunk. A checkpoint holds everything the
next step depends on (model, optimizers, both streams' positions, generators, RNG states,
the strategy's counters), so a resumed run continues exactly where it stopped.

Every step appends f, g, the weight of g, the learning rates and the head's metrics to
``train_steps.csv``; every ``diag_interval`` steps it also measures cos(grad_theta f,
grad_theta g) and their norms on a fixed validation batch (``diagnostics.py``). The same
numbers, and the validation results, go to TensorBoard (``<exp_dir>/tensorboard``).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm import tqdm

from bljust import distributed
from bljust.config import ConfigError, to_dict
from bljust.data.dataset import Batch, BucketBatchSampler, FeatureDataset, collate
from bljust.distributed import SINGLE, World
from bljust.features.specaug import spec_augment
from bljust.fileio import atomic_write_text
from bljust.models.asr_model import AsrModel
from bljust.text.tokenizer import Tokenizer
from bljust.train import checkpoint, diagnostics
from bljust.train.batches import BatchStream
from bljust.train.config import TrainConfig
from bljust.train.logs import LOG_FIELDS, StepLog, csv_text, read_csv, setup_logging
from bljust.train.optim import GroupOptimizers, lr_factor
from bljust.train.precision import Precision
from bljust.train.strategies import STRATEGIES, Chunk, StepLoss

log = logging.getLogger("bljust.train")

__all__ = ["Trainer", "TrainData", "LOG_FIELDS"]


@dataclass
class TrainData:
    train_dir: str
    valid_dir: str
    token_dir: str
    cmvn: str | None = None
    unlabeled_dir: str | None = None


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


class NonFiniteError(TrainingError):
    """Training stopped: too many steps in a row with a non-finite loss or gradient."""


class Stopped(Exception):
    """Training stopped by a signal after writing a checkpoint; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, steps: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {steps}; a checkpoint was written")
        self.exit_code = 128 + signum


# Settings that change how a run is carried out, not what it computes: a resume may change them.
OPERATIONAL_KEYS = ("num_threads", "keep_checkpoints", "checkpoint_interval", "diag_interval", "max_nonfinite_in_a_row",
                    "tensorboard", "batch.num_workers")


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """'key: saved -> current' for every setting that differs, nested keys dotted."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


class Trainer:
    def __init__(self, config: TrainConfig, data: TrainData, exp_dir: str | os.PathLike, device: str | torch.device = "cpu",
                 world: World = SINGLE):
        self.config, self.exp_dir, self.world = config, Path(exp_dir), world
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(self.exp_dir, world.rank)
        self.device = torch.device(device)
        self.precision = Precision(config.precision, self.device)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        self.strategy = STRATEGIES[config.strategy](config)
        if config.uses_unlabeled and not data.unlabeled_dir:
            raise ConfigError(f"strategy '{config.strategy}' needs unlabeled data, but none was given "
                              "(train.py --unlabeled_dir; asr.sh --unlabeled_set)")

        self.tokenizer = Tokenizer(data.token_dir)
        self.train_set = FeatureDataset(data.train_dir, data.cmvn, self.tokenizer)
        self.valid_set = FeatureDataset(data.valid_dir, data.cmvn, self.tokenizer)
        input_dim = self.train_set[self.train_set.utt_ids[0]][0].shape[1]
        self.model = AsrModel(input_dim, self.tokenizer.vocab_size, config.model)
        self.init_pending = bool(config.init)  # load_init() before the first step, unless a resume replaces it
        self.model.to(self.device)
        distributed.broadcast_module(self.model)
        if world.distributed:  # dropout, masks and negatives differ across ranks, as their data does
            torch.manual_seed(config.seed + 7919 * world.rank)
        self.groups = self.model.parameter_groups()

        bc = config.batch
        loading = {"world": world, "num_workers": bc.num_workers, "pin_memory": self.device.type == "cuda"}
        self.labeled = BatchStream(self.train_set, self._usable(self.train_set, "train"), bc.max_frames, bc.shuffle,
                                   config.seed, fits=self._joint_fits(self.train_set), **loading)
        self.unlabeled = None
        if config.uses_unlabeled:
            unlabeled_set = FeatureDataset(data.unlabeled_dir, data.cmvn)
            self.unlabeled = BatchStream(unlabeled_set, self._usable(unlabeled_set, "unlabeled"), bc.max_frames,
                                         bc.shuffle, config.seed + 1, **loading)
        valid_utts = self._usable(self.valid_set, "valid")
        self.valid_batches = [collate(self.valid_set, utts).to(self.device) for utts in
                              BucketBatchSampler({u: self.valid_set.num_frames[u] for u in valid_utts},
                                                 self.valid_set.rows(bc.max_frames), shuffle=False,
                                                 fits=self._joint_fits(self.valid_set, world_size=1)).batches]

        steps = {}
        for name, phase_config in config.phases.items():
            stream = self.labeled if self.strategy.phases[name].labeled else self.unlabeled
            steps[name] = stream.batches_per_pass if phase_config.steps is None else phase_config.steps
        self.plan = self.strategy.plan(steps)
        self.phase_total = defaultdict(int)
        for chunk in self.plan:
            self.phase_total[chunk.phase] += chunk.steps
        self.optimizers = GroupOptimizers(
            self.groups, {name: (pc, self.strategy.phases[name].groups) for name, pc in config.phases.items()}, config.optim)
        self.specaug_gen = torch.Generator().manual_seed(config.seed + 7919 * world.rank)
        self.unsup_gen = torch.Generator().manual_seed(config.seed + 2 + 7919 * world.rank)  # masks, negatives, Gumbel noise

        # Progress; all of it goes into checkpoints.
        self.chunk_index = 0  # plan position
        self.step_in_chunk = 0
        self.steps = 0
        self.phase_steps: dict[str, int] = defaultdict(int)
        self.labeled_hours = self.unlabeled_hours = self.wall_s = 0.0
        self.best_valid = math.inf
        self.skipped_steps = self.skipped_in_a_row = 0  # steps whose loss or gradient was not finite
        self.chunk_sums: dict[str, float] = defaultdict(float)
        self.weight = 0.0  # weight of g in the last step that drew both batches
        self.step_log = StepLog(self.exp_dir / "train_steps.csv" if world.is_main else None, self.model.unsup.metric_names)
        self._last_plot = time.time()
        self._stop_signal = 0  # a SIGTERM or SIGINT received: checkpoint after this step and stop
        self.tensorboard = None  # opened by fit() on rank 0
        self.on_step: Callable[[Trainer], None] | None = None  # test hook, called after every step
        self._log_model()

    def _log_model(self) -> None:
        sizes = {k: sum(p.numel() for p in v) / 1e6 for k, v in self.groups.items()}
        c = self.config
        log.info("model: %s encoder %.2f M (theta), %s head %.2f M (phi), %s head %.2f M (eta); %d tokens",
                 c.encoder, sizes["theta"], c.sup, sizes["phi"], c.unsup, sizes["eta"], self.tokenizer.vocab_size)
        reach = diagnostics.theta_reach(self.model, self.valid_batches[0])
        for loss in ("f", "g"):
            log.info("%s reaches %.1f%% of theta", loss, diagnostics.reach_percent(reach[loss]))
        log.info("strategy %s: %s", c.strategy, ", ".join(f"{p} {n} steps" for p, n in self.phase_total.items()))

    def _joint_fits(self, dataset: FeatureDataset, world_size: int | None = None):
        """``batch.max_joint`` as a batch limit -> fits(global batch) -> bool, or None without a cap.

        A rank's shard of a global batch of n utterances has at most ceil(n / world size) of them,
        and its joint at most that many x T' x (U+1) x V logits, T' and U the batch's longest."""
        cap = self.config.batch.max_joint
        if cap <= 0:
            return None
        if not hasattr(self.model.sup, "joint_logits"):
            raise ConfigError(f"batch.max_joint caps a transducer's joint network; sup '{self.config.sup}' has none")
        ranks = world_size or self.world.size
        utts = dataset.utt_ids
        out = dict(zip(utts, self.model.encoder.output_lengths(
            torch.tensor([dataset.num_frames[u] for u in utts])).tolist()))
        labels = {u: len(dataset.targets[u]) + 1 for u in utts}
        vocab = self.model.vocab_size

        def fits(batch: list[str]) -> bool:
            shard = -(-len(batch) // ranks)
            return shard * max(out[u] for u in batch) * max(labels[u] for u in batch) * vocab <= cap

        return fits

    def _usable(self, dataset: FeatureDataset, name: str) -> list[str]:
        """Utterances the losses can learn from; the others are skipped, counted and listed."""
        enc, sup = self.model.encoder, self.model.sup
        keep, skipped = [], []
        for utt in dataset.utt_ids:
            n = dataset.num_frames[utt]
            out = int(enc.output_lengths(torch.tensor(n)))
            if n < enc.min_input_frames:
                skipped.append(f"{utt} {n} input frames < receptive field step of {enc.min_input_frames}")
            elif dataset.targets is not None and out < sup.min_frames(dataset.targets[utt]):
                target = dataset.targets[utt]
                skipped.append(f"{utt} {out} encoder frames < {sup.min_frames(target)} needed by "
                               f"{self.config.sup.upper()} for {len(target)} tokens")
            else:
                keep.append(utt)
        listing = self.exp_dir / f"skipped_{name}.txt"
        if skipped and self.world.is_main:
            atomic_write_text(listing, "".join(s + "\n" for s in skipped))
            log.warning("%s: skipped %d of %d utterances too short to train on (listed in %s), e.g. %s",
                        name, len(skipped), len(dataset), listing, skipped[0])
        if not keep:
            raise ValueError(f"{dataset.dir}: no utterance is long enough to train on (see {listing})")
        return keep

    # ---- checkpoints -------------------------------------------------------------------------

    COUNTERS = ("chunk_index", "step_in_chunk", "steps", "labeled_hours", "unlabeled_hours",
                "wall_s", "best_valid", "weight", "skipped_steps", "skipped_in_a_row")

    def _finite_model_state(self) -> dict:
        """The model's state dict; a non-finite value anywhere is an error, so it is never saved."""
        state = self.model.state_dict()
        bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise NonFiniteError(f"non-finite values in {', '.join(bad)} after step {self.steps}; nothing was saved")
        return state

    def _rank_state(self) -> dict:
        """What differs between data-parallel ranks: their generators and RNG states."""
        return {"specaug_gen": self.specaug_gen.get_state(), "unsup_gen": self.unsup_gen.get_state(),
                "rng": checkpoint.rng_state()}

    def state_dict(self) -> dict:
        """The checkpoint; every rank must call it (it gathers the ranks' RNG states), rank 0's is complete."""
        ranks = distributed.gather(self._rank_state(), self.world)
        return {
            **{k: getattr(self, k) for k in self.COUNTERS}, "phase_steps": dict(self.phase_steps),
            "chunk_sums": dict(self.chunk_sums), "strategy": self.strategy.state_dict(),
            "model": self._finite_model_state(), "optimizers": self.optimizers.state_dict(),
            "labeled": self.labeled.state_dict(),
            "unlabeled": self.unlabeled.state_dict() if self.unlabeled else None,
            "ranks": ranks, "config": to_dict(self.config),
            "loss_scaler": self.precision.scaler.state_dict() if self.precision.scaler else None,
        }

    def load_state_dict(self, state: dict) -> None:
        for k in self.COUNTERS:
            setattr(self, k, state[k])
        self.phase_steps = defaultdict(int, state["phase_steps"])
        self.chunk_sums = defaultdict(float, state["chunk_sums"])
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

    def model_package(self) -> dict:
        """What decoding needs, nothing more."""
        return {"config": to_dict(self.config.model), "input_dim": self.model.input_dim,
                "vocab_size": self.model.vocab_size, "steps": self.steps, "model": self._finite_model_state()}

    def save_checkpoint(self) -> None:
        """Every rank calls this at the same step; rank 0 writes."""
        state = self.state_dict()
        if self.world.is_main:
            self.step_log.flush()
            if self.tensorboard:
                self.tensorboard.flush()
            checkpoint.save(state, self.ckpt_dir / f"step_{self.steps}.pt")
            checkpoint.prune(self.ckpt_dir, self.config.keep_checkpoints)

    def load_init(self) -> None:
        """Copy ``init:`` (an import_pretrained file or a model package) into the model: a new run
        starts from it, a resumed one does not read it (so it may be gone by then)."""
        from bljust.models.init import load_init

        for line in load_init(self.model, self.config.init):
            log.info("init %s: %s", self.config.init, line)
        self.init_pending = False

    def resume(self, allow_config_change: bool = False) -> bool:
        """Continue from the newest readable checkpoint (False: there is none). A checkpoint written
        with other settings, or by another number of processes, is refused unless allowed."""
        found = checkpoint.step_checkpoints(self.ckpt_dir)
        if not found:
            return False
        for step, path in reversed(found):  # an unreadable newest one (a crash mid-write elsewhere): the one before
            try:
                state = checkpoint.load(path)
                break
            except checkpoint.CheckpointError as e:
                log.warning("%s; falling back to the previous checkpoint", e)
        else:
            raise checkpoint.CheckpointError(f"{self.ckpt_dir}: none of the {len(found)} checkpoints can be read "
                                             "(see the warnings above); move them away to start afresh")
        changes = [d for d in config_differences(state["config"], to_dict(self.config))
                   if d.split(":")[0] not in OPERATIONAL_KEYS]
        if len(state["ranks"]) != self.world.size:
            changes.append(f"processes: {len(state['ranks'])} -> {self.world.size}")
        if changes:
            listing = "; ".join(changes)
            if not allow_config_change:
                raise ConfigError(f"{path} was written with other settings ({listing}). Resuming would mix two "
                                  "configurations: use another --exp_dir, or pass --allow_config_change to continue anyway")
            log.warning("%s was written with other settings (%s); continuing with the current ones", path, listing)
        self.load_state_dict(state)
        self.init_pending = False
        self.step_log.truncate(self.steps)  # steps after the checkpoint will be redone
        where = (f"{self.plan[self.chunk_index].phase} phase, step {self.step_in_chunk} of "
                 f"{self.plan[self.chunk_index].steps}" if self.chunk_index < len(self.plan) else "finished")
        log.info("resumed from %s (%d steps done; %s)", path, step, where)
        return True

    # ---- training ----------------------------------------------------------------------------

    def fit(self) -> None:
        """Train to the end of the plan. SIGTERM or SIGINT (a cluster's notice before preemption, or
        Ctrl-C) finishes the current step, writes a checkpoint and raises ``Stopped``; a second
        signal acts at once."""
        if self.world.is_main:
            atomic_write_text(self.exp_dir / "config.yaml", yaml.safe_dump(to_dict(self.config), sort_keys=False))
        if self.chunk_index >= len(self.plan):
            log.info("training already finished (%d steps), nothing to do", self.steps)
            return
        if self.init_pending:
            self.load_init()
        if self.world.is_main and self.config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run's events replace those logged after the checkpoint
            self.tensorboard = SummaryWriter(self.exp_dir / "tensorboard", purge_step=self.steps + 1 if self.steps else None)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while self.chunk_index < len(self.plan):
                self._run_chunk(self.plan[self.chunk_index])
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; rerun the same command to continue from the last checkpoint", self.steps)
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

    def _on_signal(self, signum: int, frame) -> None:
        self._stop_signal = signum
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        log.warning("received %s: stopping after this step", signal.Signals(signum).name)

    def _stop_requested(self) -> int:
        """The signal that stops training (0: none); under data-parallel training, any rank's."""
        if not self.world.distributed:
            return self._stop_signal
        return int(distributed.max_(torch.tensor([self._stop_signal], device=self.device)))

    def budget(self) -> dict:
        inference_params = sum(p.numel() for g in ("theta", "phi") for p in self.groups[g])
        return {"steps": self.steps, **{f"{p}_steps": n for p, n in self.phase_steps.items()},
                "params_m": round(inference_params / 1e6, 3),
                "labeled_hours": round(self.labeled_hours, 3), "unlabeled_hours": round(self.unlabeled_hours, 3),
                "wall_s": round(self.wall_s, 1), **({"skipped_steps": self.skipped_steps} if self.skipped_steps else {})}

    def _label(self, chunk: Chunk) -> str:
        if not chunk.epoch:
            return chunk.phase
        epochs = max(c.epoch or 0 for c in self.plan if c.phase == chunk.phase)
        return f"{chunk.phase} {chunk.epoch}/{epochs}"

    def _run_chunk(self, chunk: Chunk) -> None:
        # A redrawn bar is for a person at a terminal; a log file gets the chunk's summary line.
        bar = tqdm(total=chunk.steps, initial=self.step_in_chunk, desc=self._label(chunk), leave=False,
                   dynamic_ncols=True, disable=not (sys.stderr.isatty() and self.world.is_main))
        interval = self.config.checkpoint_interval
        while self.step_in_chunk < chunk.steps:
            start = time.time()
            row = self._train_step(chunk)
            self.step_in_chunk += 1
            self.wall_s += time.time() - start
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("f", "g") if row[k] != ""})
            if self.on_step:
                self.on_step(self)
            signum = self._stop_requested()
            if signum:
                bar.close()
                self.save_checkpoint()
                raise Stopped(signum, self.steps)
            if interval and self.steps % interval == 0 and self.step_in_chunk < chunk.steps:
                self.save_checkpoint()
        bar.close()
        self._end_chunk(chunk)

    def _train_step(self, chunk: Chunk) -> dict:
        cfg, strategy = self.config, self.strategy
        phase = strategy.phases[chunk.phase]
        weight = strategy.weight(chunk)
        if phase.joint:
            self.weight = weight
        draw_labeled, draw_unlabeled = strategy.draws(chunk, weight)
        labeled = self.labeled.next().to(self.device) if draw_labeled else None
        unlabeled = self.unlabeled.next().to(self.device) if draw_unlabeled else None
        if labeled is not None:
            labeled = replace(labeled, feats=spec_augment(labeled.feats, labeled.lengths, cfg.specaug, self.specaug_gen))
        self.model.zero_grad(set_to_none=True)
        self.model.set_update(self.steps)
        buffers = [b.clone() for b in self.model.buffers()]  # batch-norm statistics move in the forward pass
        share = (self.labeled if labeled is not None else self.unlabeled).share if self.world.distributed else 1.0
        scale = share * self.precision.loss_scale
        try:
            loss, finite_loss = self._loss_and_backward(chunk, labeled, unlabeled, weight, scale)
        except torch.OutOfMemoryError:
            if self.world.distributed:  # the other ranks are inside collectives already: a retry would hang
                raise
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
            loss, finite_loss = self._in_halves(chunk, labeled, unlabeled, weight, scale)
        values = {"f": loss.f, "g": loss.g}
        finite = finite_loss
        if finite:
            if self.world.distributed:
                finite, values = self._sum_gradients(values, share)
            else:
                grads = [p.grad.sum() for p in self.model.parameters() if p.grad is not None]
                finite = not grads or bool(torch.isfinite(torch.stack(grads)).all())  # one sum per tensor: one sync
        scaler = self.precision.scaler
        overflow = scaler is not None and finite_loss and not finite and scaler.scale > 1.0
        if scaler is not None:
            scaler.unscale_(self.model.parameters())
            if finite_loss:
                scaler.update(finite)
        lrs = {}
        if finite:
            self.skipped_in_a_row = 0
            phase_config = cfg.phases[chunk.phase]
            factor = lr_factor(self.phase_steps[chunk.phase], phase_config.warmup_steps, self.phase_total[chunk.phase],
                               phase_config.anneal, phase_config.final_lr_ratio) * strategy.lr_factor(chunk, weight)
            lrs = self.optimizers.step(chunk.phase, factor)
        else:
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
            self._skip_update(chunk, loss, labeled, unlabeled, overflow)
        strategy.after_step(chunk)

        self.steps += 1
        self.phase_steps[chunk.phase] += 1
        if labeled is not None:  # every rank's shard
            self.labeled_hours += self.labeled.global_seconds / 3600
        if unlabeled is not None:  # only batches that contributed a gradient count
            self.unlabeled_hours += self.unlabeled.global_seconds / 3600
        s = self.chunk_sums
        row = {"step": self.steps, "phase": chunk.phase, "epoch": chunk.epoch, "f": "", "g": "",
               "gamma": round(weight, 6) if phase.joint else "",
               **{f"lr_{k}": f"{lrs[k]:.3e}" if k in lrs else "" for k in ("theta", "phi", "eta")}}
        for name, value in values.items():
            if value is not None and finite:
                row[name] = round(value.item(), 5)
                s[name] += row[name]
                s[f"n{name}"] += 1
        for name, value in loss.g_metrics.items():
            row[f"g_{name}"] = round(value, 5)
            s[f"g_{name}"] += value
        if cfg.diag_interval and self.steps % cfg.diag_interval == 0 and self.world.is_main:
            row.update(diagnostics.gradient_conflict(self.model, self.valid_batches[0]))
        self.step_log.add(row)
        self._tensorboard("train", row, self.steps)
        return row

    def _tensorboard(self, section: str, row: dict, step: int) -> None:
        if self.tensorboard:
            for key, value in row.items():
                if key not in ("step", "steps", "chunk", "phase", "epoch") and value != "":
                    self.tensorboard.add_scalar(f"{section}/{key}", float(value), step)

    def _loss_and_backward(self, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float,
                           scale: float):
        """The step's loss, and its backward pass (times ``scale``) when it is finite on every rank."""
        with self.precision.autocast():
            loss = self.strategy.loss(self.model, chunk, labeled, unlabeled, weight, self.unsup_gen)
        finite = self._finite_everywhere(loss.total)
        if finite:
            (loss.total * scale if scale != 1.0 else loss.total).backward()
        return loss, finite

    def _in_halves(self, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float, scale: float):
        """After running out of GPU memory: the same step as two half batches whose gradients add up
        (each weighted by its share of the utterances)."""
        shapes = ", ".join(f"{name} {tuple(b.feats.shape)}" for name, b in (("labeled", labeled), ("unlabeled", unlabeled))
                           if b is not None)
        utts = [u for b in (labeled, unlabeled) if b is not None for u in b.utt_ids]
        self.model.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if any(b is not None and len(b.utt_ids) < 2 for b in (labeled, unlabeled)):
            raise TrainingError(f"step {self.steps + 1}: out of memory on a batch of one utterance ({shapes}: "
                                f"{' '.join(utts)}); lower batch.max_frames or drop the utterance")
        log.warning("step %d: out of memory on the batch (%s); retrying it in two halves", self.steps + 1, shapes)
        parts = [(lab, unl) for lab, unl in zip(*(b.halves() if b is not None else (None, None) for b in (labeled, unlabeled)))]
        f = g = total = 0.0
        try:
            for lab, unl in parts:
                w = len(lab.utt_ids) / len(labeled.utt_ids) if lab is not None else len(unl.utt_ids) / len(unlabeled.utt_ids)
                loss, finite = self._loss_and_backward(chunk, lab, unl, weight, scale * w)
                if not finite:
                    return loss, False
                f, g, total = (None if loss.f is None else f + w * loss.f.detach(),
                               None if loss.g is None else g + w * loss.g.detach(), total + w * loss.total.detach())
        except torch.OutOfMemoryError:
            joint = " (or set batch.max_joint)" if hasattr(self.model.sup, "joint_logits") else ""
            raise TrainingError(f"step {self.steps + 1}: out of memory even on half of the batch ({shapes}); "
                                f"lower batch.max_frames{joint}") from None
        return StepLoss(total, f, g, loss.g_metrics), True

    def _finite_everywhere(self, loss: torch.Tensor) -> bool:
        """Whether the step's loss is finite, on every rank (all of them then backpropagate, or none)."""
        if not self.world.distributed:
            return bool(torch.isfinite(loss))
        return not bool(distributed.max_((~torch.isfinite(loss.detach())).float().reshape(1)))

    def _sum_gradients(self, values: dict, share: float) -> tuple[bool, dict]:
        """Sum every rank's share-weighted gradients (and f, g) in one all-reduce; a parameter no rank
        reached keeps no gradient, as in a single process. -> (all finite, the global batch's f and g)"""
        params = [p for p in self.model.parameters() if p.requires_grad]
        reached = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=self.device)
        named = [k for k, v in values.items() if v is not None]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
                         + [reached, torch.stack([values[k].detach() * share for k in named]).float()])
        distributed.sum_(flat)
        offset = 0
        for p, was_reached in zip(params, (flat[-len(named) - len(params):-len(named)] > 0).tolist()):
            p.grad = flat[offset:offset + p.numel()].view_as(p) if was_reached else None
            offset += p.numel()
        return bool(torch.isfinite(flat).all()), {k: flat[-len(named) + i] for i, k in enumerate(named)}

    def _skip_update(self, chunk: Chunk, loss, labeled: Batch | None, unlabeled: Batch | None, overflow: bool) -> None:
        """A non-finite loss or gradient: no parameter moves, the batches count as seen, the step
        is logged with its utterances; too many in a row stop training. A float16 gradient that
        overflowed at a loss scale above 1 only lowers the scale (``precision.py``)."""
        self.model.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        if overflow:
            log.info("step %d: float16 gradient overflow; update skipped, loss scale lowered to %g",
                     self.steps + 1, self.precision.loss_scale)
            return
        self.skipped_in_a_row += 1
        utts = [u for b in (labeled, unlabeled) if b is not None for u in b.utt_ids]
        values = ", ".join(f"{n} {v.item():.4g}" for n, v in (("f", loss.f), ("g", loss.g)) if v is not None)
        log.warning("step %d (%s): non-finite loss or gradient (%s); update skipped (%d so far), utterances: %s",
                    self.steps + 1, chunk.phase, values, self.skipped_steps, " ".join(utts))
        if self.skipped_in_a_row >= self.config.max_nonfinite_in_a_row:
            raise NonFiniteError(f"{self.skipped_in_a_row} steps in a row had a non-finite loss or gradient "
                                 f"(the last at step {self.steps + 1}; see the warnings above for their utterances). "
                                 "Check those features, or lower the learning rate; max_nonfinite_in_a_row is "
                                 f"{self.config.max_nonfinite_in_a_row}")

    def _end_chunk(self, chunk: Chunk) -> None:
        valid_f, valid_g, valid_cer = diagnostics.validate(self.model, self.valid_batches, self.tokenizer,
                                                           self.valid_set.targets)
        s = self.chunk_sums
        both = self.strategy.phases[chunk.phase].joint
        row = {"chunk": self.chunk_index + 1, "phase": chunk.phase, "epoch": chunk.epoch, "steps": self.steps,
               "train_f": round(s["f"] / s["nf"], 4) if s["nf"] else "", "train_g": round(s["g"] / s["ng"], 4) if s["ng"] else "",
               "valid_f": round(valid_f, 4), "valid_g": round(valid_g, 4), "valid_cer": round(valid_cer, 4),
               "gamma": round(self.weight, 6) if both else "",
               "labeled_hours": round(self.labeled_hours, 4), "unlabeled_hours": round(self.unlabeled_hours, 4),
               "wall_s": round(self.wall_s, 1)}
        if self.world.is_main:
            rows = [r for r in read_csv(self.exp_dir / "train_log.csv") if int(r["chunk"]) < row["chunk"]]
            atomic_write_text(self.exp_dir / "train_log.csv", csv_text(LOG_FIELDS, rows + [row]))
        self._tensorboard("chunk", {k: v for k, v in row.items() if k.startswith(("train_", "valid_"))}, self.steps)
        metrics = "".join(f" {k[2:]} {v / s['ng']:.3f}" for k, v in s.items() if k.startswith("g_") and s["ng"])
        log.info("%s done (step %d): train f %s g %s%s | valid f %.3f g %.3f CER %.2f%%%s", self._label(chunk),
                 self.steps, row["train_f"], row["train_g"], f" ({metrics.strip()})" if metrics else "",
                 valid_f, valid_g, 100 * valid_cer, f" | weight of g {self.weight:.3f}" if both else "")
        # Every rank validated the same model on the same batches, so they agree on the best one.
        best = self.strategy.phases[chunk.phase].labeled and valid_f < self.best_valid
        if best:
            self.best_valid = valid_f
        if self.world.is_main:
            package = self.model_package()
            if best:
                checkpoint.save(package, self.exp_dir / "model_best.pt")
            checkpoint.save(package, self.exp_dir / "model_last.pt")
        self.chunk_index += 1
        self.step_in_chunk = 0
        self.chunk_sums = defaultdict(float)
        self.save_checkpoint()
        if self.world.is_main and (time.time() - self._last_plot > 60 or self.chunk_index == len(self.plan)):
            self.plot()

    def plot(self) -> None:
        """Redraw training_curves.png (at most once a minute during training: it takes a second)."""
        self._last_plot = time.time()
        try:
            from bljust.train.plots import plot_experiment

            plot_experiment(self.exp_dir)
        except Exception as e:  # a plot must never stop a training run
            log.warning("could not draw training curves: %s", e)
