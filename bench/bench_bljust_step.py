"""BL-JUST step cost, measured side by side on one model and the same batches.

    tools/venv/bin/python bench/bench_bljust_step.py [--rounds 15] [--batch 8] [--frames 300]

Prints, from medians over interleaved rounds (so machine noise hits every variant alike):
  (a) joint step (one backward of f + gamma g) / (supervised step + unsupervised step)   target <= 1.1
  (b) three-separate-gradients joint step / single-backward joint step
Each step is forward + backward + optimizer update.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bljust.data.dataset import Batch
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.train.trainer import step_loss

GAMMA = 0.5


def make_batch(b: int, t: int, vocab: int, labeled: bool, gen: torch.Generator) -> Batch:
    lengths = torch.randint(t // 2, t + 1, (b,), generator=gen)
    lengths[0] = t
    feats = torch.randn(b, t, 80, generator=gen) * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    if not labeled:
        return Batch([f"u{i}" for i in range(b)], feats, lengths, None, None)
    target_lengths = (lengths // 12).clamp(min=1)
    targets = torch.randint(1, vocab, (b, int(target_lengths.max())), generator=gen)
    return Batch([f"l{i}" for i in range(b)], feats, lengths, targets, target_lengths)


def three_gradient_step(model: AsrModel, lab: Batch, unl: Batch, opt: torch.optim.Optimizer, gen) -> None:
    """The reference formulation: three autograd.grad calls on retained graphs."""
    groups = model.parameter_groups()
    _, f, _ = step_loss(model, "sup", lab, None)
    _, _, g = step_loss(model, "unsup", None, unl, cpc_gen=gen)
    d_theta = torch.autograd.grad(f + GAMMA * g, groups["theta"], retain_graph=True)
    d_phi = torch.autograd.grad(f, groups["phi"], retain_graph=True)
    d_eta = torch.autograd.grad(GAMMA * g, groups["eta"])
    for params, grads in ((groups["theta"], d_theta), (groups["phi"], d_phi), (groups["eta"], d_eta)):
        for p, d in zip(params, grads):
            p.grad = d
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=300)
    args = p.parse_args()

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = AsrModel(80, 30, ModelConfig("cnn_lstm", {"dropout": 0.0})).train()  # the papers' default sizes
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    lab = make_batch(args.batch, args.frames, 30, True, gen)
    unl = make_batch(args.batch, args.frames, 30, False, gen)

    def single(kind: str):
        def run():
            model.zero_grad(set_to_none=True)
            loss, _, _ = step_loss(model, kind, lab if kind != "unsup" else None, unl if kind != "sup" else None,
                                   GAMMA, cpc_gen=gen)
            loss.backward()
            opt.step()
        return run

    def three():
        model.zero_grad(set_to_none=True)
        three_gradient_step(model, lab, unl, opt, gen)

    variants = {"supervised": single("sup"), "unsupervised": single("unsup"), "joint (1 backward)": single("joint"),
                "joint (3 grads)": three}
    for run in variants.values():  # warm-up
        run()
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"model: cnn_lstm default ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters), "
          f"batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} threads, {args.rounds} rounds")
    for k, v in med.items():
        print(f"  {k:<20} median {1000 * v:8.1f} ms")
    print(f"(a) joint step / (supervised + unsupervised step) = {med['joint (1 backward)'] / (med['supervised'] + med['unsupervised']):.3f}")
    print(f"(b) three-gradient step / single-backward step   = {med['joint (3 grads)'] / med['joint (1 backward)']:.3f}")


if __name__ == "__main__":
    main()
