"""Decode a feature dump directory with a trained model.

    python -m bljust.bin.decode --exp_dir exp/asr --data_dir dump/fbank/test \\
        --token_dir data/token_list/char --cmvn dump/fbank/train/cmvn.ark --out_dir exp/asr/decode_test \\
        [--config conf/decode.yaml] [--beam_size 20 ...]

Writes ``<out_dir>/text`` ("<utt> <hypothesis>" per line, Kaldi's layout). ``method: greedy``
takes the best frame path; ``method: beam`` runs CTC beam search (``bljust.decode.beam``),
optionally with a word lexicon and a KenLM n-gram, or, for a supervised head with a search of its
own (RNN-T), that search, without lexicon or LM. With ``average.n`` > 0 the model is the
mean of ``n`` training checkpoints (``bljust.decode.average``), saved as
``<exp_dir>/model_avg<n>_<by>.pt`` and decoded instead of ``model_<checkpoint>.pt``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from bljust.bin import cli
from bljust.config import ConfigError, from_dict, load_yaml, merge, parse_overrides
from bljust.data.dataset import BucketBatchSampler, FeatureDataset, collate
from bljust.decode.average import BY, average_checkpoints
from bljust.decode.model_io import load_model
from bljust.fileio import atomic_write_text
from bljust.models.sup_head import Decoder, SupervisedHead
from bljust.text.tokenizer import Tokenizer
from bljust.train import checkpoint


METHODS = ("greedy", "beam")


@dataclass
class AverageConfig:
    n: int = 0  # > 0: decode the mean weights of n training checkpoints
    by: str = "best"  # which: "best" (lowest validation CTC loss) or "last" (newest)

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.by not in BY:
            raise ValueError(f"by must be 'best' or 'last', got '{self.by}'")


@dataclass
class DecodeConfig:
    method: str = "greedy"  # greedy (best path) or beam (CTC beam search; an RNN-T head's own)
    checkpoint: str = "best"  # which model package: "best" (lowest validation loss) or "last"
    max_frames: int = 40000  # padded audio per batch in 10 ms frames (raw audio: the same duration in samples)
    # beam search only (an RNN-T head's own search reads beam_size alone):
    beam_size: int = 10  # hypotheses kept per frame
    beam_size_token: int | None = None  # tokens tried per frame; null = all
    beam_threshold: float = 50.0  # prune hypotheses scoring this much below the best
    lm: str | None = None  # KenLM n-gram (ARPA or binary): over tokens without a lexicon, over words with one
    lm_weight: float = 1.0
    word_score: float = 0.0  # added per word (without a lexicon: per word-boundary token)
    lexicon: str | None = None  # "WORD t o k e n s" per line (python -m bljust.decode.beam); null = lexicon-free
    log_add: bool = True  # a hypothesis scores the sum (not the max) over its alignments
    average: AverageConfig = field(default_factory=AverageConfig)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be 'greedy' or 'beam', got '{self.method}'")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got '{self.checkpoint}'")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.beam_size_token is not None and self.beam_size_token < 1:
            raise ValueError(f"beam_size_token must be >= 1 or null, got {self.beam_size_token}")
        if self.beam_threshold <= 0:
            raise ValueError(f"beam_threshold must be > 0, got {self.beam_threshold}")
        for key in ("lm", "lexicon"):
            path = getattr(self, key)
            if path is not None and self.method != "beam":  # an LM silently ignored would be a trap
                raise ValueError(f"{key} needs method: beam (method is '{self.method}')")
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key}: no such file '{path}'")


def beam_decoder(config: DecodeConfig, tokenizer: Tokenizer, head: SupervisedHead) -> Decoder:
    """(head output, lengths) -> token ids per utterance: the supervised head's own beam search
    where it has one (RNN-T), else CTC beam search over its log-probabilities."""
    own = head.own_beam_search(config.beam_size)
    if own is not None:
        if config.lm is not None or config.lexicon is not None:
            raise ValueError("lm / lexicon: supported by CTC beam search only, not by this model's "
                             f"{type(head).__name__} beam search")
        return own
    from bljust.decode.beam import CtcBeamSearch

    return CtcBeamSearch(tokenizer, config.beam_size, config.beam_size_token, config.beam_threshold,
                         config.lm, config.lm_weight, config.word_score, config.lexicon, config.log_add).decode


@cli
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

    if args.ngpu > 0 and not torch.cuda.is_available():
        print("ERROR: --ngpu > 0 but no CUDA device is visible", file=sys.stderr)
        return 1
    device = "cuda" if args.ngpu > 0 else "cpu"
    tokenizer = Tokenizer(args.token_dir)
    try:
        model_path = Path(args.exp_dir) / f"model_{config.checkpoint}.pt"
        if config.average.n > 0:
            avg = config.average
            model_path = Path(args.exp_dir) / f"model_avg{avg.n}_{avg.by}.pt"
            # Atomic: decoding jobs of several test sets may write the same file at once.
            checkpoint.save(average_checkpoints(args.exp_dir, avg.n, avg.by), model_path)
            print(f"decode: averaged {avg.n} checkpoints by {avg.by} -> {model_path}", file=sys.stderr)
        model = load_model(model_path, device)
        if model.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"{Path(args.token_dir) / 'tokens.txt'} has {tokenizer.vocab_size} tokens, but {model_path} "
                             f"was trained with {model.vocab_size}: decode with the token list it was trained with")
        decode = model.sup.greedy  # greedy: the supervised head's own best path
        if config.method == "beam":
            decode = beam_decoder(config, tokenizer, model.sup)
    except ValueError as e:  # includes checkpoint.CheckpointError
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    dataset = FeatureDataset(args.data_dir, args.cmvn)
    if len(dataset) and dataset[dataset.utt_ids[0]][0].shape[1] != model.input_dim:
        print(f"ERROR: {args.data_dir}: features of dimension {dataset[dataset.utt_ids[0]][0].shape[1]}, but "
              f"{model_path} was trained on dimension {model.input_dim}", file=sys.stderr)
        return 1
    batches = BucketBatchSampler(dataset.num_frames, dataset.rows(config.max_frames), shuffle=False).batches
    hyps: dict[str, str] = {}
    network_s = search_s = 0.0
    with torch.no_grad():
        # A redrawn bar only at a terminal; a log file gets the summary line below.
        for utts in tqdm(batches, desc=f"decode {args.data_dir}", file=sys.stderr, disable=None):
            start = time.perf_counter()
            batch = collate(dataset, utts).to(torch.device(device))
            enc, out = model(batch.feats, batch.lengths)  # out: the head's, e.g. CTC log-probs
            if device == "cuda":
                torch.cuda.synchronize()
            middle = time.perf_counter()
            for utt, ids in zip(utts, decode(out, enc.lengths)):
                hyps[utt] = tokenizer.decode(ids)
            network_s, search_s = network_s + middle - start, search_s + time.perf_counter() - middle
    atomic_write_text(f"{args.out_dir}/text", "".join(f"{u} {hyps[u]}\n".replace(" \n", "\n") for u in sorted(hyps, key=str.encode)))
    audio_s = dataset.hours() * 3600
    print(f"decode: {len(hyps)} utterances ({audio_s:.1f} s of audio) -> {args.out_dir}/text; {config.method} "
          f"real-time factor {(network_s + search_s) / audio_s:.4f} (network {network_s / audio_s:.4f}, "
          f"search {search_s / audio_s:.4f}; {torch.get_num_threads()} threads, {device})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
