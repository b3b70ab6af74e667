"""Turn a pre-trained wav2vec 2.0 checkpoint into initial weights for training (``init: OUT``).

    python -m bljust.bin.import_pretrained --format hf|fairseq SRC OUT [--config conf/train.yaml] [--trust_pickle]

SRC: a Hugging Face model folder (config.json + model.safetensors or pytorch_model.bin; models
Wav2Vec2Model, Wav2Vec2ForPreTraining, Wav2Vec2ForCTC) or a fairseq wav2vec 2.0 checkpoint file
(pre-training or fine-tuned). Neither library is needed.
OUT: the init file (format: bljust/pretrained/init.py).
--config: a training YAML to check the weights against: ``encoder: wav2vec2`` with an encoder_conf
of the same structure, and its unsupervised head, whose quantizer, project_q and final_proj are
carried over when their shapes match (otherwise they stay freshly initialised). Without it the
encoder takes the structure the checkpoint describes and the quantizer is kept in its own shape.
--trust_pickle: also read fairseq files that hold pickled objects beyond plain data (unpickling
can run code: only for files from a source you trust).

Prints the source, the encoder_conf the weights imply, the source's weights nothing takes, our
weights the source lacks (freshly initialised) and what happens to the quantizer. Missing or
mis-shaped encoder weights are an error naming them (exit 1).
"""
from __future__ import annotations

import argparse
import sys

import torch
import yaml

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.config import ConfigError, from_dict, load_yaml
from bljust.fileio import atomic_open
from bljust.models import UNSUP_HEADS
from bljust.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder
from bljust.pretrained.convert import Converted
from bljust.pretrained.fairseq import read_fairseq
from bljust.pretrained.hf import read_huggingface
from bljust.pretrained.init import HEAD_PARTS, OPTIONAL_ENCODER, InitError, head_parts, state_errors, structure_errors


def target_from_yaml(path: str) -> tuple[Wav2Vec2Config, torch.nn.Module | None]:
    """The encoder config and (on the meta device) the unsupervised head a training YAML builds.
    Only the model keys are read, so a YAML naming ``init:`` already can be checked."""
    data = load_yaml(path)
    encoder = data.get("encoder", "cnn_lstm")
    if encoder != "wav2vec2":
        raise ConfigError(f"{path}: encoder is '{encoder}'; pre-trained wav2vec 2.0 weights need encoder: wav2vec2")
    config = from_dict(Wav2Vec2Config, data.get("encoder_conf") or {}, path, "encoder_conf.")
    unsup = data.get("unsup", "cpc")
    if unsup not in UNSUP_HEADS:
        raise ConfigError(f"{path}: unknown unsup '{unsup}' (known: {', '.join(UNSUP_HEADS)})")
    head_cls, head_conf_cls = UNSUP_HEADS[unsup]
    head_conf = from_dict(head_conf_cls, data.get("unsup_conf") or {}, path, "unsup_conf.")
    with torch.device("meta"):
        head = head_cls(config.embed_dim, config.conv_layers[-1][0], head_conf)
    return config, head


def _flow(data: dict) -> str:
    """A dict as one line of YAML, keys in their order."""
    return yaml.safe_dump(data, default_flow_style=True, sort_keys=False, width=10**6).strip()


