"""fairseq wav2vec 2.0 checkpoints -> ``Converted`` (``bljust.pretrained.convert``), read
without the fairseq library.

A checkpoint is a ``torch.save``'d dict with the config in ``cfg`` (``cfg["model"]``,
``cfg["task"]``) or, in older files, an ``args`` Namespace, and the state dict in ``model``;
a pre-training model (``Wav2Vec2Model``) or a fine-tuned one (``Wav2VecCtc``: weights under
``w2v_encoder.w2v_model.``, config in ``cfg["model"]["w2v_args"]``). The name maps are tabled
in ``bljust.pretrained.convert``.
"""
from __future__ import annotations

import argparse
import ast
import pickle
import re
from pathlib import Path

import torch

from bljust.pretrained.convert import LAYER, POS_CONV, TA_LAYER, WEIGHT_NORM, Converted, build_config, split_state
from bljust.pretrained.init import InitError

FAIRSEQ_CONV_DEFAULT = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"

FAIRSEQ_ENCODER_MAP = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)$", r"model.feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)$", r"model.encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)$", r"model.encoder.feature_projection.projection.\1"),
    *[(r"encoder\.pos_conv\.0\." + src, POS_CONV + dst) for src, dst in WEIGHT_NORM],
    (r"encoder\.layer_norm\.(weight|bias)$", r"model.encoder.transformer.layer_norm.\1"),
    (LAYER + r"self_attn\.(q|k|v|out)_proj\.(weight|bias)$", TA_LAYER + r"attention.\2_proj.\3"),
    (LAYER + r"self_attn_layer_norm\.(weight|bias)$", TA_LAYER + r"layer_norm.\2"),
    (LAYER + r"fc1\.(weight|bias)$", TA_LAYER + r"feed_forward.intermediate_dense.\2"),
    (LAYER + r"fc2\.(weight|bias)$", TA_LAYER + r"feed_forward.output_dense.\2"),
    (LAYER + r"final_layer_norm\.(weight|bias)$", TA_LAYER + r"final_layer_norm.\2"),
    (r"mask_emb$", "mask_emb"),
]
FAIRSEQ_HEAD_MAP = [
    (r"quantizer\.vars$", "quantizer.codebook"),
    (r"quantizer\.weight_proj\.(weight|bias)$", r"quantizer.logits.\1"),
    (r"project_q\.(weight|bias)$", r"project_q.\1"),
    (r"final_proj\.(weight|bias)$", r"final_proj.\1"),
]

