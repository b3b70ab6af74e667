"""Measurements that leave training untouched: validation, the conflict between grad f and grad g,
and which of theta's parameters each loss reaches.

All run in eval mode (no dropout, no running-statistic updates, no quantizer step) with a fixed
generator for masks and negatives, so they neither consume the training RNG nor depend on which
batch training drew. cuDNN refuses to backpropagate through an RNN in eval mode, so the
gradient measurements run with cuDNN off.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import jiwer
import torch
from torch import nn

from bljust.data.dataset import Batch
from bljust.models.asr_model import AsrModel
from bljust.text.tokenizer import Tokenizer


@contextmanager
def measuring(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        model.train(was_training)


@torch.no_grad()
def validate(model: AsrModel, batches: list[Batch], tokenizer: Tokenizer,
             references: dict[str, list[int]]) -> tuple[float, float | None, float]:
    """(mean f, mean g or None without an unsupervised head, greedy CER) over the validation batches."""
    total_f = total_g = 0.0
    refs, hyps = [], []
    gen = torch.Generator().manual_seed(0)
    with measuring(model):
        for batch in batches:
            enc, out = model(batch.feats, batch.lengths)
            total_f += model.sup.loss(out, enc.lengths, batch.targets, batch.target_lengths).item()
            if model.unsup is not None:
                total_g += model.unsupervised_loss(batch.feats, batch.lengths, gen).loss.item()
            for utt, ids in zip(batch.utt_ids, model.sup.greedy(out, enc.lengths)):
                refs.append(tokenizer.decode(references[utt]))
                hyps.append(tokenizer.decode(ids))
    n = len(batches)
    return total_f / n, None if model.unsup is None else total_g / n, jiwer.cer(refs, hyps)


def _losses(model: AsrModel, batch: Batch) -> dict[str, torch.Tensor]:
    """{"f": f, "g": g} on ``batch``; no g without an unsupervised head."""
    losses = {"f": model.supervised_loss(batch.feats, batch.lengths, batch.targets, batch.target_lengths)}
    if model.unsup is not None:
        losses["g"] = model.unsupervised_loss(batch.feats, batch.lengths, torch.Generator().manual_seed(0)).loss
    return losses


def _flat(grads, params) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if x is None else x).flatten() for x, p in zip(grads, params)])


def gradient_conflict(model: AsrModel, batch: Batch) -> dict[str, float]:
    """cos(grad_theta f, grad_theta g) and both norms on ``batch`` (labeled: f and g read the same audio);
    {} without an unsupervised head."""
    if model.unsup is None:
        return {}
    theta = model.parameter_groups()["theta"]
    with measuring(model):
        f, g = _losses(model, batch).values()
        vf = _flat(torch.autograd.grad(f, theta, retain_graph=True, allow_unused=True), theta)
        vg = _flat(torch.autograd.grad(g, theta, allow_unused=True), theta)
    cos = torch.nn.functional.cosine_similarity(vf, vg, dim=0).item()
    return {"cos_fg": round(cos, 5), "norm_f": round(vf.norm().item(), 5), "norm_g": round(vg.norm().item(), 5)}


def block_name(param_name: str) -> str:
    """'lstm.weight_ih_l0' -> 'lstm', 'convs.0.conv.weight' -> 'convs.0': a top-level module, or one
    entry of a top-level list of modules."""
    parts = param_name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def theta_reach(model: AsrModel, batch: Batch) -> dict[str, dict[str, tuple[int, int]]]:
    """Which of theta's parameters f and g move: {"f"|"g": {block: (parameters with a non-zero
    gradient, parameters)}} (no "g" without an unsupervised head), counted in scalars; a tensor counts as reached when any element of
    its gradient is non-zero."""
    named = list(model.encoder.named_parameters())
    params = [p for _, p in named]
    out = {}
    with measuring(model):
        for name, loss in _losses(model, batch).items():
            grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
            blocks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for (pname, p), grad in zip(named, grads):
                counts = blocks[block_name(pname)]
                counts[0] += p.numel() if grad is not None and bool(grad.any()) else 0
                counts[1] += p.numel()
            out[name] = {k: (v[0], v[1]) for k, v in blocks.items()}
    return out


def reach_percent(blocks: dict[str, tuple[int, int]]) -> float:
    reached = sum(r for r, _ in blocks.values())
    total = sum(n for _, n in blocks.values())
    return 100.0 * reached / max(total, 1)
