"""Step cost of each lower level and of BL-JUST's joint step, measured side by side.

    tools/venv/bin/python bench/bench_bljust_step.py [--rounds 15] [--batch 8] [--frames 300] [--threads 2]

For each unsupervised head (cpc, contrastive, contrastive_mlm) on the default CNN-LSTM and the
same batches, it times a supervised step (f), an unsupervised step (g), the joint step (one
backward of f + gamma g) and the joint step as three autograd.grad calls. All 12 variants run
interleaved, in a rotating order, in every round, so machine noise hits each alike; medians.
Prints per head:
  g step / f step
  joint / (f step + g step)             the single backward's overhead (target <= 1.1)
  three gradients / single backward
Each step is forward + backward + optimizer update. Run it with nothing else on the CPU.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bljust.data.dataset import Batch
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.train.config import load_train_config
from bljust.train.strategies import Chunk

GAMMA = 0.5
HEADS = ("cpc", "contrastive", "contrastive_mlm")
JOINT, EXPLORE, FINETUNE = Chunk("joint", 2, 1), Chunk("explore", 1, 1), Chunk("finetune", 0, 1)


def make_batch(b: int, t: int, vocab: int, labeled: bool, gen: torch.Generator) -> Batch:
    lengths = torch.randint(t // 2, t + 1, (b,), generator=gen)
    lengths[0] = t
    feats = torch.randn(b, t, 80, generator=gen) * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    if not labeled:
        return Batch([f"u{i}" for i in range(b)], feats, lengths, None, None)
    target_lengths = (lengths // 12).clamp(min=1)
    targets = torch.randint(1, vocab, (b, int(target_lengths.max())), generator=gen)
    return Batch([f"l{i}" for i in range(b)], feats, lengths, targets, target_lengths)


def variants(head: str, lab: Batch, unl: Batch, gen: torch.Generator) -> tuple[AsrModel, dict]:
    model = AsrModel(80, 30, ModelConfig("cnn_lstm", {"dropout": 0.0}, unsup=head)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    strategy = load_train_config(None, {"strategy": "bljust"}).build_strategy()
    groups = model.parameter_groups()

    def one_backward(chunk, labeled, unlabeled):
        def run():
            model.zero_grad(set_to_none=True)
            strategy.loss(model, chunk, labeled, unlabeled, GAMMA, gen).total.backward()
            opt.step()
        return run

    def three_gradients():
        """The reference formulation: three autograd.grad calls on retained graphs."""
        model.zero_grad(set_to_none=True)
        f = strategy.loss(model, FINETUNE, lab, None, GAMMA, gen).total
        g = strategy.loss(model, EXPLORE, None, unl, GAMMA, gen).total
        d_theta = torch.autograd.grad(f + GAMMA * g, groups["theta"], retain_graph=True)
        d_phi = torch.autograd.grad(f, groups["phi"], retain_graph=True)
        d_eta = torch.autograd.grad(GAMMA * g, groups["eta"])
        for params, grads in ((groups["theta"], d_theta), (groups["phi"], d_phi), (groups["eta"], d_eta)):
            for p, d in zip(params, grads):
                p.grad = d
        opt.step()

    return model, {"f step": one_backward(FINETUNE, lab, None), "g step": one_backward(EXPLORE, None, unl),
                   "joint": one_backward(JOINT, lab, unl), "three gradients": three_gradients}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    lab = make_batch(args.batch, args.frames, 30, True, gen)
    unl = make_batch(args.batch, args.frames, 30, False, gen)
    runs, sizes = {}, {}
    for head in HEADS:
        model, vs = variants(head, lab, unl, gen)
        sizes[head] = {k: sum(p.numel() for p in ps) / 1e6 for k, ps in model.parameter_groups().items()}
        runs.update({(head, name): run for name, run in vs.items()})
    for run in runs.values():  # warm-up
        run()
    times: dict = {k: [] for k in runs}
    names = list(runs)
    for r in range(args.rounds):
        for key in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            start = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"cnn_lstm default encoder, batch {args.batch} x {args.frames} frames, {args.threads} threads, "
          f"{args.rounds} rounds (medians)")
    print(f"{'lower level':16s} {'eta M':>6s} {'f ms':>7s} {'g ms':>7s} {'joint ms':>9s} {'g/f':>6s} "
          f"{'joint/(f+g)':>12s} {'3 grads/1':>10s}")
    for head in HEADS:
        f, g, j, three = (med[(head, n)] for n in ("f step", "g step", "joint", "three gradients"))
        print(f"{head:16s} {sizes[head]['eta']:6.2f} {1000 * f:7.1f} {1000 * g:7.1f} {1000 * j:9.1f} {g / f:6.3f} "
              f"{j / (f + g):12.3f} {three / j:10.3f}")


if __name__ == "__main__":
    main()
