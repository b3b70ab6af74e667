"""Pre-trained wav2vec 2.0 checkpoints -> bljust's names and shapes (for ``bljust.models.init``).

Two sources, read without their libraries:

* a Hugging Face folder: ``config.json`` (model_type wav2vec2) and ``model.safetensors`` or
  ``pytorch_model.bin`` (or their sharded ``*.index.json`` forms), of ``Wav2Vec2Model``,
  ``Wav2Vec2ForPreTraining`` or ``Wav2Vec2ForCTC`` (weights under ``wav2vec2.``);
* a fairseq checkpoint: a ``torch.save``'d dict with the config in ``cfg`` (``cfg["model"]``,
  ``cfg["task"]``) or, in older files, an ``args`` Namespace, and the state dict in ``model``;
  a pre-training model (``Wav2Vec2Model``) or a fine-tuned one (``Wav2VecCtc``: weights under
  ``w2v_encoder.w2v_model.``, config in ``cfg["model"]["w2v_args"]``).

Both become a ``Converted``: the encoder's state dict in Wav2Vec2Encoder's layout ("model." +
torchaudio's names), the quantizer side in ContrastiveHead's layout, the structure the source
describes, and the source names nothing takes (a CTC output layer, ...). The mask embedding
(HF ``masked_spec_embed``, fairseq ``mask_emb``) becomes the encoder's optional ``mask_emb``.

Name maps, torchaudio's name <- HF's | fairseq's (i: conv layer, j: Transformer layer):

    feature_extractor.conv_layers.i.conv.*        <- same | feature_extractor.conv_layers.i.0.*
    feature_extractor.conv_layers.i.layer_norm.*  <- same | ...conv_layers.0.2.* (group norm),
                                                            ...conv_layers.i.2.1.* (layer norm)
    encoder.feature_projection.layer_norm.*       <- feature_projection.layer_norm.* | layer_norm.*
    encoder.feature_projection.projection.*       <- feature_projection.projection.* | post_extract_proj.*
    encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0/1, .bias
                                                  <- encoder.pos_conv_embed.conv.* | encoder.pos_conv.0.*
                                                     (old weight_norm names weight_g / weight_v accepted)
    encoder.transformer.layer_norm.*              <- encoder.layer_norm.* | same
    encoder.transformer.layers.j.attention.{q,k,v,out}_proj.*
                                                  <- encoder.layers.j.attention.* | encoder.layers.j.self_attn.*
    encoder.transformer.layers.j.layer_norm.*     <- encoder.layers.j.layer_norm.* | ...self_attn_layer_norm.*
    encoder.transformer.layers.j.feed_forward.intermediate_dense.*  <- same minus "transformer." | ...fc1.*
    encoder.transformer.layers.j.feed_forward.output_dense.*        <- same minus "transformer." | ...fc2.*
    encoder.transformer.layers.j.final_layer_norm.*                 <- same minus "transformer." | same

Quantizer side (-> ContrastiveHead): HF quantizer.codevectors | fairseq quantizer.vars [1, G*V, D/G]
-> quantizer.codebook [G, V, D/G]; quantizer.weight_proj.* -> quantizer.logits.*; project_q.* ->
project_q.*; HF project_hid.* | fairseq final_proj.* -> final_proj.*
"""
from __future__ import annotations

import argparse
import ast
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bljust.models.init import InitError
from bljust.models.wav2vec2 import CUSTOM, Wav2Vec2Config

FAIRSEQ_CONV_DEFAULT = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"


@dataclass
class Converted:
    encoder: dict[str, torch.Tensor]  # Wav2Vec2Encoder layout
    head: dict[str, torch.Tensor]  # ContrastiveHead layout (init.HEAD_PARTS), possibly empty
    names: dict[str, str]  # our name (encoder or head) -> the source's
    unused: list[str]  # source names nothing takes
    notes: list[str]
    head_conf: dict | None = None  # codebook_groups, codebook_entries, code_dim, final_dim of the source's quantizer
    config: Wav2Vec2Config | None = None  # the structure the source describes (shape custom), its normalize_waveform
    source: str = ""
    inverse: list[tuple[str, str]] = field(default_factory=list)  # our name -> the source's, for absent tensors
    prefix: str = ""  # of the source's encoder names

    def source_name(self, key: str) -> str:
        """The source's name of our tensor ``key`` (as the source has it, or as it would have it)."""
        if key in self.names:
            return self.names[key]
        theirs = _rename(key, self.inverse)
        return key if theirs is None else self.prefix + theirs


