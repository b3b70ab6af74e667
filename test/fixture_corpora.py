"""Tiny LibriSpeech and TED-LIUM 2 corpora in their real on-disk layouts (a test helper).

Speech is synthesised with espeak-ng, a handful of utterances per part, two speakers each,
so the recipes' download, unpacking and data preparation run on the same folder
structure, file formats and archive packing as the real corpora:

    fx = build_librispeech(tmp / "libri")
    fx.corpus_dir / "LibriSpeech/dev-clean/..."       the unpacked tree (a db.sh copy)
    fx.archive_dir / "dev-clean.tar.gz"               the archives as openslr packs them
    fx.md5["dev-clean.tar.gz"]                        their md5 sums, for local/checksums.txt

    fx = build_tedlium2(tmp / "ted")                   TEDLIUM_release2/{train,dev,test}/{sph,stm}

and runs a copy of a recipe against them: ``copy_recipe``, ``set_db`` (point db.sh at the
test's server or at ``fx.corpus_dir``), ``set_checksums`` (the fixture archives' sums in
local/checksums.txt), ``run_recipe``, with ``TINY_CONFIG`` as the training config.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from bljust.data.audio import resample
from bljust.data.espeak import EspeakSynthesizer

SAMPLE_RATE = 16000
LIBRISPEECH_PARTS = ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100", "train-clean-360",
                     "train-other-500")
VOICES = ("en-us+m3", "en-us+f1", "en-us+m1", "en-us+f4")  # no breath-noise variants: they are random
WORDS = ("the", "cat", "sat", "on", "a", "red", "mat", "dog", "ran", "to", "big", "house", "and", "old", "man",
         "saw", "it", "green", "tree", "by", "river")

_synth: EspeakSynthesizer | None = None


def speak(text: str, voice: str) -> np.ndarray:
    """float32 speech at SAMPLE_RATE (one synthesiser per process: it is slow to load)."""
    global _synth
    if _synth is None:
        _synth = EspeakSynthesizer()
    return resample(_synth.synthesize(text, voice), _synth.sample_rate, SAMPLE_RATE)


def md5sum(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@dataclass
class Fixture:
    corpus_dir: Path  # the unpacked tree, as db.sh would point at it
    archive_dir: Path  # the archives, to serve over HTTP
    md5: dict[str, str] = field(default_factory=dict)  # archive name -> md5


def _sentence(rng: random.Random) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(3, 5))]


# ---------------------------------------------------------------------------------------
# LibriSpeech: LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + <spk>-<chapter>.trans.txt

def build_librispeech(root: Path, utts_per_speaker: int = 2, train_utts_per_speaker: int = 4,
                      seed: int = 0) -> Fixture:
    """Every part with two speakers (one chapter each); speakers differ between parts, as in LibriSpeech."""
    rng = random.Random(seed)
    fx = Fixture(root / "corpus", root / "archives")
    top = fx.corpus_dir / "LibriSpeech"
    top.mkdir(parents=True)
    # Every real archive also carries these files at the top of LibriSpeech/.
    for name in ("README.TXT", "SPEAKERS.TXT", "CHAPTERS.TXT", "BOOKS.TXT", "LICENSE.TXT"):
        (top / name).write_text(f"; fixture {name}\n")
    for p, part in enumerate(LIBRISPEECH_PARTS):
        n_utts = train_utts_per_speaker if part == "train-clean-100" else utts_per_speaker
        for k in range(2):
            spk, chapter = 100 + 10 * p + k, 5000 + 10 * p + k
            folder = top / part / str(spk) / str(chapter)
            folder.mkdir(parents=True)
            lines = []
            for i in range(n_utts):
                utt = f"{spk}-{chapter}-{i:04d}"
                words = _sentence(rng)
                if i == 0:
                    words.append("it's")  # LibriSpeech keeps apostrophes
                sf.write(folder / f"{utt}.flac", speak(" ".join(words), VOICES[(p + k) % len(VOICES)]), SAMPLE_RATE)
                lines.append(f"{utt} {' '.join(words).upper()}\n")
            (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    fx.archive_dir.mkdir(parents=True)
    for part in LIBRISPEECH_PARTS:
        archive = fx.archive_dir / f"{part}.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:  # openslr's layout: LibriSpeech/<part>/... plus the top files
            for name in sorted(p.name for p in top.iterdir() if p.is_file()):
                tf.add(top / name, f"LibriSpeech/{name}")
            tf.add(top / part, f"LibriSpeech/{part}")
        fx.md5[archive.name] = md5sum(archive)
    return fx


# ---------------------------------------------------------------------------------------
# TED-LIUM 2: TEDLIUM_release2/{train,dev,test}/{sph,stm}/<talk>.{sph,stm}

# Transcripts as the stm spells them, the normalised text local/data.sh must produce, and
# what espeak says for them (<unk> stands for a word outside the corpus vocabulary).
TED_SEGMENTS = [
    ("the cat sat on a red mat", "the cat sat on a red mat", "the cat sat on a red mat"),
    ("{NOISE} the(2) old man saw it", "[NOISE] the old man saw it", "the old man saw it"),
    ("it 's a big <sil> house by the river", "it's a big house by the river", "it's a big house by the river"),
    ("a <unk> dog ran to the tree", "a <unk> dog ran to the tree", "a zorbly dog ran to the tree"),
]


@dataclass
class TedFixture(Fixture):
    expected_text: dict[str, str] = field(default_factory=dict)  # utt id -> normalised transcript
    ignored: list[tuple[str, float, float]] = field(default_factory=list)  # (talk, start, end) to be dropped


def _ted_talk(talk: str, set_name: str, voice: str, fx: TedFixture) -> tuple[np.ndarray, list[str]]:
    """One talk's recording and stm lines: the segments with gaps, and an ignored stretch of noise."""
    rng = np.random.default_rng(len(talk))
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    pieces, lines, t = [gap], [], len(gap) / SAMPLE_RATE
    label = "<F0_M>" if set_name == "dev" else "<o,f0,male>"  # dev's stm uses the old label style
    for n, (stm_words, expected, spoken) in enumerate(TED_SEGMENTS):
        speech = speak(spoken, voice)
        start, end = round(t, 2), round(t + len(speech) / SAMPLE_RATE, 2)
        words = stm_words
        if set_name == "train" and n == 0:
            words += f" ({talk}-{start:.2f}-{end:.2f})"  # some train lines end with the utterance name
        lines.append(f"{talk} 1 {talk} {start:.2f} {end:.2f} {label} {words}\n")
        fx.expected_text[f"{talk}-{round(start * 100):07d}-{round(end * 100):07d}"] = expected
        pieces += [speech, gap]
        t += (len(speech) + len(gap)) / SAMPLE_RATE
        if n == 1:  # music or applause the transcribers skipped
            noise = (0.05 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
            start, end = round(t, 2), round(t + 1.0, 2)
            lines.append(f"{talk} 1 inter_segment_gap {start:.2f} {end:.2f} <o,,unknown> ignore_time_segment_in_scoring\n")
            fx.ignored.append((talk, start, end))
            pieces += [noise, gap]
            t += (len(noise) + len(gap)) / SAMPLE_RATE
    return np.concatenate(pieces), lines


def build_tedlium2(root: Path) -> TedFixture:
    """train, dev and test with two talks (speakers) each, packed as TEDLIUM_release2.tar.gz."""
    fx = TedFixture(root / "corpus", root / "archives")
    top = fx.corpus_dir / "TEDLIUM_release2"
    talks = {"train": ("AlGore_2009", "JaneDoe_2011X"), "dev": ("BenSaunders_2012", "CarlaRoe_2010"),
             "test": ("DanAbel_2013", "EvaStone_2012")}
    for s, (set_name, names) in enumerate(talks.items()):
        for k, talk in enumerate(names):
            audio, lines = _ted_talk(talk, set_name, VOICES[(s + k) % len(VOICES)], fx)
            (top / set_name / "sph").mkdir(parents=True, exist_ok=True)
            (top / set_name / "stm").mkdir(parents=True, exist_ok=True)
            sf.write(top / set_name / "sph" / f"{talk}.sph", audio, SAMPLE_RATE, format="NIST", subtype="PCM_16")
            (top / set_name / "stm" / f"{talk}.stm").write_text("".join(lines))
    (top / "readme").write_text("fixture TED-LIUM release 2\n")
    fx.archive_dir.mkdir(parents=True)
    archive = fx.archive_dir / "TEDLIUM_release2.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(top, "TEDLIUM_release2")
    fx.md5[archive.name] = md5sum(archive)
    return fx


# ---------------------------------------------------------------------------------------
# Running a recipe copy

REPO = Path(__file__).resolve().parents[1]

# 1 CNN / 1 BiLSTM layer, a few BL-JUST steps: the pipeline, not the model, is under test.
TINY_CONFIG = """\
encoder: cnn_lstm
encoder_conf: {cnn_layers: 1, subsampling: 2, latent_dim: 32, lstm_layers: 1, lstm_units: 32, dropout: 0.0}
unsup_conf: {steps: 2, num_negatives: 8, ar_dim: 32}
strategy: bljust
max_epochs: 1
phases:
  explore: {steps: 1, lr: 1.0e-3}
  joint: {steps: 2, lr: 1.0e-3}
  finetune: {steps: 1, lr: 1.0e-4}
batch: {max_frames: 4000}
diag_interval: 0
"""


def copy_recipe(name: str, dest: Path) -> Path:
    """A copy of egs/<name> whose shared parts link back into the repository (as in egs/<corpus>);
    local/, conf/, db.sh and run.sh are real copies, so a test can change them."""
    src = REPO / "egs" / name
    dest.mkdir(parents=True)
    for link in ("asr.sh", "path.sh", "cmd.sh", "utils"):
        os.symlink(os.path.realpath(src / link), dest / link)
    for folder in ("local", "conf"):
        shutil.copytree(src / folder, dest / folder)
    for script in ("run.sh", "db.sh"):
        shutil.copy(src / script, dest / script)
    return dest


def set_db(recipe: Path, **values: str) -> None:
    """Rewrite the assignments ``NAME=...`` of the copy's db.sh, keeping everything else."""
    text = (recipe / "db.sh").read_text()
    for name, value in values.items():
        text, n = re.subn(rf"^{name}=.*$", f"{name}={shlex.quote(value)}", text, flags=re.M)
        assert n == 1, f"db.sh has no assignment of {name}"
    (recipe / "db.sh").write_text(text)


def set_checksums(recipe: Path, sums: dict[str, str]) -> None:
    """Replace the copy's local/checksums.txt (the fixture archives are not the real ones)."""
    (recipe / "local" / "checksums.txt").write_text("".join(f"{s}  {name}\n" for name, s in sums.items()))


def run_recipe(recipe: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "LC_ALL"} | (env or {})
    proc = subprocess.run(["./run.sh", *args], cwd=recipe, env=environ, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc
