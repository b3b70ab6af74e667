"""The CNN-LSTM encoder's BiLSTM: packed sequences against padded batches (``bilstm_padded``).

    tools/venv/bin/python bench/bench_lstm.py [--frames 1000] [--rounds 20] [--threads 1]

Both compute the same outputs at every valid frame (test_model.py checks it to 1e-12 in float64):
the packed LSTM runs step by step, the padded one as one fused kernel per direction. Each round
runs forward and backward of each on the same batches (the two in alternating order); medians
over rounds. The batches hold about --frames encoder frames each (4000 fbank frames at 4x
subsampling: egs/mini's batches), in three shapes of the bucketed sampler: many short
utterances, fewer longer ones, a few long ones; the last utterance of each is 10 % shorter.
Prints, per shape, milliseconds per batch of each and packed / padded (> 1: padded is faster).
Run it with nothing else on the CPU.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bljust.models.cnn_lstm import bilstm_padded


def packed(lstm: torch.nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    out, _ = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def timed(fn, lstm, x, lengths) -> float:
    start = time.perf_counter()
    fn(lstm, x, lengths).square().sum().backward()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=1000, help="encoder frames per batch")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--input_dim", type=int, default=128, help="egs/mini's latent_dim")
    p.add_argument("--units", type=int, default=256, help="egs/mini's lstm_units")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(args.input_dim, args.units, batch_first=True, bidirectional=True)
    print(f"BiLSTM {args.input_dim} -> 2 x {args.units}, {args.frames} frames per batch, {args.threads} thread(s), "
          f"{args.rounds} rounds (median ms per batch, forward + backward)")
    print(f"{'batch':>12s} {'packed':>9s} {'padded':>9s} {'packed / padded':>16s}")
    for utts in (16, 8, 4):
        t = args.frames // utts
        x = torch.randn(utts, t, args.input_dim, requires_grad=True)
        lengths = torch.full((utts,), t)
        lengths[-1] = t - t // 10
        times = {packed: [], bilstm_padded: []}
        for r in range(args.rounds + 1):
            order = (packed, bilstm_padded) if r % 2 else (bilstm_padded, packed)
            for fn in order:
                elapsed = timed(fn, lstm, x, lengths)
                if r:  # the first round warms up
                    times[fn].append(elapsed)
        a, b = (statistics.median(times[fn]) * 1e3 for fn in (packed, bilstm_padded))
        print(f"{f'{utts} x {t}':>12s} {a:9.1f} {b:9.1f} {a / b:16.2f}")


if __name__ == "__main__":
    main()
