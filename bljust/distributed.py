"""Data-parallel training across processes (``torchrun``): NCCL on GPUs, gloo on CPUs.

Every rank draws the same global batch from the same seeded stream and trains on its own
shard of it (``batches.BatchStream``), so labeled and unlabeled streams stay in lock-step
and a resumed run continues every rank exactly. A step's gradients are summed across ranks
in one all-reduce of a flat vector after the single backward pass; each rank's loss is
weighted by its share of the global batch, so the sum is the gradient of the global batch's
loss. The gradients are reduced by hand rather than by ``DistributedDataParallel``'s hooks:
a phase updates only some parameter groups, g may skip the context network, and the
gradient diagnostics call ``autograd.grad`` outside any reduction; a hand-made reduction
needs no unused-parameter search and never leaves a rank waiting in a hook. Batch norm
statistics are summed across ranks (``models/norm.py``), so a rank's forward pass equals
its part of the single-process forward pass over the global batch.

Only rank 0 writes checkpoints, logs, plots and model packages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def world_from_env() -> World:
    """The process's place in a ``torchrun`` launch (RANK, WORLD_SIZE, LOCAL_RANK); one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, use_cuda: bool) -> torch.device:
    """Join the process group (when there is more than one process) and return this rank's device."""
    device = torch.device("cuda", world.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=world.rank, world_size=world.size,
                                device_id=device if use_cuda else None)
    return device


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if active():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_initialized() and dist.get_world_size() > 1


def sum_(t: torch.Tensor) -> torch.Tensor:
    """In-place sum of ``t`` across ranks (a no-op in a single process)."""
    if active():
        dist.all_reduce(t)
    return t


def max_(t: torch.Tensor) -> torch.Tensor:
    """In-place elementwise maximum of ``t`` across ranks."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def differentiable_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed across ranks, with the gradient flowing back to every rank's ``t``."""
    if not active():
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if active():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def gather(obj: object, world: World) -> list[object]:
    """Every rank's ``obj``, in rank order (only rank 0's list is complete; the others get [])."""
    if not active():
        return [obj]
    out = [None] * world.size if world.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def finite_everywhere(t: torch.Tensor) -> bool:
    """Whether ``t`` is finite on every rank (so that all of them backpropagate, or none)."""
    if not active():
        return bool(torch.isfinite(t))
    return not bool(max_((~torch.isfinite(t.detach())).float().reshape(1)))


def sum_gradients(params: list[torch.nn.Parameter], values: dict[str, torch.Tensor | None],
                  share: float) -> tuple[bool, dict[str, torch.Tensor]]:
    """Sum every rank's share-weighted gradients of ``params`` (and the scalars ``values``, times
    ``share``) in one all-reduce of a flat vector; a parameter no rank reached keeps no gradient,
    as in a single process. -> (all finite, the global batch's values)"""
    device = params[0].device
    reached = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    named = [k for k, v in values.items() if v is not None]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
                     + [reached, torch.stack([values[k].detach() * share for k in named]).float()])
    sum_(flat)
    offset = 0
    for p, was_reached in zip(params, (flat[-len(named) - len(params):-len(named)] > 0).tolist()):
        p.grad = flat[offset:offset + p.numel()].view_as(p) if was_reached else None
        offset += p.numel()
    return bool(torch.isfinite(flat).all()), {k: flat[-len(named) + i] for i, k in enumerate(named)}