# Our names -> the source's, to name a tensor the source lacks as the source would.
_TA_LAYER_IN = r"model\.encoder\.transformer\.layers\.(\d+)\."
FAIRSEQ_INVERSE = [
    (r"model\.feature_extractor\.conv_layers\.(\d+)\.conv\.(.*)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"model\.feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(.*)", r"feature_extractor.conv_layers.\1.2.1.\2"),
    (r"model\.encoder\.feature_projection\.layer_norm\.(.*)", r"layer_norm.\1"),
    (r"model\.encoder\.feature_projection\.projection\.(.*)", r"post_extract_proj.\1"),
    (r"model\.encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"model\.encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"model\.encoder\.transformer\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"model\.encoder\.transformer\.layer_norm\.(.*)", r"encoder.layer_norm.\1"),
    (_TA_LAYER_IN + r"attention\.(.*)", r"encoder.layers.\1.self_attn.\2"),
    (_TA_LAYER_IN + r"layer_norm\.(.*)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (_TA_LAYER_IN + r"feed_forward\.intermediate_dense\.(.*)", r"encoder.layers.\1.fc1.\2"),
    (_TA_LAYER_IN + r"feed_forward\.output_dense\.(.*)", r"encoder.layers.\1.fc2.\2"),
    (_TA_LAYER_IN + r"final_layer_norm\.(.*)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"mask_emb", "mask_emb"),
]


class _Stub:
    """Stands in for a pickled object of a package that is not installed (fairseq's meters, ...)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub,), {"__module__": module})


class _LenientPickle:
    """A ``pickle_module`` for torch.load whose Unpickler replaces classes it cannot import by stubs."""

    Unpickler = _LenientUnpickler
    load = staticmethod(lambda f, **kw: _LenientUnpickler(f, **kw).load())


def load_fairseq_file(path: str | Path, trust_pickle: bool = False) -> dict:
    """torch.load a fairseq checkpoint. Plain data and argparse Namespaces load safely
    (weights_only); anything else only with ``trust_pickle`` (unpickling can run code), and then
    classes of packages not installed here (fairseq's) become inert stubs."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InitError(f"checkpoint not found: {path}") from None
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            found = re.search(r"GLOBAL (\S+)", str(e))
            what = f"objects of {found.group(1)}" if found else "Python objects"
            raise InitError(f"{path}: holds pickled {what} beyond tensors and plain data; if you trust where it "
                            "comes from, re-run with --trust_pickle (unpickling can run code)") from None
    except Exception as e:  # not a torch file at all
        raise InitError(f"{path}: not a torch checkpoint ({type(e).__name__}: {e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_LenientPickle)
    except Exception as e:
        raise InitError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def _section(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, argparse.Namespace):
        return vars(value)
    if isinstance(value, dict):
        return value
    if isinstance(value, _Stub):  # e.g. an omegaconf container that could not be imported
        raise InitError("the checkpoint's config is an object of a package not installed here "
                        f"({type(value).__module__}.{type(value).__name__}); re-save it with plain dicts")
    raise InitError(f"the checkpoint's config has an unexpected type {type(value).__name__}")


def _fairseq_sections(ckpt: dict) -> tuple[dict, dict]:
    """-> (model config, task config) of the wav2vec 2.0 network in the checkpoint."""
    if ckpt.get("cfg") is not None:
        cfg = _section(ckpt["cfg"])
        model, task = _section(cfg.get("model")), _section(cfg.get("task"))
    elif ckpt.get("args") is not None:
        model = task = _section(ckpt["args"])
    else:
        raise InitError("the checkpoint has neither 'cfg' nor 'args'")
    if "w2v_args" in model:  # a fine-tuned model: the network's own config is its pre-training one
        inner = model["w2v_args"]
        if inner is None:
            raise InitError("the fine-tuned checkpoint does not hold its pre-training config (w2v_args)")
        inner = _section(inner)
        if "model" in inner:
            outer_task = task
            model, task = _section(inner["model"]), _section(inner.get("task"))
            task = {**task, **{k: v for k, v in outer_task.items() if k == "normalize"}}
        else:
            model = task = inner
    return model, task


def parse_conv_layers(text: str) -> list[list[int]]:
    """fairseq's conv_feature_layers, a Python expression such as
    "[(512, 10, 5)] + [(512, 3, 2)] * 4", evaluated without eval: lists, tuples, ints, + and *."""
    def value(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        layers = value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError):
        raise InitError(f"conv_feature_layers {text!r} is not a list of (channels, kernel, stride)") from None
    if not isinstance(layers, list) or not all(isinstance(x, list) and len(x) == 3 for x in layers):
        raise InitError(f"conv_feature_layers {text!r} is not a list of (channels, kernel, stride)")
    return layers


def read_fairseq(path: str | Path, trust_pickle: bool = False) -> Converted:
    """A fairseq wav2vec 2.0 checkpoint file -> Converted."""
    ckpt = load_fairseq_file(path, trust_pickle)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise InitError(f"{path}: not a fairseq checkpoint (a dict with the state dict in 'model')")
    try:
        model, task = _fairseq_sections(ckpt)
    except InitError as e:
        raise InitError(f"{path}: {e}") from None
    unsupported = []
    if model.get("activation_fn", "gelu") != "gelu":
        unsupported.append(f"activation_fn: {model['activation_fn']}")
    if model.get("pos_conv_depth", 1) != 1:
        unsupported.append(f"pos_conv_depth: {model['pos_conv_depth']}")
    if model.get("layer_type", "transformer") != "transformer":
        unsupported.append(f"layer_type: {model['layer_type']}")
    if model.get("extractor_mode", "default") not in ("default", "layer_norm"):
        unsupported.append(f"extractor_mode: {model['extractor_mode']}")
    if unsupported:
        raise InitError(f"{path}: settings the wav2vec2 encoder does not implement: {', '.join(unsupported)}")
    try:
        conv = parse_conv_layers(model.get("conv_feature_layers") or FAIRSEQ_CONV_DEFAULT)
    except InitError as e:
        raise InitError(f"{path}: {e}") from None
    config = build_config(
        str(path), extractor_mode="layer_norm" if model.get("extractor_mode") == "layer_norm" else "group_norm",
        conv_layers=conv, conv_bias=bool(model.get("conv_bias", False)), embed_dim=model.get("encoder_embed_dim", 768),
        num_layers=model.get("encoder_layers", 12), num_heads=model.get("encoder_attention_heads", 12),
        ffn_dim=model.get("encoder_ffn_embed_dim", 3072), pos_conv_kernel=model.get("conv_pos", 128),
        pos_conv_groups=model.get("conv_pos_groups", 16), layer_norm_first=bool(model.get("layer_norm_first", False)),
        normalize_waveform=bool(task.get("normalize", False)),
    )
    state = ckpt["model"]
    fine_tuned = any(k.startswith("w2v_encoder.w2v_model.") for k in state)
    prefix = "w2v_encoder.w2v_model." if fine_tuned else ""
    converted = split_state(state, prefix, FAIRSEQ_ENCODER_MAP, FAIRSEQ_HEAD_MAP, model.get("latent_groups", 2))
    group_norm = [(r"model\.feature_extractor\.conv_layers\.0\.layer_norm\.(.*)", r"feature_extractor.conv_layers.0.2.\1")]
    converted.config, converted.prefix = config, prefix
    converted.inverse = (group_norm if config.extractor_mode == "group_norm" else []) + FAIRSEQ_INVERSE
    converted.source = f"fairseq {'fine-tuned (w2v_encoder)' if fine_tuned else 'pre-training'} checkpoint {path}"
    return converted
