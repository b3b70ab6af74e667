"""The training loop shared by every strategy: data streams, phases, validation, logs, checkpoints.

The strategy's plan (``strategies.build_plan``) is a list of chunks; each chunk runs
``steps`` gradient steps of one phase. At the end of a chunk the trainer validates
(CTC loss, greedy CER and unsupervised loss on the validation set), appends a row to
``train_log.csv`` and writes a checkpoint atomically; with ``checkpoint_interval`` it
also checkpoints inside a chunk. A checkpoint holds everything the next step depends
on (model, one optimizer per phase, both data streams' positions, RNG states,
counters), so a resumed run continues exactly where it stopped: same phase, same
step, same gamma.

Every step appends f, g, gamma and the learning rates to ``train_steps.csv``; every
``diag_interval`` steps it also measures, on fixed validation batches, the cosine
between grad_theta f and grad_theta g and their norms.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Callable

import jiwer
import torch
import yaml
from tqdm import tqdm

from bljust.config import ConfigError, to_dict
from bljust.data.dataset import Batch, BucketBatchSampler, FeatureDataset, collate
from bljust.decode.greedy import ctc_greedy
from bljust.features.specaug import SpecAugConfig, spec_augment
from bljust.fileio import atomic_write_text
from bljust.models.asr_model import AsrModel
from bljust.models.ctc import min_ctc_frames
from bljust.models.encoder import EncoderOutput
from bljust.text.tokenizer import Tokenizer
from bljust.train import checkpoint
from bljust.train.batches import BatchStream
from bljust.train.config import TrainConfig
from bljust.train.strategies import PHASES, Chunk, build_plan, penalty

log = logging.getLogger("bljust.train")

FRAME_S = 0.01
LOG_FIELDS = ["chunk", "phase", "epoch", "steps", "train_f", "train_g", "valid_f", "valid_g", "valid_cer", "gamma",
              "labeled_hours", "unlabeled_hours", "wall_s"]
STEP_FIELDS = ["step", "phase", "epoch", "f", "g", "gamma", "lr_theta", "lr_phi", "lr_eta", "cos_fg", "norm_f", "norm_g"]


@dataclass
class TrainData:
    train_dir: str
    valid_dir: str
    token_dir: str
    cmvn: str | None = None
    unlabeled_dir: str | None = None


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient flowing back through ``x`` by ``scale``."""
    return _ScaleGrad.apply(x, scale)


def step_loss(model: AsrModel, kind: str, labeled: Batch | None, unlabeled: Batch | None, weight: float = 1.0,
              eta_grad_scale: str = "gamma", specaug: SpecAugConfig | None = None,
              specaug_gen: torch.Generator | None = None, cpc_gen: torch.Generator | None = None):
    """The objective of one step, to be minimised with a single backward pass.

    kind "sup": f; "unsup": g; "joint": f + weight * g, so one backward gives
    theta: grad f + weight * grad g, phi: grad f, eta: weight * grad g. With
    eta_grad_scale "one" eta gets grad g instead (the BL-JUST reference code): the
    encoder outputs feeding g pass weight * gradient back to theta, and g enters
    the sum unweighted. Returns (loss, f or None, g or None).
    """
    f = g = None
    if kind in ("sup", "joint"):
        feats = labeled.feats if specaug is None else spec_augment(labeled.feats, labeled.lengths, specaug, specaug_gen)
        enc, log_probs = model(feats, labeled.lengths)
        f = model.ctc.loss(log_probs, enc.lengths, labeled.targets, labeled.target_lengths)
    if kind in ("unsup", "joint"):
        enc_u = model.encoder(unlabeled.feats, unlabeled.lengths)
        if kind == "joint" and eta_grad_scale == "one":
            enc_u = EncoderOutput(scale_grad(enc_u.latent, weight), scale_grad(enc_u.context, weight), enc_u.lengths)
            g = model.unsup(enc_u, cpc_gen).loss
            return f + g, f, g
        g = model.unsup(enc_u, cpc_gen).loss
    if kind == "sup":
        return f, f, None
    if kind == "unsup":
        return g, None, g
    return f + weight * g, f, g


def setup_logging(exp_dir: Path) -> None:
    root = logging.getLogger("bljust")
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    target = str((exp_dir / "train.log").resolve())
    for h in [h for h in root.handlers if isinstance(h, logging.FileHandler) and h.baseFilename != target]:
        root.removeHandler(h)
        h.close()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        fh = logging.FileHandler(target)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)


