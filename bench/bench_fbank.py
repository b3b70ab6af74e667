"""Fbank extraction speed: ours (bljust.features.fbank.compute_fbank) vs kaldi-native-fbank.

    tools/venv/bin/python bench/bench_fbank.py [--seconds 60] [--utt_seconds 10] [--rounds 30] [--threads 1]

kaldi-native-fbank is needed for the comparison only: pip install kaldi-native-fbank

Both extract the same features from the same synthetic 16 kHz audio (white noise plus a few
gliding, amplitude-modulated tones, cut into utterances of --utt_seconds): 80 log-mel bins,
25 ms povey windows every 10 ms, dither 0, pre-emphasis 0.97, DC removal,
snip_edges, power spectrum, Kaldi's 16-bit sample scale (the settings compute_fbank uses,
read from FbankConfig). Each round extracts every utterance with each extractor, the two in
alternating order; medians over rounds. Each timing covers samples in, float32 [frames, 80]
numpy matrix out. Prints:
  x real time   audio seconds / wall seconds for one pass over all utterances; with --threads 1
                (the default) this is x real time per core
  ours / theirs the ratio of the two (< 1: ours is slower)
  max |diff|    the largest absolute difference between the two feature matrices (log-mel
                values), a sanity check that both compute the same features; mean |diff| too
Run it with nothing else on the CPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from bljust.features.fbank import FbankConfig, compute_fbank


def synthetic_audio(seconds: float, utt_seconds: float, sample_rate: int, seed: int) -> list[np.ndarray]:
    """Utterances of noise plus tones in [-1, 1], float32, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    utts, left = [], seconds
    while left > 0:
        n = int(round(min(utt_seconds, left) * sample_rate))
        t = np.arange(n) / sample_rate
        x = 0.02 * rng.standard_normal(n)
        for _ in range(4):  # tones that glide in pitch and swell in loudness, like voiced speech
            f0, glide, rate = rng.uniform(100, 3000), rng.uniform(-50, 50), rng.uniform(1, 5)
            phase = 2 * np.pi * (f0 * t + 0.5 * glide * t * t)
            x += 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t)) * np.sin(phase)
        utts.append((x / np.abs(x).max() * 0.9).astype(np.float32))
        left -= utt_seconds
    return utts


def knf_extractor(config: FbankConfig):
    """A function samples -> features with kaldi-native-fbank, set up like compute_fbank; None if not installed."""
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        return None
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = config.sample_rate
    opts.frame_opts.frame_length_ms = config.frame_length_ms
    opts.frame_opts.frame_shift_ms = config.frame_shift_ms
    opts.frame_opts.dither = config.dither
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = config.num_mel_bins
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    opts.energy_floor = 0.0

    def extract(samples: np.ndarray) -> np.ndarray:
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(config.sample_rate, samples * 32768.0)  # Kaldi's 16-bit scale, as compute_fbank
        fbank.input_finished()
        return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])

    return extract


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="audio per pass")
    p.add_argument("--utt_seconds", type=float, default=10.0, help="utterance length")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: x real time per core)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    config = FbankConfig()
    theirs = knf_extractor(config)
    if theirs is None:
        print("ERROR: kaldi_native_fbank is not installed; it is needed for this comparison only:\n"
              "    pip install kaldi-native-fbank", file=sys.stderr)
        return 1
    ours = lambda samples: compute_fbank(samples, config)  # noqa: E731
    extractors = {"ours": ours, "kaldi-native-fbank": theirs}
    utts = synthetic_audio(args.seconds, args.utt_seconds, config.sample_rate, args.seed)
    audio_s = sum(len(u) for u in utts) / config.sample_rate

    feats = {name: [fn(u) for u in utts] for name, fn in extractors.items()}  # warm-up, and the sanity check
    diffs = []
    for a, b in zip(feats["ours"], feats["kaldi-native-fbank"]):
        if a.shape != b.shape:
            print(f"ERROR: frame counts differ: ours {a.shape}, kaldi-native-fbank {b.shape}", file=sys.stderr)
            return 1
        diffs.append(np.abs(a - b))
    max_diff, mean_diff = max(float(d.max()) for d in diffs), float(np.mean(np.concatenate(diffs)))

    times: dict[str, list[float]] = {name: [] for name in extractors}
    names = list(extractors)
    for r in range(args.rounds):
        for name in names[r % 2:] + names[: r % 2]:  # alternate which goes first
            fn = extractors[name]
            start = time.perf_counter()
            for u in utts:
                fn(u)
            times[name].append(time.perf_counter() - start)
    xrt = {name: audio_s / statistics.median(t) for name, t in times.items()}

    print(f"{len(utts)} utterances, {audio_s:.0f} s of 16 kHz audio, {config.num_mel_bins} bins, "
          f"{args.threads} thread(s), {args.rounds} rounds (medians)")
    print(f"{'ours x RT':>10s} {'kaldi-native-fbank x RT':>24s} {'ours/theirs':>12s} {'max |diff|':>11s} {'mean |diff|':>12s}")
    print(f"{xrt['ours']:10.0f} {xrt['kaldi-native-fbank']:24.0f} {xrt['ours'] / xrt['kaldi-native-fbank']:12.3f} "
          f"{max_diff:11.2e} {mean_diff:12.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
