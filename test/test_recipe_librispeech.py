"""egs/librispeech end to end on a fixture corpus served from 127.0.0.1: download, md5,
unpacking, data preparation, and the pipeline through scoring with a tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixture_corpora import (LIBRISPEECH_PARTS, TINY_CONFIG, build_librispeech, copy_recipe, run_recipe,
                             set_checksums, set_db)
from http_server import serve_directory

from bljust.data.datadir import read_table
from bljust.data.validate import validate_data_dir

# Small enough for the fixture's few sentences; one test set keeps the run short.
TINY_ARGS = ("--ngpu", "0", "--nj", "1", "--nbpe", "30", "--test_sets", "test_clean",
             "--train_config", "conf/tiny.yaml")
SETS = ("train_clean_100", "dev_clean", "dev_other", "test_clean", "test_other")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_librispeech(tmp_path_factory.mktemp("librispeech_fixture"))


@pytest.fixture(scope="module")
def server(corpus):
    with serve_directory(corpus.archive_dir.parent) as srv:
        yield srv


def new_recipe(tmp_path_factory, corpus, server) -> Path:
    recipe = copy_recipe("librispeech", tmp_path_factory.mktemp("egs") / "librispeech")
    set_db(recipe, LIBRISPEECH_URL=f"{server.url}/{corpus.archive_dir.name}")
    set_checksums(recipe, corpus.md5)
    (recipe / "conf" / "tiny.yaml").write_text(TINY_CONFIG)
    return recipe


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, corpus, server):
    """One run of every stage from the download on, shared by the assertions below."""
    recipe = new_recipe(tmp_path_factory, corpus, server)
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", *TINY_ARGS)
    return recipe, proc, list(server.requests)


def test_downloads_every_part_once(full_run, corpus):
    recipe, _, requests = full_run
    assert sorted(requests) == sorted((f"/{corpus.archive_dir.name}/{p}.tar.gz", None) for p in LIBRISPEECH_PARTS)
    for part in LIBRISPEECH_PARTS:  # unpacked into one LibriSpeech/ folder, as openslr's archives are meant to be
        assert (recipe / "downloads" / "LibriSpeech" / part).is_dir()


def test_data_dirs(full_run):
    recipe, _, _ = full_run
    for name in SETS:
        d = validate_data_dir(recipe / "data" / name)
        for utt, spk in d.utt2spk.items():  # speaker = <speaker>-<chapter>, utterance <speaker>-<chapter>-<utt>
            assert spk.count("-") == 1 and utt.startswith(spk + "-")
        assert all(p.endswith(".flac") and Path(p).is_file() for p in d.wav_scp.values())
        assert set(d.utt2dur) == set(d.utt2spk) and min(d.utt2dur.values()) > 0.3
    text = read_table(recipe / "data" / "train_clean_100" / "text")
    assert any("IT'S" in t for t in text.values()) and all(t == t.upper() for t in text.values())
    # Unlabeled: train-clean-360 + train-other-500 combined, without transcripts.
    unlabeled = validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)
    assert unlabeled.text is None
    parts = {Path(p).parts[-4] for p in unlabeled.wav_scp.values()}
    assert parts == {"train-clean-360", "train-other-500"} and len(unlabeled.utt2spk) == 8


def test_scored(full_run):
    recipe, proc, _ = full_run
    scores = json.loads((recipe / "exp" / "asr_tiny_train_clean_100_fbank_unigram30" / "decode_test_clean_decode_greedy" / "scores.json").read_text())
    assert scores["num_utts"] == 4 and scores["wer"]["ref_len"] > 0
    assert (recipe / "exp" / "asr_tiny_train_clean_100_fbank_unigram30" / "RESULTS.md").exists()
    assert "Stage 0: download" in proc.stderr


def test_rerun_of_stage0_sends_no_request(full_run, server):
    recipe, _, _ = full_run
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "0", *TINY_ARGS)
    assert server.requests == []
    assert proc.stderr.count("already downloaded and unpacked") == len(LIBRISPEECH_PARTS)


def test_local_copy_sends_no_request(tmp_path_factory, corpus, server):
    """LIBRISPEECH in db.sh: the copy is used in place; here with the CNN-LSTM study's setting
    (train-clean-100 at both levels)."""
    recipe = new_recipe(tmp_path_factory, corpus, server)
    set_db(recipe, LIBRISPEECH=str(corpus.corpus_dir))
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "1", *TINY_ARGS, env={"unlabeled_parts": "train-clean-100"})
    assert server.requests == [] and "nothing to download" in proc.stderr
    assert not (recipe / "downloads").exists()
    labeled = validate_data_dir(recipe / "data" / "train_clean_100")
    unlabeled = validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)
    assert unlabeled.wav_scp == labeled.wav_scp and unlabeled.text is None
    assert all(p.startswith(str(corpus.corpus_dir.resolve())) for p in labeled.wav_scp.values())


def test_wrong_md5_stops_before_unpacking(tmp_path_factory, corpus, server):
    recipe = new_recipe(tmp_path_factory, corpus, server)
    set_checksums(recipe, {**corpus.md5, "dev-clean.tar.gz": "0" * 32})
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "0", *TINY_ARGS, check=False)
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stderr and "dev-clean.tar.gz" in proc.stderr and "LIBRISPEECH" in proc.stderr
    assert not (recipe / "downloads" / "LibriSpeech" / "dev-clean").exists()


def test_missing_part_is_named(tmp_path, corpus, capsys):
    """Data preparation from a copy that lacks a part says which one and how to fix it."""
    from bljust.bin import prepare_corpus

    partial = tmp_path / "corpus" / "LibriSpeech"
    partial.mkdir(parents=True)
    for part in LIBRISPEECH_PARTS[:-1]:
        (partial / part).symlink_to(corpus.corpus_dir / "LibriSpeech" / part)
    assert prepare_corpus.main(["librispeech", "--corpus_dir", str(tmp_path / "corpus"),
                                "--data_dir", str(tmp_path / "data")]) == 1
    assert "missing part(s) train-other-500" in capsys.readouterr().err
    assert prepare_corpus.main(["librispeech", "--corpus_dir", str(tmp_path / "corpus"), "--data_dir",
                                str(tmp_path / "data"), "--unlabeled_parts", "train-clean-360"]) == 0
    assert validate_data_dir(tmp_path / "data" / "train_unlabeled", require_text=False)
