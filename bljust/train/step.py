"""The gradients of one training step: the loss, one backward pass, and what can go wrong on the way.

- **Out of GPU memory:** the same step again as two half batches whose gradients add up, each
  half weighted by its share of the batch's utterances, so the update equals the whole batch's.
- **float16:** the loss is multiplied by the loss scale before the backward pass and the gradients
  divided by it after (``precision.py``); an overflow at a scale above 1 only lowers the scale.
- **Non-finite loss or gradient:** no parameter moves (batch-norm statistics are restored too),
  the batches count as seen, the step is logged with its utterances; too many in a row stop training.
- **Data parallel:** each rank's loss is weighted by its share of the global batch and the
  gradients are summed across ranks (``bljust/distributed.py``), so every rank ends the step with
  the global batch's gradient and agrees on whether it is finite.

The optimizer step itself is the trainer's: ``GradientStep.run`` says whether to take it.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from bljust import distributed
from bljust.data.dataset import Batch
from bljust.models.asr_model import AsrModel
from bljust.train.errors import NonFiniteError, TrainingError
from bljust.train.precision import Precision
from bljust.train.strategies import Chunk, Strategy, StepLoss

log = logging.getLogger("bljust.train")


class StepResult(NamedTuple):
    loss: StepLoss
    values: dict[str, torch.Tensor | None]  # f and g of the (global) batch
    finite: bool  # the gradients are usable: take the optimizer step


class GradientStep:
    """Computes one step's gradients into the model's ``.grad``; counts the updates it skipped."""

    def __init__(self, model: AsrModel, strategy: Strategy, precision: Precision, generator: torch.Generator,
                 distributed_run: bool, max_nonfinite_in_a_row: int):
        """generator: g's masks, negatives and Gumbel noise."""
        self.model, self.strategy, self.precision, self.generator = model, strategy, precision, generator
        self.distributed_run, self.max_nonfinite_in_a_row = distributed_run, max_nonfinite_in_a_row
        self.skipped_steps = self.skipped_in_a_row = 0  # in a checkpoint: see state_dict

    def run(self, step: int, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float,
            share: float) -> StepResult:
        """Gradients of step number ``step`` (1-based) on this rank's batches; ``share``: their fraction
        of the global batch's utterances (1 in a single process)."""
        model = self.model
        model.zero_grad(set_to_none=True)
        buffers = [b.clone() for b in model.buffers()]  # batch-norm statistics move in the forward pass
        scale = share * self.precision.loss_scale
        try:
            loss, finite_loss = self._loss_and_backward(chunk, labeled, unlabeled, weight, scale)
        except torch.OutOfMemoryError:
            if self.distributed_run:  # the other ranks are inside collectives already: a retry would hang
                raise
            _restore(model, buffers)
            loss, finite_loss = self.in_halves(step, chunk, labeled, unlabeled, weight, scale)
        values = {"f": loss.f, "g": loss.g}
        finite = finite_loss
        if finite:
            if self.distributed_run:
                finite, values = distributed.sum_gradients(
                    [p for p in model.parameters() if p.requires_grad], values, share)
            else:
                grads = [p.grad.sum() for p in model.parameters() if p.grad is not None]
                finite = not grads or bool(torch.isfinite(torch.stack(grads)).all())  # one sum per tensor: one sync
        scaler = self.precision.scaler
        overflow = scaler is not None and finite_loss and not finite and scaler.scale > 1.0
        if scaler is not None:
            scaler.unscale_(model.parameters())
            if finite_loss:
                scaler.update(finite)
        if finite:
            self.skipped_in_a_row = 0
        else:
            _restore(model, buffers)
            self._skip(step, chunk, loss, labeled, unlabeled, overflow)
        return StepResult(loss, values, finite)

    def _loss_and_backward(self, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float,
                           scale: float) -> tuple[StepLoss, bool]:
        """The step's loss, and its backward pass (times ``scale``) when it is finite on every rank."""
        with self.precision.autocast():
            loss = self.strategy.loss(self.model, chunk, labeled, unlabeled, weight, self.generator)
        finite = distributed.finite_everywhere(loss.total)
        if finite:
            (loss.total * scale if scale != 1.0 else loss.total).backward()
        return loss, finite

    def in_halves(self, step: int, chunk: Chunk, labeled: Batch | None, unlabeled: Batch | None, weight: float,
                  scale: float) -> tuple[StepLoss, bool]:
        """The same step as two half batches whose gradients add up, each weighted by its share of the
        utterances (what the trainer does after running out of GPU memory)."""
        shapes = ", ".join(f"{name} {tuple(b.feats.shape)}" for name, b in (("labeled", labeled), ("unlabeled", unlabeled))
                           if b is not None)
        utts = [u for b in (labeled, unlabeled) if b is not None for u in b.utt_ids]
        self.model.zero_grad(set_to_none=True)
        if (labeled or unlabeled).feats.device.type == "cuda":
            torch.cuda.empty_cache()
        if any(b is not None and len(b.utt_ids) < 2 for b in (labeled, unlabeled)):
            raise TrainingError(f"step {step}: out of memory on a batch of one utterance ({shapes}: "
                                f"{' '.join(utts)}); lower batch.max_frames or drop the utterance")
        log.warning("step %d: out of memory on the batch (%s); retrying it in two halves", step, shapes)
        parts = zip(*(b.halves() if b is not None else (None, None) for b in (labeled, unlabeled)))
        f = g = total = 0.0
        try:
            for lab, unl in parts:
                w = len(lab.utt_ids) / len(labeled.utt_ids) if lab is not None else len(unl.utt_ids) / len(unlabeled.utt_ids)
                loss, finite = self._loss_and_backward(chunk, lab, unl, weight, scale * w)
                if not finite:
                    return loss, False
                f, g, total = (None if loss.f is None else f + w * loss.f.detach(),
                               None if loss.g is None else g + w * loss.g.detach(), total + w * loss.total.detach())
        except torch.OutOfMemoryError:
            joint = " (or set batch.max_joint)" if self.model.sup.joint_cost(1, 1, 1) is not None else ""
            raise TrainingError(f"step {step}: out of memory even on half of the batch ({shapes}); "
                                f"lower batch.max_frames{joint}") from None
        return StepLoss(total, f, g, loss.g_metrics), True

    def _skip(self, step: int, chunk: Chunk, loss: StepLoss, labeled: Batch | None, unlabeled: Batch | None,
              overflow: bool) -> None:
        """A non-finite loss or gradient: no update; a float16 overflow at a loss scale above 1 only
        lowers the scale, anything else counts towards ``max_nonfinite_in_a_row``."""
        self.model.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        if overflow:
            log.info("step %d: float16 gradient overflow; update skipped, loss scale lowered to %g",
                     step, self.precision.loss_scale)
            return
        self.skipped_in_a_row += 1
        utts = [u for b in (labeled, unlabeled) if b is not None for u in b.utt_ids]
        values = ", ".join(f"{n} {v.item():.4g}" for n, v in (("f", loss.f), ("g", loss.g)) if v is not None)
        log.warning("step %d (%s): non-finite loss or gradient (%s); update skipped (%d so far), utterances: %s",
                    step, chunk.phase, values, self.skipped_steps, " ".join(utts))
        if self.skipped_in_a_row >= self.max_nonfinite_in_a_row:
            raise NonFiniteError(f"{self.skipped_in_a_row} steps in a row had a non-finite loss or gradient "
                                 f"(the last at step {step}; see the warnings above for their utterances). "
                                 "Check those features, or lower the learning rate; max_nonfinite_in_a_row is "
                                 f"{self.max_nonfinite_in_a_row}")

    def state_dict(self) -> dict:
        return {"skipped_steps": self.skipped_steps, "skipped_in_a_row": self.skipped_in_a_row}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_steps, self.skipped_in_a_row = state["skipped_steps"], state["skipped_in_a_row"]


def _restore(model: AsrModel, buffers: list[torch.Tensor]) -> None:
    for b, saved in zip(model.buffers(), buffers):
        b.copy_(saved)
