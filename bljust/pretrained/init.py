"""Initial weights of a training run (``init: FILE`` in a training YAML), and loading them.

An init file is a dict saved with ``torch.save`` that ``torch.load(weights_only=True)`` reads
(tensors, str, int, bool, float, None, lists and dicts only):

    {
      "encoder":      state dict in Wav2Vec2Encoder's layout ("model." + torchaudio's Wav2Vec2Model names,
                      and mask_emb [E] where the source has one),
      "quantizer":    state dict in ContrastiveHead's layout, or None: any of the parts
                      quantizer.{logits.weight, logits.bias, codebook}, project_q.{weight, bias},
                      final_proj.{weight, bias} (the target side of wav2vec 2.0's loss and its context projection),
      "source":       str, where the weights come from (format, path, model class),
      "encoder_conf": dict, the structure the weights imply (Wav2Vec2Config fields, shape "custom",
                      plus normalize_waveform),
      "unsup_conf":   dict or None, the contrastive head shape the quantizer implies (codebook_groups,
                      codebook_entries, code_dim, final_dim),
    }

``python -m bljust.bin.import_pretrained`` writes one from a Hugging Face or fairseq checkpoint.

``init:`` also takes a model package of an earlier training (``exp/<x>/model_best.pt``): its
encoder is copied (every tensor required, same shapes), each head only where the new model's
head has exactly its tensors. That starts, e.g., an RNN-T from an encoder trained with CTC.

``load_init(model, path)`` copies either kind into an AsrModel.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from bljust.models.quantizer import GumbelProductQuantizer
from bljust.models.wav2vec2 import STRUCTURE, Wav2Vec2Encoder

INIT_KEYS = ("encoder", "quantizer", "source", "encoder_conf", "unsup_conf")

# The contrastive head's parts an init file may carry, each loaded whole or not at all.
HEAD_PARTS = {
    "quantizer": ("quantizer.logits.weight", "quantizer.logits.bias", "quantizer.codebook"),
    "project_q": ("project_q.weight", "project_q.bias"),
    "final_proj": ("final_proj.weight", "final_proj.bias"),
}


class InitError(ValueError):
    """Weights that cannot initialise the model; the message names every offending tensor or setting."""


def shape_str(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def state_errors(given: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                 names: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Compare a state dict with the one a module expects -> (errors, extra names).

    errors: one line per missing or mis-shaped tensor, named as the source names it (``names``:
    our name -> the source's) and as bljust does; extra: names in ``given`` the module does not have."""
    names = names or {}
    errors = []
    for key, want in expected.items():
        theirs = names.get(key, key)
        ours = f" (bljust: {key})" if theirs != key else ""
        if key not in given:
            errors.append(f"missing: {theirs} {shape_str(want)}{ours}")
        elif tuple(given[key].shape) != tuple(want.shape):
            errors.append(f"mis-shaped: {theirs} is {shape_str(given[key])}, expected {shape_str(want)}{ours}")
    extra = [names.get(k, k) for k in given if k not in expected]
    return errors, extra


def structure_errors(implied: dict, config) -> list[str]:
    """Structural encoder_conf fields where the weights' structure and the model's config differ."""
    return [f"encoder_conf.{k}: the weights have {implied[k]!r}, the config {getattr(config, k)!r}"
            for k in STRUCTURE if k in implied and implied[k] != getattr(config, k)]


