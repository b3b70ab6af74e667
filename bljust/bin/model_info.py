"""Which parameters each loss trains: theta / phi / eta sizes, and the share of theta that f and g reach.

    python -m bljust.bin.model_info --config conf/train_bljust.yaml [--input_dim 80 --vocab_size 30] [--key value ...]

On a random batch (4 utterances of 2.5-4 s) it takes the gradient of f and of g with respect to
the encoder's parameters and prints, per encoder block, how many of its parameters (in scalars)
get a non-zero gradient from each loss. A parameter tensor counts as reached when any element of
its gradient is non-zero. The last two lines are ``f reaches <P>% of theta`` and ``g reaches <P>% of theta``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.config import ConfigError, parse_overrides
from bljust.data.dataset import Batch
from bljust.models import ENCODERS
from bljust.models.asr_model import AsrModel
from bljust.train.config import load_train_config
from bljust.train.diagnostics import reach_percent, theta_reach


def random_batch(input_dim: int, vocab_size: int, seed: int = 0, rows_per_frame: int = 1) -> Batch:
    """4 utterances of 4 to 2.5 s: 10 ms frames, or rows_per_frame rows (samples) each."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([400, 350, 300, 250]) * rows_per_frame
    feats = torch.randn(4, int(lengths[0]), input_dim, generator=gen)
    feats = feats.masked_fill(torch.arange(int(lengths[0]))[None, :, None] >= lengths[:, None, None], 0.0)
    target_lengths = torch.tensor([20, 18, 15, 12])
    targets = torch.randint(1, vocab_size, (4, 20), generator=gen)
    targets = targets.masked_fill(torch.arange(20)[None] >= target_lengths[:, None], 0)
    return Batch([f"random-{i}" for i in range(4)], feats, lengths, targets, target_lengths)


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.model_info", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--config", required=True, help="training YAML")
    p.add_argument("--input_dim", type=int, help="feature dimension (default: 80 fbank bins, 1 for raw audio)")
    p.add_argument("--vocab_size", type=int, default=30, help="tokens, blank included")
    args, rest = p.parse_known_args(argv)
    try:
        config = load_train_config(args.config, parse_overrides(rest))
        torch.manual_seed(config.seed)
        raw = getattr(ENCODERS.get(config.encoder, (None,))[0], "reads_waveform", False)
        input_dim = args.input_dim or (1 if raw else 80)
        model = AsrModel(input_dim, args.vocab_size, config.model, where=args.config)
    except ConfigError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    counts = {k: sum(p.numel() for p in ps) for k, ps in model.parameter_groups().items()}
    unsup = (config.unsup if model.unsup is not None
             else f"none (strategy {config.strategy} reads no unlabeled speech)")
    print(f"{args.config}: encoder {config.encoder}, supervised head {config.sup}, unsupervised head {unsup}")
    for group, what in (("theta", "encoder"), ("phi", "supervised head"), ("eta", "unsupervised head")):
        print(f"  {group:5s} {counts[group]:>11,d} parameters ({what})")
    reach = theta_reach(model, random_batch(input_dim, args.vocab_size, rows_per_frame=160 if raw else 1))
    print(f"  {'theta block':24s} {'parameters':>11s}" + "".join(f" {loss + ' reaches':>10s}" for loss in reach))
    for block, (_, total) in reach["f"].items():
        print(f"  {block:24s} {total:>11,d}" + "".join(f" {100.0 * r[block][0] / total:>9.1f}%" for r in reach.values()))
    for loss in reach:
        print(f"{loss} reaches {reach_percent(reach[loss]):.1f}% of theta")
    return 0


if __name__ == "__main__":
    sys.exit(main())
