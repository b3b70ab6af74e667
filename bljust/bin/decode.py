"""Decode a feature dump directory with a trained model.

    python -m bljust.bin.decode --exp_dir exp/asr --data_dir dump/fbank/test \\
        --token_dir data/token_list/char --cmvn dump/fbank/train/cmvn.ark --out_dir exp/asr/decode_test \\
        [--config conf/decode.yaml] [--beam_size 20 ...]

Writes ``<out_dir>/text`` ("<utt> <hypothesis>" per line, Kaldi's layout). ``method: greedy``
takes the best frame path; ``method: beam`` runs CTC beam search (``bljust.decode.beam``),
optionally with a word lexicon and a KenLM n-gram, or, for a supervised head with a search of its
own (RNN-T), that search, without lexicon or LM. With ``average.n`` > 0 the model is the
mean of ``n`` training checkpoints (``bljust.decode.average``), saved as
``<exp_dir>/model_avg<n>_<by>.pt`` and decoded instead of ``model_<checkpoint>.pt``. A package that
carries its token list and CMVN (format 2, as training writes them now) needs neither --token_dir nor --cmvn;
given, they must equal the package's.
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
from bljust.bin.help_format import HelpFormatter
from bljust.config import ConfigError, from_dict, load_yaml, merge, parse_overrides
from bljust.data.dataset import BucketBatchSampler, FeatureDataset, collate
from bljust.decode.average import BY, average_checkpoints
from bljust.decode.model_io import model_from_package, resolve_cmvn, resolve_tokenizer
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
    p = argparse.ArgumentParser(prog="python -m bljust.bin.decode", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--config", help="decoding YAML; any key can also be given as --key value after the options "
                   "(default: greedy search with model_best.pt)")
    p.add_argument("--exp_dir", required=True, help="experiment folder holding model_best.pt / model_last.pt")
    p.add_argument("--data_dir", required=True, help="feature dump directory to decode")
    p.add_argument("--token_dir", help="token list directory the model was trained with (default: the package's "
                   "own; needed for a package without one; given, it must equal the package's)")
    p.add_argument("--cmvn", help="global CMVN statistics the model was trained with, a Kaldi stats matrix (default: "
                   "the package's own; a package without any: features not normalized; given, it must equal the package's)")
    p.add_argument("--out_dir", required=True, help="folder the hypotheses are written to (<out_dir>/text)")
    p.add_argument("--ngpu", type=int, default=0, help="0: CPU; N > 0: decode on a CUDA device")
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
    try:
        model_path = Path(args.exp_dir) / f"model_{config.checkpoint}.pt"
        avg = config.average
        package = average_checkpoints(args.exp_dir, avg.n, avg.by) if avg.n > 0 else checkpoint.load(model_path)
        source = Path(args.exp_dir) / "model_last.pt" if avg.n > 0 else model_path  # of the tokens and CMVN
        tokenizer = resolve_tokenizer(package, source, args.token_dir)
        cmvn = resolve_cmvn(package, source, args.cmvn)
        if avg.n > 0:
            model_path = Path(args.exp_dir) / f"model_avg{avg.n}_{avg.by}.pt"
            # Atomic: decoding jobs of several test sets may write the same file at once.
            checkpoint.save(package, model_path)
            print(f"decode: averaged {avg.n} checkpoints by {avg.by} -> {model_path}", file=sys.stderr)
        model = model_from_package(package, model_path, device)
        decode = model.sup.greedy  # greedy: the supervised head's own best path
        if config.method == "beam":
            decode = beam_decoder(config, tokenizer, model.sup)
    except ValueError as e:  # includes checkpoint.CheckpointError
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    dataset = FeatureDataset(args.data_dir)
    dim = dataset[dataset.utt_ids[0]][0].shape[1] if len(dataset) else model.input_dim
    if dim != model.input_dim:
        print(f"ERROR: {args.data_dir}: features of dimension {dim}, but "
              f"{model_path} was trained on dimension {model.input_dim}", file=sys.stderr)
        return 1
    if cmvn is not None:  # the package's, or --cmvn's (equal to it where the package has one)
        dataset.cmvn, (dataset.mean, dataset.istd) = args.cmvn or f"{source} (its CMVN)", cmvn
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
