"""What the two pre-trained wav2vec 2.0 readers share (``bljust.pretrained.hf`` and
``bljust.pretrained.fairseq``): their result, a ``Converted``, and the renaming of a source's
state dict into bljust's names and shapes (for ``bljust.pretrained.init``).

A ``Converted`` holds the encoder's state dict in Wav2Vec2Encoder's layout ("model." +
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

import re
from dataclasses import dataclass, field

import torch

from bljust.models.wav2vec2 import CUSTOM, Wav2Vec2Config
from bljust.pretrained.init import InitError


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
        theirs = rename(key, self.inverse)
        return key if theirs is None else self.prefix + theirs


# --- name maps: the parts both readers' tables use ---------------------------------------------

LAYER = r"encoder\.layers\.(\d+)\."
TA_LAYER = r"model.encoder.transformer.layers.\1."
POS_CONV = "model.encoder.transformer.pos_conv_embed.conv."
WEIGHT_NORM = [  # old torch.nn.utils.weight_norm names and the parametrization names
    (r"(weight_g|parametrizations\.weight\.original0)$", "parametrizations.weight.original0"),
    (r"(weight_v|parametrizations\.weight\.original1)$", "parametrizations.weight.original1"),
    (r"bias$", "bias"),
]


def rename(key: str, table: list[tuple[str, str]]) -> str | None:
    """``key`` renamed by the first (pattern, replacement) of ``table`` that matches all of it; None if none does."""
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


def split_state(state: dict[str, torch.Tensor], prefix: str, encoder_map, head_map, groups: int | None) -> Converted:
    """Rename the state dict (keys under ``prefix``) -> a Converted without config/source."""
    enc, head, names, unused, notes = {}, {}, {}, [], []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            unused.append(key)
            continue
        short = key[len(prefix):] if key.startswith(prefix) else None
        ours = rename(short, encoder_map) if short is not None else None
        if ours is not None:
            enc[ours] = _as_float32(value, notes)
            names[ours] = key
            continue
        theirs = rename(key if short is None else short, head_map)
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


def build_config(where: str, **structure) -> Wav2Vec2Config:
    """The source's structure as a Wav2Vec2Config (shape custom); an InitError naming ``where`` if bljust cannot build it."""
    try:
        return Wav2Vec2Config(shape=CUSTOM, **structure)
    except ValueError as e:
        raise InitError(f"{where}: the model's structure is not one bljust's wav2vec2 encoder builds: {e}") from None
