"""The GPU path end to end: every strategy with the CNN-LSTM and the Conformer in mixed precision,
JUST and BL-JUST with an RNN-T head, BL-JUST with wav2vec 2.0 on raw audio; gradient
diagnostics, a checkpoint-and-resume, decoding, throughput and peak memory.

    tools/gpu_check.sh [--steps 40] [--precision bfloat16] [--utts 400] [--device cuda] [--only rnnt]

(tools/gpu_check.sh installs what the machine lacks, then runs this.) It writes synthetic
dumps in a temporary folder (80-dim features in which the words of the transcript are bands
of energy, 2-8 s per utterance; for wav2vec 2.0, 16 kHz waveforms in which they are tones,
1-3 s), then for each run (the mini recipe's configs: egs/mini/conf/train_<strategy>.yaml,
train_<strategy>_conformer.yaml, train_just_rnnt.yaml, train_bljust_rnnt.yaml,
train_bljust_wav2vec2.yaml) trains --steps steps with diagnostics every 10 steps, stops,
resumes from the checkpoint for 10 more steps, and decodes the validation set greedily on the
same device (an RNN-T model by beam search too). --only keeps the runs whose model or
strategy name contains the given text. Prints one line per run:

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
STRATEGIES = ("supervised", "pt_ft", "just", "bljust")


def utterances(n: int, seed: int, length: tuple[int, int], per_word: int):
    """Draws n synthetic utterances: yields (rng, utterance id, words, length, word spans), a word
    per ``per_word`` units of a length in [length[0], length[1]); the rng draws the signal next."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        t = int(rng.integers(*length))
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=max(1, t // per_word))]
        spans = [slice(k * t // len(words), (k + 1) * t // len(words)) for k in range(len(words))]
        yield rng, f"spk{seed}-{i:05d}", words, t, spans


def make_dump(path: Path, n: int, seed: int, labeled: bool = True) -> list[np.ndarray]:
    """80-dim features, 2-8 s: each word a band of energy of its own."""
    text, mats = {}, {}
    for rng, utt, words, t, spans in utterances(n, seed, (200, 800), 100):
        mat = rng.normal(size=(t, 80)).astype(np.float32)
        for w, span in zip(words, spans):
            band = WORDS.index(w) * 10
            mat[span, band:band + 10] += 3.0
        text[utt], mats[utt] = " ".join(words), mat
    write_dump(path, mats, text if labeled else None)
    return list(mats.values())


def make_raw_dump(path: Path, n: int, seed: int, labeled: bool = True) -> None:
    """16 kHz waveforms [S, 1], 1-3 s: each word a tone of its own frequency."""
    text, waves = {}, {}
    for rng, utt, words, s, spans in utterances(n, seed, (16000, 48000), 8000):
        time_s = np.arange(s) / 16000
        wave = 0.05 * rng.normal(size=s)
        for w, span in zip(words, spans):
            wave[span] += 0.3 * np.sin(2 * np.pi * (300 + 200 * WORDS.index(w)) * time_s[span])
        text[utt], waves[utt] = " ".join(words), wave.astype(np.float32).reshape(-1, 1)
    write_dump(path, waves, text if labeled else None)
    (path / "frame_shift").write_text(f"{1 / 16000}\n")


# (model, strategy, config in egs/mini/conf, dump kind)
RUNS = ([("cnn_lstm", s, f"train_{s}.yaml", "fbank") for s in STRATEGIES]
        + [("conformer", s, f"train_{s}_conformer.yaml", "fbank") for s in STRATEGIES]
        + [("rnnt", s, f"train_{s}_rnnt.yaml", "fbank") for s in ("just", "bljust")]
        + [("wav2vec2", "bljust", "train_bljust_wav2vec2.yaml", "raw")])


def check(name: str, strategy: str, conf_name: str, data: TrainData, root: Path, args) -> str:
    conf = REPO / "egs" / "mini" / "conf" / conf_name
    steps = {"supervised": {"train"}, "pt_ft": {"pretrain", "finetune"}, "just": {"joint"},
             "bljust": {"explore", "joint", "finetune"}}[strategy]
    per_phase = max(2, args.steps // len(steps))
    phases = {p: {"steps": per_phase} for p in steps}
    overrides = {"precision": args.precision, "diag_interval": 10, "max_epochs": 2, "phases": phases,
                 "checkpoint_interval": 10, "tensorboard": False,
                 **({"strategy_conf": {"pretrain_epochs": 2}} if strategy == "pt_ft" else {})}
    exp = root / f"exp_{name}_{strategy}"
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
        audio.append((t.progress.labeled_hours + t.progress.unlabeled_hours) * 3600)
        if t.progress.steps == stop_at:
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
    resumed_at = resumed.progress.steps
    resumed.fit()
    assert resumed.progress.steps == total, f"resumed run ended at step {resumed.progress.steps}, not {total}"
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
    cos = [r["cos_fg"] for r in csv.DictReader(open(exp / "train_steps.csv")) if r.get("cos_fg")]
    methods = [[]] + ([["--method", "beam", "--beam_size", "4"]] if resumed.model.sup.own_beam_search(4) is not None else [])
    for i, method in enumerate(methods):
        out = exp / f"decode{i}"
        rc = decode.main(["--exp_dir", str(exp), "--data_dir", data.valid_dir, "--token_dir", data.token_dir,
                          *(["--cmvn", data.cmvn] if data.cmvn else []), "--out_dir", str(out),
                          "--ngpu", "1" if args.device == "cuda" else "0", *method])
        assert rc == 0 and (out / "text").exists(), f"decoding failed ({' '.join(method) or 'greedy'})"
    decoded = " and beam" if len(methods) > 1 else ""
    return (f"{rate:10.1f} {peak:9.2f} {cos[-1] if cos else '-':>8}  OK ({total} steps, stopped at {stop_at}, "
            f"resumed at {resumed_at}, decoded greedy{decoded})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="steps per strategy (split over its phases)")
    p.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--utts", type=int, default=400, help="labeled and unlabeled utterances each")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--only", default="", help="keep the runs whose model or strategy name contains this")
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
        runs = [r for r in RUNS if args.only in r[0] or args.only in r[1]]
        build_tokenizer([" ".join(WORDS)], root / "tokens", "char")
        data = {}
        if any(kind == "fbank" for *_, kind in runs):
            mats = make_dump(root / "train", args.utts, seed=1)
            make_dump(root / "unlabeled", args.utts, seed=2, labeled=False)
            make_dump(root / "valid", 50, seed=3)
            save_stats(root / "cmvn.ark", accumulate_stats(mats))
            data["fbank"] = TrainData(str(root / "train"), str(root / "valid"), str(root / "tokens"),
                                      str(root / "cmvn.ark"), str(root / "unlabeled"))
        if any(kind == "raw" for *_, kind in runs):
            for part, n, seed in (("train", args.utts, 1), ("unlabeled", args.utts, 2), ("valid", 50, 3)):
                make_raw_dump(root / "raw" / part, n, seed, labeled=part != "unlabeled")
            data["raw"] = TrainData(str(root / "raw" / "train"), str(root / "raw" / "valid"), str(root / "tokens"),
                                    None, str(root / "raw" / "unlabeled"))
        print(f"{'model':10} {'strategy':10} {'audio s/s':>10} {'peak GiB':>9} {'cos_fg':>8}")
        for name, strategy, conf_name, kind in runs:
            try:
                line = check(name, strategy, conf_name, data[kind], root, args)
            except Exception as e:  # report every run, then fail at the end
                failures += 1
                line = f"FAILED: {type(e).__name__}: {e}"
                traceback.print_exc()
            print(f"{name:10} {strategy:10} {line}", flush=True)
    print("all checks passed" if not failures else f"{failures} run(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