def build_init(conv: Converted, target: Wav2Vec2Config, head: torch.nn.Module | None) -> tuple[dict, list[str]]:
    """Check the converted weights against the target encoder (and head) -> (init dict, report lines)."""
    errors = structure_errors(conv.config.structure(), target)
    if errors:
        raise InitError(f"{conv.source}: the weights' structure differs from the config's:\n  " + "\n  ".join(errors))
    with torch.device("meta"):  # shapes only, nothing allocated
        expected = {k: v for k, v in Wav2Vec2Encoder(1, target).state_dict().items() if k not in OPTIONAL_ENCODER}
    errors, extra = state_errors(conv.encoder, expected, {k: conv.source_name(k) for k in expected} | conv.names)
    extra = [k for k in extra if k not in OPTIONAL_ENCODER]
    if errors:
        raise InitError(f"{conv.source} does not fit the wav2vec2 encoder it describes:\n  " + "\n  ".join(errors))
    encoder = {k: v for k, v in conv.encoder.items() if k in expected or k in OPTIONAL_ENCODER}
    lines = [f"source: {conv.source}"]
    params = sum(v.numel() for v in encoder.values())
    implied = {**conv.config.structure(), "normalize_waveform": conv.config.normalize_waveform}
    preset = conv.config.preset_name()
    shown = {"shape": preset, "normalize_waveform": conv.config.normalize_waveform} if preset else implied
    lines.append(f"encoder: {len(encoder)} tensors, {params:,d} parameters; "
                 f"encoder_conf: {_flow(shown)}")
    lines.append("mask_emb (fine-tuning time masking, encoder_conf.mask_prob): " +
                 (f"carried over ({conv.names['mask_emb']})" if "mask_emb" in encoder else "not in the source"))
    if head is not None:
        quantizer, head_lines = head_parts(head, conv.head)
    else:
        quantizer = dict(conv.head)
        head_lines = [f"unsup.{part}: kept in the checkpoint's shape "
                      f"({', '.join(str(list(quantizer[k].shape)) for k in keys)})"
                      for part, keys in HEAD_PARTS.items() if all(k in quantizer for k in keys)]
        if conv.head_conf:
            head_lines.append(f"unsup_conf of a contrastive head that takes them: {_flow(conv.head_conf)}")
        if not quantizer:
            head_lines.append("quantizer: none in the checkpoint; a contrastive head starts freshly initialised")
    lines += head_lines
    unused = sorted(set(conv.unused) | set(extra) | {conv.names[k] for k in conv.head if k not in quantizer})
    lines.append(f"source weights not used ({len(unused)}): {', '.join(unused) if unused else '-'}")
    mine = None if head is None else head.state_dict()  # without a config: a contrastive head of the source's shape
    fresh = ["sup (the supervised head)"]
    fresh += [f"unsup.{k}" for k in ("mask_embedding", *(k for keys in HEAD_PARTS.values() for k in keys))
              if k not in quantizer and (mine is None or k in mine)]
    lines.append(f"our weights not in the source (freshly initialised): {', '.join(fresh)}")
    if target.normalize_waveform != conv.config.normalize_waveform:
        lines.append(f"warning: the weights were trained with normalize_waveform {conv.config.normalize_waveform}, "
                     f"the config has {target.normalize_waveform}")
    lines += [f"note: {n}" for n in conv.notes]
    init = {"encoder": encoder, "quantizer": quantizer or None, "source": conv.source, "encoder_conf": implied,
            "unsup_conf": conv.head_conf}
    return init, lines


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.import_pretrained", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--format", required=True, choices=("hf", "fairseq"), help="hf: Hugging Face folder; fairseq: .pt file")
    p.add_argument("src", help="Hugging Face model folder or fairseq checkpoint")
    p.add_argument("out", help="init file to write (a training YAML names it with init:)")
    p.add_argument("--config", help="training YAML to check the weights against "
                   "(default: the encoder the weights describe)")
    p.add_argument("--trust_pickle", action="store_true", help="fairseq: allow pickled objects beyond plain data")
    args = p.parse_args(argv)
    try:
        conv = read_huggingface(args.src) if args.format == "hf" else read_fairseq(args.src, args.trust_pickle)
        target, head = (conv.config, None) if args.config is None else target_from_yaml(args.config)
        init, lines = build_init(conv, target, head)
    except (InitError, ConfigError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    with atomic_open(args.out, "wb", encoding=None) as f:
        torch.save(init, f)
    for line in lines:
        print(line)
    print(f"wrote {args.out}; name it in the training YAML with init: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
