"""The shell utilities: parse_options.sh, run.sh, slurm.sh (with a fake sbatch), the data-dir wrappers."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bljust.data import datadir as dd
from bljust.data.validate import validate_data_dir

ROOT = Path(__file__).resolve().parents[1]
UTILS = ROOT / "utils"


def shell_env(**extra: str) -> dict[str, str]:
    """This interpreter first on PATH as ``python``, as the recipes' path.sh arranges."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHON", None)
    env.update(extra)
    return env


def sh(*args, cwd: Path | None = None, env: dict | None = None, input: str | None = None):
    """Run ``bash <args>``; return the CompletedProcess (text)."""
    return subprocess.run(["bash", *map(str, args)], cwd=cwd, env=env or shell_env(), input=input,
                          capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------------------------------
# parse_options.sh

@pytest.fixture
def opts_script(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text(f"""set -euo pipefail
nj=4
foo_bar=default
use_gpu=false
help_message="Usage: script.sh [--nj N] <arg>"
. {UTILS}/parse_options.sh
echo "nj=$nj foo_bar=$foo_bar use_gpu=$use_gpu args=$*"
""")
    return script


def test_parse_options_dash_and_underscore(opts_script):
    r = sh(opts_script, "--foo-bar", "x y", "--nj", "8", "--use_gpu", "true", "pos1", "--nj", "9")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "nj=8 foo_bar=x y use_gpu=true args=pos1 --nj 9\n"  # stops at the first non-option
    r = sh(opts_script, "--foo_bar=z", "--", "--nj", "3")
    assert r.stdout == "nj=4 foo_bar=z use_gpu=false args=--nj 3\n"


def test_parse_options_errors(opts_script):
    r = sh(opts_script, "--no-such-option", "1")
    assert r.returncode == 1 and "parse_options.sh: unknown option --no-such-option" in r.stderr
    r = sh(opts_script, "--no_such_option", "1")
    assert "parse_options.sh: unknown option --no_such_option" in r.stderr
    r = sh(opts_script, "--use-gpu", "1", "x")
    assert r.returncode == 1 and "--use-gpu takes true or false, got '1'" in r.stderr
    r = sh(opts_script, "--nj")
    assert r.returncode == 1 and "option --nj needs a value" in r.stderr


def test_parse_options_config_and_help(opts_script, tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text("nj=16\nfoo_bar=from_config\n")
    # the config is applied first, so the command line wins whatever the order
    r = sh(opts_script, "--foo-bar", "cli", "--config", conf, "a")
    assert r.stdout == "nj=16 foo_bar=cli use_gpu=false args=a\n"
    r = sh(opts_script, "--config", tmp_path / "missing.conf")
    assert r.returncode == 1 and "config file" in r.stderr and "missing.conf' not found" in r.stderr
    r = sh(opts_script, "--help")
    assert r.returncode == 0 and r.stdout == "Usage: script.sh [--nj N] <arg>\n"


# ---------------------------------------------------------------------------------------
# run.sh

def test_run_sh_jobs_substitution_and_log_format(tmp_path):
    r = sh(UTILS / "run.sh", "JOB=1:3", "log/echo.JOB.log", "echo", "JOB", "a b  c", "JOBS", "x.JOB", "wav_JOB",
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "run.sh: 3/3 jobs done" in r.stderr
    lines = (tmp_path / "log/echo.2.log").read_text().splitlines()
    assert lines[0] == "# echo 2 a\\ b\\ \\ c JOBS x.2 wav_JOB"
    assert lines[1].startswith("# Started at ")
    # "a b  c" stayed one argument (its double space survives); only whole-word JOB is replaced
    assert lines[-3] == "2 a b  c JOBS x.2 wav_JOB"
    assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[-2])
    assert re.fullmatch(r"# Ended \(code 0\) at .*", lines[-1])


def test_run_sh_pipes_other_names_and_single_job(tmp_path):
    r = sh(UTILS / "run.sh", "SPLIT=2:3", "log/p.SPLIT.log", "echo", "part", "SPLIT", "|", "tr", "a-z", "A-Z",
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "PART 3" in (tmp_path / "log/p.3.log").read_text()
    assert not (tmp_path / "log/p.1.log").exists()
    r = sh(UTILS / "run.sh", "one/single.log", "echo", "JOB", cwd=tmp_path)
    assert r.returncode == 0
    assert "\nJOB\n" in (tmp_path / "one/single.log").read_text()  # no range: nothing replaced


def test_run_sh_max_jobs_run(tmp_path):
    # Each job notes how many jobs are running while it runs.
    job = "mkdir -p running; touch running/JOB; ls running | wc -l >> counts; sleep 0.3; rm running/JOB"
    start = time.monotonic()
    r = sh(UTILS / "run.sh", "--max-jobs-run", "2", "JOB=1:4", "log/j.JOB.log", "bash", "-c", job, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    counts = [int(c) for c in (tmp_path / "counts").read_text().split()]
    assert len(counts) == 4 and max(counts) <= 2
    assert elapsed >= 0.6  # two rounds of 0.3 s
    (tmp_path / "counts").unlink()
    r = sh(UTILS / "run.sh", "JOB=1:4", "log/j.JOB.log", "bash", "-c", job.replace("0.3", "1"), cwd=tmp_path)
    assert max(int(c) for c in (tmp_path / "counts").read_text().split()) >= 2  # no limit: in parallel


def test_run_sh_failure(tmp_path):
    r = sh(UTILS / "run.sh", "JOB=1:4", "log/f.JOB.log", "bash", "-c", "[ JOB -ne 3 ] || exit 7", cwd=tmp_path)
    assert r.returncode == 1
    assert "run.sh: 1 / 4 failed, log is in log/f.3.log" in r.stderr
    assert (tmp_path / "log/f.3.log").read_text().splitlines()[-1].startswith("# Ended (code 7) at ")
    r = sh(UTILS / "run.sh", "log/x.log", "false", cwd=tmp_path)
    assert r.returncode == 1 and "run.sh: 1 / 1 failed, log is in log/x.log" in r.stderr
    r = sh(UTILS / "run.sh", "JOB=1:2", "log/same.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "put JOB in its name" in r.stderr
    r = sh(UTILS / "run.sh", cwd=tmp_path)
    assert r.returncode == 1 and "Usage" in r.stderr


# ---------------------------------------------------------------------------------------
# slurm.sh with a fake sbatch

FAKE_SBATCH = """#!/usr/bin/env bash
# Fake sbatch: records its arguments; runs the batch script once, or once per --array task,
# output in --output (%a: the task number); --nodes=N is left to the fake srun.
echo "sbatch $*" >> "$FAKE_SLURM_LOG"
[[ " $* " == *" --wait "* ]] || { echo "fake sbatch: expected --wait" >&2; exit 2; }
out=/dev/null tasks="" SLURM_NNODES=1
for a in "$@"; do case "$a" in
    --output=*) out=${a#--output=} ;;
    --array=*) a=${a#--array=}; a=${a%%%*}; tasks=$(seq "${a%-*}" "${a#*-}") ;;
    --nodes=*) SLURM_NNODES=${a#--nodes=} ;;
esac; done
export SLURM_JOB_ID=$RANDOM SLURM_NNODES
echo "$SLURM_JOB_ID"
[ -n "$tasks" ] || exec bash "${!#}" > "$out" 2>&1
rc=0
for t in $tasks; do
    SLURM_ARRAY_JOB_ID=$SLURM_JOB_ID SLURM_ARRAY_TASK_ID=$t bash "${!#}" > "${out//%a/$t}" 2>&1 || rc=$?
done
exit $rc
"""
# Fake srun: records its arguments; runs the command once per node, with that node's number.
FAKE_SRUN = """#!/usr/bin/env bash
echo "srun $*" >> "$FAKE_SLURM_LOG"
while [[ $1 == -* ]]; do shift; done
rc=0
for (( n = 0; n < SLURM_NNODES; n++ )); do SLURM_NODEID=$n "$@" || rc=$?; done
exit $rc
"""
FAKE_SCANCEL = """#!/usr/bin/env bash
echo "scancel $*" >> "$FAKE_SLURM_LOG"
"""
SBATCH = "sbatch --wait --parsable --export=ALL"


@pytest.fixture
def fake_slurm(tmp_path):
    """(work folder, environment with the fake sbatch/srun/scancel, reader of their calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    env = shell_env(PATH=f"{bin_dir}{os.pathsep}{shell_env()['PATH']}", FAKE_SLURM_LOG=str(calls))
    work = tmp_path / "work"
    work.mkdir()

    def read_calls() -> list[str]:
        lines = calls.read_text().splitlines() if calls.exists() else []
        calls.unlink(missing_ok=True)
        return lines
    return work, env, read_calls


def test_slurm_sh_options_and_log_format(fake_slurm):
    work, env, calls = fake_slurm
    r = sh(UTILS / "slurm.sh", "--mem", "4G", "--gpu", "1", "--num-threads", "2", "--time", "1:00:00",
           "--partition", "p1", "JOB=1:3", "exp/log/t.JOB.log", "echo", "job", "JOB", "two words", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    log = (work / "exp/log/t.2.log").read_text().splitlines()
    assert log[0] == "# echo job 2 two\\ words" and log[1].startswith("# Started at ")
    assert re.fullmatch(r"# Running on .* as Slurm job \d+_2", log[2])
    assert "job 2 two words" in log
    assert re.fullmatch(r"# Accounting: time=\d+ threads=2", log[-2]) and log[-1].startswith("# Ended (code 0)")
    assert [p.name for p in (work / "exp/log/q").glob("*.sh")] == ["t.JOB.sh"]
    assert (work / "exp/log/q/t.3.out").exists()
    assert calls() == [f"{SBATCH} --job-name=t.JOB --output=exp/log/q/t.%a.out --array=1-3 --gres=gpu:1"
                       " --cpus-per-task=2 --mem=4G --time=1:00:00 --partition=p1 exp/log/q/t.JOB.sh"]
    # No range: one plain job; a later option wins over an earlier one.
    r = sh(UTILS / "slurm.sh", "--gpu", "1", "--mem", "1G", "--gpu", "2", "one/x.log", "false", cwd=work, env=env)
    assert r.returncode == 1 and "slurm.sh: 1 / 1 failed, log is in one/x.log" in r.stderr
    assert calls() == [f"{SBATCH} --job-name=x --output=one/q/x.out --gres=gpu:2 --mem=1G one/q/x.sh"]
    assert (work / "one/x.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    r = sh(UTILS / "slurm.sh", "JOB=1:2", "log/same.log", "true", cwd=work, env=env)
    assert r.returncode == 1 and "put JOB in its name" in r.stderr


def test_slurm_sh_multi_node_gpu_job(fake_slurm):
    work, env, calls = fake_slurm
    r = sh(UTILS / "slurm.sh", "--gpu", "4", "--num-nodes", "2", "--mem", "64G", "--time", "24:00:00",
           "exp/train.log", "echo", "node", "$SLURM_NODEID", "of", "$SLURM_NNODES", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert calls() == [
        f"{SBATCH} --job-name=train --output=exp/q/train.out"
        " --nodes=2 --ntasks-per-node=1 --gres=gpu:4 --mem=64G --time=24:00:00 exp/q/train.sh",
        "srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c echo node $SLURM_NODEID of $SLURM_NNODES"]
    log = (work / "exp/train.log").read_text().splitlines()
    assert "node 0 of 2" in log and "node 1 of 2" in log and log[-1].startswith("# Ended (code 0)")
    # cmd.sh's cuda_cmd with the options a recipe adds for training (later options win).
    (work / "utils").symlink_to(UTILS)  # as in a recipe folder
    r = subprocess.run(["bash", "-c", f'. {ROOT}/egs/TEMPLATE/cmd.sh; $cuda_cmd --gpu 4 --num-nodes 2 log/t.log true'],
                       cwd=work, capture_output=True, text=True,
                       env={**env, "cmd_backend": "slurm", "slurm_gpu_mem": "80G", "slurm_partition": "gpu"})
    assert r.returncode == 0, r.stderr
    assert calls()[0] == (f"{SBATCH} --job-name=t --output=log/q/t.out --nodes=2 --ntasks-per-node=1"
                          " --gres=gpu:4 --mem=80G --time=24:00:00 --partition=gpu log/q/t.sh")


def test_slurm_sh_job_array_failures(fake_slurm):
    work, env, calls = fake_slurm
    # Job 5 fails, job 7 dies without its log's end line (as when Slurm kills it).
    r = sh(UTILS / "slurm.sh", "JOB=1:8", "exp/log/fbank.JOB.log",
           "bash", "-c", "echo fbank part JOB; [ JOB -ne 7 ] || kill -9 $PPID; [ JOB -ne 5 ]", cwd=work, env=env)
    assert r.returncode == 1
    assert "slurm.sh: 2 / 8 failed, log is in exp/log/fbank.5.log" in r.stderr
    assert calls() == [f"{SBATCH} --job-name=fbank.JOB --output=exp/log/q/fbank.%a.out --array=1-8"
                       " exp/log/q/fbank.JOB.sh"]
    for j in range(1, 9):
        assert f"fbank part {j}" in (work / f"exp/log/fbank.{j}.log").read_text().splitlines()
    assert (work / "exp/log/fbank.5.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    log7 = (work / "exp/log/fbank.7.log").read_text()
    assert "# Ended" not in log7 and "# slurm.sh: the job did not run to its end" in log7
    assert "exp/log/q/fbank.7.out" in log7

    r = sh(UTILS / "slurm.sh", "--max-jobs-run", "3", "JOB=1:8", "exp/log/m.JOB.log", "true", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert calls() == [f"{SBATCH} --job-name=m.JOB --output=exp/log/q/m.%a.out --array=1-8%3 exp/log/q/m.JOB.sh"]


def test_slurm_sh_interrupt_cancels_the_job(fake_slurm):
    work, env, calls = fake_slurm
    p = subprocess.Popen(["bash", str(UTILS / "slurm.sh"), "JOB=1:2", "log/s.JOB.log", "sleep", "30"], cwd=work,
                         env=env, stderr=subprocess.PIPE, text=True)
    submit = work / "log/q/s.JOB.submit"
    deadline = time.monotonic() + 10
    while not (submit.exists() and submit.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.terminate()
    _, err = p.communicate(timeout=10)
    assert p.returncode == 130 and "interrupted, jobs cancelled" in err
    assert calls()[-1] == f"scancel {submit.read_text().split()[0]}"


# ---------------------------------------------------------------------------------------
# The data-directory wrappers and cmd.sh

def make_data(d: Path) -> Path:
    utt2spk = {f"s{s}-u{i}": f"s{s}" for s in range(1, 4) for i in range(2)}
    dd.write_data_dir(d, wav_scp={u: f"{u}.wav" for u in utt2spk}, utt2spk=utt2spk,
                      text={u: f"words of {u}" for u in utt2spk},
                      utt2dur={u: 1.0 + int(u[-1]) + int(u[1]) / 10 for u in utt2spk})
    return d


def test_validate_and_fix_wrappers(tmp_path):
    d = make_data(tmp_path / "data")
    r = sh(UTILS / "validate_data_dir.sh", d)
    assert r.returncode == 0 and r.stdout == f"Successfully validated data-directory {d}\n"
    (d / "text").write_text("s1-u0 a\ns1-u1 b\n")
    r = sh(UTILS / "validate_data_dir.sh", d)
    assert r.returncode == 1
    assert r.stderr.startswith(f"ERROR: {d}/utt2spk:3: utterance 's2-u0' has no transcript in text")
    assert "Traceback" not in r.stderr
    r = sh(UTILS / "fix_data_dir.sh", d)
    assert r.returncode == 0 and "dropped 4" in r.stdout
    assert sh(UTILS / "validate_data_dir.sh", "--need-feats", d).returncode == 1
    (d / "text").unlink()
    assert sh(UTILS / "validate_data_dir.sh", "--no-text", d).returncode == 0
    r = sh(UTILS / "validate_data_dir.sh", "--bogus", d)
    assert r.returncode == 1 and "Usage" in r.stderr


def test_subset_combine_split_wrappers(tmp_path):
    d = make_data(tmp_path / "data")
    assert sh(UTILS / "subset_data_dir.sh", "--first", d, "2", tmp_path / "f2").returncode == 0
    assert dd.load_data_dir(tmp_path / "f2").utt_ids == ["s1-u0", "s1-u1"]
    assert sh(UTILS / "subset_data_dir.sh", "--last", "1", d, tmp_path / "l1").returncode == 0
    assert dd.load_data_dir(tmp_path / "l1").utt_ids == ["s3-u1"]
    assert sh(UTILS / "subset_data_dir.sh", "--shortest", d, "2", tmp_path / "s2").returncode == 0
    assert dd.load_data_dir(tmp_path / "s2").utt_ids == ["s1-u0", "s2-u0"]
    (tmp_path / "spk").write_text("s2\n")
    assert sh(UTILS / "subset_data_dir.sh", "--spk-list", tmp_path / "spk", d, tmp_path / "sp").returncode == 0
    assert dd.load_data_dir(tmp_path / "sp").utt_ids == ["s2-u0", "s2-u1"]
    r = sh(UTILS / "subset_data_dir.sh", d, tmp_path / "x")
    assert r.returncode == 1 and "Usage" in r.stderr

    r = sh(UTILS / "combine_data.sh", tmp_path / "c", tmp_path / "f2", tmp_path / "l1")
    assert r.returncode == 0, r.stderr
    assert validate_data_dir(tmp_path / "c").utt_ids == ["s1-u0", "s1-u1", "s3-u1"]
    r = sh(UTILS / "combine_data.sh", tmp_path / "c2", tmp_path / "f2", tmp_path / "f2")
    assert r.returncode == 1 and "is in both" in r.stderr

    r = sh(UTILS / "split_data.sh", "--per-utt", d, "4")
    assert r.returncode == 0, r.stderr
    assert [len(validate_data_dir(d / "split4utt" / str(i)).utt_ids) for i in range(1, 5)] == [1, 2, 1, 2]
    r = sh(UTILS / "split_data.sh", d, "4")
    assert r.returncode == 1 and "it has 3 speakers" in r.stderr
    assert sh(UTILS / "split_data.sh", d, "x").returncode == 1


def test_speaker_map_wrappers(tmp_path):
    r = sh(UTILS / "utt2spk_to_spk2utt.sh", input="s2-b s2\ns1-a s1\ns1-c s1\n")
    assert r.returncode == 0 and r.stdout == "s1 s1-a s1-c\ns2 s2-b\n"
    r = sh(UTILS / "spk2utt_to_utt2spk.sh", input="s1 s1-c s1-a\ns2 s2-b\n")
    assert r.returncode == 0 and r.stdout == "s1-a s1\ns1-c s1\ns2-b s2\n"
    r = sh(UTILS / "utt2spk_to_spk2utt.sh", input="u1 a\nu1 b\n")
    assert r.returncode == 1 and "ERROR: <stdin>:2: duplicate key 'u1'" in r.stderr


def test_cmd_sh_backends(tmp_path):
    script = f'. {ROOT}/egs/TEMPLATE/cmd.sh; echo "$train_cmd|$cuda_cmd"'
    r = subprocess.run(["bash", "-c", script], env=shell_env(), capture_output=True, text=True)
    assert r.stdout == "utils/run.sh|utils/run.sh\n"
    (tmp_path / "utils").symlink_to(UTILS)  # as in a recipe folder
    r = subprocess.run(["bash", "-c", f"{script}; $cuda_cmd --gpu 2 --num-nodes 2 log/x.log true"],
                       cwd=tmp_path, env=shell_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # run.sh ignores the Slurm options
    r = subprocess.run(["bash", "-c", script], env=shell_env(cmd_backend="slurm"), capture_output=True, text=True)
    assert r.stdout == "utils/slurm.sh --mem 4G|utils/slurm.sh --gpu 1 --mem 32G --time 24:00:00\n"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                       env=shell_env(cmd_backend="slurm", slurm_gpus="2", slurm_gpu_mem="80G", slurm_time="2:00:00",
                                     slurm_partition="gpu"))
    assert r.stdout.endswith("|utils/slurm.sh --gpu 2 --mem 80G --time 2:00:00 --partition gpu\n")
