"""The GPU path end to end: every strategy with the CNN-LSTM and the Conformer in mixed precision,
gradient diagnostics, a checkpoint-and-resume, decoding, throughput and peak memory.

    tools/gpu_check.sh [--steps 40] [--precision bfloat16] [--utts 400] [--device cuda]

(tools/gpu_check.sh installs what the machine lacks, then runs this.) It writes a synthetic
feature dump in a temporary folder (80-dim features in which the words of the transcript
are bands of energy, 2-8 s per utterance), then for each encoder (the mini recipe's
CNN-LSTM and Conformer configs, egs/mini/conf/train_<strategy>[_conformer].yaml) and each
strategy trains --steps steps with diagnostics every 10 steps, stops, resumes from the
checkpoint for 10 more steps, and decodes the validation set greedily on the same device.
Prints one line per run:

    audio s/s   audio seconds trained on per wall second (labeled + unlabeled), after warm-up
    peak GiB    torch.cuda.max_memory_allocated over the run
    cos_fg      the last gradient cosine measured (diagnostics ran under CUDA)
and "OK" when training, resume and decoding all succeeded. --device cpu runs the same checks
on the CPU (slowly; for testing the script itself).
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from bljust.bin import decode
from bljust.data.dataset import write_dump
from bljust.features.cmvn import accumulate_stats, save_stats
from bljust.text.tokenizer import build_tokenizer
from bljust.train.config import load_train_config
from bljust.train.trainer import Trainer, TrainData

REPO = Path(__file__).resolve().parents[1]
WORDS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]


def make_dump(path: Path, n: int, seed: int, labeled: bool = True) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    text, mats = {}, {}
    for i in range(n):
        t = int(rng.integers(200, 800))
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=max(1, t // 100))]
        mat = rng.normal(size=(t, 80)).astype(np.float32)
        for k, w in enumerate(words):
            band = WORDS.index(w) * 10
            mat[k * t // len(words):(k + 1) * t // len(words), band:band + 10] += 3.0
        utt = f"spk{seed}-{i:05d}"
        text[utt], mats[utt] = " ".join(words), mat
    write_dump(path, mats, text if labeled else None)
    return list(mats.values())


def check(encoder: str, strategy: str, data: TrainData, root: Path, args) -> str:
    suffix = "_conformer" if encoder == "conformer" else ""
    conf = REPO / "egs" / "mini" / "conf" / f"train_{strategy}{suffix}.yaml"
    steps = {"supervised": {"train"}, "pt_ft": {"pretrain", "finetune"}, "just": {"joint"},
             "bljust": {"explore", "joint", "finetune"}}[strategy]
    per_phase = max(2, args.steps // len(steps))
    phases = {p: {"steps": per_phase} for p in steps}
    overrides = {"precision": args.precision, "diag_interval": 10, "max_epochs": 2, "pretrain_epochs": 2,
                 "phases": phases, "checkpoint_interval": 10, "tensorboard": False}
    exp = root / f"exp_{encoder}_{strategy}"
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(load_train_config(str(conf), overrides), data, exp, device=args.device)
    total = sum(c.steps for c in trainer.plan)
    stop_at = total - 10
    times, audio = [], []

    def on_step(t: Trainer) -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        audio.append((t.labeled_hours + t.unlabeled_hours) * 3600)
        if t.steps == stop_at:
            raise KeyboardInterrupt  # stop here; a checkpoint exists at a multiple of 10 steps

    trainer.on_step = on_step
    try:
        trainer.fit()
    except KeyboardInterrupt:
        pass
    warm = min(5, len(times) - 2)
    rate = (audio[-1] - audio[warm]) / (times[-1] - times[warm])
    resumed = Trainer(load_train_config(str(conf), overrides), data, exp, device=args.device)
    assert resumed.resume(), "no checkpoint to resume from"
    resumed_at = resumed.steps
    resumed.fit()
    assert resumed.steps == total, f"resumed run ended at step {resumed.steps}, not {total}"
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
    cos = [r["cos_fg"] for r in csv.DictReader(open(exp / "train_steps.csv")) if r.get("cos_fg")]
    out = exp / "decode"
    rc = decode.main(["--exp_dir", str(exp), "--data_dir", data.valid_dir, "--token_dir", data.token_dir,
                      "--cmvn", data.cmvn, "--out_dir", str(out), "--ngpu", "1" if args.device == "cuda" else "0"])
    assert rc == 0 and (out / "text").exists(), "decoding failed"
    return f"{rate:10.1f} {peak:9.2f} {cos[-1] if cos else '-':>8}  OK ({total} steps, stopped at {stop_at}, resumed at {resumed_at})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="steps per strategy (split over its phases)")
    p.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--utts", type=int, default=400, help="labeled and unlabeled utterances each")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = p.parse_args()
    if args.steps < 20:  # each run stops 10 steps before its end and resumes from a checkpoint 10 steps apart
        p.error("--steps must be at least 20")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("ERROR: no CUDA device is visible (use --device cpu to test the script on a CPU)", file=sys.stderr)
        return 1
    logging.getLogger("bljust").setLevel(logging.WARNING)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; precision {args.precision}; {args.steps} steps per run", flush=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mats = make_dump(root / "train", args.utts, seed=1)
        make_dump(root / "unlabeled", args.utts, seed=2, labeled=False)
        make_dump(root / "valid", 50, seed=3)
        save_stats(root / "cmvn.ark", accumulate_stats(mats))
        build_tokenizer([" ".join(WORDS)], root / "tokens", "char")
        data = TrainData(str(root / "train"), str(root / "valid"), str(root / "tokens"), str(root / "cmvn.ark"),
                         str(root / "unlabeled"))
        print(f"{'encoder':10} {'strategy':10} {'audio s/s':>10} {'peak GiB':>9} {'cos_fg':>8}")
        for encoder in ("cnn_lstm", "conformer"):
            for strategy in ("supervised", "pt_ft", "just", "bljust"):
                try:
                    line = check(encoder, strategy, data, root, args)
                except Exception as e:  # report every run, then fail at the end
                    failures += 1
                    line = f"FAILED: {type(e).__name__}: {e}"
                    traceback.print_exc()
                print(f"{encoder:10} {strategy:10} {line}", flush=True)
    print("all checks passed" if not failures else f"{failures} run(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
