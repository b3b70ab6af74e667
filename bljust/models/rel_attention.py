"""Relative positional multi-head self-attention (Transformer-XL: Dai et al. 2019, section 3.3; as
used in the Conformer: Gulati et al. 2020), the attention of ``encoder_conf.pos_enc: rel``.

For one head (width d_k), query frame i and key frame j of an utterance:

    score[i, j] = ( (q_i + u) . k_j  +  (q_i + v) . p_{i-j} ) / sqrt(d_k)
                    content term       position term

    q_i, k_j   the query and key projections of frames i and j
    p_r        W_pos s(r): a learned projection (no bias) of the sinusoidal encoding s(r) of the
               offset r = i - j (sin/cos pairs at the frequencies of Vaswani et al. 2017)
    u, v       learned biases [H, d_k], the same for every query: u scores a key's content, v an
               offset, whatever the query

    weights = dropout(softmax_j(score masked at padded keys)); out = W_o (weights @ values)

Positions enter only through offsets, so a frame scores the frames around it the same way wherever
the pair sits in the utterance, and the padded tail of a batch changes nothing for valid frames
(their offsets and the sinusoid of each offset do not depend on the batch's T).

Drop-in for the ``torch.nn.MultiheadAttention(batch_first=False)`` that torchaudio's ConformerLayer
holds as ``self_attn``: same call (query = key = value [T, B, D], key_padding_mask [B, T]), same
input and output projection parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj``), plus
``pos_proj`` (W_pos), ``pos_bias_u`` and ``pos_bias_v``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def relative_sinusoids(t: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal encodings of the offsets t-1, t-2, ..., 0, ..., -(t-1) -> [2t - 1, dim] float32.

    Row c encodes the offset r = t - 1 - c (descending, which ``rel_shift`` relies on):
    [sin(r w_0), cos(r w_0), sin(r w_1), cos(r w_1), ...] with w_m = 10000^(-2m / dim). Computed
    for the batch's t on every call: (2t - 1) x dim sines are cheap next to the attention."""
    offsets = torch.arange(t - 1, -t, -1, device=device, dtype=torch.float32)  # [2t - 1]
    freqs = torch.pow(10000.0, -torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)  # [ceil(dim / 2)]
    angles = offsets[:, None] * freqs[None, :]  # [2t - 1, ceil(dim / 2)]
    # interleaved sin, cos; an odd dim drops the last cos
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :dim]


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """x [..., T, 2T - 1], column c of row i for the offset T - 1 - c -> [..., T, T] with
    out[..., i, j] = x[..., i, T - 1 - i + j], i.e. row i's score for the offset i - j.

    Why a view does it: the wanted entry x[i, T-1-i+j] sits at i (2T-1) + (T-1-i) + j
    = (T-1) + i (2T-2) + j in the row-major flattening of the last two dims. So skip the first T-1
    entries, read the rest as rows of 2T-2 entries, and keep the first T of each row: each query
    row starts one column further left than the row above, which is exactly the slide of the offset
    window. (Needs T <= 2T-2, i.e. T >= 2; for T = 1 the input already is the [1, 1] answer.)
    No copy is made; the caller's add materialises the result."""
    t = x.shape[-2]
    if x.shape[-1] != 2 * t - 1:
        raise ValueError(f"rel_shift expects [..., T, 2T - 1], got {tuple(x.shape)}")
    if t == 1:
        return x
    flat = x.reshape(*x.shape[:-2], t * (2 * t - 1))
    return flat.narrow(-1, t - 1, t * (2 * t - 2)).unflatten(-1, (t, 2 * t - 2))[..., :t]


class RelPositionMultiheadAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide embed_dim ({embed_dim})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        # Named as nn.MultiheadAttention's, so its q/k/v and output weights carry over by name.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))  # rows: W_q, W_k, W_v
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.pos_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # W_pos; a bias would be absorbed by v
        # Zero start: the biases begin as plain content attention plus q . p, and learn from there.
        self.pos_bias_u = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[T, B, D] -> [B, H, T, d_k]"""
        t, b, _ = x.shape
        return x.reshape(t, b, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [T, B, D] -> q, k, v, each [B, H, T, d_k]"""
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def _scores(self, q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """q, k [B, H, T, d_k], key_padding_mask [B, T] bool (True: padding) or None
        -> scores [B, H, T, T] (query i, key j), -inf at padded keys."""
        t = q.shape[2]
        scale = 1.0 / math.sqrt(self.head_dim)
        pos = relative_sinusoids(t, self.embed_dim, q.device).to(self.pos_proj.weight.dtype)  # [2T-1, D]
        p = self.pos_proj(pos).reshape(2 * t - 1, self.num_heads, self.head_dim).permute(1, 2, 0)  # [H, d_k, 2T-1]
        u = self.pos_bias_u[None, :, None, :]  # [1, H, 1, d_k]
        v = self.pos_bias_v[None, :, None, :]
        content = ((q + u) * scale) @ k.transpose(-2, -1)  # [B, H, T, T]
        position = rel_shift(((q + v) * scale) @ p)  # [B, H, T, 2T-1] (all offsets) -> [B, H, T, T] (i - j)
        scores = content + position
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return scores

    def scores(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-softmax attention scores (for inspection and tests).
        x [T, B, D], key_padding_mask [B, T] bool or None -> [B, H, T, T], -inf at padded keys."""
        q, k, _ = self._qkv(x)
        return self._scores(q, k, key_padding_mask)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention: query = key = value = x [T, B, D]; key_padding_mask [B, T] bool (True:
        padding; every utterance needs one valid frame, else its softmax is over -inf only)
        -> (out [T, B, D], attention weights [B, H, T, T] after dropout if need_weights else None)."""
        if key is not query or value is not query:
            raise ValueError("RelPositionMultiheadAttention is self-attention only: pass query = key = value")
        t, b, _ = query.shape
        q, k, v = self._qkv(query)
        weights = torch.softmax(self._scores(q, k, key_padding_mask), dim=-1)
        weights = F.dropout(weights, self.dropout, self.training)
        out = (weights.to(v.dtype) @ v).permute(2, 0, 1, 3).reshape(t, b, self.embed_dim)  # [T, B, D]
        return self.out_proj(out), (weights if need_weights else None)