# --- name maps ---------------------------------------------------------------------------------

_LAYER = r"encoder\.layers\.(\d+)\."
_TA_LAYER = r"model.encoder.transformer.layers.\1."
_POS = "model.encoder.transformer.pos_conv_embed.conv."
_WEIGHT_NORM = [  # old torch.nn.utils.weight_norm names and the parametrization names
    (r"(weight_g|parametrizations\.weight\.original0)$", "parametrizations.weight.original0"),
    (r"(weight_v|parametrizations\.weight\.original1)$", "parametrizations.weight.original1"),
    (r"bias$", "bias"),
]

HF_ENCODER_MAP = [
    (r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.\2.\3"),
    (r"feature_projection\.(layer_norm|projection)\.(weight|bias)$", r"model.encoder.feature_projection.\1.\2"),
    *[(r"encoder\.pos_conv_embed\.conv\." + src, _POS + dst) for src, dst in _WEIGHT_NORM],
    (r"encoder\.layer_norm\.(weight|bias)$", r"model.encoder.transformer.layer_norm.\1"),
    (_LAYER + r"attention\.(q|k|v|out)_proj\.(weight|bias)$", _TA_LAYER + r"attention.\2_proj.\3"),
    (_LAYER + r"(layer_norm|final_layer_norm)\.(weight|bias)$", _TA_LAYER + r"\2.\3"),
    (_LAYER + r"feed_forward\.(intermediate_dense|output_dense)\.(weight|bias)$", _TA_LAYER + r"feed_forward.\2.\3"),
    (r"masked_spec_embed$", "mask_emb"),
]
HF_HEAD_MAP = [
    (r"quantizer\.codevectors$", "quantizer.codebook"),
    (r"quantizer\.weight_proj\.(weight|bias)$", r"quantizer.logits.\1"),
    (r"project_q\.(weight|bias)$", r"project_q.\1"),
    (r"project_hid\.(weight|bias)$", r"final_proj.\1"),
]

FAIRSEQ_ENCODER_MAP = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)$", r"model.feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)$", r"model.encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)$", r"model.encoder.feature_projection.projection.\1"),
    *[(r"encoder\.pos_conv\.0\." + src, _POS + dst) for src, dst in _WEIGHT_NORM],
    (r"encoder\.layer_norm\.(weight|bias)$", r"model.encoder.transformer.layer_norm.\1"),
    (_LAYER + r"self_attn\.(q|k|v|out)_proj\.(weight|bias)$", _TA_LAYER + r"attention.\2_proj.\3"),
    (_LAYER + r"self_attn_layer_norm\.(weight|bias)$", _TA_LAYER + r"layer_norm.\2"),
    (_LAYER + r"fc1\.(weight|bias)$", _TA_LAYER + r"feed_forward.intermediate_dense.\2"),
    (_LAYER + r"fc2\.(weight|bias)$", _TA_LAYER + r"feed_forward.output_dense.\2"),
    (_LAYER + r"final_layer_norm\.(weight|bias)$", _TA_LAYER + r"final_layer_norm.\2"),
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
HF_INVERSE = [
    (r"model\.feature_extractor\.(.*)", r"feature_extractor.\1"),
    (r"model\.encoder\.feature_projection\.(.*)", r"feature_projection.\1"),
    (r"model\.encoder\.transformer\.(.*)", r"encoder.\1"),
    (r"mask_emb", "masked_spec_embed"),
]
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


def _rename(key: str, table: list[tuple[str, str]]) -> str | None:
    for pattern, repl in table:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(repl)
    return None


