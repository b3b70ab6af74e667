"""What a training run is built from (ESPnet's Task role): the token list, the datasets, the model,
the batch streams, the strategy's plan and the optimizers, all from the config and the data paths,
and what its model packages carry besides the network (``package.inference_info``).

The order of construction is part of the result: the model's initial weights come from the
global RNG right after it is seeded, so ``build`` keeps that order fixed.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from bljust import distributed
from bljust.config import ConfigError
from bljust.data.dataset import Batch, BucketBatchSampler, DumpError, FeatureDataset, collate
from bljust.distributed import World
from bljust.fileio import atomic_write_text
from bljust.models.asr_model import AsrModel
from bljust.text.tokenizer import Tokenizer
from bljust.train.batches import BatchStream
from bljust.train.config import TrainConfig
from bljust.train.optim import GroupOptimizers
from bljust.train.package import inference_info
from bljust.train.strategies import Chunk, Strategy, cut_long

log = logging.getLogger("bljust.train")


@dataclass
class TrainData:
    train_dir: str
    valid_dir: str
    token_dir: str
    cmvn: str | None = None
    unlabeled_dir: str | None = None


@dataclass
class Setup:
    strategy: Strategy
    tokenizer: Tokenizer
    train_set: FeatureDataset
    valid_set: FeatureDataset
    model: AsrModel
    groups: dict[str, list[torch.nn.Parameter]]  # theta, phi, eta
    labeled: BatchStream
    unlabeled: BatchStream | None  # None: the strategy uses no unlabeled data
    valid_batches: list[Batch]  # on the device
    plan: list[Chunk]
    phase_total: dict[str, int]  # steps of each phase over the whole plan
    optimizers: GroupOptimizers
    inference: dict | None = None  # what a model package carries besides the network (inference_info)
    fingerprints: dict[str, dict] | None = None  # data_fingerprints: what a resume must find unchanged


def build(config: TrainConfig, data: TrainData, exp_dir: Path, device: torch.device, world: World) -> Setup:
    torch.manual_seed(config.seed)
    strategy = config.build_strategy()
    if config.uses_unlabeled and not data.unlabeled_dir:
        raise ConfigError(f"strategy '{config.strategy}' needs unlabeled data, but none was given "
                          "(train.py --unlabeled_dir; asr.sh --unlabeled_set)")
    tokenizer = Tokenizer(data.token_dir)
    train_set = FeatureDataset(data.train_dir, data.cmvn, tokenizer)
    valid_set = FeatureDataset(data.valid_dir, data.cmvn, tokenizer)
    _require_utterances(train_set, valid_set)
    input_dim = train_set[train_set.utt_ids[0]][0].shape[1]
    inference = inference_info(data.token_dir, tokenizer, train_set, input_dim)
    model = AsrModel(input_dim, tokenizer.vocab_size, config.model)
    model.to(device)
    distributed.broadcast_module(model)
    if world.distributed:  # dropout, masks and negatives differ across ranks, as their data does
        torch.manual_seed(config.seed + 7919 * world.rank)

    bc = config.batch
    keep = lambda dataset, name: usable(dataset, name, model, exp_dir, world)  # noqa: E731
    loading = {"world": world, "num_workers": bc.num_workers, "pin_memory": device.type == "cuda"}
    labeled = BatchStream(train_set, keep(train_set, "train"), bc.max_frames, bc.shuffle, config.seed,
                          fits=joint_fits(config, model, train_set, world.size), **loading)
    unlabeled = None
    if config.uses_unlabeled:
        unlabeled_set = FeatureDataset(data.unlabeled_dir, data.cmvn)
        _require_utterances(unlabeled_set)
        unlabeled = BatchStream(unlabeled_set, keep(unlabeled_set, "unlabeled"), bc.max_frames, bc.shuffle,
                                config.seed + 1, **loading)
    valid_utts = keep(valid_set, "valid")
    valid_batches = [collate(valid_set, utts).to(device) for utts in
                     BucketBatchSampler({u: valid_set.num_frames[u] for u in valid_utts}, valid_set.rows(bc.max_frames),
                                        shuffle=False, fits=joint_fits(config, model, valid_set, 1)).batches]

    steps = {}
    for name, phase_config in config.phases.items():
        stream = labeled if strategy.phases[name].labeled else unlabeled
        steps[name] = stream.batches_per_pass if phase_config.steps is None else phase_config.steps
    plan = cut_long(strategy.plan(steps), config.chunk_steps)
    phase_total = defaultdict(int)
    for chunk in plan:
        phase_total[chunk.phase] += chunk.steps
    groups = model.parameter_groups()
    optimizers = GroupOptimizers(
        groups, {name: (pc, strategy.phases[name].groups) for name, pc in config.phases.items()}, config.optim)
    fingerprints = data_fingerprints(tokenizer, train_set, unlabeled.dataset if unlabeled else None)
    return Setup(strategy, tokenizer, train_set, valid_set, model, groups, labeled, unlabeled, valid_batches, plan,
                 phase_total, optimizers, inference, fingerprints)


def data_fingerprints(tokenizer: Tokenizer, train_set: FeatureDataset,
                      unlabeled_set: FeatureDataset | None) -> dict[str, dict]:
    """{what: {"sha": digest, "source": where it was read}} of the token list and the training sets,
    kept in every checkpoint: a resume that finds another one is refused (``checkpoint.resume_changes``)."""
    sets = {"token list": (tokenizer, tokenizer.source), "train set": (train_set, train_set.dir)}
    if unlabeled_set is not None:
        sets["unlabeled set"] = (unlabeled_set, unlabeled_set.dir)
    return {name: {"sha": thing.fingerprint(), "source": str(source)} for name, (thing, source) in sets.items()}


def _require_utterances(*datasets: FeatureDataset) -> None:
    for dataset in datasets:
        if not len(dataset):
            raise DumpError(f"{dataset.dir}: no utterances (utt2num_frames and feats.scp are empty)")


def joint_fits(config: TrainConfig, model: AsrModel, dataset: FeatureDataset,
               world_size: int) -> Callable[[list[str]], bool] | None:
    """``batch.max_joint`` as a batch limit -> fits(global batch) -> bool, or None without a cap.

    A rank's shard of a global batch of n utterances has at most ceil(n / world size) of them,
    and its joint at most that many x T' x (U+1) x V logits, T' and U the batch's longest."""
    cap = config.batch.max_joint
    if cap <= 0:
        return None
    if model.sup.joint_cost(1, 1, 1) is None:
        raise ConfigError(f"batch.max_joint caps a transducer's joint network; sup '{config.sup}' has none")
    utts = dataset.utt_ids
    out = dict(zip(utts, model.encoder.output_lengths(torch.tensor([dataset.num_frames[u] for u in utts])).tolist()))
    labels = {u: len(dataset.targets[u]) for u in utts}

    def fits(batch: list[str]) -> bool:
        shard = -(-len(batch) // world_size)
        return model.sup.joint_cost(shard, max(out[u] for u in batch), max(labels[u] for u in batch)) <= cap

    return fits


def usable(dataset: FeatureDataset, name: str, model: AsrModel, exp_dir: Path, world: World) -> list[str]:
    """Utterances the losses can learn from; the others are skipped, counted and listed in
    ``exp_dir/skipped_<name>.txt``."""
    enc, sup = model.encoder, model.sup
    keep, skipped = [], []
    for utt in dataset.utt_ids:
        n = dataset.num_frames[utt]
        out = int(enc.output_lengths(torch.tensor(n)))
        if n < enc.min_input_frames:
            skipped.append(f"{utt} {n} input frames < receptive field step of {enc.min_input_frames}")
        elif dataset.targets is not None and out < sup.min_frames(dataset.targets[utt]):
            target = dataset.targets[utt]
            skipped.append(f"{utt} {out} encoder frames < {sup.min_frames(target)} needed by "
                           f"{sup.loss_name} for {len(target)} tokens")
        else:
            keep.append(utt)
    listing = exp_dir / f"skipped_{name}.txt"
    if skipped and world.is_main:
        atomic_write_text(listing, "".join(s + "\n" for s in skipped))
        log.warning("%s: skipped %d of %d utterances too short to train on (listed in %s), e.g. %s",
                    name, len(skipped), len(dataset), listing, skipped[0])
    if not keep:
        raise ValueError(f"{dataset.dir}: no utterance is long enough to train on (see {listing})")
    return keep
