"""The synthetic corpus: espeak wrapper, sentences, voices, data directories, determinism, idempotence."""
from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bljust.bin import make_synthetic_corpus
from bljust.data.datadir import read_table
from bljust.data.espeak import EspeakError, EspeakSynthesizer
from bljust.data.synth import (ACCENTS, FEMALE_VARIANTS, MALE_VARIANTS, SPLITS, STAMP, SynthConfig, assign_voices,
                               make_corpus)
from bljust.data.synth_sentences import MAX_WORDS, MIN_WORDS, VOCABULARY, generate_sentence
from bljust.data.validate import validate_data_dir

TINY = SynthConfig(num_train_labeled=4, num_train_unlabeled=5, num_dev=3, num_test=4,
                   voices_labeled=2, voices_unlabeled=3, voices_dev=1, voices_test=2)


@pytest.fixture(scope="module")
def synth() -> EspeakSynthesizer:
    return EspeakSynthesizer()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(audio_dir, data_dir) of the TINY corpus twice with seed 0, and once with seed 1."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, config in (("a", TINY), ("b", TINY), ("seed1", replace(TINY, seed=1))):
        out[name] = (root / name / "audio", root / name / "data")
        make_corpus(*out[name], config, progress=False, num_workers=1)
    return out


def _audio_bytes(audio_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(audio_dir)): p.read_bytes() for p in sorted(audio_dir.rglob("*.flac"))}


def _text_files(data_dir: Path) -> dict[str, str]:
    names = ("text", "utt2spk", "spk2utt", "utt2dur")
    files = [data_dir / s / n for s in SPLITS for n in names] + [data_dir / "local" / "train_unlabeled.text"]
    return {str(p.relative_to(data_dir)): p.read_text() for p in files if p.exists()}


# ---------------------------------------------------------------------------------------
# espeak wrapper

def test_espeak_speaks_deterministically(synth):
    assert synth.sample_rate == 22050
    a = synth.synthesize("the old man found a small box near the river", "en-us+m3", rate=160, pitch=40)
    assert a.dtype == np.float32 and a.ndim == 1
    assert 1.0 < len(a) / synth.sample_rate < 6.0
    assert np.sqrt(np.mean(a ** 2)) > 0.01 and np.abs(a).max() <= 1.0
    synth.synthesize("something else entirely", "en-gb-x-rp+f4", rate=200, pitch=70)
    b = synth.synthesize("the old man found a small box near the river", "en-us+m3", rate=160, pitch=40)
    assert np.array_equal(a, b)  # no state carried over from the call in between


def test_espeak_rejects_unknown_voices(synth):
    with pytest.raises(EspeakError, match="no-such-voice"):
        synth.synthesize("hello", "no-such-voice")
    with pytest.raises(EspeakError, match="nosuchvariant"):
        synth.synthesize("hello", "en-us+nosuchvariant")


def test_voice_inventory_exists(synth):
    available = set(synth.variants())
    assert set(MALE_VARIANTS + FEMALE_VARIANTS) <= available
    for accent in ACCENTS:
        assert len(synth.synthesize("hello", accent)) > 0


# ---------------------------------------------------------------------------------------
# Sentences and voices

def test_sentences_are_deterministic_and_in_vocabulary():
    first = [generate_sentence(random.Random(7)) for _ in range(2)]
    assert first[0] == first[1]
    rng = random.Random(3)
    sentences = [generate_sentence(rng)[0] for _ in range(2000)]
    assert len(set(sentences)) > 1900  # varied
    for s in sentences:
        words = s.split()
        assert MIN_WORDS <= len(words) <= MAX_WORDS
        assert re.fullmatch(r"[a-z' ]+", s) and set(words) <= VOCABULARY
    assert 200 <= len(VOCABULARY) <= 1000 and all(re.fullmatch(r"[a-z']+", w) for w in VOCABULARY)


@pytest.mark.parametrize("config", [SynthConfig(), TINY, replace(TINY, voices_labeled=2, voices_unlabeled=2),
                                    SynthConfig(voices_unlabeled=150)])  # the last has too few variants
def test_voices_are_disjoint(config):
    voices = assign_voices(config)
    assert voices == assign_voices(config)
    for split in SPLITS:
        assert len(voices[split]) == config.num_voices(split)
    ids = [v.id for s in SPLITS for v in voices[s]]
    names = [v.espeak for s in SPLITS for v in voices[s]]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    train = {v.variant for s in ("train_labeled", "train_unlabeled") for v in voices[s]}
    dev, test = {v.variant for v in voices["dev"]}, {v.variant for v in voices["test"]}
    if config.voices_unlabeled < 100:  # enough variants: held-out variants never occur elsewhere
        assert not (train & dev) and not (train & test) and not (dev & test)
    labeled = [v.variant for v in voices["train_labeled"]]
    assert len(set(labeled)) == len(labeled)


