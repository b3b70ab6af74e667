"""Training as separate processes: data-parallel (torchrun, gloo on the CPU), signals, kills and resumes."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from bljust.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = {"encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16, "dropout": 0.0},
        "unsup_conf": {"steps": 3, "num_negatives": 8, "ar_dim": 32}, "diag_interval": 0, "num_threads": 1}


def write_config(path: Path, **over) -> Path:
    cfg = {**TINY, **over}
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_cmd(corpus: dict, config: Path, exp: Path, *extra: str, nproc: int = 1) -> list[str]:
    launch = [sys.executable, "-m", "bljust.bin.train"]
    if nproc > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                  "-m", "bljust.bin.train"]
    return [*launch, "--config", str(config), "--train_dir", corpus["train_dir"], "--valid_dir", corpus["valid_dir"],
            "--unlabeled_dir", corpus["unlabeled_dir"], "--token_dir", corpus["token_dir"], "--cmvn", corpus["cmvn"],
            "--exp_dir", str(exp), "--resume", *extra]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def params(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def assert_same(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **tol, msg=lambda m: f"{k}: {m}")


# ---- data-parallel training ------------------------------------------------------------------

def test_two_rank_step_equals_one_process_over_both_shards(tiny_corpus, tmp_path):
    """Two gloo ranks with max_frames F each take the same steps as one process with 2F: every
    rank trains on half of each global batch, gradients and batch-norm statistics are summed."""
    steps = {"batch": {"max_frames": 500, "shuffle": True}, "specaug": {"enabled": False},
             "phases": {"train": {"steps": 3, "warmup_steps": 0}}, "max_epochs": 1}
    ddp_cfg = write_config(tmp_path / "ddp.yaml", **steps)
    one_cfg = write_config(tmp_path / "one.yaml", **{**steps, "batch": {"max_frames": 1000, "shuffle": True}})
    r = run(train_cmd(tiny_corpus, ddp_cfg, tmp_path / "ddp", nproc=2))
    assert r.returncode == 0, r.stderr[-3000:]
    r1 = run(train_cmd(tiny_corpus, one_cfg, tmp_path / "one"))
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert_same(params(tmp_path / "ddp/model_last.pt"), params(tmp_path / "one/model_last.pt"), rtol=1e-5, atol=1e-6)
    ddp_budget = json.loads((tmp_path / "ddp/budget.json").read_text())
    one_budget = json.loads((tmp_path / "one/budget.json").read_text())
    assert ddp_budget["labeled_hours"] == one_budget["labeled_hours"] and ddp_budget["steps"] == 3
    # only rank 0 writes: one set of logs, and the checkpoint carries both ranks' generators
    assert not list((tmp_path / "ddp").glob("*rank*"))
    assert len(checkpoint.load(tmp_path / "ddp/checkpoints/step_3.pt")["ranks"]) == 2


def test_bljust_runs_data_parallel_and_refuses_another_process_count(tiny_corpus, tmp_path):
    cfg = write_config(tmp_path / "bljust.yaml", strategy="bljust", max_epochs=2, batch={"max_frames": 400},
                       phases={"explore": {"steps": 2}, "joint": {"steps": 3}, "finetune": {"steps": 2}})
    r = run(train_cmd(tiny_corpus, cfg, tmp_path / "exp", nproc=2))
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "exp/train.log").read_text()
    assert "training finished: steps 12" in log and log.count("training finished") == 1
    state = checkpoint.load(checkpoint.step_checkpoints(tmp_path / "exp/checkpoints")[-1][1])
    assert state["unlabeled_hours"] > 0 and all(torch.isfinite(t).all() for t in state["model"].values())

    r = run(train_cmd(tiny_corpus, cfg, tmp_path / "exp"))
    assert r.returncode == 1 and "processes: 2 -> 1" in r.stderr and "--allow_config_change" in r.stderr
    assert "Traceback" not in r.stderr


# ---- faults -----------------------------------------------------------------------------------

BLJUST = {"strategy": "bljust", "max_epochs": 2, "batch": {"max_frames": 400}, "checkpoint_interval": 2,
          "keep_checkpoints": 3, "phases": {"explore": {"steps": 6}, "joint": {"steps": 10}, "finetune": {"steps": 6}}}


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < end, "timed out"
        time.sleep(0.02)


def test_sigkill_at_random_moments_then_resume_is_exact(tiny_corpus, tmp_path):
    cfg = write_config(tmp_path / "bljust.yaml", **BLJUST)
    r = run(train_cmd(tiny_corpus, cfg, tmp_path / "straight"))
    assert r.returncode == 0, r.stderr[-3000:]
    total = json.loads((tmp_path / "straight/budget.json").read_text())["steps"]

    exp, rng = tmp_path / "killed", random.Random(3)
    for kill in range(3):
        done = max([s for s, _ in checkpoint.step_checkpoints(exp / "checkpoints")], default=0)
        target = rng.randrange(done + 2, total - 4 + kill, 2)  # a checkpointed step still ahead
        proc = subprocess.Popen(train_cmd(tiny_corpus, cfg, exp), cwd=REPO, env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (exp / f"checkpoints/step_{target}.pt").exists(), proc)
        time.sleep(rng.uniform(0.0, 0.15))  # anywhere: mid-step, mid-validation, mid-checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"kill {kill}: the run ended before it was killed"
    r = run(train_cmd(tiny_corpus, cfg, exp))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in (exp / "train.log").read_text()
    assert_same(params(exp / "model_last.pt"), params(tmp_path / "straight/model_last.pt"), rtol=0, atol=0)
    steps = [line.split(",")[0] for line in (exp / "train_steps.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, total + 1)]  # every step logged once, redone ones included


def test_sigterm_checkpoints_and_exits_143(tiny_corpus, tmp_path):
    cfg = write_config(tmp_path / "bljust.yaml", **{**BLJUST, "checkpoint_interval": 0})
    exp = tmp_path / "exp"
    proc = subprocess.Popen(train_cmd(tiny_corpus, cfg, exp), cwd=REPO, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (exp / "checkpoints" / "step_6.pt").exists(), proc)  # training is under way: past chunk 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    found = checkpoint.step_checkpoints(exp / "checkpoints")
    stopped_at = found[-1][0]
    assert f"stopped by SIGTERM after step {stopped_at}; a checkpoint was written; rerun with --resume" in err
    assert "Traceback" not in err
    r = run(train_cmd(tiny_corpus, cfg, exp))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {exp}/checkpoints/step_{stopped_at}.pt" in (exp / "train.log").read_text()


def test_changed_config_is_refused_on_resume(tiny_corpus, tmp_path):
    cfg = write_config(tmp_path / "sup.yaml", phases={"train": {"steps": 2}}, max_epochs=1)
    exp = tmp_path / "exp"
    assert run(train_cmd(tiny_corpus, cfg, exp)).returncode == 0
    changed = write_config(tmp_path / "sup.yaml", phases={"train": {"steps": 2, "lr": 0.5}}, max_epochs=1,
                           num_threads=2)
    r = run(train_cmd(tiny_corpus, changed, exp))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "phases.train.lr: 0.001 -> 0.5" in r.stderr and "num_threads" not in r.stderr, r.stderr
    r = run(train_cmd(tiny_corpus, changed, exp, "--allow_config_change"))
    assert r.returncode == 0 and "continuing with the current ones" in r.stderr


def test_another_token_list_or_train_set_is_refused_on_resume(tiny_corpus, tmp_path):
    import shutil

    cfg = write_config(tmp_path / "sup.yaml", phases={"train": {"steps": 2}}, max_epochs=1)
    exp = tmp_path / "exp"
    assert run(train_cmd(tiny_corpus, cfg, exp)).returncode == 0
    state = checkpoint.load(checkpoint.step_checkpoints(exp / "checkpoints")[-1][1])
    assert set(state["fingerprints"]) == {"token list", "train set"}  # supervised: no unlabeled set
    tokens = Path(shutil.copytree(tiny_corpus["token_dir"], tmp_path / "tokens"))
    lines = (tokens / "tokens.txt").read_text().splitlines()
    (tokens / "tokens.txt").write_text("\n".join(lines + [f"@ {len(lines)}"]) + "\n")  # one more symbol
    train = Path(shutil.copytree(tiny_corpus["train_dir"], tmp_path / "train"))
    for name in ("feats.scp", "utt2num_frames", "text"):  # one utterance fewer
        (train / name).write_text("".join((train / name).read_text().splitlines(keepends=True)[1:]))
    moved = {**tiny_corpus, "train_dir": str(shutil.copytree(tiny_corpus["train_dir"], tmp_path / "moved"))}
    for corpus, what, source in (({**tiny_corpus, "token_dir": str(tokens)}, "token list", tokens),
                                 ({**tiny_corpus, "train_dir": str(train)}, "train set", train)):
        r = run(train_cmd(corpus, cfg, exp))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"({what}: " in r.stderr and f"-> {source} (fingerprint " in r.stderr, r.stderr
    assert run(train_cmd(moved, cfg, exp)).returncode == 0  # the same set elsewhere is the same set
    r = run(train_cmd({**tiny_corpus, "train_dir": str(train)}, cfg, exp, "--allow_config_change"))
    assert r.returncode == 0 and "continuing with the current ones" in r.stderr, r.stderr


def test_missing_init_file_is_a_clear_error(tiny_corpus, tmp_path):
    cfg = write_config(tmp_path / "sup.yaml", phases={"train": {"steps": 2}}, max_epochs=1,
                       init=str(tmp_path / "gone.pt"))
    r = run(train_cmd(tiny_corpus, cfg, tmp_path / "exp"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"init file not found: {tmp_path / 'gone.pt'}" in r.stderr, r.stderr


# ---- the data stream ----------------------------------------------------------------------------

def test_stream_workers_and_shards_give_the_same_batches_and_resume_exactly(tiny_corpus):
    from bljust.data.dataset import FeatureDataset
    from bljust.distributed import World
    from bljust.train.batches import BatchStream

    data = FeatureDataset(tiny_corpus["train_dir"])
    utts = data.utt_ids

    def draw(stream, n):
        return [(b.utt_ids, b.feats.clone()) for b in (stream.next() for _ in range(n))]

    plain = BatchStream(data, utts, 400, True, seed=5)
    expected = draw(plain, 2 * plain.batches_per_pass + 1)  # across two epoch boundaries
    workers = BatchStream(data, utts, 400, True, seed=5, num_workers=2)
    first = draw(workers, 5)
    state = workers.state_dict()  # 5 handed out; more were prefetched
    resumed = BatchStream(data, utts, 400, True, seed=5, num_workers=2)
    resumed.load_state_dict(state)
    got = first + draw(resumed, len(expected) - 5)
    assert [u for u, _ in got] == [u for u, _ in expected]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected))

    # two ranks: disjoint shards that together are the single process's batch with twice the frames
    ranks = [BatchStream(data, utts, 500, True, seed=5, world=World(r, 2)) for r in range(2)]
    whole = BatchStream(data, utts, 1000, True, seed=5)
    for _ in range(whole.batches_per_pass):
        shards = [s.next().utt_ids for s in ranks]
        batch = whole.next().utt_ids
        assert sorted(shards[0] + shards[1]) == sorted(batch) and not set(shards[0]) & set(shards[1])
        assert abs(len(shards[0]) - len(shards[1])) <= 1 and ranks[0].share + ranks[1].share == 1.0
