"""egs/TEMPLATE/setup.sh: the skeleton of a recipe for a new corpus, and that skeleton run from a
tiny Kaldi data directory through scoring (docs/new_corpus.md walks the same path).

The recipe is made in a temporary copy of the repository's layout (egs/TEMPLATE and utils are
links to the real ones), so its relative links asr.sh -> ../TEMPLATE/asr.sh and utils ->
../../utils resolve as they do in egs/<corpus>."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from fixture_corpora import SAMPLE_RATE, VOICES, speak

from bljust.decode.config import DecodeConfig
from bljust.config import from_dict, load_yaml
from bljust.data.validate import validate_data_dir
from bljust.models.asr_model import AsrModel
from bljust.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
SKELETON = REPO / "egs" / "TEMPLATE" / "skeleton"
TRAIN_CONFIGS = sorted((SKELETON / "conf").glob("train_*.yaml"))
DECODE_CONFIGS = sorted((SKELETON / "conf").glob("decode_*.yaml"))
LINKS = {"asr.sh": "../TEMPLATE/asr.sh", "path.sh": "../TEMPLATE/path.sh", "cmd.sh": "../TEMPLATE/cmd.sh",
         "utils": "../../utils"}
# The skeleton's run.sh trains conf/train_supervised.yaml and conf/train_bljust.yaml (CNN-LSTM, phases
# without steps: one pass per epoch); one epoch of a tiny CNN-LSTM is a handful of steps here.
TINY_TRAIN_ARGS = ("--max_epochs 1 --encoder_conf.cnn_layers 2 --encoder_conf.cnn_channels 8 --encoder_conf.latent_dim 32 "
                   "--encoder_conf.lstm_layers 1 --encoder_conf.lstm_units 32 --diag_interval 0 --checkpoint_interval 0")
WORDS = ("the", "cat", "sat", "on", "a", "red", "mat", "dog", "ran", "to", "big", "house")
# set -> speakers, utterances per speaker
SETS = {"train": (("spk1", "spk2"), 3), "dev": (("spk3",), 2), "test": (("spk4", "spk5"), 2)}


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LC_ALL"}


def setup_sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """egs/TEMPLATE/setup.sh run from ``cwd`` (the copy's root) as a user would run it."""
    return subprocess.run(["egs/TEMPLATE/setup.sh", *args], cwd=cwd, env=environ(), capture_output=True, text=True,
                          timeout=60)


def repo_layout(root: Path) -> Path:
    """<root>/egs/TEMPLATE and <root>/utils linking to the repository's; returns <root>."""
    (root / "egs").mkdir(parents=True)
    os.symlink(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    os.symlink(REPO / "utils", root / "utils")
    return root


def make_kaldi_corpus(root: Path) -> dict[str, dict[str, str]]:
    """Kaldi data directories <root>/kaldi/<set>/ over wav files of spoken words (espeak-ng), as a
    corpus might come: wav.scp, text, utt2spk, spk2utt, sorted, speaker-prefixed utterance ids."""
    rng = np.random.default_rng(0)
    texts: dict[str, dict[str, str]] = {}
    for s, (name, (speakers, n_utts)) in enumerate(SETS.items()):
        d = root / "kaldi" / name
        d.mkdir(parents=True)
        wav, text, utt2spk = {}, {}, {}
        for k, spk in enumerate(speakers):
            for i in range(n_utts):
                utt = f"{spk}-{i:03d}"
                words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 6))))
                path = root / "audio" / name / f"{utt}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, speak(words, VOICES[(s + k) % len(VOICES)]), SAMPLE_RATE, subtype="PCM_16")
                wav[utt], text[utt], utt2spk[utt] = str(path), words, spk
        for fname, table in (("wav.scp", wav), ("text", text), ("utt2spk", utt2spk)):
            (d / fname).write_text("".join(f"{u} {table[u]}\n" for u in sorted(table)))
        (d / "spk2utt").write_text("".join(f"{spk} {' '.join(u for u in sorted(utt2spk) if utt2spk[u] == spk)}\n"
                                           for spk in sorted(set(utt2spk.values()))))
        validate_data_dir(d)
        texts[name] = text
    return texts


