"""Train an ASR model.

    python -m bljust.bin.train --config conf/train.yaml --train_dir dump/fbank/train \\
        --valid_dir dump/fbank/dev --token_dir data/token_list/char \\
        --cmvn dump/fbank/train/cmvn.ark --exp_dir exp/asr_train [--unlabeled_dir dump/fbank/train_unlabeled] \\
        [--resume] [--phases.train.lr 1e-3 ...]

Any config key can be overridden after the named options: ``--phases.train.lr 5e-4``,
``--encoder_conf.lstm_layers 4``, ``--max_epochs=20``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from bljust.config import ConfigError, parse_overrides
from bljust.train import checkpoint
from bljust.train.config import load_train_config
from bljust.train.trainer import NonFiniteError, Trainer, TrainData


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="training YAML")
    p.add_argument("--train_dir", required=True, help="labeled feature dump directory")
    p.add_argument("--valid_dir", required=True)
    p.add_argument("--unlabeled_dir", help="unlabeled feature dump directory (strategies pt_ft, just, bljust)")
    p.add_argument("--token_dir", required=True)
    p.add_argument("--cmvn", help="global CMVN statistics (Kaldi stats matrix)")
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in exp_dir")
    p.add_argument("--ngpu", type=int, default=0, help="0: CPU; 1: the first CUDA device")
    args, rest = p.parse_known_args(argv)

    try:
        config = load_train_config(args.config, parse_overrides(rest))
    except ConfigError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    if args.ngpu > 0 and not torch.cuda.is_available():
        print("ERROR: --ngpu > 0 but no CUDA device is visible", file=sys.stderr)
        return 1
    if args.ngpu > 1:
        print("ERROR: --ngpu > 1 (multi-GPU training) is not supported yet; use --ngpu 1", file=sys.stderr)
        return 1
    if not args.resume and checkpoint.step_checkpoints(f"{args.exp_dir}/checkpoints"):
        print(f"ERROR: {args.exp_dir} already holds checkpoints; pass --resume to continue or choose another --exp_dir",
              file=sys.stderr)
        return 1
    try:
        trainer = Trainer(config, TrainData(args.train_dir, args.valid_dir, args.token_dir, args.cmvn, args.unlabeled_dir), args.exp_dir,
                          device="cuda" if args.ngpu > 0 else "cpu")
        if args.resume:
            trainer.resume()
    except (ConfigError, ValueError) as e:  # ValueError includes checkpoint.CheckpointError
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    except NonFiniteError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
