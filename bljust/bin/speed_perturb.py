"""Make a speed-perturbed copy of a data directory, with the perturbed audio written to disk.

    python -m bljust.bin.speed_perturb --factors "0.9 1.0 1.1" data/train data/train_sp dump/sp_audio/train

Utterance and speaker ids get the prefix ``sp<factor>-`` (none for 1.0), so every
copy is a distinct speaker and ids stay sorted consistently.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.audio import AudioError, AudioReader
from bljust.data.datadir import load_data_dir, write_data_dir
from bljust.features.speed_perturb import perturb_speed
from bljust.fileio import atomic_path


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.speed_perturb", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--factors", default="0.9 1.0 1.1", help="speed factors, space-separated (1.0: an unchanged copy)")
    p.add_argument("--fs", type=int, default=16000, help="sample rate the audio is resampled to and written at")
    p.add_argument("src", help="data directory to perturb")
    p.add_argument("dst", help="data directory to write")
    p.add_argument("audio_dir", help="folder the perturbed FLAC files are written to")
    args = p.parse_args(argv)
    factors = [float(f) for f in args.factors.split()]
    src = load_data_dir(args.src)
    audio_dir = Path(args.audio_dir).resolve()
    wav_scp, utt2spk, text, utt2dur = {}, {}, {}, {}
    try:
        reader = AudioReader(args.src, target_sr=args.fs)
        for utt, samples, sr in tqdm(reader, total=len(reader), desc="speed perturbation", file=sys.stderr, disable=None):
            for f in factors:
                prefix = "" if f == 1.0 else f"sp{f:g}-"
                new = prefix + utt
                out = audio_dir / f"{new}.flac"
                with atomic_path(out) as tmp:
                    sf.write(tmp, perturb_speed(samples, f), sr)
                wav_scp[new] = str(out)
                utt2spk[new] = prefix + src.utt2spk[utt]
                if src.text is not None:
                    text[new] = src.text[utt]
                utt2dur[new] = round(len(samples) / sr / f, 3)
    except AudioError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    write_data_dir(args.dst, wav_scp=wav_scp, utt2spk=utt2spk, text=text or None, utt2dur=utt2dur)
    print(f"speed_perturb: {len(wav_scp)} utterances ({len(factors)} factors) -> {args.dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
