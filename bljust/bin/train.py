"""Train an ASR model.

    python -m bljust.bin.train --config conf/train.yaml --train_dir dump/fbank/train \\
        --valid_dir dump/fbank/dev --token_dir data/token_list/char \\
        --cmvn dump/fbank/train/cmvn.ark --exp_dir exp/asr_train [--unlabeled_dir dump/fbank/train_unlabeled] \\
        [--resume] [--phases.train.lr 1e-3 ...]

Any config key can be overridden after the named options: ``--phases.train.lr 5e-4``,
``--encoder_conf.lstm_layers 4``, ``--max_epochs=20``.

Data-parallel training: launch it with ``torchrun`` (``asr.sh --ngpu N``, ``--nproc_per_node N``,
``--num_nodes M`` do this), e.g. two CPU processes:

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m bljust.bin.train ... --exp_dir exp/x

Each process trains on its share of every batch; ``batch.max_frames`` is per process.

One run at a time per exp_dir: a run holds ``<exp_dir>/.lock`` (its pid and host) while it runs,
and another run on the same exp_dir is refused (a lock left by a dead process on this host is
taken over with a warning; see ``bljust/train/lock.py``).

Exit status: 0 done; 1 an error (the message says which); 130 / 143 stopped by SIGINT / SIGTERM
after writing a checkpoint (the same command with ``--resume`` continues exactly).
"""
from __future__ import annotations

import argparse
import sys

import torch

from bljust import distributed
from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.config import ConfigError, parse_overrides
from bljust.train import checkpoint
from bljust.train.config import load_train_config
from bljust.train.errors import TrainingError
from bljust.train.lock import ExpLock, LockError
from bljust.train.trainer import Stopped, Trainer, TrainData


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.train", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--config", help="training YAML; any key can also be given as --key value after the options "
                   "(default: the built-in settings)")
    p.add_argument("--train_dir", required=True, help="labeled feature dump directory")
    p.add_argument("--valid_dir", required=True, help="validation feature dump directory")
    p.add_argument("--unlabeled_dir", help="unlabeled feature dump directory (strategies pt_ft, just, bljust)")
    p.add_argument("--token_dir", required=True, help="token list directory (from make_tokens)")
    p.add_argument("--cmvn", help="global CMVN statistics, a Kaldi stats matrix (default: features not normalized)")
    p.add_argument("--exp_dir", required=True, help="experiment folder: checkpoints, logs, model packages")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in exp_dir")
    p.add_argument("--allow_config_change", action="store_true",
                   help="resume even if the checkpoint was written with other settings or another number of processes")
    p.add_argument("--ngpu", type=int, default=0,
                   help="0: CPU; N > 0: CUDA, one GPU per process (N > 1 needs N processes from torchrun)")
    args, rest = p.parse_known_args(argv)

    try:
        config = load_train_config(args.config, parse_overrides(rest))
    except ConfigError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    world = distributed.world_from_env()
    problem = None
    if args.ngpu > 0 and not torch.cuda.is_available():
        problem = "--ngpu > 0 but no CUDA device is visible"
    elif args.ngpu > 0 and torch.cuda.device_count() < args.ngpu:
        problem = f"--ngpu {args.ngpu} but only {torch.cuda.device_count()} CUDA device(s) are visible"
    elif args.ngpu > 1 and world.size == 1:
        problem = (f"--ngpu {args.ngpu} needs {args.ngpu} processes: launch with torchrun --nproc_per_node "
                   f"{args.ngpu} (asr.sh --ngpu does)")
    if problem:
        if world.is_main:
            print(f"ERROR: {problem}", file=sys.stderr)
        return 1
    # One run per exp_dir: rank 0 alone takes <exp_dir>/.lock, before anything is built, and every
    # rank learns the outcome from one all-reduce right after joining the process group, so that a
    # refusal ends every rank at once (the others would otherwise wait for rank 0 in a collective).
    lock = ExpLock(args.exp_dir) if world.is_main else None
    try:
        refusal = None
        if lock is not None:
            try:
                lock.acquire()
            except LockError as e:
                refusal = str(e)
        device = distributed.init(world, use_cuda=args.ngpu > 0)
        refused = bool(distributed.max_(torch.tensor([int(refusal is not None)], device=device)))  # any rank's
        if not refused and not args.resume and checkpoint.step_checkpoints(f"{args.exp_dir}/checkpoints"):
            refused = True
            refusal = f"{args.exp_dir} already holds checkpoints; pass --resume to continue or choose another --exp_dir"
        if refused:
            if world.is_main:
                print(f"ERROR: {refusal}", file=sys.stderr)
            return 1
        return _train(args, config, world, device)
    finally:
        try:
            if lock is not None:
                lock.release()
        finally:
            distributed.shutdown()


def _train(args, config, world, device) -> int:
    def fail(message: object) -> int:
        print(f"ERROR: {'' if world.is_main else f'[rank {world.rank}] '}{message}", file=sys.stderr)
        return 1

    try:
        trainer = Trainer(config, TrainData(args.train_dir, args.valid_dir, args.token_dir, args.cmvn, args.unlabeled_dir),
                          args.exp_dir, device=device, world=world)
        if args.resume:
            trainer.resume(args.allow_config_change)
        if trainer.init_pending:  # a new run: read init here, so that a bad init file is a clear error
            trainer.load_init()
    except (ConfigError, ValueError) as e:  # ValueError includes checkpoint.CheckpointError
        return fail(e)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    except Stopped as e:
        if world.is_main:
            print(f"{e}; rerun with --resume to continue", file=sys.stderr)
        return e.exit_code
    except (TrainingError, ValueError) as e:  # too many non-finite steps, out of memory on half a batch, bad data
        return fail(e)
    # Rank 0 still writes budget.json and the plots when the others are done; a rank that tears its
    # process group down while a peer is connected can abort in gloo ("terminate called ...").
    distributed.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
