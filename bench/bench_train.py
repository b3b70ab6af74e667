"""Training throughput of each strategy, and the labeled data stream's speed against training's consumption.

    tools/venv/bin/python bench/bench_train.py [--rounds 15] [--steps 3] [--loader_batches 20] [--utts 300]
                                               [--frames 100 550] [--threads 2] [--conf_dir egs/mini/conf]

The script writes a synthetic feature dump in a temporary directory (labeled, unlabeled and
validation sets of random 80-dim features, --frames long, 1-5.5 s by default like the mini
corpus; transcripts of about 2.5 words a second; CMVN statistics; a character token list) and
builds one Trainer per strategy from the mini recipe's configs (conf_dir/train_<strategy>.yaml:
the CNN-LSTM, batches of at most 4000 frames, SpecAugment on), with the gradient diagnostics
off (the recipe runs them once every 100 steps).

A strategy's plan mixes kinds of step: bljust has explore (g), joint with gamma_1 = 0 (f only),
joint (f + gamma g) and finetune (f) steps. Every kind of step of every strategy, and the data
stream, run in every round, in a rotating order, so machine noise hits each alike; medians.
A timed step is the trainer's own step (what fit() runs for each step): drawing the batches,
SpecAugment, forward, backward, the finiteness check and the optimizer update.

(a) per kind of step: ms per step, audio seconds per step (labeled + unlabeled, unpadded) and
    throughput = audio seconds / wall seconds (median over steps); per strategy, the same
    weighted by how many steps of each kind its plan has:
      audio s/s     audio seconds trained on per wall second
      / supervised  that throughput / supervised's
      ms/step       mean wall time of a step of the plan
(b) loader / consumption: batches per second that the labeled stream (BatchStream.next():
    reading, CMVN, collating into padded CPU batches, the trainer's data path) delivers, over
    --loader_batches consecutive calls, / batches per second that supervised training steps
    consume (1 / the median supervised step time, its own batch draw included). Target >= 5.
Run it with nothing else on the CPU.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from bljust.data.dataset import FeatureDataset, write_dump
from bljust.features.cmvn import accumulate_stats, save_stats
from bljust.text.tokenizer import Tokenizer, build_tokenizer
from bljust.train.batches import BatchStream
from bljust.train.config import load_train_config
from bljust.train.trainer import Trainer, TrainData

STRATEGY_NAMES = ("supervised", "pt_ft", "just", "bljust")
WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "she", "found", "an", "old", "wooden", "box", "near",
         "river", "yesterday", "children", "played", "quietly", "garden")
TARGET_RATIO = 5.0


def random_dump(path: Path, n_utts: int, frames: tuple[int, int], rng: np.random.Generator, labeled: bool) -> list[np.ndarray]:
    """A feature dump directory of random 80-dim features; transcripts of about 2.5 words a second."""
    text, mats = {}, {}
    for i in range(n_utts):
        n = int(rng.integers(frames[0], frames[1] + 1))
        utt = f"utt{i:05d}"
        mats[utt] = rng.normal(size=(n, 80)).astype(np.float32)
        text[utt] = " ".join(rng.choice(WORDS, size=max(1, round(n / 40))))
    write_dump(path, mats, text if labeled else None)
    return list(mats.values())


def make_corpus(root: Path, n_utts: int, frames: tuple[int, int], seed: int) -> TrainData:
    rng = np.random.default_rng(seed)
    mats = random_dump(root / "train", n_utts, frames, rng, labeled=True)
    random_dump(root / "unlabeled", n_utts, frames, rng, labeled=False)
    random_dump(root / "valid", 8, frames, rng, labeled=True)
    save_stats(root / "cmvn.ark", accumulate_stats(mats))
    build_tokenizer([" ".join(WORDS)], root / "tokens", "char")
    return TrainData(str(root / "train"), str(root / "valid"), str(root / "tokens"), str(root / "cmvn.ark"),
                     str(root / "unlabeled"))


def step_kinds(trainer: Trainer) -> dict[str, dict]:
    """The kinds of step in the trainer's plan: name -> a chunk of that kind and the plan's steps of it."""
    kinds: dict[str, dict] = {}
    for chunk in trainer.plan:
        weight = trainer.strategy.weight(chunk)
        labeled, unlabeled = trainer.strategy.draws(chunk, weight)
        name = f"{chunk.phase} " + "+".join(["f"] * labeled + ["g"] * unlabeled)
        kinds.setdefault(name, {"chunk": chunk, "plan_steps": 0})["plan_steps"] += chunk.steps
    return kinds


def timed_step(trainer: Trainer, chunk) -> tuple[float, float]:
    """One trainer step: (wall seconds, audio seconds in its batches)."""
    before = trainer.progress.labeled_hours + trainer.progress.unlabeled_hours
    start = time.perf_counter()
    trainer._train_step(chunk)  # the step fit() runs
    wall = time.perf_counter() - start
    return wall, (trainer.progress.labeled_hours + trainer.progress.unlabeled_hours - before) * 3600


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=3, help="steps of each kind per round")
    p.add_argument("--loader_batches", type=int, default=20, help="consecutive BatchStream.next() calls per round")
    p.add_argument("--utts", type=int, default=300, help="utterances in the labeled and in the unlabeled set")
    p.add_argument("--frames", type=int, nargs=2, default=[100, 550], metavar=("MIN", "MAX"), help="utterance lengths")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--conf_dir", default=str(Path(__file__).resolve().parents[1] / "egs" / "mini" / "conf"),
                   help="where train_<strategy>.yaml are (default: the mini recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="the stream's data-loading worker processes in (b)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)  # the trainers' start-up lines; warnings still show

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp)
        data = make_corpus(root / "data", args.utts, tuple(args.frames), args.seed)
        trainers, variants = {}, {}
        for name in STRATEGY_NAMES:
            config = load_train_config(str(Path(args.conf_dir) / f"train_{name}.yaml"),
                                       {"diag_interval": 0, "num_threads": args.threads})
            trainers[name] = Trainer(config, data, root / f"exp_{name}")
            for kind, info in step_kinds(trainers[name]).items():
                variants[(name, kind)] = info
        torch.set_num_threads(args.threads)  # a trainer sets it from its config; the same value, to be sure
        max_frames = trainers["supervised"].config.batch.max_frames

        tokenizer = Tokenizer(data.token_dir)
        labeled_set = FeatureDataset(data.train_dir, data.cmvn, tokenizer)
        stream = BatchStream(labeled_set, labeled_set.utt_ids, max_frames, True, args.seed, num_workers=args.workers)

        def run_loader() -> float:
            start = time.perf_counter()
            for _ in range(args.loader_batches):
                stream.next()
            return args.loader_batches / (time.perf_counter() - start)

        for (name, kind), info in variants.items():  # warm-up
            timed_step(trainers[name], info["chunk"])
        run_loader()

        steps: dict = defaultdict(list)  # (strategy, kind) -> [(wall, audio)]
        loader_rates: list[float] = []
        keys = list(variants) + ["loader"]
        for r in range(args.rounds):
            for key in keys[r % len(keys):] + keys[: r % len(keys)]:  # rotate the order every round
                if key == "loader":
                    loader_rates.append(run_loader())
                    continue
                for _ in range(args.steps):
                    steps[key].append(timed_step(trainers[key[0]], variants[key]["chunk"]))

    per_kind = {}
    for key, rows in steps.items():
        per_kind[key] = {"ms": 1000 * statistics.median(w for w, _ in rows),
                         "audio": statistics.mean(a for _, a in rows),
                         "thr": statistics.median(a / w for w, a in rows)}
    print(f"mini CNN-LSTM configs, batches <= {max_frames} frames, {args.utts} + {args.utts} utterances of "
          f"{args.frames[0]}-{args.frames[1]} frames, {args.threads} threads, {args.rounds} rounds x {args.steps} "
          f"steps (medians)")
    print("(a) per kind of step")
    print(f"  {'strategy':11s} {'step':16s} {'plan steps':>10s} {'ms/step':>8s} {'audio s/step':>13s} {'audio s/s':>10s}")
    for (name, kind), info in variants.items():
        k = per_kind[(name, kind)]
        print(f"  {name:11s} {kind:16s} {info['plan_steps']:10d} {k['ms']:8.0f} {k['audio']:13.1f} {k['thr']:10.1f}")
    print("(a) per strategy, weighted by its plan's steps")
    print(f"  {'strategy':11s} {'audio s/s':>10s} {'/ supervised':>13s} {'ms/step':>8s}")
    summary = {}
    for name in STRATEGY_NAMES:
        mine = [(info["plan_steps"], per_kind[(n, kind)]) for (n, kind), info in variants.items() if n == name]
        audio = sum(n * k["audio"] for n, k in mine)
        wall = sum(n * k["audio"] / k["thr"] for n, k in mine)
        summary[name] = (audio / wall, 1000 * wall / sum(n for n, _ in mine))
    for name, (thr, ms) in summary.items():
        print(f"  {name:11s} {thr:10.1f} {thr / summary['supervised'][0]:13.2f} {ms:8.0f}")

    loader = statistics.median(loader_rates)
    consumption = 1000 / per_kind[("supervised", "train f")]["ms"]
    ratio = loader / consumption
    print(f"(b) labeled stream, {args.workers} workers: {loader:.1f} batches/s; supervised training consumes {consumption:.2f} "
          f"batches/s; loader / consumption = {ratio:.1f}")
    print(f"  verdict: {'meets' if ratio >= TARGET_RATIO else 'MISSES'} the target (>= {TARGET_RATIO:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