def enable_example_a(stub: str) -> str:
    """local/data.sh as a user makes it from the stub for Kaldi data directories on disk: the stub's
    failing lines (between the EDIT markers) replaced by its Example A, uncommented."""
    lines = stub.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# ---- EDIT"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("# -----"))
    assert [line.split()[0] for line in lines[start + 1:end]] == ["echo", "exit"]  # the stub: two lines
    a = next(i for i, line in enumerate(lines) if line.startswith("# Example A"))
    b = next(i for i, line in enumerate(lines) if line.startswith("# Example B"))
    example = [line[2:] if line.startswith("# ") else "" for line in lines[a + 1:b]]
    return "\n".join(lines[:start] + example) + "\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A recipe made by setup.sh in a copy of the repository layout: (root, recipe, setup's output)."""
    root = repo_layout(tmp_path_factory.mktemp("template") / "repo")
    proc = setup_sh(root, "egs/mycorpus")
    assert proc.returncode == 0, proc.stderr
    return root, root / "egs" / "mycorpus", proc


@pytest.fixture(scope="module")
def full_run(made, tmp_path_factory):
    """db.sh pointed at a tiny corpus's Kaldi data directories, local/data.sh written (Example A),
    and ./run.sh through stages 1-8 with a tiny model: (recipe, run.sh's output, transcripts)."""
    _, recipe, _ = made
    corpus = tmp_path_factory.mktemp("corpus")
    texts = make_kaldi_corpus(corpus)
    db = recipe / "db.sh"
    db.write_text(re.sub(r"^MYCORPUS=$", f"MYCORPUS={corpus / 'kaldi'}", db.read_text(), count=1, flags=re.M))
    data_sh = recipe / "local" / "data.sh"
    data_sh.write_text(enable_example_a(data_sh.read_text()))
    # run.sh's own set names and configs; options after them win: CPU, characters, a tiny model.
    proc = subprocess.run(["./run.sh", "--stage", "1", "--ngpu", "0", "--nj", "1", "--token_type", "char",
                           "--train_args", TINY_TRAIN_ARGS],
                          cwd=recipe, env=environ(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-6000:]}"
    return recipe, proc, texts


def test_setup_makes_the_skeleton(made):
    root, recipe, proc = made
    files = sorted(str(p.relative_to(recipe)) for p in recipe.rglob("*"))
    expected_conf = sorted(f"conf/{p.name}" for p in (SKELETON / "conf").iterdir())
    assert files == sorted(["run.sh", "db.sh", "local", "local/data.sh", "conf", *expected_conf, *LINKS])
    for name, target in LINKS.items():
        assert os.readlink(recipe / name) == target and (recipe / name).exists()
    for script in ("run.sh", "local/data.sh"):
        assert os.access(recipe / script, os.X_OK)
    for path in (SKELETON / "conf").iterdir():  # configs copied as they are
        assert (recipe / "conf" / path.name).read_bytes() == path.read_bytes()
    # The recipe's name and its corpus variable are filled in.
    assert (recipe / "db.sh").read_text().splitlines()[-1] == "MYCORPUS="
    for script in ("run.sh", "db.sh", "local/data.sh"):
        text = (recipe / script).read_text()
        assert "@NAME@" not in text and "@DBVAR@" not in text
    assert "egs/mycorpus" in (recipe / "local" / "data.sh").read_text()
    # run.sh: the set names and configs in marked lines, every option passed on to asr.sh.
    run_sh = (recipe / "run.sh").read_text()
    assert "# ---- EDIT" in run_sh and run_sh.rstrip().endswith('"$@"')
    for line in ("train_set=train", "valid_set=dev", 'test_sets="test"', "unlabeled_set=train_unlabeled"):
        assert re.search(rf"^{re.escape(line)}\s", run_sh, re.M), line
    # setup.sh says what to edit next.
    for what in ("db.sh", "local/data.sh", "run.sh", "conf/", "docs/new_corpus.md"):
        assert what in proc.stdout
    assert proc.stderr == "" and not [p for p in (root / "egs").iterdir() if p.name.startswith(".")]


def test_stub_data_sh_fails_until_written(tmp_path):
    root = repo_layout(tmp_path / "repo")
    assert setup_sh(root, "egs/fresh").returncode == 0
    proc = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1"], cwd=root / "egs" / "fresh", env=environ(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "local/data.sh: egs/fresh/local/data.sh is still the stub of egs/TEMPLATE/setup.sh" in proc.stderr
    assert not (root / "egs" / "fresh" / "data" / ".done_stage1").exists()


def test_setup_refuses_an_existing_folder(made):
    root, recipe, _ = made
    before = sorted(str(p) for p in recipe.rglob("*"))
    proc = setup_sh(root, "egs/mycorpus")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "setup.sh: egs/mycorpus already exists; choose another name or remove it first\n"
    assert sorted(str(p) for p in recipe.rglob("*")) == before
    (root / "egs" / "a_file").write_text("")
    proc = setup_sh(root, "egs/a_file/")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "already exists" in proc.stderr


