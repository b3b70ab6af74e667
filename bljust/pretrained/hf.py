"""Hugging Face wav2vec 2.0 model folders -> ``Converted`` (``bljust.pretrained.convert``),
read without the transformers library.

A folder holds ``config.json`` (model_type wav2vec2) and ``model.safetensors`` or
``pytorch_model.bin`` (or their sharded ``*.index.json`` forms), of ``Wav2Vec2Model``,
``Wav2Vec2ForPreTraining`` or ``Wav2Vec2ForCTC`` (weights under ``wav2vec2.``). The name maps
are tabled in ``bljust.pretrained.convert``.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from bljust.pretrained.convert import LAYER, POS_CONV, TA_LAYER, WEIGHT_NORM, Converted, build_config, split_state
from bljust.pretrained.init import InitError

HF_ENCODER_MAP = [
    (r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)$", r"model.feature_extractor.conv_layers.\1.\2.\3"),
    (r"feature_projection\.(layer_norm|projection)\.(weight|bias)$", r"model.encoder.feature_projection.\1.\2"),
    *[(r"encoder\.pos_conv_embed\.conv\." + src, POS_CONV + dst) for src, dst in WEIGHT_NORM],
    (r"encoder\.layer_norm\.(weight|bias)$", r"model.encoder.transformer.layer_norm.\1"),
    (LAYER + r"attention\.(q|k|v|out)_proj\.(weight|bias)$", TA_LAYER + r"attention.\2_proj.\3"),
    (LAYER + r"(layer_norm|final_layer_norm)\.(weight|bias)$", TA_LAYER + r"\2.\3"),
    (LAYER + r"feed_forward\.(intermediate_dense|output_dense)\.(weight|bias)$", TA_LAYER + r"feed_forward.\2.\3"),
    (r"masked_spec_embed$", "mask_emb"),
]
HF_HEAD_MAP = [
    (r"quantizer\.codevectors$", "quantizer.codebook"),
    (r"quantizer\.weight_proj\.(weight|bias)$", r"quantizer.logits.\1"),
    (r"project_q\.(weight|bias)$", r"project_q.\1"),
    (r"project_hid\.(weight|bias)$", r"final_proj.\1"),
]

# Our names -> the source's, to name a tensor the source lacks as the source would.
HF_INVERSE = [
    (r"model\.feature_extractor\.(.*)", r"feature_extractor.\1"),
    (r"model\.encoder\.feature_projection\.(.*)", r"feature_projection.\1"),
    (r"model\.encoder\.transformer\.(.*)", r"encoder.\1"),
    (r"mask_emb", "masked_spec_embed"),
]


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
    config = build_config(
        str(folder), extractor_mode=f"{cfg.get('feat_extract_norm', 'group')}_norm", conv_layers=conv,
        conv_bias=bool(cfg.get("conv_bias", False)), embed_dim=cfg.get("hidden_size", 768),
        num_layers=cfg.get("num_hidden_layers", 12), num_heads=cfg.get("num_attention_heads", 12),
        ffn_dim=cfg.get("intermediate_size", 3072), pos_conv_kernel=cfg.get("num_conv_pos_embeddings", 128),
        pos_conv_groups=cfg.get("num_conv_pos_embedding_groups", 16),
        layer_norm_first=bool(cfg.get("do_stable_layer_norm", False)), normalize_waveform=normalize,
    )
    state = _read_hf_weights(folder)
    prefix = "wav2vec2." if any(k.startswith("wav2vec2.") for k in state) else ""
    converted = split_state(state, prefix, HF_ENCODER_MAP, HF_HEAD_MAP, cfg.get("num_codevector_groups", 2))
    converted.config, converted.source = config, f"huggingface {arch} {folder}"
    converted.inverse, converted.prefix = HF_INVERSE, prefix
    converted.notes = notes + converted.notes
    return converted
