"""bench/gpu_check.py, the one script a GPU machine runs first, works: its CPU mode on the runs
that need the most of it (RNN-T with beam decoding; wav2vec 2.0 on a raw-audio dump)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("only,runs", [("rnnt", 2), ("wav2vec2", 1)])
def test_gpu_check_runs_on_the_cpu(only, runs):
    r = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--steps", "20", "--utts", "12",
                        "--only", only], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith(only)]
    assert len(lines) == runs and all(" OK (" in line for line in lines), r.stdout
    assert r.stdout.rstrip().endswith("all checks passed")
    if only == "rnnt":
        assert all("decoded greedy and beam" in line for line in lines)
