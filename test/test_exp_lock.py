"""One training run per exp_dir: the lock file <exp_dir>/.lock."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bljust.train import lock as lock_module
from bljust.train.lock import ExpLock, LockError

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def fake_lock(exp_dir: Path, pid: int, host: str = HOST) -> bytes:
    """A lock file as another run would have left it."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    raw = json.dumps({"pid": pid, "host": host, "started": "2024-01-02 03:04:05"}).encode()
    (exp_dir / ".lock").write_bytes(raw)
    return raw


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_taken_and_removed_after_a_normal_exit_and_an_error(tmp_path):
    exp = tmp_path / "exp"  # made by the lock
    with ExpLock(exp) as lk:
        holder = json.loads((exp / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == HOST and lk.held
    assert not (exp / ".lock").exists() and not lk.held
    with pytest.raises(ZeroDivisionError):
        with ExpLock(exp):
            assert (exp / ".lock").exists()
            1 / 0
    assert not (exp / ".lock").exists()
    assert os.listdir(exp) == []


def test_live_lock_is_refused_and_left_alone(tmp_path):
    raw = fake_lock(tmp_path, os.getpid())  # this test's own process: certainly running
    with pytest.raises(LockError) as e:
        ExpLock(tmp_path).acquire()
    message = str(e.value)
    assert f"{tmp_path} is in use by another training run (pid {os.getpid()} on host {HOST}" in message
    assert "\n" not in message
    assert (tmp_path / ".lock").read_bytes() == raw


def test_process_of_another_user_counts_as_live(tmp_path, monkeypatch):
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(lock_module.os, "kill", kill)
    raw = fake_lock(tmp_path, 1)
    with pytest.raises(LockError, match="pid 1 on host"):
        ExpLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_bytes() == raw


def test_stale_lock_is_taken_over_with_a_warning(tmp_path):
    pid = dead_pid()
    fake_lock(tmp_path, pid)
    warnings = []
    lk = ExpLock(tmp_path, warn=warnings.append)
    lk.acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert warnings == [f"taking over the stale lock {tmp_path / '.lock'} of pid {pid} on host {HOST}, "
                        f"started 2024-01-02 03:04:05 (no such process)"]
    lk.release()
    assert not (tmp_path / ".lock").exists()


def test_stale_lock_warning_goes_to_stderr(tmp_path, capsys):
    fake_lock(tmp_path, dead_pid())
    with ExpLock(tmp_path):
        pass
    err = capsys.readouterr().err
    assert err.startswith("WARNING: taking over the stale lock") and err.count("\n") == 1


def test_lock_of_another_host_is_refused_with_how_to_remove_it(tmp_path):
    raw = fake_lock(tmp_path, dead_pid(), host=HOST + "-elsewhere")
    with pytest.raises(LockError) as e:
        ExpLock(tmp_path).acquire()
    message = str(e.value)
    assert f"on host {HOST}-elsewhere" in message and f"cannot be checked from {HOST}" in message
    assert f"if that run is dead, remove {tmp_path / '.lock'}" in message
    assert (tmp_path / ".lock").read_bytes() == raw


def test_unreadable_lock_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module.time, "sleep", lambda s: None)
    (tmp_path / ".lock").write_text("")  # e.g. a run killed between creating and writing it
    with pytest.raises(LockError, match=r"unreadable; if that run is dead, remove"):
        ExpLock(tmp_path).acquire()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lk = ExpLock(tmp_path)
    lk.acquire()
    other = fake_lock(tmp_path, 12345, host="other")  # removed by hand and taken by someone else
    lk.release()
    assert (tmp_path / ".lock").read_bytes() == other


# ---- bljust.bin.train ---------------------------------------------------------------------------

def train(corpus: dict, exp: Path, tmp_path: Path, nproc: int = 1) -> subprocess.CompletedProcess:
    config = tmp_path / "train.yaml"
    config.write_text("phases:\n  train: {steps: 1}\nmax_epochs: 1\nnum_threads: 1\n")
    launch = [sys.executable, "-m", "bljust.bin.train"]
    if nproc > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                  "-m", "bljust.bin.train"]
    cmd = [*launch, "--config", str(config), "--train_dir", corpus["train_dir"], "--valid_dir", corpus["valid_dir"],
           "--token_dir", corpus["token_dir"], "--cmvn", corpus["cmvn"], "--exp_dir", str(exp), "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_train_refuses_an_exp_dir_in_use(tiny_corpus, tmp_path):
    exp = tmp_path / "exp"
    raw = fake_lock(exp, os.getpid())
    r = train(tiny_corpus, exp, tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert r.stderr == (f"ERROR: {exp} is in use by another training run (pid {os.getpid()} on host {HOST}, "
                        f"started 2024-01-02 03:04:05); wait for it to end, stop it, or use another --exp_dir "
                        f"(if pid {os.getpid()} is not a training run, remove {exp / '.lock'})\n")
    assert os.listdir(exp) == [".lock"] and (exp / ".lock").read_bytes() == raw  # nothing written


def test_train_removes_its_lock_after_an_error(tiny_corpus, tmp_path):
    exp = tmp_path / "exp"
    r = train({**tiny_corpus, "train_dir": str(tmp_path / "missing")}, exp, tmp_path)
    assert r.returncode == 1 and "missing" in r.stderr, r.stderr[-3000:]
    assert exp.is_dir() and not (exp / ".lock").exists()


def test_data_parallel_refusal_ends_every_rank(tiny_corpus, tmp_path):
    """Only rank 0 looks at the lock; the other rank learns of the refusal instead of waiting for it."""
    exp = tmp_path / "exp"
    raw = fake_lock(exp, os.getpid())
    r = train(tiny_corpus, exp, tmp_path, nproc=2)
    assert r.returncode == 1, r.stderr[-3000:]
    assert r.stderr.count(f"ERROR: {exp} is in use by another training run") == 1
    assert os.listdir(exp) == [".lock"] and (exp / ".lock").read_bytes() == raw


def test_lock_of_a_killed_unreaped_process_is_stale(tmp_path):
    """Right after a SIGKILL the process is a zombie until its parent reaps it: not running."""
    proc = subprocess.Popen(["sleep", "60"])
    proc.send_signal(9)
    while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)
    fake_lock(tmp_path, proc.pid)
    warnings = []
    with ExpLock(tmp_path, warn=warnings.append):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert len(warnings) == 1 and "(no such process)" in warnings[0]
    proc.wait()
