"""Decode a feature dump directory with a trained model.

    python -m bljust.bin.decode --model exp/asr/model_best.pt --data_dir dump/fbank/test \\
        --token_dir data/token_list/char --cmvn dump/fbank/train/cmvn.ark --out_dir exp/asr/decode_test \\
        [--config conf/decode.yaml]

Writes ``<out_dir>/text`` ("<utt> <hypothesis>" per line, Kaldi's layout).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch
from tqdm import tqdm

from bljust.config import ConfigError, from_dict, load_yaml, merge, parse_overrides
from bljust.data.dataset import BucketBatchSampler, FeatureDataset, collate
from bljust.decode.greedy import ctc_greedy
from bljust.decode.model_io import load_model
from bljust.fileio import atomic_write_text
from bljust.text.tokenizer import Tokenizer


@dataclass
class DecodeConfig:
    method: str = "greedy"
    checkpoint: str = "best"  # which model package: "best" (lowest validation loss) or "last"
    max_frames: int = 40000  # padded input frames per batch

    def __post_init__(self):
        if self.method != "greedy":
            raise ValueError(f"method must be 'greedy', got '{self.method}'")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got '{self.checkpoint}'")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="decoding YAML")
    p.add_argument("--exp_dir", required=True, help="experiment folder holding model_best.pt / model_last.pt")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--token_dir", required=True)
    p.add_argument("--cmvn")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--ngpu", type=int, default=0)
    args, rest = p.parse_known_args(argv)
    try:
        data = merge(load_yaml(args.config) if args.config else {}, parse_overrides(rest))
        config = from_dict(DecodeConfig, data, where=args.config or "decode config")
    except ConfigError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1

    device = "cuda" if args.ngpu > 0 else "cpu"
    model = load_model(f"{args.exp_dir}/model_{config.checkpoint}.pt", device)
    tokenizer = Tokenizer(args.token_dir)
    dataset = FeatureDataset(args.data_dir, args.cmvn)
    batches = BucketBatchSampler(dataset.num_frames, config.max_frames, shuffle=False).batches
    hyps: dict[str, str] = {}
    with torch.no_grad():
        for utts in tqdm(batches, desc=f"decode {args.data_dir}", file=sys.stderr):
            batch = collate(dataset, utts).to(torch.device(device))
            enc, log_probs = model(batch.feats, batch.lengths)
            for utt, ids in zip(utts, ctc_greedy(log_probs, enc.lengths)):
                hyps[utt] = tokenizer.decode(ids)
    atomic_write_text(f"{args.out_dir}/text", "".join(f"{u} {hyps[u]}\n".replace(" \n", "\n") for u in sorted(hyps, key=str.encode)))
    print(f"decode: {len(hyps)} utterances -> {args.out_dir}/text", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
