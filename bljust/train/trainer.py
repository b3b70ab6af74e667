"""The training loop: data, model, optimisation, validation, logging and checkpoints.

One epoch = one pass over the labeled batches. After every epoch the trainer
validates (CTC loss and greedy CER on the validation set), appends a row to
``train_log.csv``, and writes ``checkpoints/epoch_<N>.pt`` atomically. Calling
``fit()`` on an experiment folder that already has checkpoints continues from the
newest one, so an interrupted run loses at most the unfinished epoch.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import jiwer
import torch
import yaml
from tqdm import tqdm

from bljust.config import to_dict
from bljust.data.dataset import BucketBatchSampler, FeatureDataset, collate
from bljust.decode.greedy import ctc_greedy
from bljust.features.specaug import spec_augment
from bljust.fileio import atomic_write_text
from bljust.models.asr_model import AsrModel
from bljust.models.ctc import min_ctc_frames
from bljust.text.tokenizer import Tokenizer
from bljust.train import checkpoint
from bljust.train.config import TrainConfig

log = logging.getLogger("bljust.train")

LOG_FIELDS = ["epoch", "steps", "train_loss", "valid_loss", "valid_cer", "lr", "labeled_hours_seen", "wall_s"]


@dataclass
class TrainData:
    train_dir: str
    valid_dir: str
    token_dir: str
    cmvn: str | None = None


def setup_logging(exp_dir: Path) -> None:
    root = logging.getLogger("bljust")
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    target = str((exp_dir / "train.log").resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in root.handlers):
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

        self.tokenizer = Tokenizer(data.token_dir)
        self.train_set = FeatureDataset(data.train_dir, data.cmvn, self.tokenizer)
        self.valid_set = FeatureDataset(data.valid_dir, data.cmvn, self.tokenizer)
        input_dim = self.train_set[self.train_set.utt_ids[0]][0].shape[1]
        self.model = AsrModel(input_dim, self.tokenizer.vocab_size, config.model).to(self.device)

        train_utts = self._usable(self.train_set, "train")
        valid_utts = self._usable(self.valid_set, "valid")
        frames = self.train_set.num_frames
        self.sampler = BucketBatchSampler({u: frames[u] for u in train_utts}, config.batch.max_frames, config.batch.shuffle, config.seed)
        self.valid_batches = BucketBatchSampler({u: self.valid_set.num_frames[u] for u in valid_utts}, config.batch.max_frames, shuffle=False).batches

        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        total = config.max_epochs * len(self.sampler)
        o = config.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, total, o.anneal, o.final_lr_ratio)
        )
        self.specaug_gen = torch.Generator().manual_seed(config.seed)
        self.epoch = 0  # epochs finished
        self.steps = 0
        self.labeled_hours_seen = 0.0
        self.wall_s = 0.0
        self.best_valid = math.inf
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s encoder, %.2f M parameters, %d tokens", config.encoder, n_params / 1e6, self.tokenizer.vocab_size)
        log.info("train: %d utterances (%.2f h) in %d batches; valid: %d utterances", len(train_utts),
                 self.train_set.hours(train_utts), len(self.sampler), len(valid_utts))

    def _usable(self, dataset: FeatureDataset, name: str) -> list[str]:
        """Utterances CTC can learn from; the others are skipped, counted and listed."""
        enc = self.model.encoder
        keep, skipped = [], []
        for utt in dataset.utt_ids:
            n = dataset.num_frames[utt]
            target = dataset.targets[utt]
            if n < enc.min_input_frames:
                skipped.append(f"{utt} {n} input frames < receptive field step of {enc.min_input_frames}")
            elif int(enc.output_lengths(torch.tensor(n))) < min_ctc_frames(target):
                skipped.append(f"{utt} {int(enc.output_lengths(torch.tensor(n)))} encoder frames < "
                               f"{min_ctc_frames(target)} needed by CTC for {len(target)} tokens")
            else:
                keep.append(utt)
        if skipped:
            atomic_write_text(self.exp_dir / f"skipped_{name}.txt", "".join(s + "\n" for s in skipped))
            log.warning("%s: skipped %d of %d utterances too short for CTC (listed in %s), e.g. %s", name, len(skipped),
                        len(dataset), self.exp_dir / f"skipped_{name}.txt", skipped[0])
        if not keep:
            raise ValueError(f"{dataset.dir}: no utterance is long enough to train on (see {self.exp_dir / f'skipped_{name}.txt'})")
        return keep

    # ---- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch, "steps": self.steps, "labeled_hours_seen": self.labeled_hours_seen,
            "wall_s": self.wall_s, "best_valid": self.best_valid,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state_dict(),
            "specaug_gen": self.specaug_gen.get_state(), "rng": checkpoint.rng_state(),
            "config": to_dict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("epoch", "steps", "labeled_hours_seen", "wall_s", "best_valid"):
            setattr(self, key, state[key])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.specaug_gen.set_state(state["specaug_gen"])
        checkpoint.set_rng_state(state["rng"])

    def model_package(self) -> dict:
        """What decoding needs, nothing more."""
        return {"config": to_dict(self.config.model), "input_dim": self.model.input_dim,
                "vocab_size": self.model.vocab_size, "epoch": self.epoch, "model": self.model.state_dict()}

    def resume(self) -> bool:
        found = checkpoint.epoch_checkpoints(self.ckpt_dir)
        if not found:
            return False
        epoch, path = found[-1]
        state = checkpoint.load(path)
        if state["config"] != to_dict(self.config):
            log.warning("%s was written with a different config; continuing with the current one", path)
        self.load_state_dict(state)
        log.info("resumed from %s (epoch %d of %d done)", path, epoch, self.config.max_epochs)
        return True

    # ---- training ----------------------------------------------------------------------------

    def fit(self) -> None:
        cfg = self.config
        atomic_write_text(self.exp_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if self.epoch >= cfg.max_epochs:
            log.info("training already finished (%d/%d epochs), nothing to do", self.epoch, cfg.max_epochs)
            return
        try:
            while self.epoch < cfg.max_epochs:
                self._train_epoch(self.epoch + 1)
        except KeyboardInterrupt:
            log.warning("interrupted during epoch %d; rerun the same command to continue from epoch %d",
                        self.epoch + 1, self.epoch)
            raise
        log.info("training finished: %d epochs, %d steps, %.2f labeled hours seen, %.0f s",
                 self.epoch, self.steps, self.labeled_hours_seen, self.wall_s)

    def _train_epoch(self, epoch: int) -> None:
        cfg = self.config
        self.model.train()
        self.sampler.set_epoch(epoch)
        start, total_loss, n = time.time(), 0.0, 0
        bar = tqdm(self.sampler, total=len(self.sampler), initial=self.sampler.position,
                   desc=f"epoch {epoch}/{cfg.max_epochs}", leave=False, dynamic_ncols=True)
        for utts in bar:
            batch = collate(self.train_set, utts).to(self.device)
            feats = spec_augment(batch.feats, batch.lengths, cfg.specaug, self.specaug_gen)
            enc, log_probs = self.model(feats, batch.lengths)
            loss = self.model.ctc.loss(log_probs, enc.lengths, batch.targets, batch.target_lengths)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.steps += 1
            self.labeled_hours_seen += int(batch.lengths.sum()) * 0.01 / 3600
            total_loss += loss.item()
            n += 1
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
        self.wall_s += time.time() - start
        self.epoch = epoch
        valid_loss, valid_cer = self.validate()
        row = {"epoch": epoch, "steps": self.steps, "train_loss": round(total_loss / max(n, 1), 4),
               "valid_loss": round(valid_loss, 4), "valid_cer": round(valid_cer, 4),
               "lr": f"{self.scheduler.get_last_lr()[0]:.3e}", "labeled_hours_seen": round(self.labeled_hours_seen, 4),
               "wall_s": round(self.wall_s, 1)}
        self._append_log(row)
        log.info("epoch %d/%d: train_loss %.3f valid_loss %.3f valid_cer %.2f%% (%.0f s)", epoch, cfg.max_epochs,
                 row["train_loss"], valid_loss, 100 * valid_cer, time.time() - start)
        if valid_loss < self.best_valid:
            self.best_valid = valid_loss
            checkpoint.save(self.model_package(), self.exp_dir / "model_best.pt")
        checkpoint.save(self.model_package(), self.exp_dir / "model_last.pt")
        checkpoint.save(self.state_dict(), self.ckpt_dir / f"epoch_{epoch}.pt")
        checkpoint.prune(self.ckpt_dir, cfg.keep_checkpoints)

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """Mean CTC loss over the validation batches and the greedy character error rate."""
        self.model.eval()
        total, refs, hyps = 0.0, [], []
        for utts in self.valid_batches:
            batch = collate(self.valid_set, utts).to(self.device)
            enc, log_probs = self.model(batch.feats, batch.lengths)
            total += self.model.ctc.loss(log_probs, enc.lengths, batch.targets, batch.target_lengths).item()
            for utt, ids in zip(utts, ctc_greedy(log_probs, enc.lengths)):
                refs.append(self.tokenizer.decode(self.valid_set.targets[utt]))
                hyps.append(self.tokenizer.decode(ids))
        self.model.train()
        return total / len(self.valid_batches), jiwer.cer(refs, hyps)

    def _append_log(self, row: dict) -> None:
        path = self.exp_dir / "train_log.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        rows.append(row)
        # Rewritten whole (atomically) so a resumed epoch replaces, never duplicates, its row.
        buf = StringIO()
        w = csv.DictWriter(buf, LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(path, buf.getvalue())
