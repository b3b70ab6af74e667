"""Parity with Kaldi: data directories Kaldi's checks reject, and audio no feature may come from.

Data directories, through ``utils/validate_data_dir.sh`` as a recipe runs it. The cases
follow Kaldi's ``utils/validate_data_dir.sh`` and ``utils/validate_text.pl``:

* every table is sorted in C-locale byte order with unique keys, and its last line ends
  in a newline; utt2spk is not empty, has two fields a line (Kaldi prints "utt2spk has
  wrong format" but, by a slip in the script, exits 0; we exit 1), and is also sorted
  when sorted first on the speaker id (``sort -k2 -C``); spk2utt is its exact inverse;
* text, wav.scp (without segments), segments, feats.scp, utt2dur, utt2num_frames,
  utt2warp, vad.scp, utt2lang and utt2uniq have exactly the utterances of utt2spk;
  cmvn.scp, spk2gender and spk2warp exactly the speakers of spk2utt; with segments,
  reco2dur and reco2file_and_channel are keyed by recording, else by utterance;
* segments lines have 4 fields with end > start, and need a wav.scp; a wav.scp path must
  not start with ``~``; spk2gender values are ``m`` or ``f``; warp factors lie in
  (0.5, 1.5); reco2file_and_channel has ``<file> <channel>`` with channel A or B;
  utt2dur, reco2dur and utt2num_frames values are > 0 (frames an integer);
* text (validate_text.pl plus the non-printable check): no carriage return anywhere, no
  whitespace but ASCII space, tab and newline (a no-break space U+00A0, U+3000, U+2028,
  form feed, ... are rejected; a tab, inside the transcript too, is allowed), no control
  character, and no ``<s>``, ``</s>`` or ``#0`` as a word. A byte-order mark is no
  whitespace to Kaldi, but it glues onto the first utterance id, which then sorts last
  and differs from utt2spk's, so Kaldi rejects it all the same. Text that is not UTF-8
  passes: validate_text.pl then assumes a one-byte encoding and checks nothing.

Where Kaldi only warns we accept: a single speaker, reco2file_and_channel channel "1".
Where Kaldi accepts we are stricter, on purpose (see STRICTER): any table that is not
UTF-8 (our tools decode every table as UTF-8), an utterance id alone on its text line
(an empty transcript), a speaker id that is not a prefix of its utterance ids even when
both orders agree, durations that are no number at all (Kaldi's awk compares ``abc``
with 0 as strings and lets it pass), odd whitespace or control characters in tables
other than text, and text checked whenever it exists (Kaldi's --no-text skips it).
Where Kaldi rejects we accept, on purpose (see LENIENT): a wav.scp recording that no
segment uses (our fix/subset tools drop it, and nothing reads it), and zero durations or
frame counts (feature extraction skips and lists zero-length audio rather than failing
the whole directory). Kaldi greps the whole text line for ``<s>``, ``</s>``, ``#0``; we
look in the transcript only.

Audio: a float WAV can hold NaN or infinite samples, and finite but huge samples give
infinite filterbank energies. Feature extraction must stop on either with an error naming
the utterance and its wav.scp line, and write no features.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bljust.data.audio import AudioError, AudioReader

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "wav.scp": "s1-a a.wav\ns1-b b.wav\ns2-c c.wav\n",
    "utt2spk": "s1-a s1\ns1-b s1\ns2-c s2\n",
    "spk2utt": "s1 s1-a s1-b\ns2 s2-c\n",
    "text": "s1-a hello world\ns1-b foo bar\ns2-c baz\n",
}
# The same utterances cut from two recordings.
SEGMENTED = {
    "wav.scp": "r1 r1.wav\nr2 r2.wav\n",
    "segments": "s1-a r1 0.00 1.50\ns1-b r1 1.50 3.00\ns2-c r2 0.25 2.00\n",
}
# Speakers "s1" and "s1-a" both prefix their utterances, yet s1-a-1 sorts before s1-b
# while speaker s1-a sorts after s1.
PREFIX_SPEAKERS = {
    "wav.scp": "s1-a-1 a.wav\ns1-b b.wav\n",
    "utt2spk": "s1-a-1 s1-a\ns1-b s1\n",
    "spk2utt": "s1 s1-b\ns1-a s1-a-1\n",
    "text": "s1-a-1 hello\ns1-b foo\n",
}
# Speaker ids no prefix of their utterance ids, sorted in the opposite order.
UNRELATED_SPEAKERS = {
    "wav.scp": "u1 a.wav\nu2 b.wav\n",
    "utt2spk": "u1 spkB\nu2 spkA\n",
    "spk2utt": "spkA u2\nspkB u1\n",
    "text": "u1 hello\nu2 foo\n",
}


def case(name: str, where: str, changes: dict[str, str | bytes | None], *options: str):
    """A data directory Kaldi rejects: BASE with ``changes`` (None removes a file), and where
    the error must point: ``<file>:<line>`` or, where no line is meaningful, ``<file>``."""
    return pytest.param(changes, where, options, id=name)


REJECTED = [
    # Sorting and duplicates (C-locale byte order: upper case before lower case).
    case("utt2spk not sorted", "utt2spk:2", {"utt2spk": "s1-b s1\ns1-a s1\ns2-c s2\n"}),
    case("utt2spk in dictionary order, not C order", "utt2spk:2",
         {"wav.scp": "s1-B b.wav\ns1-a a.wav\n", "utt2spk": "s1-a s1\ns1-B s1\n", "spk2utt": "s1 s1-B s1-a\n",
          "text": "s1-B foo\ns1-a hello\n"}),
    case("utt2spk duplicate utterance", "utt2spk:2", {"utt2spk": "s1-a s1\ns1-a s1\ns1-b s1\ns2-c s2\n"}),
    case("text duplicate utterance", "text:2", {"text": "s1-a x\ns1-a y\ns1-b foo\ns2-c bar\n"}),
    case("wav.scp duplicate utterance", "wav.scp:3", {"wav.scp": "s1-a a.wav\ns1-b b.wav\ns1-b c.wav\ns2-c c.wav\n"}),
    case("wav.scp not sorted", "wav.scp:2", {"wav.scp": "s1-b b.wav\ns1-a a.wav\ns2-c c.wav\n"}),
    case("spk2utt not sorted", "spk2utt:2", {"spk2utt": "s2 s2-c\ns1 s1-a s1-b\n"}),
    case("feats.scp not sorted", "feats.scp:2", {"feats.scp": "s1-b f.ark:9\ns1-a f.ark:1\ns2-c f.ark:20\n"}),
    case("last line without newline", "utt2spk:3", {"utt2spk": "s1-a s1\ns1-b s1\ns2-c s2"}),
    # utt2spk and spk2utt.
    case("utt2spk missing", "utt2spk", {"utt2spk": None}),
    case("utt2spk empty", "utt2spk", {"utt2spk": ""}),
    case("spk2utt missing", "spk2utt", {"spk2utt": None}),
    case("utt2spk line with the utterance id only", "utt2spk:2", {"utt2spk": "s1-a s1\ns1-b\ns2-c s2\n"}),
    case("utt2spk line with three fields", "utt2spk:2", {"utt2spk": "s1-a s1\ns1-b s1 s2\ns2-c s2\n"}),
    case("utt2spk blank line", "utt2spk:2", {"utt2spk": "s1-a s1\n\ns1-b s1\ns2-c s2\n"}),
    case("utterance id with a no-break space", "utt2spk:2", {"utt2spk": "s1-a s1\ns1-b\u00a0x s1\ns2-c s2\n"}),
    case("spk2utt gives another speaker", "spk2utt:2", {"spk2utt": "s1 s1-a\ns2 s1-b s2-c\n"}),
    case("spk2utt lacks an utterance", "utt2spk:2", {"spk2utt": "s1 s1-a\ns2 s2-c\n"}),
    case("spk2utt lists an unknown utterance", "spk2utt:1", {"spk2utt": "s1 s1-a s1-b s1-z\ns2 s2-c\n"}),
    case("spk2utt utterances not sorted", "spk2utt:1", {"spk2utt": "s1 s1-b s1-a\ns2 s2-c\n"}),
    case("sorted by utterance but not by speaker", "utt2spk:2", PREFIX_SPEAKERS),
    case("speaker ids no prefixes, orders differ", "utt2spk:1", UNRELATED_SPEAKERS),
    # text: validate_text.pl, the non-printable check, reserved words, the utterance list.
    case("text missing", "text", {"text": None}),
    case("text empty", "utt2spk:1", {"text": ""}),
    case("text Windows line endings", "text:1", {"text": "s1-a hello world\r\ns1-b foo bar\r\ns2-c baz\r\n"}),
    case("text carriage return inside", "text:2", {"text": "s1-a hello world\ns1-b foo\rbar\ns2-c baz\n"}),
    case("text no-break space", "text:2", {"text": "s1-a hello world\ns1-b foo\u00a0bar\ns2-c baz\n"}),
    case("text ideographic space", "text:2", {"text": "s1-a hello world\ns1-b foo\u3000bar\ns2-c baz\n"}),
    case("text line separator", "text:3", {"text": "s1-a hello world\ns1-b foo bar\ns2-c baz\u2028\n"}),
    case("text form feed", "text:2", {"text": "s1-a hello world\ns1-b foo\fbar\ns2-c baz\n"}),
    case("text control character", "text:2", {"text": "s1-a hello world\ns1-b foo\x1bbar\ns2-c baz\n"}),
    case("text byte-order mark", "text:1", {"text": "\ufeffs1-a hello world\ns1-b foo bar\ns2-c baz\n"}),
    case("text last line without newline", "text:3", {"text": "s1-a hello world\ns1-b foo bar\ns2-c baz"}),
    case("text with <s>", "text:2", {"text": "s1-a hello world\ns1-b <s> foo bar\ns2-c baz\n"}),
    case("text with </s>", "text:3", {"text": "s1-a hello world\ns1-b foo bar\ns2-c baz </s>\n"}),
    case("text with #0", "text:1", {"text": "s1-a hello #0 world\ns1-b foo bar\ns2-c baz\n"}),
    case("text extra utterance", "text:3", {"text": "s1-a x\ns1-b y\ns1-z z\ns2-c w\n"}),
    case("text lacks an utterance", "utt2spk:2", {"text": "s1-a x\ns2-c w\n"}),
    # wav.scp without segments: keyed by utterance.
    case("wav.scp missing", "wav.scp", {"wav.scp": None}),
    case("wav.scp extra utterance", "wav.scp:3", {"wav.scp": "s1-a a.wav\ns1-b b.wav\ns1-x x.wav\ns2-c c.wav\n"}),
    case("wav.scp lacks an utterance", "utt2spk:2", {"wav.scp": "s1-a a.wav\ns2-c c.wav\n"}),
    case("wav.scp path with ~", "wav.scp:1", {"wav.scp": "s1-a ~/a.wav\ns1-b b.wav\ns2-c c.wav\n"}),
    # segments: wav.scp and reco2* keyed by recording.
    case("segments unknown recording", "segments:2",
         {**SEGMENTED, "segments": "s1-a r1 0 1.5\ns1-b r9 1.5 3\ns2-c r2 0.25 2\n"}),
    case("segments end equal to start", "segments:2",
         {**SEGMENTED, "segments": "s1-a r1 0 1.5\ns1-b r1 3 3\ns2-c r2 0.25 2\n"}),
    case("segments end before start", "segments:2",
         {**SEGMENTED, "segments": "s1-a r1 0 1.5\ns1-b r1 3 2\ns2-c r2 0.25 2\n"}),
    case("segments line with 3 fields", "segments:2",
         {**SEGMENTED, "segments": "s1-a r1 0 1.5\ns1-b r1 1.5\ns2-c r2 0.25 2\n"}),
    case("segments not sorted", "segments:2",
         {**SEGMENTED, "segments": "s1-b r1 1.5 3\ns1-a r1 0 1.5\ns2-c r2 0.25 2\n"}),
    case("segments lacks an utterance", "utt2spk:2", {**SEGMENTED, "segments": "s1-a r1 0 1.5\ns2-c r2 0.25 2\n"}),
    case("segments without wav.scp", "wav.scp", {**SEGMENTED, "wav.scp": None}, "--no-wav"),
    case("reco2dur keyed by utterance with segments", "reco2dur:1",
         {**SEGMENTED, "reco2dur": "s1-a 3\ns1-b 3\ns2-c 2\n"}),
    case("reco2file_and_channel keyed by utterance with segments", "reco2file_and_channel:1",
         {**SEGMENTED, "reco2file_and_channel": "s1-a r1 A\ns1-b r1 A\ns2-c r2 A\n"}),
    case("reco2file_and_channel unknown recording", "reco2file_and_channel:3",
         {"reco2file_and_channel": "s1-a a A\ns1-b b A\nx c A\n"}),
    case("reco2file_and_channel channel C", "reco2file_and_channel:2",
         {"reco2file_and_channel": "s1-a a A\ns1-b b C\ns2-c c A\n"}),
    case("reco2file_and_channel without channel", "reco2file_and_channel:1",
         {"reco2file_and_channel": "s1-a a\ns1-b b A\ns2-c c A\n"}),
    case("reco2dur lacks a recording", "wav.scp:3", {"reco2dur": "s1-a 1\ns1-b 1\n"}),
    # Other per-utterance tables.
    case("feats.scp extra utterance", "feats.scp:4", {"feats.scp": "s1-a f:1\ns1-b f:2\ns2-c f:3\ns3-d f:4\n"}),
    case("feats.scp lacks an utterance", "utt2spk:2", {"feats.scp": "s1-a f:1\ns2-c f:3\n"}),
    case("utt2dur extra utterance", "utt2dur:4", {"utt2dur": "s1-a 1\ns1-b 1\ns2-c 2\ns3-d 1\n"}),
    case("utt2dur negative", "utt2dur:2", {"utt2dur": "s1-a 1\ns1-b -1.5\ns2-c 2\n"}),
    case("utt2dur without value", "utt2dur:2", {"utt2dur": "s1-a 1\ns1-b\ns2-c 2\n"}),
    case("utt2num_frames not an integer", "utt2num_frames:2", {"utt2num_frames": "s1-a 10\ns1-b 1.5\ns2-c 7\n"}),
    case("utt2num_frames negative", "utt2num_frames:3", {"utt2num_frames": "s1-a 10\ns1-b 5\ns2-c -7\n"}),
    case("utt2warp out of range", "utt2warp:2", {"utt2warp": "s1-a 1.0\ns1-b 1.6\ns2-c 0.9\n"}),
    case("vad.scp lacks an utterance", "utt2spk:2", {"vad.scp": "s1-a v.ark:1\ns2-c v.ark:9\n"}),
    case("utt2lang extra utterance", "utt2lang:4", {"utt2lang": "s1-a en\ns1-b en\ns2-c en\ns9-z en\n"}),
    case("utt2uniq lacks an utterance", "utt2spk:3", {"utt2uniq": "s1-a a\ns1-b b\n"}),
    # Per-speaker tables.
    case("cmvn.scp keyed by utterance", "cmvn.scp:1", {"cmvn.scp": "s1-a c.ark:1\ns1-b c.ark:2\ns2-c c.ark:3\n"}),
    case("cmvn.scp lacks a speaker", "spk2utt:2", {"cmvn.scp": "s1 c.ark:1\n"}),
    case("spk2gender value x", "spk2gender:2", {"spk2gender": "s1 m\ns2 x\n"}),
    case("spk2gender value male", "spk2gender:1", {"spk2gender": "s1 male\ns2 f\n"}),
    case("spk2gender without value", "spk2gender:2", {"spk2gender": "s1 m\ns2\n"}),
    case("spk2gender lacks a speaker", "spk2utt:2", {"spk2gender": "s1 m\n"}),
    case("spk2warp out of range", "spk2warp:2", {"spk2warp": "s1 1.0\ns2 0.5\n"}),
]

# Kaldi accepts these (or only warns), and so must we.
ACCEPTED = {
    "tabs between and inside fields": {"text": "s1-a\thello\tworld\ns1-b foo bar\ns2-c baz\n",
                                       "utt2spk": "s1-a\ts1\ns1-b s1\ns2-c s2\n"},
    "trailing spaces": {"text": "s1-a hello world  \ns1-b foo bar \ns2-c baz\n"},
    "non-ASCII letters": {"text": "s1-a héllo wörld\ns1-b 世界\ns2-c Ωmega\n"},
    "a single speaker (Kaldi warns)": {"wav.scp": "s1-a a.wav\ns1-b b.wav\n", "utt2spk": "s1-a s1\ns1-b s1\n",
                                       "spk2utt": "s1 s1-a s1-b\n", "text": "s1-a x\ns1-b y\n"},
    "reco2file_and_channel channel 1 (Kaldi warns)": {"reco2file_and_channel": "s1-a a 1\ns1-b b A\ns2-c c B\n"},
    "every optional table": {"feats.scp": "s1-a f.ark:5\ns1-b f.ark:99\ns2-c f.ark:200\n",
                             "utt2dur": "s1-a 1.5\ns1-b 2\ns2-c 0.75\n",
                             "utt2num_frames": "s1-a 148\ns1-b 198\ns2-c 73\n",
                             "reco2dur": "s1-a 1.5\ns1-b 2\ns2-c 0.75\n", "cmvn.scp": "s1 c.ark:1\ns2 c.ark:50\n",
                             "spk2gender": "s1 m\ns2 f\n", "spk2warp": "s1 0.9\ns2 1.1\n",
                             "utt2warp": "s1-a 1\ns1-b 1\ns2-c 1\n",
                             "vad.scp": "s1-a v:1\ns1-b v:2\ns2-c v:3\n", "utt2lang": "s1-a en\ns1-b en\ns2-c nl\n",
                             "utt2uniq": "s1-a a\ns1-b b\ns2-c c\n",
                             "reco2file_and_channel": "s1-a a A\ns1-b b A\ns2-c c B\n"},
    "segments with reco2dur and reco2file_and_channel": {**SEGMENTED, "reco2dur": "r1 3.5\nr2 2\n",
                                                         "reco2file_and_channel": "r1 r1 A\nr2 r2 A\n"},
}

# Kaldi rejects these; we accept them on purpose (see the module docstring).
LENIENT = {
    "wav.scp recording no segment uses": {**SEGMENTED, "wav.scp": "r1 r1.wav\nr2 r2.wav\nr3 r3.wav\n"},
    "zero durations and frame counts": {"utt2dur": "s1-a 0\ns1-b 1\ns2-c 2\n", "reco2dur": "s1-a 0\ns1-b 1\ns2-c 2\n",
                                        "utt2num_frames": "s1-a 0\ns1-b 98\ns2-c 198\n"},
}

# Kaldi accepts these; we reject them on purpose (see the module docstring).
STRICTER = [
    case("text not UTF-8", "text:2", {"text": b"s1-a hello world\ns1-b caf\xe9\ns2-c baz\n"}),
    case("empty transcript", "text:2", {"text": "s1-a hello world\ns1-b\ns2-c baz\n"}),
    case("duration no number", "utt2dur:2", {"utt2dur": "s1-a 1\ns1-b abc\ns2-c 2\n"}),
    case("speaker ids no prefixes, orders agree", "utt2spk:1",
         {"wav.scp": "a a.wav\nb b.wav\n", "utt2spk": "a spkA\nb spkA\n", "spk2utt": "spkA a b\n",
          "text": "a x\nb y\n"}),
]


def make_dir(d: Path, changes: dict[str, str | bytes | None]) -> Path:
    """BASE with ``changes``, each file written byte for byte (no newline translation)."""
    d.mkdir(parents=True)
    for name, content in {**BASE, **changes}.items():
        if content is not None:
            (d / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return d


def validate(d: Path, *options: str) -> subprocess.CompletedProcess:
    """Run utils/validate_data_dir.sh as a recipe does: this interpreter first on PATH as ``python``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    env.pop("PYTHON", None)
    return subprocess.run(["bash", str(ROOT / "utils" / "validate_data_dir.sh"), *options, str(d)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def assert_rejected(r: subprocess.CompletedProcess, d: Path, where: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("ERROR: ") and f"{d}/{where}:" in r.stderr, r.stderr


@pytest.mark.parametrize("changes,where,options", REJECTED)
def test_rejects_what_kaldi_rejects(tmp_path, changes, where, options):
    d = make_dir(tmp_path / "data", changes)
    assert_rejected(validate(d, *options), d, where)


@pytest.mark.parametrize("changes,where,options", STRICTER)
def test_rejects_more_than_kaldi(tmp_path, changes, where, options):
    d = make_dir(tmp_path / "data", changes)
    assert_rejected(validate(d, *options), d, where)


@pytest.mark.parametrize("name", [*ACCEPTED, *LENIENT])
def test_accepts(tmp_path, name):
    d = make_dir(tmp_path / "data", {**ACCEPTED, **LENIENT}[name])
    r = validate(d)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Successfully validated data-directory {d}\n"
    if "channel 1" in name:
        assert f"{d}/reco2file_and_channel:1: channel '1' should be A or B" in r.stderr


# ---------------------------------------------------------------------------------------
# Audio with non-finite samples

def wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples.astype(np.float32), 16000, subtype="FLOAT")  # a float WAV keeps NaN and inf
    return path


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def compute_fbank(data: Path, out_prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bljust.bin.compute_fbank", str(data), str(out_prefix)], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("bad_value,problem", [
    (np.nan, "samples are NaN or infinite"),
    (np.inf, "samples are NaN or infinite"),
    (1e20, "its features have NaN or infinite values"),  # finite, but its energy overflows float32
])
def test_fbank_stops_on_non_finite_audio_and_writes_nothing(tmp_path, bad_value, problem):
    bad = noise(16000, seed=1)
    bad[8000] = bad_value
    a, b = wav(tmp_path / "a.wav", noise(16000)), wav(tmp_path / "b.wav", bad)
    data = make_dir(tmp_path / "data", {"wav.scp": f"s1-a {a}\ns1-b {b}\n", "utt2spk": "s1-a s1\ns1-b s1\n",
                                        "spk2utt": "s1 s1-a s1-b\n", "text": "s1-a x\ns1-b y\n"})
    out = tmp_path / "out"
    r = compute_fbank(data, out / "feats.1")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"ERROR: {data}/wav.scp:2: utterance 's1-b' ('{b}'): " in r.stderr and problem in r.stderr
    # Neither the good utterance before it nor anything else: the job's outputs are all or nothing.
    assert not out.exists() or os.listdir(out) == []


def test_reader_checks_only_the_samples_of_the_utterance(tmp_path):
    samples = noise(48000)
    samples[40000] = np.nan  # at 2.5 s: in s2-c only
    r1 = wav(tmp_path / "r1.wav", samples)
    d = make_dir(tmp_path / "data", {"wav.scp": f"r1 {r1}\n",
                                     "segments": "s1-a r1 0.00 1.50\ns1-b r1 1.50 2.00\ns2-c r1 2.00 3.00\n"})
    reader = AudioReader(d)
    assert len(reader.read("s1-a")) == 24000 and len(reader.read("s1-b")) == 8000
    with pytest.raises(AudioError) as e:
        reader.read("s2-c")
    assert str(e.value) == (f"{d}/wav.scp:1: recording 'r1' (utterance 's2-c') ('{r1}'): 1 of its 16000 samples "
                            f"are NaN or infinite (the first at 0.500 s into the utterance)")