def head_parts(head: nn.Module | None, state: dict | None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Which parts of ``state`` (HEAD_PARTS) fit ``head`` -> (the state dict to load, report lines)."""
    lines: list[str] = []
    if not state:
        if head is not None and isinstance(getattr(head, "quantizer", None), GumbelProductQuantizer):
            lines.append("unsup.quantizer, project_q, final_proj: freshly initialised (the weights carry no quantizer)")
        return {}, lines
    if head is None or not isinstance(getattr(head, "quantizer", None), GumbelProductQuantizer):
        kind = "no unsupervised head" if head is None else f"unsupervised head {type(head).__name__} has no quantizer"
        return {}, [f"quantizer: not used ({kind})"]
    mine = head.state_dict()
    load: dict[str, torch.Tensor] = {}
    for part, keys in HEAD_PARTS.items():
        present = [k for k in keys if k in state]
        if not present:
            lines.append(f"unsup.{part}: freshly initialised (not in the weights)")
            continue
        problems = [k for k in keys if k not in state or k not in mine or tuple(state[k].shape) != tuple(mine[k].shape)]
        if problems:
            detail = "; ".join(
                f"{k}: weights {shape_str(state[k]) if k in state else 'missing'}, "
                f"model {shape_str(mine[k]) if k in mine else 'missing'}" for k in problems)
            lines.append(f"unsup.{part}: re-initialised, shapes do not match ({detail})")
            continue
        load.update({k: state[k] for k in keys})
        lines.append(f"unsup.{part}: carried over ({', '.join(shape_str(state[k]) for k in keys)})")
    return load, lines


PACKAGE_KEYS = ("config", "input_dim", "vocab_size", "model")  # a trained model package (model_best.pt)


def is_package(obj) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in PACKAGE_KEYS) and isinstance(obj["model"], dict)


def read_init(path: str | os.PathLike) -> dict:
    """Load and check an init file's format (an import, or a trained model package)."""
    try:
        init = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InitError(f"init file not found: {path}") from None
    except Exception as e:  # not a torch file, or objects beyond plain data
        raise InitError(f"{path}: not an init file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if is_package(init):
        return init
    if not isinstance(init, dict) or any(k not in init for k in INIT_KEYS) or not isinstance(init["encoder"], dict):
        raise InitError(f"{path}: not an init file (a dict with {', '.join(INIT_KEYS)}, written by "
                        "python -m bljust.bin.import_pretrained, or a trained model_best.pt / model_last.pt)")
    return init


# Encoder tensors that exist only with some settings (wav2vec2's mask_emb: mask_prob > 0).
OPTIONAL_ENCODER = ("mask_emb",)


def load_encoder(encoder: nn.Module, given: dict[str, torch.Tensor], where: str | os.PathLike) -> list[str]:
    """Copy ``given`` into ``encoder`` -> report lines about the optional tensors.

    Every other tensor is required with its shape, and nothing else may be given (an InitError
    lists every difference); an optional one is carried over where both sides have it."""
    mine = encoder.state_dict()
    core = {k: v for k, v in given.items() if k not in OPTIONAL_ENCODER}
    errors, extra = state_errors(core, {k: v for k, v in mine.items() if k not in OPTIONAL_ENCODER})
    errors += [f"unexpected: {k}" for k in extra]
    if errors:
        raise InitError(f"{where} does not fit the model's encoder:\n  " + "\n  ".join(errors))
    lines = []
    for key in OPTIONAL_ENCODER:
        if key in mine and key in given and given[key].shape == mine[key].shape:
            core[key] = given[key]
            lines.append(f"encoder.{key}: carried over")
        elif key in mine:
            lines.append(f"encoder.{key}: freshly initialised (" + ("not in the weights)" if key not in given else
                         f"the weights' is {shape_str(given[key])}, the model's {shape_str(mine[key])})"))
        elif key in given:
            lines.append(f"encoder.{key}: in the weights, not used by this config")
    encoder.load_state_dict(core, strict=False)  # not strict: an optional tensor may stay fresh; the rest was checked
    return lines


def load_init(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Copy the init file at ``path`` into ``model`` (an AsrModel) -> report lines, for the caller
    to log (the trainer does): what was loaded, and every part left freshly initialised and why.

    The encoder must be a wav2vec2 encoder of the file's structure: every tensor is required (but
    ``mask_emb``, used with ``mask_prob`` > 0) and any difference is an InitError naming them. The
    contrastive head's quantizer, project_q and final_proj are each carried over when the head
    has them with the same shapes, otherwise they keep their fresh initialisation (said in the
    report). The supervised head and the contrastive head's mask embedding are never in an init
    file. A model package goes to ``load_package``."""
    init = read_init(path)
    if is_package(init):
        return load_package(model, init, path)
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Wav2Vec2Encoder):
        raise InitError(f"{path}: wav2vec 2.0 weights need encoder: wav2vec2, the model's encoder is "
                        f"{type(encoder).__name__}")
    errors = structure_errors(init["encoder_conf"], encoder.config)
    if errors:
        raise InitError(f"{path} does not fit the model's encoder:\n  " + "\n  ".join(errors))
    optional = load_encoder(encoder, init["encoder"], path)
    lines = [f"encoder: {len(init['encoder'])} tensors from {init['source']}", *optional]
    implied_norm = init["encoder_conf"].get("normalize_waveform")
    if implied_norm is not None and implied_norm != encoder.config.normalize_waveform:
        lines.append(f"warning: the weights were trained with normalize_waveform {implied_norm}, "
                     f"encoder_conf.normalize_waveform is {encoder.config.normalize_waveform}")
    head = getattr(model, "unsup", None)
    load, head_lines = head_parts(head, init["quantizer"])
    if load:
        head.load_state_dict(load, strict=False)
    lines += head_lines
    if head is not None and getattr(head, "mask_embedding", None) is not None:
        lines.append("unsup.mask_embedding: freshly initialised (wav2vec 2.0's mask_emb lives after the feature "
                     "projection, bljust's in the latent space)")
    return lines


def load_package(model: nn.Module, package: dict, path: str | os.PathLike) -> list[str]:
    """Copy a trained model package's encoder into ``model`` -> report lines.

    The encoder must have the same tensors with the same shapes (an InitError lists every
    difference). Each head (``sup``, ``unsup``) is carried over when the model's has exactly the
    package's tensor names and shapes and the vocabulary sizes agree, and otherwise keeps its
    fresh initialisation (a CTC head does not fit an RNN-T one). That the token lists are the
    same, not only their sizes, is the caller's to ensure: the recipes share one per corpus."""
    state = package["model"]
    config = package["config"]
    errors = []
    if package["input_dim"] != model.input_dim:
        errors.append(f"input_dim: the package's is {package['input_dim']}, the data's {model.input_dim}")
    if config.get("encoder") != model.config.encoder:
        errors.append(f"encoder: the package's is {config.get('encoder')!r}, the config's {model.config.encoder!r}")
    if errors:
        raise InitError(f"{path} does not fit the model's encoder:\n  " + "\n  ".join(errors))
    part = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    optional = load_encoder(model.encoder, part, path)
    lines = [f"encoder: {len(part)} tensors from the model package {path} ({config.get('encoder')}, "
             f"step {package.get('steps', '?')})", *optional]
    if config.get("input_norm", "none") != model.config.input_norm:
        lines.append(f"warning: the package was trained with input_norm {config.get('input_norm', 'none')}, "
                     f"this config has {model.config.input_norm}")
    for name in ("sup", "unsup"):
        head = getattr(model, name)
        if head is None:
            continue
        theirs = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        mine = head.state_dict()
        fits = (config.get(name) == getattr(model.config, name) and package["vocab_size"] == model.vocab_size
                and state_errors(theirs, mine) == ([], []))
        if fits and mine:
            head.load_state_dict(theirs)
            lines.append(f"{name}: {len(theirs)} tensors carried over ({config.get(name)})")
        else:
            lines.append(f"{name}: freshly initialised (the package's {config.get(name)} head does not fit "
                         f"{getattr(model.config, name)} of this config)" if theirs else
                         f"{name}: freshly initialised (not in the package)")
    return lines
