"""Every numeric or enumerated option of asr.sh, the recipes' scripts and utils/ is checked before any
work starts: a bad value is one line on stderr naming the option and the value, exit status 1, and
nothing is written. The scripts run in copies of the recipes (shared parts linked, as in egs/<corpus>),
and stop before they would do any work, so every case takes milliseconds."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("mini", "covost2", "librispeech", "tedlium2")
OUTPUTS = ("data", "dump", "exp", "downloads", "log")
COVOST2_LANGS = "ar, ca, cy, de, es, et, fa, fr, id, it, ja, lv, mn, nl, pt, ru, sl, sv-SE, ta, tr, zh-CN"

# (recipe, command, extra environment, the message (or a fragment of it) expected on stderr)
CASES = [
    # asr.sh, through the recipe's run.sh
    ("mini", "./run.sh --stage abc", {}, "asr.sh: --stage must be an integer from 0 to 8, got 'abc'"),
    ("mini", "./run.sh --stage 9", {}, "asr.sh: --stage must be an integer from 0 to 8, got '9'"),
    ("mini", "./run.sh --stage=-1", {}, "asr.sh: --stage must be an integer from 0 to 8, got '-1'"),
    ("mini", "./run.sh --stop_stage x", {}, "asr.sh: --stop_stage must be a non-negative integer, got 'x'"),
    ("mini", "./run.sh --stage 5 --stop_stage 3", {}, "asr.sh: --stop_stage must be >= --stage (5), got '3'"),
    ("mini", "./run.sh --nj 0", {}, "asr.sh: --nj must be a positive integer, got '0'"),
    ("mini", "./run.sh --nj 08", {}, "asr.sh: --nj must be a positive integer, got '08'"),
    ("mini", "./run.sh --ngpu -1", {}, "asr.sh: --ngpu must be a non-negative integer, got '-1'"),
    ("mini", "./run.sh --nproc_per_node two", {}, "asr.sh: --nproc_per_node must be a positive integer, got 'two'"),
    ("mini", "./run.sh --num_nodes 0", {}, "asr.sh: --num_nodes must be a positive integer, got '0'"),
    ("mini", "./run.sh --num_nodes 2", {},
     "asr.sh: --num_nodes must be 1 unless cmd_backend=slurm (see cmd.sh), got '2'"),
    ("mini", "./run.sh --train_jobs 1.5", {}, "asr.sh: --train_jobs must be a positive integer, got '1.5'"),
    ("mini", "./run.sh --fs 16k", {}, "asr.sh: --fs must be a positive integer, got '16k'"),
    ("mini", "./run.sh --num_mel_bins 0", {}, "asr.sh: --num_mel_bins must be a positive integer, got '0'"),
    ("mini", "./run.sh --nbpe -5", {}, "asr.sh: --nbpe must be a positive integer, got '-5'"),
    ("mini", "./run.sh --lm_order three", {}, "asr.sh: --lm_order must be a positive integer, got 'three'"),
    ("mini", "./run.sh --token_type wordpiece", {},
     "asr.sh: --token_type must be char, unigram or bpe, got 'wordpiece'"),
    ("mini", "./run.sh --feats_type mfcc", {}, "asr.sh: --feats_type must be fbank or raw, got 'mfcc'"),
    ("mini", "./run.sh --feats_compress yes", {}, "asr.sh: --feats_compress takes true or false, got 'yes'"),
    ("mini", "./run.sh --speed_perturb_factors '0.9 fast'", {},
     "asr.sh: --speed_perturb_factors must be a list of distinct positive numbers, got '0.9 fast'"),
    ("mini", "./run.sh --speed_perturb_factors '0 1.1'", {},
     "asr.sh: --speed_perturb_factors must be a list of distinct positive numbers, got '0 1.1'"),
    ("mini", "./run.sh --speed_perturb_factors '1.1 1.1'", {},
     "asr.sh: --speed_perturb_factors must be a list of distinct positive numbers, got '1.1 1.1'"),
    ("mini", "./run.sh --seeds '0 one'", {},
     "asr.sh: --seeds must be a list of distinct non-negative integers, got '0 one'"),
    ("mini", "./run.sh --seeds -1", {}, "asr.sh: --seeds must be a list of distinct non-negative integers, got '-1'"),
    ("mini", "./run.sh --seeds '1 1'", {},
     "asr.sh: --seeds must be a list of distinct non-negative integers, got '1 1'"),
    ("mini", "./run.sh --expdir ''", {}, "asr.sh: --expdir must be non-empty, got ''"),
    ("mini", "./run.sh --dumpdir ''", {}, "asr.sh: --dumpdir must be non-empty, got ''"),
    ("mini", "./run.sh --token_listdir ''", {}, "asr.sh: --token_listdir must be non-empty, got ''"),
    ("mini", "./run.sh --no_such_option 1", {}, "parse_options.sh: unknown option --no_such_option (see asr.sh --help)"),
    ("mini", "./run.sh --PATH /tmp", {}, "parse_options.sh: unknown option --PATH (see asr.sh --help)"),
    ("mini", "./run.sh --help_message x", {}, "parse_options.sh: unknown option --help_message (see asr.sh --help)"),
    ("mini", "./run.sh --stage", {}, "asr.sh: option --stage needs a value"),
    ("mini", "./run.sh stage 3", {}, "asr.sh: unexpected arguments: stage 3"),
    ("mini", "./run.sh --train_config conf/nope.yaml", {}, "asr.sh: --train_config conf/nope.yaml: no such file"),
    ("mini", "./run.sh --config {tmp}/bad.conf", {}, "asr.sh: --lm_order must be a positive integer, got 'many'"),
    ("mini", "./run.sh", {"cmd_backend": "slurm", "slurm_gpus": "x"},
     "asr.sh: slurm_gpus (cmd.sh) must be a non-negative integer, got 'x'"),
    ("mini", "./run.sh", {"cmd_backend": "slurm", "slurm_gpu_mem": "32GB"},
     "asr.sh: slurm_gpu_mem (cmd.sh) must be a memory size such as 4000 (megabytes) or 4G"),
    ("mini", "./run.sh", {"cmd_backend": "slurm", "slurm_time": "4h"},
     "asr.sh: slurm_time (cmd.sh) must be a Slurm time limit such as 90 (minutes), 4:00:00 or 1-12:00:00, got '4h'"),
    ("mini", "./run.sh", {"cmd_backend": "cluster"}, "cmd.sh: unknown cmd_backend 'cluster' (use local or slurm)"),
    # the recipes' own options and local/ scripts
    ("covost2", "./run.sh --multilingual yes", {}, "run.sh: --multilingual takes true or false, got 'yes'"),
    ("covost2", "./run.sh --langs 'nl xx'", {},
     f"run.sh: --langs must be a list of distinct values among {COVOST2_LANGS}, got 'nl xx'"),
    ("covost2", "./run.sh --langs ' '", {}, "run.sh: --langs must name at least one language, got ' '"),
    ("covost2", "./run.sh --langs", {}, "run.sh: option --langs needs a value"),
    ("covost2", "./run.sh --langs nl --ngpu x", {}, "asr.sh: --ngpu must be a non-negative integer, got 'x'"),
    ("covost2", "local/download.sh --langs en", {},
     f"local/download.sh: --langs must be a list of distinct values among {COVOST2_LANGS}, got 'en'"),
    ("covost2", "local/data.sh --langs nl,nl", {}, "local/data.sh: --langs must be a list of distinct values among"),
    ("librispeech", "local/download.sh --unlabeled_parts train-clean-999", {},
     "local/download.sh: --unlabeled_parts must be a list of distinct values among train-clean-100, "
     "train-clean-360, train-other-500, got 'train-clean-999'"),
    ("librispeech", "local/data.sh --unlabeled_parts 'train-clean-360 dev-clean'", {},
     "local/data.sh: --unlabeled_parts must be a list of distinct values among"),
    ("tedlium2", "local/data.sh --labeled_hours 0", {},
     "local/data.sh: --labeled_hours must be a positive number or empty, got '0'"),
    ("tedlium2", "local/data.sh --seed x", {}, "local/data.sh: --seed must be a non-negative integer, got 'x'"),
    ("tedlium2", "local/download.sh now", {}, "local/download.sh: unexpected arguments: now"),
    ("mini", "local/data.sh --num_dev 0", {}, "local/data.sh: --num_dev must be a positive integer, got '0'"),
    ("mini", "local/data.sh --voices_test x", {}, "local/data.sh: --voices_test must be a positive integer, got 'x'"),
    ("mini", "local/data.sh --seed -3", {}, "local/data.sh: --seed must be a non-negative integer, got '-3'"),
    ("mini", "local/data.sh --snr_min loud", {}, "local/data.sh: --snr_min must be a number, got 'loud'"),
    ("mini", "local/data.sh --snr_min 30 --snr_max 10", {}, "local/data.sh: --snr_max must be >= --snr_min (30), got '10'"),
    ("mini", "local/data.sh --num_workers 0", {},
     "local/data.sh: --num_workers must be a positive integer or empty, got '0'"),
    ("mini", "local/data.sh --num-test=", {}, "local/data.sh: --num_test must be a positive integer, got ''"),
    ("mini", "local/data.sh --nosuch 1", {}, "parse_options.sh: unknown option --nosuch (see local/data.sh --help)"),
    ("mini", "local/sweep_depth.sh --cnn '2 x'", {},
     "local/sweep_depth.sh: --cnn must be a list of distinct positive integers, got '2 x'"),
    ("mini", "local/sweep_depth.sh --lstm ''", {}, "local/sweep_depth.sh: --lstm must list at least one layer count, got ''"),
    ("mini", "local/sweep_lr.sh --pairs '1e-3,1e-3 1e-3'", {},
     "local/sweep_lr.sh: --pairs must be space-separated alpha,beta pairs of positive numbers, got '1e-3,1e-3 1e-3'"),
    ("mini", "local/sweep_lr.sh --config conf/nope.yaml", {}, "local/sweep_lr.sh: --config conf/nope.yaml: no such file"),
    ("mini", "cd semisup && ./run.sh --stage 0", {}, "run.sh: --stage must be an integer from 1 to 7, got '0'"),
    ("mini", "cd semisup && ./run.sh --seeds '1 1'", {},
     "run.sh: --seeds must be a list of distinct non-negative integers, got '1 1'"),
    ("mini", "cd semisup && ./run.sh --lower_levels mlm", {},
     "run.sh: --lower_levels must name cpc and/or contrastive, got 'mlm'"),
    ("mini", "cd semisup && ./run.sh --ablations yes", {}, "run.sh: --ablations takes true or false, got 'yes'"),
    ("mini", "./run_rnnt_from_ctc.sh --seeds '0 x'", {},
     "run_rnnt_from_ctc.sh: --seeds must be a list of distinct non-negative integers, got '0 x'"),
    ("mini", "./run_rnnt_from_ctc.sh --systems 'bljust_rnnt pt_ft'", {},
     "run_rnnt_from_ctc.sh: --systems must name bljust_rnnt and/or just_rnnt, got 'bljust_rnnt pt_ft'"),
    ("mini", "./run_rnnt_from_ctc.sh --stage 8", {}, "run_rnnt_from_ctc.sh: --stage must be an integer from 1 to 7, got '8'"),
    # utils/
    ("mini", "utils/run.sh --max-jobs-run 0 JOB=1:2 log/x.JOB.log true", {},
     "run.sh: --max-jobs-run must be a positive integer, got '0'"),
    ("mini", "utils/run.sh --gpu x log/x.log true", {}, "run.sh: --gpu must be a non-negative integer, got 'x'"),
    ("mini", "utils/run.sh --mem 4GB log/x.log true", {}, "run.sh: --mem must be a memory size such as 4000 (megabytes)"),
    ("mini", "utils/run.sh --time 4h log/x.log true", {}, "run.sh: --time must be a Slurm time limit"),
    ("mini", "utils/run.sh --num-threads 0 log/x.log true", {}, "run.sh: --num-threads must be a positive integer, got '0'"),
    ("mini", "utils/run.sh JOB=1:x log/x.JOB.log true", {},
     "run.sh: a job range must be NAME=FIRST:LAST (integers, FIRST <= LAST) or NAME=N, got 'JOB=1:x'"),
    ("mini", "utils/run.sh JOB=1-4 log/x.JOB.log true", {}, "run.sh: a job range must be NAME=FIRST:LAST"),
    ("mini", "utils/run.sh JOB=3:1 log/x.JOB.log true", {}, "run.sh: a job range must be NAME=FIRST:LAST"),
    ("mini", "utils/run.sh --gpu", {}, "run.sh: option --gpu needs a value"),
    ("mini", "utils/run.sh --bogus 1 log/x.log true", {}, "run.sh: unknown option --bogus"),
    ("mini", "utils/slurm.sh --num-nodes 0 log/x.log true", {}, "slurm.sh: --num-nodes must be a positive integer, got '0'"),
    ("mini", "utils/slurm.sh --gpu 1.5 log/x.log true", {}, "slurm.sh: --gpu must be a non-negative integer, got '1.5'"),
    ("mini", "utils/slurm.sh --partition '' log/x.log true", {}, "slurm.sh: --partition must be non-empty, got ''"),
    ("mini", "utils/slurm.sh JOB=0:x log/x.JOB.log true", {}, "slurm.sh: a job range must be NAME=FIRST:LAST"),
    ("mini", "utils/split_data.sh --per-utt data/train 0", {},
     "split_data.sh: <num-to-split> must be a positive integer, got '0'"),
    ("mini", "utils/subset_data_dir.sh --first data/train x data/out", {},
     "subset_data_dir.sh: the N of --first must be a positive integer, got 'x'"),
    ("mini", "utils/subset_data_dir.sh --shortest 0 data/train data/out", {},
     "subset_data_dir.sh: the N of --shortest must be a positive integer, got '0'"),
    ("mini", "utils/torchrun.sh --nproc_per_node 0 -m bljust.bin.train", {},
     "torchrun.sh: --nproc_per_node must be a positive integer, got '0'"),
    ("mini", "utils/torchrun.sh --nnodes x -m bljust.bin.train", {}, "torchrun.sh: --nnodes must be a positive integer, got 'x'"),
]


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> Path:
    """Copies of the recipes: run.sh and conf/ copied, the shared parts and local/ linked."""
    root = tmp_path_factory.mktemp("egs")
    for name in RECIPES:
        src, dest = REPO / "egs" / name, root / name
        dest.mkdir()
        for link in ("asr.sh", "path.sh", "cmd.sh", "utils", "local", "db.sh"):
            if (src / link).exists():
                os.symlink(os.path.realpath(src / link), dest / link)
        shutil.copytree(src / "conf", dest / "conf")
        for script in src.glob("run*.sh"):
            shutil.copy(script, dest / script.name)
    src, semisup = REPO / "egs" / "mini" / "semisup", root / "mini" / "semisup"  # egs/mini's benchmark
    semisup.mkdir()
    for link in ("asr.sh", "path.sh", "cmd.sh", "utils", "local"):
        os.symlink(os.path.realpath(src / link), semisup / link)
    shutil.copytree(src / "conf", semisup / "conf")
    shutil.copy(src / "run.sh", semisup / "run.sh")
    (root / "bad.conf").write_text("lm_order=many\n")
    return root


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` (links not followed), with its size and time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def run(recipe: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``bash -c command`` in ``recipe``; a command that runs on (a check that let a bad value
    through, and work started) is stopped with all its processes after 20 s."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("LC_ALL", "cmd_backend", "PYTHON") and not k.startswith("slurm_")}
    with subprocess.Popen(["bash", "-c", command], cwd=recipe, env=environ | env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"{command} ran on for 20 s: its options were not rejected") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("recipe,command,env,message", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_option_is_one_named_line(recipes, recipe, command, env, message):
    folder = recipes / recipe
    before = snapshot(folder)
    proc = run(folder, command.format(tmp=recipes), env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert snapshot(folder) == before  # nothing written
    assert not any((folder / d).exists() for d in OUTPUTS)


def test_valid_options_get_past_the_checks(recipes):
    """Every checked option with a good value (commas are accepted in lists): stage 0 runs, and
    mini has nothing to download, so nothing is written."""
    folder = recipes / "mini"
    before = snapshot(folder)
    proc = run(folder, "./run.sh --stage 0 --stop_stage 0 --nj 3 --ngpu 0 --nproc_per_node 2 --num_nodes 1"
                       " --train_jobs 2 --fs 8000 --num_mel_bins 40 --nbpe 50 --lm_order 2 --token_type bpe"
                       " --feats_type raw --feats_compress true --speed_perturb_factors 0.9,1.0,1.1"
                       " --seeds '0 1 2' --expdir exp2 --dumpdir dump2 --token_listdir data/tl", {})
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr and proc.stderr.rstrip().endswith("Done (stages 0 to 0).")
    assert snapshot(folder) == before
    # The same checks on a Slurm cluster's settings.
    proc = run(folder, "./run.sh --stage 0 --stop_stage 0 --num_nodes 2",
               {"cmd_backend": "slurm", "slurm_gpus": "0", "slurm_gpu_mem": "80G", "slurm_time": "1-12:00:00"})
    assert proc.returncode == 0, proc.stderr
    proc = run(folder, "utils/run.sh --gpu 1 --num-nodes 2 --mem 4G --time 90 --partition p --max-jobs-run 1"
                       " JOB=1:2 {}/log/x.JOB.log true".format(recipes), {})
    assert proc.returncode == 0, proc.stderr
    assert (recipes / "log" / "x.2.log").exists()


def test_help_lists_the_checked_options(recipes):
    proc = run(recipes / "mini", "./run.sh --help", {})
    assert proc.returncode == 0 and proc.stderr == ""
    for option in ("--stage / --stop_stage N", "0-8", "--nj", "--ngpu", "--nproc_per_node", "--num_nodes",
                   "--dumpdir", "--expdir", "--speed_perturb_factors", "--feats_type fbank|raw", "--fs N",
                   "--num_mel_bins N", "--feats_compress true|false", "--token_type char|unigram|bpe", "--nbpe N",
                   "--token_listdir", "--lm_order", "--seeds", "--comparison", "--train_jobs", "--config FILE"):
        assert option in proc.stdout, option