@pytest.mark.parametrize("args, message", [
    ((), "expected one argument, the new recipe folder (e.g. egs/mycorpus), got 0"),
    (("egs/a", "egs/b"), "expected one argument, the new recipe folder (e.g. egs/mycorpus), got 2"),
    (("",), "the recipe folder must not be empty"),
    (("egs/my corpus",), "the recipe name must start with a letter or digit"),
    (("egs/-x",), "the recipe name must start with a letter or digit"),
    (("egs/TEMPLATE",), "TEMPLATE is the shared pipeline's folder"),
    (("mycorpus",), "must be a folder next to egs/TEMPLATE"),
    (("egs/sub/mycorpus",), "egs/sub is not a folder"),
    (("utils/mycorpus",), "must be a folder next to egs/TEMPLATE"),
])
def test_setup_checks_its_argument(tmp_path, args, message):
    root = repo_layout(tmp_path / "repo")
    proc = setup_sh(root, *args)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("setup.sh: ") and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert sorted(p.name for p in (root / "egs").iterdir()) == ["TEMPLATE"]


def test_setup_help(tmp_path):
    proc = setup_sh(repo_layout(tmp_path / "repo"), "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: ")


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_template_training_config_loads_and_builds(path):
    """What test_shipped_configs checks of egs/*/conf/train_*.yaml, which these become in a recipe."""
    assert load_yaml(path) == yaml.safe_load(path.read_text())
    config = load_train_config(str(path))
    with torch.device("meta"):
        model = AsrModel(80, 500, config.model, where=str(path))
    assert sum(p.numel() for p in model.encoder.parameters()) > 0
    assert config.encoder == ("conformer" if "conformer" in path.name else "cnn_lstm")
    if config.strategy != "supervised":  # the real recipes' lower level: it reaches the whole encoder
        assert config.unsup == "contrastive"


def test_template_configs_are_complete():
    names = {p.name for p in TRAIN_CONFIGS}
    for encoder in ("", "_conformer"):
        assert {f"train_{s}{encoder}.yaml" for s in ("supervised", "pt_ft", "bljust")} <= names
    assert {p.name for p in DECODE_CONFIGS} == {"decode_greedy.yaml", "decode_beam.yaml"}
    for path in DECODE_CONFIGS:
        assert load_yaml(path) == yaml.safe_load(path.read_text())
        from_dict(DecodeConfig, load_yaml(path), where=str(path))
    # Templates never sit where the shipped-config tests look (egs/*/conf/): they are no recipe's.
    assert not (REPO / "egs" / "TEMPLATE" / "conf").exists()


def test_new_recipe_runs_stages_1_to_8(full_run):
    recipe, proc, texts = full_run
    assert "Stage 1: data preparation: local/data.sh" in proc.stderr
    for name in ("train", "dev", "test"):
        d = validate_data_dir(recipe / "data" / name)
        assert d.text == texts[name]
    unlabeled = validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)
    assert unlabeled.text is None and set(unlabeled.wav_scp) == set(texts["train"])
    for name in ("train", "dev", "test", "train_unlabeled"):
        assert (recipe / "dump" / "fbank" / name / "feats.scp").exists()
    assert (recipe / "data" / "token_list" / "char" / "tokens.txt").exists()
    assert (recipe / "data" / "lang" / "char" / "lexicon.txt").exists()
    experiments = sorted(p.name for p in (recipe / "exp").glob("asr_*"))
    # named after the config and what it trained on: train set, feats type, token type
    assert [e.split("_max_epochs")[0] for e in experiments] == ["asr_train_bljust_train_fbank_char",
                                                                 "asr_train_supervised_train_fbank_char"]
    for exp in experiments:
        scores = json.loads((recipe / "exp" / exp / "decode_test_decode_greedy" / "scores.json").read_text())
        assert scores["num_utts"] == len(texts["test"]) and scores["wer"]["ref_len"] > 0
        assert f"| decode_test_decode_greedy | {len(texts['test'])} |" in (recipe / "exp" / exp / "RESULTS.md").read_text()
        assert (recipe / "exp" / exp / "packed" / "decode_greedy.pt").is_file()
    bljust = json.loads((recipe / "exp" / experiments[0] / "budget.json").read_text())
    assert bljust["unlabeled_hours"] > 0  # the unlabeled set reached BL-JUST
    assert (recipe / "exp" / "comparison_test.md").exists()
    assert "Done (stages 1 to 100)." in proc.stderr