def _as_float32(t: torch.Tensor, notes: list[str]) -> torch.Tensor:
    """A float32 tensor of its own (a view would drag its whole storage into the init file)."""
    if t.is_floating_point() and t.dtype != torch.float32:
        if not any(n.startswith("converted") for n in notes):
            notes.append(f"converted {t.dtype} weights to float32")
        return t.float()
    if not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
        return t.clone(memory_format=torch.contiguous_format)
    return t


def _split(state: dict[str, torch.Tensor], prefix: str, encoder_map, head_map, groups: int | None) -> Converted:
    """Rename the state dict (keys under ``prefix``) -> a Converted without config/source."""
    enc, head, names, unused, notes = {}, {}, {}, [], []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            unused.append(key)
            continue
        short = key[len(prefix):] if key.startswith(prefix) else None
        ours = _rename(short, encoder_map) if short is not None else None
        if ours is not None:
            enc[ours] = _as_float32(value, notes)
            names[ours] = key
            continue
        theirs = _rename(key if short is None else short, head_map)
        if theirs is not None:
            head[theirs] = _as_float32(value, notes)
            names[theirs] = key
            continue
        unused.append(key)
    if "quantizer.codebook" in head:
        codebook = head["quantizer.codebook"]  # [1, G*V, D/G]
        if groups and codebook.dim() == 3 and codebook.shape[0] == 1 and codebook.shape[1] % groups == 0:
            head["quantizer.codebook"] = codebook.reshape(groups, codebook.shape[1] // groups, codebook.shape[2])
        else:
            notes.append(f"quantizer: codebook {list(codebook.shape)} does not split into {groups} groups; "
                         "not carried over")
            for k in [k for k in head if k.startswith("quantizer.")]:
                unused.append(names.pop(k))
                del head[k]
    return Converted(enc, head, names, unused, notes, _head_conf(head))


def _head_conf(head: dict[str, torch.Tensor]) -> dict | None:
    """The ContrastiveConfig shape of a carried quantizer (None without a whole one)."""
    if not all(k in head for k in ("quantizer.codebook", "quantizer.logits.weight")):
        return None
    g, v, d = head["quantizer.codebook"].shape
    conf = {"quantize_targets": True, "codebook_groups": g, "codebook_entries": v, "code_dim": g * d}
    for key in ("project_q.weight", "final_proj.weight"):
        if key in head:
            conf["final_dim"] = head[key].shape[0]
            break
    return conf


def _build_config(where: str, **structure) -> Wav2Vec2Config:
    try:
        return Wav2Vec2Config(shape=CUSTOM, **structure)
    except ValueError as e:
        raise InitError(f"{where}: the model's structure is not one bljust's wav2vec2 encoder builds: {e}") from None


# --- Hugging Face ------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A .safetensors file -> {name: tensor}. The format: an 8-byte little-endian header size, a
    JSON header {name: {dtype, shape, data_offsets: [begin, end]}} and the raw little-endian data."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InitError(f"{path}: not a safetensors file") from None
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise InitError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')}")
            begin, end = info["data_offsets"]
            raw = bytearray(end - begin)  # read straight into the tensor's own buffer
            f.seek(8 + size + begin)
            if f.readinto(raw) != len(raw):
                raise InitError(f"{path}: truncated (tensor {name})")
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            out[name] = t.reshape(info["shape"])
    return out


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    for index_name, reader in (("model.safetensors.index.json", read_safetensors),
                               ("pytorch_model.bin.index.json", _torch_load_plain)):
        index = folder / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(reader(folder / shard))
            return state
    if (folder / "model.safetensors").exists():
        return read_safetensors(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").exists():
        return _torch_load_plain(folder / "pytorch_model.bin")
    raise InitError(f"{folder}: no model.safetensors or pytorch_model.bin (nor their .index.json)")


def _torch_load_plain(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InitError(f"{path}: holds objects beyond tensors ({str(e).splitlines()[0]})") from None


def read_huggingface(folder: str | Path) -> Converted:
    """A Hugging Face wav2vec 2.0 folder -> Converted."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise InitError(f"{folder}: no config.json (a Hugging Face model folder has one)") from None
    except json.JSONDecodeError as e:
        raise InitError(f"{folder / 'config.json'}: not valid JSON ({e})") from None
    if cfg.get("model_type") != "wav2vec2":
        raise InitError(f"{folder}: model_type {cfg.get('model_type')!r} is not wav2vec2")
    arch = (cfg.get("architectures") or ["Wav2Vec2Model"])[0]
    unsupported = []
    if cfg.get("add_adapter"):
        unsupported.append("add_adapter: true")
    for key in ("feat_extract_activation", "hidden_act"):
        if cfg.get(key, "gelu") != "gelu":
            unsupported.append(f"{key}: {cfg[key]}")
    if abs(cfg.get("layer_norm_eps", 1e-5) - 1e-5) > 1e-12:
        unsupported.append(f"layer_norm_eps: {cfg['layer_norm_eps']} (torchaudio's layer norms use 1e-5)")
    if cfg.get("feat_extract_norm", "group") not in ("group", "layer"):
        unsupported.append(f"feat_extract_norm: {cfg['feat_extract_norm']}")
    if unsupported:
        raise InitError(f"{folder}: settings the wav2vec2 encoder does not implement: {', '.join(unsupported)}")
    conv = [list(layer) for layer in zip(cfg.get("conv_dim", [512] * 7), cfg.get("conv_kernel", [10, 3, 3, 3, 3, 2, 2]),
                                         cfg.get("conv_stride", [5, 2, 2, 2, 2, 2, 2]))]
    notes = []
    pre = folder / "preprocessor_config.json"
    if pre.exists():
        normalize = bool(json.loads(pre.read_text()).get("do_normalize", False))
    else:  # the published layer-norm models (lv60k, xlsr) were trained on normalised audio, group-norm ones not
        normalize = cfg.get("feat_extract_norm", "group") == "layer"
        notes.append(f"no preprocessor_config.json: normalize_waveform {str(normalize).lower()} guessed from "
                     f"feat_extract_norm {cfg.get('feat_extract_norm', 'group')}")
    config = _build_config(
        str(folder), extractor_mode=f"{cfg.get('feat_extract_norm', 'group')}_norm", conv_layers=conv,
        conv_bias=bool(cfg.get("conv_bias", False)), embed_dim=cfg.get("hidden_size", 768),
        num_layers=cfg.get("num_hidden_layers", 12), num_heads=cfg.get("num_attention_heads", 12),
        ffn_dim=cfg.get("intermediate_size", 3072), pos_conv_kernel=cfg.get("num_conv_pos_embeddings", 128),
        pos_conv_groups=cfg.get("num_conv_pos_embedding_groups", 16),
        layer_norm_first=bool(cfg.get("do_stable_layer_norm", False)), normalize_waveform=normalize,
    )
    state = _read_hf_weights(folder)
    prefix = "wav2vec2." if any(k.startswith("wav2vec2.") for k in state) else ""
    converted = _split(state, prefix, HF_ENCODER_MAP, HF_HEAD_MAP, cfg.get("num_codevector_groups", 2))
    converted.config, converted.source = config, f"huggingface {arch} {folder}"
    converted.inverse, converted.prefix = HF_INVERSE, prefix
    converted.notes = notes + converted.notes
    return converted


# --- fairseq -----------------------------------------------------------------------------------

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
    config = _build_config(
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
    converted = _split(state, prefix, FAIRSEQ_ENCODER_MAP, FAIRSEQ_HEAD_MAP, model.get("latent_groups", 2))
    group_norm = [(r"model\.feature_extractor\.conv_layers\.0\.layer_norm\.(.*)", r"feature_extractor.conv_layers.0.2.\1")]
    converted.config, converted.prefix = config, prefix
    converted.inverse = (group_norm if config.extractor_mode == "group_norm" else []) + FAIRSEQ_INVERSE
    converted.source = f"fairseq {'fine-tuned (w2v_encoder)' if fine_tuned else 'pre-training'} checkpoint {path}"
    return converted