def lr_factor(step: int, warmup: int, total: int, anneal: str, final_ratio: float) -> float:
    """Linear warm-up to 1, then constant or cosine down to ``final_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if anneal == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _csv_text(fields: list[str], rows: list[dict]) -> str:
    buf = StringIO()
    w = csv.DictWriter(buf, fields)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Trainer:
    def __init__(self, config: TrainConfig, data: TrainData, exp_dir: str | os.PathLike, device: str = "cpu"):
        self.config, self.exp_dir = config, Path(exp_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(self.exp_dir)
        self.device = torch.device(device)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        if config.uses_unlabeled and not data.unlabeled_dir:
            raise ConfigError(f"strategy '{config.strategy}' needs unlabeled data, but none was given "
                              "(train.py --unlabeled_dir; asr.sh --unlabeled_set)")

        self.tokenizer = Tokenizer(data.token_dir)
        self.train_set = FeatureDataset(data.train_dir, data.cmvn, self.tokenizer)
        self.valid_set = FeatureDataset(data.valid_dir, data.cmvn, self.tokenizer)
        input_dim = self.train_set[self.train_set.utt_ids[0]][0].shape[1]
        self.model = AsrModel(input_dim, self.tokenizer.vocab_size, config.model).to(self.device)
        self.groups = self.model.parameter_groups()

        bc = config.batch
        self.labeled = BatchStream(self.train_set, self._usable(self.train_set, "train"), bc.max_frames, bc.shuffle, config.seed)
        self.unlabeled = None
        if config.uses_unlabeled:
            unlabeled_set = FeatureDataset(data.unlabeled_dir, data.cmvn)
            self.unlabeled = BatchStream(unlabeled_set, self._usable(unlabeled_set, "unlabeled"), bc.max_frames,
                                         bc.shuffle, config.seed + 1)
        self.valid_batches = BucketBatchSampler({u: self.valid_set.num_frames[u] for u in self._usable(self.valid_set, "valid")},
                                                bc.max_frames, shuffle=False).batches

        steps = {}
        for name, phase in config.phases.items():
            one_pass = (self.unlabeled if name in ("pretrain", "explore") else self.labeled).batches_per_pass
            steps[name] = one_pass if phase.steps is None else phase.steps
        self.plan = build_plan(config.strategy, config.max_epochs, steps, config.pretrain_epochs or config.max_epochs)
        self.phase_total = defaultdict(int)
        for chunk in self.plan:
            self.phase_total[chunk.phase] += chunk.steps
        self.optimizers = {
            name: torch.optim.AdamW(
                [{"params": self.groups[g], "group": g, "base_lr": phase.group_lr(g), "lr": phase.group_lr(g)}
                 for g in PHASES[name][1]],
                weight_decay=config.optim.weight_decay)
            for name, phase in config.phases.items()
        }
        self.specaug_gen = torch.Generator().manual_seed(config.seed)
        self.cpc_gen = torch.Generator().manual_seed(config.seed + 2)

        # Progress; all of it goes into checkpoints.
        self.chunk_index = 0  # plan position
        self.step_in_chunk = 0
        self.steps = 0
        self.phase_steps: dict[str, int] = defaultdict(int)
        self.joint_steps = 0  # bljust joint steps taken (the step_ramp penalty counts these)
        self.labeled_hours = self.unlabeled_hours = self.wall_s = 0.0
        self.best_valid = math.inf
        self.chunk_sums = {"f": 0.0, "nf": 0, "g": 0.0, "ng": 0}
        self.gamma = 0.0
        self._step_rows: list[dict] = []
        self._last_plot = time.time()
        self.on_step: Callable[[Trainer], None] | None = None  # test hook, called after every step

        sizes = {k: sum(p.numel() for p in v) / 1e6 for k, v in self.groups.items()}
        log.info("model: %s encoder %.2f M (theta), ctc head %.2f M (phi), %s head %.2f M (eta); %d tokens",
                 config.encoder, sizes["theta"], sizes["phi"], config.unsup, sizes["eta"], self.tokenizer.vocab_size)
        log.info("strategy %s: %s", config.strategy,
                 ", ".join(f"{p} {n} steps" for p, n in self.phase_total.items()))

    def _usable(self, dataset: FeatureDataset, name: str) -> list[str]:
        """Utterances the losses can learn from; the others are skipped, counted and listed."""
        enc = self.model.encoder
        keep, skipped = [], []
        for utt in dataset.utt_ids:
            n = dataset.num_frames[utt]
            out = int(enc.output_lengths(torch.tensor(n)))
            if n < enc.min_input_frames:
                skipped.append(f"{utt} {n} input frames < receptive field step of {enc.min_input_frames}")
            elif dataset.targets is not None and out < min_ctc_frames(dataset.targets[utt]):
                target = dataset.targets[utt]
                skipped.append(f"{utt} {out} encoder frames < {min_ctc_frames(target)} needed by CTC for {len(target)} tokens")
            else:
                keep.append(utt)
        listing = self.exp_dir / f"skipped_{name}.txt"
        if skipped:
            atomic_write_text(listing, "".join(s + "\n" for s in skipped))
            log.warning("%s: skipped %d of %d utterances too short to train on (listed in %s), e.g. %s",
                        name, len(skipped), len(dataset), listing, skipped[0])
        if not keep:
            raise ValueError(f"{dataset.dir}: no utterance is long enough to train on (see {listing})")
        return keep

    # ---- checkpoints -------------------------------------------------------------------------

    COUNTERS = ("chunk_index", "step_in_chunk", "steps", "joint_steps", "labeled_hours", "unlabeled_hours",
                "wall_s", "best_valid", "chunk_sums", "gamma")

    def state_dict(self) -> dict:
        return {
            **{k: getattr(self, k) for k in self.COUNTERS}, "phase_steps": dict(self.phase_steps),
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "labeled": self.labeled.state_dict(),
            "unlabeled": self.unlabeled.state_dict() if self.unlabeled else None,
            "specaug_gen": self.specaug_gen.get_state(), "cpc_gen": self.cpc_gen.get_state(),
            "rng": checkpoint.rng_state(), "config": to_dict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        for k in self.COUNTERS:
            setattr(self, k, state[k])
        self.phase_steps = defaultdict(int, state["phase_steps"])
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.labeled.load_state_dict(state["labeled"])
        if self.unlabeled:
            self.unlabeled.load_state_dict(state["unlabeled"])
        self.specaug_gen.set_state(state["specaug_gen"])
        self.cpc_gen.set_state(state["cpc_gen"])
        checkpoint.set_rng_state(state["rng"])

    def model_package(self) -> dict:
        """What decoding needs, nothing more."""
        return {"config": to_dict(self.config.model), "input_dim": self.model.input_dim,
                "vocab_size": self.model.vocab_size, "steps": self.steps, "model": self.model.state_dict()}

    def save_checkpoint(self) -> None:
        self._flush_step_log()
        checkpoint.save(self.state_dict(), self.ckpt_dir / f"step_{self.steps}.pt")
        checkpoint.prune(self.ckpt_dir, self.config.keep_checkpoints)

    def resume(self) -> bool:
        found = checkpoint.step_checkpoints(self.ckpt_dir)
        if not found:
            return False
        step, path = found[-1]
        state = checkpoint.load(path)
        if state["config"] != to_dict(self.config):
            log.warning("%s was written with a different config; continuing with the current one", path)
        self.load_state_dict(state)
        # Steps after the checkpoint will be redone: drop their log rows.
        rows = [r for r in _read_csv(self.exp_dir / "train_steps.csv") if int(r["step"]) <= self.steps]
        atomic_write_text(self.exp_dir / "train_steps.csv", _csv_text(STEP_FIELDS, rows))
        where = (f"{self.plan[self.chunk_index].phase} phase, step {self.step_in_chunk} of "
                 f"{self.plan[self.chunk_index].steps}" if self.chunk_index < len(self.plan) else "finished")
        log.info("resumed from %s (%d steps done; %s)", path, step, where)
        return True

    # ---- training ----------------------------------------------------------------------------

    def fit(self) -> None:
        atomic_write_text(self.exp_dir / "config.yaml", yaml.safe_dump(to_dict(self.config), sort_keys=False))
        if self.chunk_index >= len(self.plan):
            log.info("training already finished (%d steps), nothing to do", self.steps)
            return
        try:
            while self.chunk_index < len(self.plan):
                self._run_chunk(self.plan[self.chunk_index])
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; rerun the same command to continue from the last checkpoint", self.steps)
            raise
        budget = self.budget()
        atomic_write_text(self.exp_dir / "budget.json", json.dumps(budget, indent=2) + "\n")
        log.info("training finished: %s", ", ".join(f"{k} {v}" for k, v in budget.items()))

    def budget(self) -> dict:
        inference_params = sum(p.numel() for g in ("theta", "phi") for p in self.groups[g])
        return {"steps": self.steps, **{f"{p}_steps": n for p, n in self.phase_steps.items()},
                "params_m": round(inference_params / 1e6, 3),
                "labeled_hours": round(self.labeled_hours, 3), "unlabeled_hours": round(self.unlabeled_hours, 3),
                "wall_s": round(self.wall_s, 1)}

    def _run_chunk(self, chunk: Chunk) -> None:
        epochs = self.config.max_epochs if chunk.epoch else 0
        label = f"{chunk.phase} {chunk.epoch}/{epochs}" if chunk.epoch else chunk.phase
        bar = tqdm(total=chunk.steps, initial=self.step_in_chunk, desc=label, leave=False, dynamic_ncols=True)
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
            if interval and self.steps % interval == 0 and self.step_in_chunk < chunk.steps:
                self.save_checkpoint()
        bar.close()
        self._end_chunk(chunk, label)

    def _set_lrs(self, chunk: Chunk) -> None:
        phase = self.config.phases[chunk.phase]
        factor = lr_factor(self.phase_steps[chunk.phase], phase.warmup_steps, self.phase_total[chunk.phase],
                           phase.anneal, phase.final_lr_ratio)
        if chunk.phase == "joint" and self.config.strategy == "bljust" and self.config.bljust.pbgd_step_scaling:
            factor *= min(1.0, 1.0 / self.gamma) if self.gamma > 0 else 1.0
        for group in self.optimizers[chunk.phase].param_groups:
            group["lr"] = group["base_lr"] * factor

    def _train_step(self, chunk: Chunk) -> dict:
        cfg = self.config
        weight = 1.0
        if chunk.kind == "joint":
            if cfg.strategy == "bljust":
                b = cfg.bljust
                self.gamma = penalty(b.gamma_schedule, b.gamma_max, epoch=chunk.epoch, epochs=cfg.max_epochs,
                                     joint_steps_done=self.joint_steps, gamma_init=b.gamma_init, ramp_steps=b.ramp_steps)
                weight = self.gamma
            else:
                weight = self.gamma = cfg.just_weight
        self._set_lrs(chunk)
        labeled = self.labeled.next().to(self.device) if chunk.kind in ("sup", "joint") else None
        unlabeled = self.unlabeled.next().to(self.device) if chunk.kind in ("unsup", "joint") else None
        eta_scale = cfg.bljust.eta_grad_scale if cfg.strategy == "bljust" else "gamma"
        self.model.zero_grad(set_to_none=True)
        loss, f, g = step_loss(self.model, chunk.kind, labeled, unlabeled, weight, eta_scale, cfg.specaug,
                               self.specaug_gen, self.cpc_gen)
        loss.backward()
        params = [p for name in chunk.groups for p in self.groups[name]]
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        self.optimizers[chunk.phase].step()

        self.steps += 1
        self.phase_steps[chunk.phase] += 1
        if chunk.kind == "joint" and cfg.strategy == "bljust":
            self.joint_steps += 1
        if labeled is not None:
            self.labeled_hours += int(labeled.lengths.sum()) * FRAME_S / 3600
        if unlabeled is not None:
            self.unlabeled_hours += int(unlabeled.lengths.sum()) * FRAME_S / 3600
        s = self.chunk_sums
        if f is not None:
            s["f"], s["nf"] = s["f"] + f.item(), s["nf"] + 1
        if g is not None:
            s["g"], s["ng"] = s["g"] + g.item(), s["ng"] + 1
        lrs = {grp["group"]: grp["lr"] for grp in self.optimizers[chunk.phase].param_groups}
        row = {"step": self.steps, "phase": chunk.phase, "epoch": chunk.epoch,
               "f": "" if f is None else round(f.item(), 5), "g": "" if g is None else round(g.item(), 5),
               "gamma": round(weight, 6) if chunk.kind == "joint" else "",
               **{f"lr_{k}": f"{lrs[k]:.3e}" if k in lrs else "" for k in ("theta", "phi", "eta")},
               "cos_fg": "", "norm_f": "", "norm_g": ""}
        if cfg.diag_interval and self.steps % cfg.diag_interval == 0:
            row.update(self.gradient_conflict())
        self._step_rows.append(row)
        return row

    def _probe_batch(self) -> Batch:
        return collate(self.valid_set, self.valid_batches[0]).to(self.device)

    def gradient_conflict(self) -> dict:
        """cos(grad_theta f, grad_theta g) and both norms, on a fixed validation batch.

        Measured in eval mode with a fixed negative-sampling seed, so it neither
        consumes the training RNG nor depends on which batch training drew.
        """
        batch = self._probe_batch()
        theta = self.groups["theta"]
        self.model.eval()
        try:
            _, f, g = step_loss(self.model, "joint", batch, batch, 1.0, cpc_gen=torch.Generator().manual_seed(0))
            gf = torch.autograd.grad(f, theta, retain_graph=True, allow_unused=True)
            gg = torch.autograd.grad(g, theta, allow_unused=True)
        finally:
            self.model.train()
        flat = lambda grads: torch.cat([(torch.zeros_like(p) if x is None else x).flatten() for x, p in zip(grads, theta)])  # noqa: E731
        vf, vg = flat(gf), flat(gg)
        cos = torch.nn.functional.cosine_similarity(vf, vg, dim=0).item()
        return {"cos_fg": round(cos, 5), "norm_f": round(vf.norm().item(), 5), "norm_g": round(vg.norm().item(), 5)}

    def _end_chunk(self, chunk: Chunk, label: str) -> None:
        valid_f, valid_g, valid_cer = self.validate()
        s = self.chunk_sums
        row = {"chunk": self.chunk_index + 1, "phase": chunk.phase, "epoch": chunk.epoch, "steps": self.steps,
               "train_f": round(s["f"] / s["nf"], 4) if s["nf"] else "", "train_g": round(s["g"] / s["ng"], 4) if s["ng"] else "",
               "valid_f": round(valid_f, 4), "valid_g": round(valid_g, 4), "valid_cer": round(valid_cer, 4),
               "gamma": round(self.gamma, 6) if chunk.kind == "joint" else "",
               "labeled_hours": round(self.labeled_hours, 4), "unlabeled_hours": round(self.unlabeled_hours, 4),
               "wall_s": round(self.wall_s, 1)}
        rows = [r for r in _read_csv(self.exp_dir / "train_log.csv") if int(r["chunk"]) < row["chunk"]]
        atomic_write_text(self.exp_dir / "train_log.csv", _csv_text(LOG_FIELDS, rows + [row]))
        log.info("%s done (step %d): train f %s g %s | valid f %.3f g %.3f CER %.2f%%%s", label, self.steps,
                 row["train_f"], row["train_g"], valid_f, valid_g, 100 * valid_cer,
                 f" | gamma {self.gamma:.3f}" if chunk.kind == "joint" else "")
        if chunk.kind != "unsup":
            if valid_f < self.best_valid:
                self.best_valid = valid_f
                checkpoint.save(self.model_package(), self.exp_dir / "model_best.pt")
        checkpoint.save(self.model_package(), self.exp_dir / "model_last.pt")
        self.chunk_index += 1
        self.step_in_chunk = 0
        self.chunk_sums = {"f": 0.0, "nf": 0, "g": 0.0, "ng": 0}
        self.save_checkpoint()
        if time.time() - self._last_plot > 60 or self.chunk_index == len(self.plan):
            self.plot()

    def plot(self) -> None:
        """Redraw training_curves.png (at most once a minute during training: it takes a second)."""
        self._last_plot = time.time()
        try:
            from bljust.train.plots import plot_experiment

            plot_experiment(self.exp_dir)
        except Exception as e:  # a plot must never stop a training run
            log.warning("could not draw training curves: %s", e)

    @torch.no_grad()
    def validate(self) -> tuple[float, float, float]:
        """Mean CTC loss, mean unsupervised loss and greedy CER over the validation batches."""
        self.model.eval()
        total_f = total_g = 0.0
        refs, hyps = [], []
        gen = torch.Generator().manual_seed(0)
        for utts in self.valid_batches:
            batch = collate(self.valid_set, utts).to(self.device)
            enc, log_probs = self.model(batch.feats, batch.lengths)
            total_f += self.model.ctc.loss(log_probs, enc.lengths, batch.targets, batch.target_lengths).item()
            total_g += self.model.unsup(enc, gen).loss.item()
            for utt, ids in zip(utts, ctc_greedy(log_probs, enc.lengths)):
                refs.append(self.tokenizer.decode(self.valid_set.targets[utt]))
                hyps.append(self.tokenizer.decode(ids))
        self.model.train()
        n = len(self.valid_batches)
        return total_f / n, total_g / n, jiwer.cer(refs, hyps)

    def _flush_step_log(self) -> None:
        if not self._step_rows:
            return
        path = self.exp_dir / "train_steps.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:  # append-only; resume() trims rows past the checkpoint
            w = csv.DictWriter(f, STEP_FIELDS)
            if new:
                w.writeheader()
            w.writerows(self._step_rows)
        self._step_rows = []
