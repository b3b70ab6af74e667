"""Generate the synthetic speech corpus of the embedded recipe (egs/mini).

    python -m bljust.bin.make_synthetic_corpus --audio_dir downloads/audio --data_dir data

writes FLAC files under ``<audio_dir>/<split>/`` and Kaldi data directories
``<data_dir>/{train_labeled,train_unlabeled,dev,test}``. ``train_unlabeled`` has no
``text`` (its transcripts are in ``<data_dir>/local/train_unlabeled.text``, for analysis
only). Running it again with the same options does nothing.
"""
from __future__ import annotations

import argparse
import sys
import time

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.synth import SPLITS, SynthConfig, corpus_summary, make_corpus


@cli
def main(argv: list[str] | None = None) -> int:
    d = SynthConfig()
    p = argparse.ArgumentParser(prog="python -m bljust.bin.make_synthetic_corpus", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--audio_dir", required=True, help="where the FLAC files go")
    p.add_argument("--data_dir", required=True, help="where the data directories go")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed: the same options give the same corpus")
    p.add_argument("--num_train_labeled", type=int, default=d.num_train_labeled, help="utterances in train_labeled")
    p.add_argument("--num_train_unlabeled", type=int, default=d.num_train_unlabeled,
                   help="utterances in train_unlabeled")
    p.add_argument("--num_dev", type=int, default=d.num_dev, help="utterances in dev")
    p.add_argument("--num_test", type=int, default=d.num_test, help="utterances in test")
    p.add_argument("--voices_labeled", type=int, default=d.voices_labeled, help="voices in train_labeled")
    p.add_argument("--voices_unlabeled", type=int, default=d.voices_unlabeled, help="voices in train_unlabeled")
    p.add_argument("--voices_dev", type=int, default=d.voices_dev, help="voices in dev")
    p.add_argument("--voices_test", type=int, default=d.voices_test, help="voices in test")
    p.add_argument("--snr_min", type=float, default=d.snr_min, help="lowest SNR of an utterance, in dB")
    p.add_argument("--snr_max", type=float, default=d.snr_max, help="highest SNR of an utterance, in dB")
    p.add_argument("--num_workers", type=int, default=None,
                   help="processes rendering audio (default: up to 4, none for a small corpus); "
                        "the output does not depend on it")
    args = p.parse_args(argv)

    config = SynthConfig(seed=args.seed, num_train_labeled=args.num_train_labeled,
                         num_train_unlabeled=args.num_train_unlabeled, num_dev=args.num_dev, num_test=args.num_test,
                         voices_labeled=args.voices_labeled, voices_unlabeled=args.voices_unlabeled,
                         voices_dev=args.voices_dev, voices_test=args.voices_test,
                         snr_min=args.snr_min, snr_max=args.snr_max)
    try:
        config.validate()
    except ValueError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    start = time.time()
    make_corpus(args.audio_dir, args.data_dir, config, progress=True, num_workers=args.num_workers)
    summary = corpus_summary(args.data_dir)
    print(f"{'split':<16} {'utts':>6} {'hours':>7}")
    for split in SPLITS:
        n, hours = summary[split]
        print(f"{split:<16} {n:>6} {hours:>7.3f}")
    total_n, total_h = sum(n for n, _ in summary.values()), sum(h for _, h in summary.values())
    print(f"{'total':<16} {total_n:>6} {total_h:>7.3f}")
    print(f"make_synthetic_corpus: done in {time.time() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
