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

import torch
from tqdm import tqdm

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.config import ConfigError
from bljust.data.dataset import BucketBatchSampler, FeatureDataset, collate
from bljust.decode.config import DecodeConfig, chosen_package, load_decode_config
from bljust.decode.model_io import model_from_package, resolve_cmvn, resolve_tokenizer
from bljust.fileio import atomic_write_text
from bljust.models.sup_head import Decoder, SupervisedHead
from bljust.text.tokenizer import Tokenizer


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
        config = load_decode_config(args.config, rest)
    except ConfigError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1

    if args.ngpu > 0 and not torch.cuda.is_available():
        print("ERROR: --ngpu > 0 but no CUDA device is visible", file=sys.stderr)
        return 1
    device = "cuda" if args.ngpu > 0 else "cpu"
    try:
        package, model_path, source = chosen_package(args.exp_dir, config)  # source: of the tokens and CMVN
        tokenizer = resolve_tokenizer(package, source, args.token_dir)
        cmvn = resolve_cmvn(package, source, args.cmvn)
        if config.average.n > 0:
            print(f"decode: averaged {config.average.n} checkpoints by {config.average.by} -> {model_path}",
                  file=sys.stderr)
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
