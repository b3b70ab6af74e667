"""The mini recipe end to end on a tiny corpus: stages, skipping, resume, options."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bljust.data.validate import validate_data_dir

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = ("--num_train_labeled 24 --num_train_unlabeled 8 --num_dev 6 --num_test 6 "
             "--voices_labeled 2 --voices_unlabeled 2")
TINY_CONFIG = """\
encoder: cnn_lstm
encoder_conf: {cnn_layers: 2, latent_dim: 32, lstm_layers: 1, lstm_units: 32, dropout: 0.0}
unsup_conf: {steps: 2, num_negatives: 8, ar_dim: 32}
max_epochs: 2
phases:
  train: {lr: 2.0e-3, warmup_steps: 2}
batch: {max_frames: 4000}
diag_interval: 2
"""
TINY_BLJUST = TINY_CONFIG.replace("""phases:
  train: {lr: 2.0e-3, warmup_steps: 2}""", """strategy: bljust
phases:
  explore: {steps: 1, lr: 1.0e-3}
  joint: {steps: 2, lr: 1.0e-3}
  finetune: {steps: 2, lr: 1.0e-4}""")

# The Conformer with the contrastive lower level (BL-JUST), and the CNN-LSTM with contrastive + MLM (PT+FT).
TINY_CONFORMER = TINY_BLJUST.replace(
    "encoder: cnn_lstm\nencoder_conf: {cnn_layers: 2, latent_dim: 32, lstm_layers: 1, lstm_units: 32, dropout: 0.0}\n"
    "unsup_conf: {steps: 2, num_negatives: 8, ar_dim: 32}",
    "encoder: conformer\nencoder_conf: {d_model: 32, num_heads: 2, num_layers: 2, ffn_dim: 64, conv_kernel: 5, "
    "subsampling_channels: 8}\nunsup: contrastive\nunsup_conf: {num_negatives: 4, final_dim: 16, codebook_entries: 8, "
    "code_dim: 16, mask_span: 2}")
TINY_MLM = TINY_CONFIG.replace("unsup_conf: {steps: 2, num_negatives: 8, ar_dim: 32}",
                               "unsup: contrastive_mlm\nunsup_conf: {num_negatives: 4, final_dim: 16, codebook_entries: 8, "
                               "code_dim: 16, mask_span: 2, mlm_layers: 1, mlm_heads: 2, mlm_ffn_dim: 32}").replace(
    """phases:
  train: {lr: 2.0e-3, warmup_steps: 2}""", """strategy: pt_ft
strategy_conf: {pretrain_epochs: 1}
phases:
  pretrain: {steps: 2, lr: 1.0e-3}
  finetune: {steps: 2, lr: 1.0e-3}""")

# JUST as published: a split Conformer (contrastive module, then MLM module), contrastive + MLM, RNN-T.
TINY_JUST_RNNT = """\
encoder: conformer
encoder_conf: {d_model: 32, num_heads: 2, num_layers: 2, ffn_dim: 64, conv_kernel: 5, subsampling_channels: 8,
               contrastive_layers: 1}
sup: rnnt
sup_conf: {embed_dim: 16, pred_layers: 2, pred_units: 16, joint_dim: 16}
unsup: contrastive_mlm
unsup_conf: {num_negatives: 4, final_dim: 16, codebook_entries: 8, code_dim: 16, mask_span: 2, mlm_layers: 0, mlm_heads: 2}
strategy: just
max_epochs: 2
phases:
  joint: {steps: 2, lr: 1.0e-3}
batch: {max_frames: 4000}
diag_interval: 2
"""
# A tiny wav2vec 2.0 on raw audio (a dump made with --feats_type raw), BL-JUST with its contrastive loss.
TINY_W2V = """\
encoder: wav2vec2
encoder_conf: {shape: tiny}
unsup: contrastive
unsup_conf: {num_negatives: 4, final_dim: 16, codebook_entries: 8, code_dim: 16, mask_span: 2}
strategy: bljust
max_epochs: 1
phases:
  explore: {steps: 1, lr: 1.0e-3}
  joint: {steps: 2, lr: 1.0e-3}
  finetune: {steps: 1, lr: 1.0e-4}