# ---------------------------------------------------------------------------------------
# The corpus

def test_data_directories(corpora):
    audio_dir, data_dir = corpora["a"]
    for split in SPLITS:
        d = validate_data_dir(data_dir / split, require_text=split != "train_unlabeled")
        assert len(d.utt2spk) == TINY.num_utts(split)
        assert len(set(d.utt2spk.values())) == TINY.num_voices(split)
        for utt, spk in d.utt2spk.items():
            assert re.fullmatch(r"v\d+-\d{5}", utt) and utt.startswith(spk + "-")
            path = Path(d.wav_scp[utt])
            assert path.is_absolute() and path == (audio_dir / split / f"{utt}.flac").resolve() and path.exists()
        if d.text is not None:
            assert all(re.fullmatch(r"[A-Z' ]+", t) for t in d.text.values())
    # The unlabeled transcripts stay out of the data directory.
    assert not (data_dir / "train_unlabeled" / "text").exists()
    aside = read_table(data_dir / "local" / "train_unlabeled.text")
    assert set(aside) == set(read_table(data_dir / "train_unlabeled" / "utt2spk"))
    # Speakers never cross splits.
    speakers = [set(read_table(data_dir / s / "utt2spk").values()) for s in SPLITS]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers))


def test_audio_format_matches_utt2dur(corpora):
    _, data_dir = corpora["a"]
    for split in SPLITS:
        d = validate_data_dir(data_dir / split, require_text=False)
        for utt, path in d.wav_scp.items():
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert abs(info.frames / info.samplerate - d.utt2dur[utt]) < 1e-3
            samples, _ = sf.read(path, dtype="float32")
            assert 0.1 < np.abs(samples).max() <= 1.0  # peak-normalised, not silent


def test_same_seed_same_bytes_other_seed_differs(corpora):
    (audio_a, data_a), (audio_b, data_b), (audio_c, data_c) = corpora["a"], corpora["b"], corpora["seed1"]
    assert _audio_bytes(audio_a) == _audio_bytes(audio_b)
    assert _text_files(data_a) == _text_files(data_b)
    other = _audio_bytes(audio_c)
    assert other.keys() == _audio_bytes(audio_a).keys()  # same ids, different content
    assert all(other[k] != v for k, v in _audio_bytes(audio_a).items())
    assert read_table(data_a / "test" / "text") != read_table(data_c / "test" / "text")


def test_worker_processes_give_the_same_bytes(corpora, tmp_path):
    make_corpus(tmp_path / "audio", tmp_path / "data", TINY, progress=False, num_workers=2)
    assert _audio_bytes(tmp_path / "audio") == _audio_bytes(corpora["a"][0])
    assert _text_files(tmp_path / "data") == _text_files(corpora["a"][1])


def test_stamp_skips_and_new_config_regenerates(tmp_path, capsys):
    audio_dir, data_dir = tmp_path / "audio", tmp_path / "data"
    make_corpus(audio_dir, data_dir, TINY, progress=False)
    stamp = json.loads((data_dir / STAMP).read_text())
    assert stamp["config"]["num_test"] == TINY.num_test
    mtimes = {p: p.stat().st_mtime_ns for p in audio_dir.rglob("*.flac")}
    capsys.readouterr()
    assert make_corpus(audio_dir, data_dir, TINY, progress=False) == {s: TINY.num_utts(s) for s in SPLITS}
    assert "nothing to do" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in audio_dir.rglob("*.flac")} == mtimes

    next(audio_dir.rglob("*.flac")).unlink()  # missing audio: generate again
    make_corpus(audio_dir, data_dir, TINY, progress=False)
    assert "nothing to do" not in capsys.readouterr().err
    assert len(list(audio_dir.rglob("*.flac"))) == len(mtimes)

    smaller = replace(TINY, num_test=2)
    assert make_corpus(audio_dir, data_dir, smaller, progress=False)["test"] == 2
    assert "nothing to do" not in capsys.readouterr().err
    assert len(list((audio_dir / "test").glob("*.flac"))) == 2  # stale files removed
    assert json.loads((data_dir / STAMP).read_text())["config"]["num_test"] == 2
    validate_data_dir(data_dir / "test")


def test_cli(tmp_path, capsys):
    args = ["--audio_dir", str(tmp_path / "audio"), "--data_dir", str(tmp_path / "data"), "--num_train_labeled", "2",
            "--num_train_unlabeled", "2", "--num_dev", "1", "--num_test", "1", "--voices_labeled", "1",
            "--voices_unlabeled", "2", "--num_workers", "1"]
    assert make_synthetic_corpus.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"train_unlabeled\s+2\s+\d+\.\d{3}", out) and "total" in out
    assert make_synthetic_corpus.main(args + ["--num_dev", "0"]) == 1
    assert "ERROR" in capsys.readouterr().err
