"""Compute log-mel fbank features for one data directory (usually one split of it), or, with
``--feats_type raw``, dump its waveforms (16-bit, at ``--fs``, segments cut) for encoders that
read raw audio.

    python -m bljust.bin.compute_fbank data/train/split2/1 dump/fbank/train/feats.1

writes ``<out_prefix>.ark``, ``<out_prefix>.scp``, ``<out_prefix>.utt2num_frames`` and
``<out_prefix>.frontend.yaml``, the settings the features were made with (feats_type, sample_rate and,
for fbank, every FbankConfig setting); stage 3 keeps one as ``<dump>/frontend.yaml``, and training
copies it into the model package, so that audio is turned into the same features at inference.
Recordings too short for a single analysis window (including zero-length files)
are skipped with a warning and listed in ``<out_prefix>.skipped``; the caller
drops them from the data directory. Audio that cannot be read, or with NaN or
infinite samples or features, stops the job with an error naming the utterance and
its wav.scp line, and nothing is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import yaml
from tqdm import tqdm

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.audio import AudioError, AudioReader
from bljust.data.datadir import DataDirError
from bljust.features.fbank import ArkWriter, FbankConfig, compute_fbank
from bljust.fileio import atomic_write_text


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.compute_fbank", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("data_dir", help="Kaldi data directory (wav.scp, optionally segments) to read")
    p.add_argument("out_prefix", help="output path prefix: <out_prefix>.ark, .scp, .utt2num_frames, .skipped, "
                   ".frontend.yaml")
    p.add_argument("--fs", type=int, default=16000, help="sample rate the audio is resampled to")
    p.add_argument("--num_mel_bins", type=int, default=80, help="mel filterbank channels (the feature dimension)")
    p.add_argument("--compress", choices=("true", "false"), default="false",
                   help="store Kaldi compressed matrices (about 4x smaller than float32)")
    p.add_argument("--feats_type", choices=("fbank", "raw"), default="fbank",
                   help="raw: the waveform as 16-bit samples (Kaldi wav entries); one row per sample")
    args = p.parse_args(argv)

    config = FbankConfig(sample_rate=args.fs, num_mel_bins=args.num_mel_bins)
    try:
        reader = AudioReader(args.data_dir, target_sr=args.fs)
    except (DataDirError, AudioError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    writer = ArkWriter(f"{args.out_prefix}.ark", compress=args.compress == "true")
    num_frames: list[str] = []
    skipped: list[str] = []
    try:
        for utt, samples, _ in tqdm(reader, total=len(reader), desc=f"fbank {args.data_dir}", mininterval=5, file=sys.stderr, disable=None):
            if args.feats_type == "raw":
                if len(samples) == 0:
                    print(f"WARNING: skipping utterance '{utt}': no samples", file=sys.stderr)
                    skipped.append(utt)
                    continue
                writer.write(utt, (args.fs, np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)))
                num_frames.append(f"{utt} {len(samples)}\n")
                continue
            if config.num_frames(len(samples)) == 0:
                print(f"WARNING: skipping utterance '{utt}': {len(samples)} samples is shorter than one "
                      f"{config.frame_length_ms:g} ms analysis window", file=sys.stderr)
                skipped.append(utt)
                continue
            feats = compute_fbank(samples, config)
            if not np.isfinite(feats).all():
                # Finite but huge samples (a float WAV far outside [-1, 1]) can overflow the energies.
                raise AudioError(f"{reader.describe(utt)}: its features have NaN or infinite values; "
                                 f"are its samples far outside [-1, 1]?")
            writer.write(utt, feats)
            num_frames.append(f"{utt} {feats.shape[0]}\n")
    except AudioError as e:
        writer.abort(e)
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    except BaseException as e:
        writer.abort(e)
        raise
    writer.close(f"{args.out_prefix}.scp")
    atomic_write_text(f"{args.out_prefix}.utt2num_frames", "".join(num_frames))
    atomic_write_text(f"{args.out_prefix}.skipped", "".join(f"{u}\n" for u in skipped))
    frontend = {"feats_type": "raw", "sample_rate": args.fs} if args.feats_type == "raw" else \
        {"feats_type": "fbank", **dataclasses.asdict(config)}
    atomic_write_text(f"{args.out_prefix}.frontend.yaml", yaml.safe_dump(frontend, sort_keys=False))
    print(f"compute_fbank: {len(num_frames)} utterances written, {len(skipped)} skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