specaug: {enabled: false}
batch: {max_frames: 4000}
diag_interval: 2
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A copy of egs/mini whose shared parts link back into the repository (as in egs/<corpus>)."""
    root = tmp_path_factory.mktemp("egs") / "mini"
    root.mkdir()
    src = REPO / "egs" / "mini"
    for name in ("asr.sh", "path.sh", "cmd.sh", "utils", "local"):
        os.symlink(os.path.realpath(src / name), root / name)
    shutil.copytree(src / "conf", root / "conf")
    shutil.copy(src / "run.sh", root / "run.sh")
    (root / "conf" / "tiny.yaml").write_text(TINY_CONFIG)
    (root / "conf" / "tiny_other.yaml").write_text(TINY_CONFIG.replace("max_epochs: 2", "max_epochs: 1"))
    (root / "conf" / "tiny_bljust.yaml").write_text(TINY_BLJUST)
    (root / "conf" / "tiny_conformer.yaml").write_text(TINY_CONFORMER)
    (root / "conf" / "tiny_mlm.yaml").write_text(TINY_MLM)
    (root / "conf" / "tiny_just_rnnt.yaml").write_text(TINY_JUST_RNNT)
    (root / "conf" / "tiny_w2v.yaml").write_text(TINY_W2V)
    return root


def run(recipe: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}
    proc = subprocess.run(["./run.sh", "--local_data_opts", TINY_DATA, "--train_config", "conf/tiny.yaml", *args],
                          cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-5000:]}")
    return proc


def test_end_to_end(recipe):
    proc = run(recipe, "--train_config", "conf/tiny.yaml conf/tiny_bljust.yaml")
    exp = recipe / "exp" / "asr_tiny_train_labeled_fbank_char"
    scores = json.loads((exp / "decode_test_decode_greedy" / "scores.json").read_text())
    assert scores["num_utts"] == 6 and scores["wer"]["ref_len"] > 0
    results = (exp / "RESULTS.md").read_text()
    assert "| decode_test_decode_greedy | 6 |" in results and "./asr.sh" in results
    # run.sh trains its experiments at the same time (--train_jobs), each logging to its folder.
    assert "Stages 5-8: 2 experiments, 3 at a time" in proc.stderr
    assert "| decode_test_decode_greedy | 6 |" in (exp / "asr.log").read_text()
    assert "score: exp/asr_tiny_bljust_train_labeled_fbank_char/decode_test_decode_lm: WER" in proc.stderr
    assert (exp / "run.sh").exists() and (exp / "training_curves.png").exists()
    assert len((exp / "train_log.csv").read_text().splitlines()) == 3  # header + one row per epoch
    steps = len((exp / "train_steps.csv").read_text().splitlines()) - 1
    assert json.loads((exp / "budget.json").read_text())["train_steps"] == steps > 0
    bljust = json.loads((recipe / "exp" / "asr_tiny_bljust_train_labeled_fbank_char" / "budget.json").read_text())
    assert (bljust["explore_steps"], bljust["joint_steps"], bljust["finetune_steps"]) == (2, 4, 2)
    assert bljust["unlabeled_hours"] > 0
    # Both experiments side by side, with their budgets.
    comparison = (recipe / "exp" / "comparison_test.md").read_text()
    assert "| tiny_train_labeled_fbank_char | supervised | 1 |" in comparison
    assert "| tiny_bljust_train_labeled_fbank_char | bljust | 1 |" in comparison
    assert "WER % (decode_greedy) | CER % (decode_greedy) | WER % (decode_lm) | CER % (decode_lm)" in comparison
    assert "asr_tiny_train_labeled_fbank_char, decode_test_decode_lm:\n    utt: " in comparison  # example transcripts
    assert "real-time factor" in proc.stderr
    assert (recipe / "exp" / "comparison_test.png").exists()
    # Every data directory the recipe wrote follows Kaldi's rules.
    for d in ("train_labeled", "dev", "test"):
        validate_data_dir(recipe / "data" / d)
        validate_data_dir(recipe / "dump" / "fbank" / d, require_feats=True)
    validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)


def test_conformer_and_masked_prediction_configs_run_end_to_end(recipe):
    run(recipe, "--stage", "5", "--train_config", "conf/tiny_conformer.yaml conf/tiny_mlm.yaml")
    for name, phases in (("tiny_conformer", {"explore_steps": 2, "joint_steps": 4, "finetune_steps": 2}),
                         ("tiny_mlm", {"pretrain_steps": 2, "finetune_steps": 4})):
        exp = recipe / "exp" / f"asr_{name}_train_labeled_fbank_char"
        budget = json.loads((exp / "budget.json").read_text())
        assert {k: budget[k] for k in phases} == phases and budget["unlabeled_hours"] > 0
        assert json.loads((exp / "decode_test_decode_greedy" / "scores.json").read_text())["num_utts"] == 6
        log = (exp / "train.log").read_text()
        assert "g reaches 100.0% of theta" in log
        header = (exp / "train_steps.csv").read_text().splitlines()[0]
        assert "g_code_perplexity" in header and "g_temperature" in header


def test_just_rnnt_and_wav2vec2_on_raw_audio_run_end_to_end(recipe):
    run(recipe, "--stage", "5", "--train_config", "conf/tiny_just_rnnt.yaml",
        "--decode_config", "conf/decode_greedy.yaml conf/decode_beam.yaml")
    exp = recipe / "exp" / "asr_tiny_just_rnnt_train_labeled_fbank_char"
    assert json.loads((exp / "budget.json").read_text())["joint_steps"] == 4
    for name in ("decode_greedy", "decode_beam"):  # beam: the RNN-T head's own search
        assert json.loads((exp / f"decode_test_{name}" / "scores.json").read_text())["num_utts"] == 6

    proc = run(recipe, "--stage", "3", "--feats_type", "raw", "--train_config", "conf/tiny_w2v.yaml",
               "--decode_config", "conf/decode_greedy.yaml")
    assert "Stage 3: raw features for data/train_labeled" in proc.stderr
    raw = recipe / "dump" / "raw"
    assert (raw / "train_labeled" / "frame_shift").read_text() == "6.25e-05\n" and not (raw / "train_labeled" / "cmvn.ark").exists()
    validate_data_dir(raw / "train_labeled", require_feats=True)
    exp = recipe / "exp" / "asr_tiny_w2v_train_labeled_raw_char"
    budget = json.loads((exp / "budget.json").read_text())
    # hours of audio, not rows: 3 labeled batches of at most 40 s
    assert 0 < budget["labeled_hours"] <= 3 * 40 / 3600 + 1e-3 and budget["unlabeled_hours"] > 0
    assert json.loads((exp / "decode_test_decode_greedy" / "scores.json").read_text())["num_utts"] == 6


def test_lm_decoding_and_decoding_folders_named_by_their_overrides(recipe):
    lexicon = (recipe / "data" / "lang" / "char" / "lexicon.txt").read_text().split("\n")
    labeled = {w for line in (recipe / "data" / "train_labeled" / "text").read_text().splitlines() for w in line.split()[1:]}
    assert {line.split()[0] for line in lexicon if line} == labeled  # the labeled vocabulary, nothing else
    assert (recipe / "data" / "lang" / "char" / "lm_word.arpa").read_text().startswith("\n\\data\\\n")
    proc = run(recipe, "--stage", "6", "--decode_config", "conf/decode_greedy.yaml conf/decode_lm.yaml")
    exp = recipe / "exp" / "asr_tiny_train_labeled_fbank_char"
    for name in ("decode_greedy", "decode_lm"):
        assert json.loads((exp / f"decode_test_{name}" / "scores.json").read_text())["num_utts"] == 6
        assert "real-time factor" in (exp / f"decode_test_{name}" / "log" / "decode.log").read_text()
    assert "Stage 6 (decoding test with exp/asr_tiny_train_labeled_fbank_char): already done" in proc.stderr  # run.sh's default decodings
    # stage 8: the packed model transcribes the test audio as stage 6 decoded it, lexicon and LM included
    packed = exp / "packed" / "decode_lm.pt"
    assert packed.exists()
    out = subprocess.run([sys.executable, "-m", "bljust.bin.transcribe", str(packed), "--wav_scp", "data/test/wav.scp"],
                         cwd=recipe, capture_output=True, text=True, check=True).stdout
    assert out == (exp / "decode_test_decode_lm" / "text").read_text()
    run(recipe, "--stage", "6", "--decode_config", "conf/decode_lm.yaml", "--decode_args", "--lm_weight 0.5")
    assert (exp / "decode_test_decode_lm_lm_weight0.5" / "scores.json").exists()  # never the stale decode_lm
    # A new model (or an edited decode config) decodes again: no stale hypotheses are scored.
    model = exp / "model_best.pt"
    os.utime(model, (model.stat().st_atime, model.stat().st_mtime + 10))
    proc = run(recipe, "--stage", "6", "--decode_config", "conf/decode_greedy.yaml")
    assert "the model or the decode config changed since exp/asr_tiny_train_labeled_fbank_char/decode_test_decode_greedy was decoded" in proc.stderr
    assert "Stage 7: scoring exp/asr_tiny_train_labeled_fbank_char/decode_test_decode_greedy" in proc.stderr
    proc = run(recipe, "--stage", "6", "--decode_config", "conf/decode_greedy.yaml")
    assert "already done for this model and config" in proc.stderr


def test_rerun_skips_finished_stages(recipe):
    proc = run(recipe)
    for what in ("Stage 1 (data preparation): already done", "Stage 3 (features for train_labeled): already done",
                 "Stage 4 (token list): already done", "Stage 4 (lexicon and n-gram LMs): already done",
                 "Stage 5: training exp/asr_tiny_train_labeled_fbank_char",
                 "Stage 6 (decoding test with exp/asr_tiny_train_labeled_fbank_char): already done",
                 "Stage 7 (scoring test with exp/asr_tiny_train_labeled_fbank_char): already done",
                 "Stage 8 (packing exp/asr_tiny_train_labeled_fbank_char/packed/decode_greedy.pt): already done"):
        assert what in proc.stderr
    # the training stage's own log (through cmd.sh) says why it did nothing
    assert "training already finished" in (recipe / "exp/asr_tiny_train_labeled_fbank_char/log/train.log").read_text()


def test_other_config_gets_its_own_experiment(recipe):
    run(recipe, "--stage", "5", "--train_config", "conf/tiny_other.yaml")
    assert (recipe / "exp" / "asr_tiny_other_train_labeled_fbank_char" / "RESULTS.md").exists()
    assert (recipe / "exp" / "asr_tiny_train_labeled_fbank_char" / "RESULTS.md").exists()


def test_failed_parallel_experiment_is_reported(recipe):
    """With --train_jobs, a failing experiment does not stop the others; the run fails at the end
    naming it and showing the end of its log."""
    (recipe / "conf" / "tiny_broken.yaml").write_text(TINY_CONFIG.replace("max_epochs: 2", "max_epochs: 1\nno_such_key: 1"))
    proc = run(recipe, "--stage", "5", "--train_jobs", "2", "--train_config", "conf/tiny_other.yaml conf/tiny_broken.yaml",
               check=False)
    assert proc.returncode != 0
    assert "ERROR: exp/asr_tiny_broken_train_labeled_fbank_char failed; the end of exp/asr_tiny_broken_train_labeled_fbank_char/asr.log:" in proc.stderr
    assert "no_such_key" in proc.stderr
    assert (recipe / "exp" / "asr_tiny_other_train_labeled_fbank_char" / ".asr_ok").exists()  # the other one finished
    proc = run(recipe, "--stage", "5", "--train_jobs", "two", check=False)
    assert proc.returncode != 0 and "--train_jobs must be a positive integer, got 'two'" in proc.stderr


def test_unknown_option_is_named(recipe):
    proc = run(recipe, "--no_such_option", "1", check=False)
    assert proc.returncode != 0 and "--no_such_option" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_training_resumes(recipe, sig):
    tag = f"resume_{sig.name.lower()}"
    args = ["--stage", "5", "--stop_stage", "5", "--tag", tag, "--train_args", "--max_epochs 8"]
    env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}
    proc = subprocess.Popen(["./run.sh", "--train_config", "conf/tiny.yaml", *args], cwd=recipe, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    ckpt_dir = recipe / "exp" / f"asr_{tag}" / "checkpoints"
    deadline = time.time() + 300
    while not list(ckpt_dir.glob("step_*.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list(ckpt_dir.glob("step_*.pt")), "training never wrote its first checkpoint"
    os.killpg(proc.pid, sig)  # the whole process group, as Ctrl-C in a terminal does
    proc.communicate(timeout=60)
    assert not (ckpt_dir.parent / "budget.json").exists()  # interrupted before the end
    last = max(int(p.stem.split("_")[1]) for p in ckpt_dir.glob("step_*.pt"))
    run(recipe, *args)
    train_log = (ckpt_dir.parent / "log/train.log").read_text()
    assert f"resumed from exp/asr_{tag}/checkpoints/step_{last}.pt ({last} steps done" in train_log
    assert json.loads((ckpt_dir.parent / "budget.json").read_text())["steps"] > last
