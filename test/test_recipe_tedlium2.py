"""egs/tedlium2 end to end on a fixture corpus served from 127.0.0.1: download, checksum,
unpacking, stm/sph data preparation, and the pipeline through scoring with a tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixture_corpora import TINY_CONFIG, build_tedlium2, copy_recipe, run_recipe, set_checksums, set_db
from http_server import serve_directory

from bljust.data.corpora.tedlium2 import normalize_words
from bljust.data.datadir import read_table
from bljust.data.validate import validate_data_dir
from bljust.text.tokenizer import Tokenizer

TINY_ARGS = ("--ngpu", "0", "--nj", "1", "--nbpe", "30", "--test_sets", "test", "--train_config", "conf/tiny.yaml")
ARCHIVE = "TEDLIUM_release2.tar.gz"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_tedlium2(tmp_path_factory.mktemp("tedlium2_fixture"))


@pytest.fixture(scope="module")
def server(corpus):
    with serve_directory(corpus.archive_dir.parent) as srv:
        yield srv


def new_recipe(tmp_path_factory, corpus, server) -> Path:
    recipe = copy_recipe("tedlium2", tmp_path_factory.mktemp("egs") / "tedlium2")
    set_db(recipe, TEDLIUM2_URL=f"{server.url}/{corpus.archive_dir.name}")
    set_checksums(recipe, corpus.md5)  # md5 here; the real recipe's sum is a SHA-256
    (recipe / "conf" / "tiny.yaml").write_text(TINY_CONFIG)
    return recipe


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, corpus, server):
    """One run of every stage from the download on, shared by the assertions below."""
    recipe = new_recipe(tmp_path_factory, corpus, server)
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", *TINY_ARGS)
    return recipe, proc, list(server.requests)


def test_downloads_the_archive_once(full_run, corpus):
    recipe, _, requests = full_run
    assert requests == [(f"/{corpus.archive_dir.name}/{ARCHIVE}", None)]
    assert (recipe / "downloads" / "TEDLIUM_release2" / "train" / "stm").is_dir()


def test_data_dirs(full_run, corpus):
    recipe, _, _ = full_run
    for name in ("train", "dev", "test"):
        d = validate_data_dir(recipe / "data" / name)
        # Recordings are talks: wav.scp keyed by talk, the plain .sph path; segments cut them.
        assert all(p.endswith(f"/{name}/sph/{talk}.sph") for talk, p in d.wav_scp.items())
        assert {reco for reco, _, _ in d.segments.values()} == set(d.wav_scp)
        for utt, (talk, start, end) in d.segments.items():
            assert d.utt2spk[utt] == talk and utt == f"{talk}-{round(start * 100):07d}-{round(end * 100):07d}"
            assert d.utt2dur[utt] == pytest.approx(end - start)
            # The ignore_time_segment_in_scoring stretches are not in any data directory.
            assert not any(t == talk and s < end and start < e for t, s, e in corpus.ignored)
        # Transcripts mapped as TED-LIUM's Kaldi recipe does; <unk> kept as a word.
        assert d.text == {u: corpus.expected_text[u] for u in d.text} and len(d.text) == 8
        assert sum("<unk>" in t.split() for t in d.text.values()) == 2
    # Default: all train audio is also the unlabeled set, without transcripts.
    unlabeled = validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)
    assert unlabeled.text is None and set(unlabeled.segments) == set(read_table(recipe / "data" / "train" / "text"))


def test_scored(full_run):
    recipe, _, _ = full_run
    decode = recipe / "exp" / "asr_tiny_train_fbank_unigram30" / "decode_test_decode_greedy"
    scores = json.loads((decode / "scores.json").read_text())
    assert scores["num_utts"] == 8 and scores["wer"]["ref_len"] > 0
    # The reference <unk> is scored as a word of its own.
    assert "<unk>" in (decode / "alignments.txt").read_text()


def test_rerun_of_stage0_sends_no_request(full_run, server):
    recipe, _, _ = full_run
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "0", *TINY_ARGS)
    assert server.requests == [] and "already downloaded and unpacked" in proc.stderr


def test_local_copy_with_labeled_subset(tmp_path_factory, corpus, server):
    """TEDLIUM2 in db.sh: no request; --labeled_hours takes whole talks, the rest is unlabeled."""
    recipe = new_recipe(tmp_path_factory, corpus, server)
    set_db(recipe, TEDLIUM2=str(corpus.corpus_dir))
    server.requests.clear()
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "1", "--local_data_opts", "--labeled_hours 0.001",
                      *TINY_ARGS)
    assert server.requests == [] and "nothing to download" in proc.stderr
    assert not (recipe / "downloads").exists()
    labeled = validate_data_dir(recipe / "data" / "train")
    unlabeled = validate_data_dir(recipe / "data" / "train_unlabeled", require_text=False)
    assert len(labeled.wav_scp) == len(unlabeled.wav_scp) == 1 and labeled.wav_scp != unlabeled.wav_scp
    assert unlabeled.text is None and len(unlabeled.segments) == 4


def test_normalize_words():
    assert normalize_words("{NOISE} it 's the(2) <sil> <unk> man 's (Talk_2010-1.00-2.00)".split()) == \
        ["[NOISE]", "it's", "the", "<unk>", "man's"]
    assert normalize_words(["<sil>"]) == []


def test_unk_word_round_trips_through_the_token_list(full_run):
    """A reference <unk> must be a target the model can produce, so hypotheses can match it."""
    recipe, _, _ = full_run
    tokenizer = Tokenizer(recipe / "data" / "token_list" / "unigram30")
    for text in read_table(recipe / "data" / "train" / "text").values():
        assert tokenizer.decode(tokenizer.encode(text)) == text
