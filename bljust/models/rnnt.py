"""RNN-T head: a transducer as the supervised head (phi, ``sup_head.SupervisedHead``) on top of
an encoder's context vectors.

The encoder (theta) plays the transcription network; phi adds a projection of its context,
a prediction network over the previous labels and a joint network (Graves, 2012):

    context [B, T, C] -> transcriber (linear)                       -> enc  [B, T, J]   (``forward``)
    blank + labels [B, U+1] -> embedding -> LSTM x L -> linear       -> pred [B, U+1, J]
    joint: tanh(enc[:, :, None] + pred[:, None]) -> dropout -> linear -> logits [B, T, U+1, V]

Blank (id 0) is both the transducer's "no label" output and the prediction network's start
symbol. The loss is torchaudio's ``rnnt_loss``; decoding is greedy or a beam search over the
prediction network's states, both written here.

Memory: training materialises the joint for every (frame, label position) pair, so it holds
B x T x (U+1) x J activations and B x T x (U+1) x V logits (plus, with the fused log-softmax,
a gradient of the logits' size computed in the forward pass): it grows with the product of
frames and transcript length, not their sum as CTC's does. ``batch.max_joint`` caps the
logits per batch (the batcher counts B x T' x (U+1) x V, ``joint_cost``, before it reads
anything), on top of ``batch.max_frames``.

torchaudio's ``models.RNNT`` is not used: its prediction and joint networks are private
classes, and its ``RNNTBeamSearch`` takes the last id as the blank where ours is 0.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from bljust.models.sup_head import Decoder

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [L, N, H]


@dataclass
class RnntConfig:
    """Sizes of phi's prediction and joint networks, and the loss's and decoders' options.

    The joint's B x T x (U+1) x V logits dominate memory: if training runs out of it, set
    ``batch.max_joint`` (or lower ``batch.max_frames``) before shrinking the networks.
    """
    embed_dim: int = 256  # label embedding of the prediction network
    pred_layers: int = 2  # LSTM layers of the prediction network (2, as in JUST)
    pred_units: int = 320  # LSTM units per layer
    joint_dim: int = 320  # where transcriber and prediction outputs are added before the tanh
    dropout: float = 0.0  # on the embedding, between and after the LSTM layers, in the joint
    max_symbols: int = 4  # decoding: labels emitted per encoder frame at most (greedy and beam)
    # rnnt_loss options: clamp > 0 clips the gradient w.r.t. each logit to [-clamp, clamp];
    # fused_log_softmax computes the log-softmax inside the loss kernel, saving a logits-sized tensor.
    clamp: float = -1.0
    fused_log_softmax: bool = True
    # Auxiliary CTC on the transcriber's output (a Linear(J, V) of phi), weight w in
    # (1 - w) * rnnt + w * ctc: it makes the encoder carry the labels from the start, where a
    # transducer trained from scratch can settle on its prediction network alone.
    ctc_weight: float = 0.0

    def __post_init__(self):
        for key in ("embed_dim", "pred_layers", "pred_units", "joint_dim", "max_symbols"):
            if getattr(self, key) < 1:
                raise ValueError(f"sup_conf.{key} must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"sup_conf.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.ctc_weight < 1.0:
            raise ValueError(f"sup_conf.ctc_weight must be in [0, 1), got {self.ctc_weight}")
        if self.clamp <= 0 and self.clamp != -1.0:
            raise ValueError(f"sup_conf.clamp must be > 0, or -1 for no clamping, got {self.clamp}")


class Predictor(nn.Module):
    """Prediction network: a label-conditioned LSTM language model, blank as the start symbol."""

    def __init__(self, vocab_size: int, config: RnntConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.pred_units, num_layers=config.pred_layers, batch_first=True,
                            dropout=config.dropout if config.pred_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(config.pred_units, config.joint_dim)

    def forward(self, labels: torch.Tensor, state: LstmState | None = None) -> tuple[torch.Tensor, LstmState]:
        """labels [N, S] -> (pred [N, S, J], state after the last label: (h, c) each [L, N, H])"""
        x, state = self.lstm(self.dropout(self.embed(labels)), state)
        return self.proj(self.dropout(x)), state


class Joiner(nn.Module):
    """Joint network: scores the next output (a label or blank) from a frame and a label history."""

    def __init__(self, vocab_size: int, config: RnntConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.joint_dim, vocab_size)

    def forward(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """enc [..., J], pred [..., J] (broadcastable) -> logits [..., V]"""
        return self.out(self.dropout(torch.tanh(enc + pred)))


class RnntHead(nn.Module):
    loss_name = "RNN-T"
    blank = 0

    def __init__(self, input_dim: int, vocab_size: int, config: RnntConfig = RnntConfig()):
        super().__init__()
        self.config = config
        self.transcriber = nn.Linear(input_dim, config.joint_dim)
        self.predictor = Predictor(vocab_size, config)
        self.joiner = Joiner(vocab_size, config)
        self.ctc = nn.Linear(config.joint_dim, vocab_size) if config.ctc_weight > 0 else None

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context [B, T, C] -> transcriber output [B, T, J], what ``loss`` and the decoders read"""
        return self.transcriber(context)

    @staticmethod
    def min_frames(target: list[int]) -> int:
        # One frame, whatever the transcript: a frame may emit several labels before its blank
        # (CTC needs a frame per label). The final blank needs a frame even for an empty one.
        return 1

    def joint_cost(self, utterances: int, frames: int, labels: int) -> int:
        """Logits B x T' x (U+1) x V of ``joint_logits`` for a batch of these sizes (``batch.max_joint`` caps it)."""
        return utterances * frames * (labels + 1) * self.joiner.out.out_features

    def joint_logits(self, enc: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """enc [B, T, J], targets [B, U] (padded) -> logits [B, T, U+1, V]: position u has seen the first u labels"""
        start = targets.new_full((targets.shape[0], 1), self.blank)
        pred, _ = self.predictor(torch.cat([start, targets], dim=1))  # [B, U+1, J]
        return self.joiner(enc.unsqueeze(2), pred.unsqueeze(1))

    def loss(self, enc: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of per-utterance RNN-T losses, each divided by its target length (as CTC's).

        enc [B, T, J], lengths [B], targets [B, S] (padded), target_lengths [B] -> scalar
        """
        T, U = int(lengths.max()), int(target_lengths.max())
        logits = self.joint_logits(enc[:, :T], targets[:, :U])
        if not self.config.fused_log_softmax:
            logits = logits.float().log_softmax(-1)
        device = logits.device
        costs = torchaudio.functional.rnnt_loss(
            # The kernel takes float32 logits and int32 labels and lengths, all on one device.
            logits.float().contiguous(), targets[:, :U].to(device, torch.int32).contiguous(),
            lengths.to(device, torch.int32), target_lengths.to(device, torch.int32), blank=self.blank,
            clamp=self.config.clamp, reduction="none", fused_log_softmax=self.config.fused_log_softmax,
        )
        rnnt = (costs / target_lengths.to(device).clamp(min=1).to(costs.dtype)).mean()
        if self.ctc is None:
            return rnnt
        w = self.config.ctc_weight
        log_probs = self.ctc(enc[:, :T]).float().log_softmax(-1).transpose(0, 1)  # [T, B, V]
        ctc = F.ctc_loss(log_probs, targets[:, :U], lengths, target_lengths, blank=self.blank, reduction="mean",
                         zero_infinity=True)
        return (1 - w) * rnnt + w * ctc

    def _start(self, n: int, device: torch.device) -> tuple[torch.Tensor, LstmState]:
        """The prediction network after the start symbol: (pred [n, J], state)."""
        pred, state = self.predictor(torch.full((n, 1), self.blank, dtype=torch.long, device=device))
        return pred[:, 0], state

    @torch.no_grad()
    def greedy(self, enc: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Batched RNN-T greedy decoding: enc [B, T, J], lengths [B] -> token ids per utterance.

        At each frame, emit the most probable output; a label keeps the search on the frame (with
        the prediction network advanced by it), a blank moves it to the next frame, and so does
        the ``max_symbols``-th label of a frame. Call in eval mode.
        """
        B, T, _ = enc.shape
        lengths = lengths.to(enc.device)
        pred, state = self._start(B, enc.device)
        hyps: list[list[int]] = [[] for _ in range(B)]
        for t in range(T):
            active = lengths > t  # [B]: utterances still on frame t
            for _ in range(self.config.max_symbols):
                best = self.joiner(enc[:, t], pred).log_softmax(-1).argmax(-1)  # [B]; a tie goes to blank (id 0)
                emit = active & (best != self.blank)
                if not bool(emit.any()):
                    break
                new_pred, new_state = self.predictor(best[:, None], state)
                pred = torch.where(emit[:, None], new_pred[:, 0], pred)
                state = tuple(torch.where(emit[None, :, None], new, old) for new, old in zip(new_state, state))
                for b in emit.nonzero()[:, 0].tolist():
                    hyps[b].append(int(best[b]))
                active = emit
        return hyps

    def own_beam_search(self, beam_size: int) -> Decoder:
        """``beam_search`` with ``beam_size`` hypotheses, as (enc, lengths) -> token ids per utterance."""
        return functools.partial(self.beam_search, beam_size=beam_size)

    @torch.no_grad()
    def beam_search(self, enc: torch.Tensor, lengths: torch.Tensor, beam_size: int) -> list[list[int]]:
        """enc [B, T, J], lengths [B] -> per utterance, the label sequence of its beam (``nbest``) with the
        best log-probability per label (+ 1 for the final blank): unnormalised, the sum over
        alignments favours short transcripts, i.e. deletions."""
        return [max(hyps, key=lambda h: h[1] / (len(h[0]) + 1))[0] for hyps in self.nbest(enc, lengths, beam_size)]

    @torch.no_grad()
    def nbest(self, enc: torch.Tensor, lengths: torch.Tensor, beam_size: int) -> list[list[tuple[list[int], float]]]:
        """Frame-synchronous RNN-T beam search, the utterances of a batch side by side.

        enc [B, T, J], lengths [B] -> per utterance, at most ``beam_size`` (token ids, log-probability),
        best first.

        An utterance's beam holds label prefixes that have emitted their blank at the previous
        frame. At each frame, up to ``max_symbols`` + 1 expansion steps: every open hypothesis
        closes the frame with a blank (its score merged, by log-add, with other alignments of the
        same prefix that closed the frame) or emits one label and stays open; the ``beam_size``
        best of closed prefixes and new open ones survive each step (a closed one wins a tie, as
        blank wins greedy's). A prefix's score is the log-probability summed over the alignments
        the beam kept, not normalised by length. With ``beam_size`` 1 this is exactly ``greedy``;
        with a beam that prunes nothing it is log P(labels | audio) over all alignments with at
        most ``max_symbols`` labels per frame. Each step runs the joint and prediction networks
        once for the open hypotheses of every utterance; the pruning is per utterance, so an
        utterance gets the same beam whatever it is batched with. Call in eval mode.
        """
        max_symbols, vocab = self.config.max_symbols, self.joiner.out.out_features
        lengths = lengths.tolist()
        pool = _PredictorRows(*self._start(1, enc.device))
        cache = {(b, ()): 0 for b in range(len(lengths))}  # (utterance, prefix) -> its row in the pool
        beams: list[dict[tuple[int, ...], float]] = [{(): 0.0} for _ in lengths]
        for t in range(max(lengths, default=0)):
            open_hyps = {b: list(beams[b].items()) for b, n in enumerate(lengths) if n > t}
            closed: dict[int, dict[tuple[int, ...], float]] = {b: {} for b in open_hyps}
            for step in range(max_symbols + 1):
                rows = [(b, p, s) for b, hyps in open_hyps.items() for p, s in hyps]
                pred = pool.pred.index_select(0, torch.tensor([cache[b, p] for b, p, _ in rows], device=enc.device))
                frames = enc[torch.tensor([b for b, _, _ in rows], device=enc.device), t]  # [N, J]
                logp = self.joiner(frames, pred).log_softmax(-1).double()  # [N, V]
                for (b, p, s), lp_blank in zip(rows, logp[:, self.blank].tolist()):
                    closed[b][p] = _log_add(closed[b].get(p, -math.inf), s + lp_blank)
                if step == max_symbols:
                    break
                scores = torch.tensor([s for _, _, s in rows], dtype=torch.float64, device=logp.device)[:, None] + logp
                scores[:, self.blank] = -math.inf
                grown_open, grown = {}, []
                first = 0
                for b, hyps in open_hyps.items():
                    block = scores[first : first + len(hyps)].flatten()
                    first += len(hyps)
                    top, idx = block.topk(min(beam_size, block.numel()))
                    ranked = sorted([(-s, 0, p) for p, s in closed[b].items()]
                                    + [(-s, 1, i) for s, i in zip(top.tolist(), idx.tolist()) if s > -math.inf])[:beam_size]
                    closed[b] = {p: -s for s, kind, p in ranked if kind == 0}
                    new = [(hyps[i // vocab][0], i % vocab, -s) for s, kind, i in ranked if kind == 1]
                    if new:
                        grown_open[b] = [(p + (v,), s) for p, v, s in new]
                        grown += [(b, p, v) for p, v, _ in new]
                if not grown:
                    break
                open_hyps = grown_open
                self._extend(pool, cache, grown)
            for b, beam in closed.items():
                beams[b] = beam
            # Only the surviving prefixes of utterances with frames left are extended later.
            keys = [(b, p) for b, beam in closed.items() if lengths[b] > t + 1 for p in beam]
            pool.keep([cache[k] for k in keys])
            cache = {k: row for row, k in enumerate(keys)}
        return [sorted(((list(p), s) for p, s in beam.items()), key=lambda x: -x[1]) for beam in beams]

    def _extend(self, pool: _PredictorRows, cache: dict, grown: list[tuple[int, tuple[int, ...], int]]) -> None:
        """Run the prediction network one label on from each (utterance, prefix, label) not yet in
        ``cache``, all in one batch, and add the results to ``pool``."""
        todo = [(b, p, v) for b, p, v in grown if (b, p + (v,)) not in cache]
        if not todo:
            return
        rows = torch.tensor([cache[b, p] for b, p, _ in todo], device=pool.pred.device)
        labels = torch.tensor([[v] for _, _, v in todo], device=pool.pred.device)
        pred, state = self.predictor(labels, (pool.h.index_select(1, rows), pool.c.index_select(1, rows)))
        first = pool.add(pred[:, 0], state)
        for n, (b, p, v) in enumerate(todo):
            cache[b, p + (v,)] = first + n


class _PredictorRows:
    """The prediction network's outputs and states of a beam search's prefixes, one row each, in
    tensors that grow by doubling: a step gathers and appends rows in a few calls, where a
    tensor per prefix would cost a call per prefix."""

    def __init__(self, pred: torch.Tensor, state: LstmState):
        """pred [N, J], state (h, c) each [L, N, H]"""
        self.pred, (self.h, self.c) = pred, state
        self.size = pred.shape[0]

    def add(self, pred: torch.Tensor, state: LstmState) -> int:
        """Append rows (pred [n, J], state each [L, n, H]); returns the first one's index."""
        first, n = self.size, pred.shape[0]
        if first + n > self.pred.shape[0]:
            grow = max(self.pred.shape[0], n)
            self.pred = torch.cat([self.pred[:first], self.pred.new_empty(grow, self.pred.shape[1])])
            self.h, self.c = (torch.cat([x[:, :first], x.new_empty(x.shape[0], grow, x.shape[2])], dim=1)
                              for x in (self.h, self.c))
        self.pred[first : first + n] = pred
        self.h[:, first : first + n], self.c[:, first : first + n] = state
        self.size = first + n
        return first

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, renumbered 0, 1, ... in this order."""
        index = torch.tensor(rows, dtype=torch.long, device=self.pred.device)
        kept = self.pred.index_select(0, index), self.h.index_select(1, index), self.c.index_select(1, index)
        self.size = 0
        self.add(kept[0], kept[1:])


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) for Python floats, -inf allowed."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))
