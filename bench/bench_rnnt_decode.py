"""RNN-T decoding speed: beam search over a batch vs one utterance at a time, and vs greedy.

    tools/venv/bin/python bench/bench_rnnt_decode.py [--rounds 5] [--utts 32] [--frames 100] [--beam 10] [--threads 1]
    cd egs/mini && ../../tools/venv/bin/python ../../bench/bench_rnnt_decode.py --model exp/<rnnt run>/model_best.pt \\
        --data_dir dump/fbank/test --cmvn dump/fbank/train_labeled/cmvn.ark    # a trained model, from its recipe

Decodes the same encoder outputs three ways, interleaved in a rotating order in every round so
machine noise hits each alike, and reports medians of the search alone (the encoder runs once,
before timing):
  greedy                 batched greedy decoding
  beam, batched          ``RnntHead.beam_search`` over all utterances in one call
  beam, one per call     the same search called once per utterance
and the ratios  one per call / batched  and  beam (batched) / greedy. Both beam variants must
give the same transcripts (checked). Without ``--model`` the head has egs/mini's RNN-T sizes
(joint 128, 2 x 128 LSTM, 30 tokens) and random weights, its blank logit raised so that greedy
emits about as many labels per frame (0.60) as egs/mini's trained transducer does (0.56), and
reads random encoder outputs; it prints the labels per frame greedy emits. Seconds are per
1000 encoder frames (40 s of audio at egs/mini's 40 ms frames). Run it with nothing else on
the CPU.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bljust.models.rnnt import RnntConfig, RnntHead


def synthetic(utts: int, frames: int, seed: int) -> tuple[RnntHead, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    head = RnntHead(128, 30, RnntConfig(embed_dim=64, pred_units=128, joint_dim=128, max_symbols=4)).eval()
    with torch.no_grad():
        head.joiner.out.bias[head.blank] += 1.2
    lengths = torch.randint(frames // 2, frames + 1, (utts,))
    lengths[0] = frames
    return head, torch.randn(utts, frames, 128), lengths


def trained(model_path: str, data_dir: str, cmvn: str | None, utts: int) -> tuple[RnntHead, torch.Tensor, torch.Tensor]:
    from bljust.data.dataset import FeatureDataset, collate
    from bljust.decode.model_io import load_model

    model = load_model(model_path, "cpu")
    if not isinstance(model.sup, RnntHead):
        raise SystemExit(f"{model_path}: its supervised head is {type(model.sup).__name__}, not an RNN-T")
    dataset = FeatureDataset(data_dir, cmvn)
    batch = collate(dataset, dataset.utt_ids[:utts])
    with torch.no_grad():
        enc, out = model(batch.feats, batch.lengths)
    return model.sup, out, enc.lengths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--utts", type=int, default=32)
    p.add_argument("--frames", type=int, default=100, help="encoder frames of the longest synthetic utterance")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="a trained RNN-T model package (model_best.pt) instead of random weights")
    p.add_argument("--data_dir", help="with --model: a feature dump directory to decode")
    p.add_argument("--cmvn", help="with --model: the training set's cmvn.ark")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.model and not args.data_dir:
        p.error("--model needs --data_dir")
    head, enc, lengths = (trained(args.model, args.data_dir, args.cmvn, args.utts) if args.model
                          else synthetic(args.utts, args.frames, args.seed))
    frames = int(lengths.sum())
    variants = {
        "greedy": lambda: head.greedy(enc, lengths),
        "beam, batched": lambda: head.beam_search(enc, lengths, args.beam),
        "beam, one per call": lambda: [h for b in range(len(lengths))
                                       for h in head.beam_search(enc[b : b + 1], lengths[b : b + 1], args.beam)],
    }
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    results = {}
    with torch.no_grad():
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                start = time.perf_counter()
                results[name] = variants[name]()
                times[name].append(time.perf_counter() - start)
    if results["beam, batched"] != results["beam, one per call"]:
        raise SystemExit("the batched beam search and the one-utterance calls gave different transcripts")
    per_k = {name: statistics.median(t) * 1000 / frames for name, t in times.items()}
    emitted = sum(map(len, results["greedy"])) / frames
    print(f"{len(lengths)} utterances, {frames} encoder frames, beam {args.beam}, {args.threads} threads, "
          f"{'model ' + args.model if args.model else 'random weights'}; greedy emits {emitted:.2f} labels per frame")
    for name in names:
        print(f"  {name:20s} {per_k[name]:.4f} s per 1000 frames")
    print(f"  one per call / batched: {per_k['beam, one per call'] / per_k['beam, batched']:.2f}")
    print(f"  beam (batched) / greedy: {per_k['beam, batched'] / per_k['greedy']:.2f}")


if __name__ == "__main__":
    main()
