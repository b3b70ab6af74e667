"""A synthetic speech corpus for the embedded recipe (egs/mini), generated offline on a CPU.

Sentences come from a small English grammar (``bljust.data.synth_sentences``), speech from
espeak-ng (``bljust.data.espeak``), with noise at a random SNR, random leading/trailing
silence and 16 kHz FLAC output.
Each split has its own voices: a voice is an espeak accent plus variant (``en-us+m3``)
with a base speaking rate and pitch. The held-out splits (dev, test) get variants of
their own that no training voice uses, so they measure generalisation to unseen
speakers; ``train_unlabeled`` has many more voices than ``train_labeled``.

    make_corpus("downloads/audio", "data", SynthConfig(seed=0))

writes ``downloads/audio/<split>/<utt>.flac`` and Kaldi data directories ``data/<split>``.
``train_unlabeled`` gets no ``text``; its transcripts go to ``data/local/train_unlabeled.text``
for analysis only. The same config gives byte-identical audio and identical text.

This module is one pipeline, config -> voices -> plan -> audio -> data directories, whose
stages share the config, the per-purpose random streams and the Utterance record.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import multiprocessing
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from bljust.data.datadir import write_data_dir, write_table
from bljust.data.espeak import EspeakSynthesizer
from bljust.data.synth_sentences import _pick, generate_sentence
from bljust.fileio import atomic_path, atomic_write_text

SPLITS = ("train_labeled", "train_unlabeled", "dev", "test")
HELD_OUT = ("test", "dev")  # planned first, so they do not change when training sizes change
STAMP = ".synth_done"
# Bump when a change to this module or to synth_sentences changes the corpus, so old stamps stop matching.
GENERATOR_VERSION = 1

# ---------------------------------------------------------------------------------------
# Voices

# English accents of espeak-ng.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Human-sounding variants. Variants with breath noise (f2, f3, f5, whisper, ...) are left
# out: their output is random from one call to the next, which would break reproducibility.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Gene", "Jacky", "Lee", "Mario",
                 "Michael", "Mike", "gustave", "rob", "robert", "norbert", "quincy", "travis", "david", "john",
                 "boris", "max", "klatt", "klatt2", "klatt3")
FEMALE_VARIANTS = ("f1", "f4", "Andrea", "Annie", "anika", "aunty", "belinda", "linda", "steph", "grandma",
                   "shelby")
RATE_RANGE = (135, 195)  # base speaking rate of a voice, words per minute
PITCH_RANGE = (25, 75)  # base pitch of a voice, espeak's 0-99 scale
RATE_JITTER = 0.08  # per-utterance relative change of the rate
PITCH_JITTER = 6  # per-utterance change of the pitch
SILENCE_RANGE = (0.05, 0.4)  # seconds of silence added before and after the speech
PEAK_RANGE = (0.3, 0.95)  # the output is scaled to a random peak in this range
NOISE_KINDS = ("white", "pink", "lowpass")


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: espeak voice (accent+variant) with a base rate and pitch."""
    id: str  # speaker id, e.g. "v07"
    espeak: str  # e.g. "en-us+m3"
    rate: int  # words per minute
    pitch: int  # 0-99

    @property
    def variant(self) -> str:
        return self.espeak.split("+", 1)[1]


@dataclass
class SynthConfig:
    """What corpus to generate. The same config gives the same corpus, byte for byte."""
    seed: int = 0
    num_train_labeled: int = 1500
    num_train_unlabeled: int = 2400
    num_dev: int = 150
    num_test: int = 200
    voices_labeled: int = 8
    voices_unlabeled: int = 40
    voices_dev: int = 3
    voices_test: int = 4
    snr_min: float = 15.0  # dB
    snr_max: float = 30.0
    sample_rate: int = 16000

    def num_utts(self, split: str) -> int:
        return {"train_labeled": self.num_train_labeled, "train_unlabeled": self.num_train_unlabeled,
                "dev": self.num_dev, "test": self.num_test}[split]

    def num_voices(self, split: str) -> int:
        return {"train_labeled": self.voices_labeled, "train_unlabeled": self.voices_unlabeled,
                "dev": self.voices_dev, "test": self.voices_test}[split]

    def validate(self) -> None:
        for split in SPLITS:
            if self.num_utts(split) < 1 or self.num_voices(split) < 1:
                raise ValueError(f"{split}: needs at least one utterance and one voice, got "
                                 f"{self.num_utts(split)} utterances and {self.num_voices(split)} voices")
        total = sum(self.num_voices(s) for s in SPLITS)
        if total > len(ACCENTS) * (len(MALE_VARIANTS) + len(FEMALE_VARIANTS)):
            raise ValueError(f"{total} voices asked for, more than the "
                             f"{len(ACCENTS) * (len(MALE_VARIANTS) + len(FEMALE_VARIANTS))} available")
        if not self.snr_min <= self.snr_max:
            raise ValueError(f"snr_min {self.snr_min} is above snr_max {self.snr_max}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")


def _rng(config: SynthConfig, *what: str) -> random.Random:
    """An independent random stream per purpose, so e.g. a new SNR range keeps the texts."""
    return random.Random("/".join(["bljust-synth", str(config.seed), *what]))


def _interleave(a: list[str], b: list[str]) -> list[str]:
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


def assign_voices(config: SynthConfig) -> dict[str, list[Voice]]:
    """Disjoint voices for every split, deterministic given the config.

    dev and test each get variants no other split uses (alternating female/male), unless
    there are too few variants for that; then splits are only disjoint by accent+variant.
    The training splits share the remaining variants with different accents; the labeled
    voices all have different variants.
    """
    rng = _rng(config, "voices")
    male, female = list(MALE_VARIANTS), list(FEMALE_VARIANTS)
    rng.shuffle(male)
    rng.shuffle(female)
    variants = _interleave(female, male)  # alternate genders wherever a split takes a run of them
    accent_orders = {v: rng.sample(ACCENTS, len(ACCENTS)) for v in variants}

    n_held_out = sum(config.num_voices(s) for s in HELD_OUT)
    n_train = config.voices_labeled + config.voices_unlabeled
    exclusive = n_held_out + math.ceil(n_train / len(ACCENTS)) <= len(variants)
    if not exclusive:
        print("WARNING: too few espeak variants to give dev/test variants of their own; "
              "voices are only disjoint by accent+variant", file=sys.stderr)

    # (split, variant, accent) in order; the held-out splits come first.
    chosen: list[tuple[str, str, str]] = []
    if exclusive:
        for split in HELD_OUT:
            for _ in range(config.num_voices(split)):
                v = variants.pop(0)
                chosen.append((split, v, accent_orders[v][0]))
        pairs = [(v, accent_orders[v][r]) for r in range(len(ACCENTS)) for v in variants]
        order = ("train_labeled", "train_unlabeled")
    else:
        pairs = [(v, accent_orders[v][r]) for r in range(len(ACCENTS)) for v in variants]
        order = HELD_OUT + ("train_labeled", "train_unlabeled")
    for split in order:
        for _ in range(config.num_voices(split)):
            v, accent = pairs.pop(0)
            chosen.append((split, v, accent))

    # Speaker ids numbered in SPLITS order; rate and pitch drawn in that order too.
    chosen.sort(key=lambda c: SPLITS.index(c[0]))
    width = max(2, len(str(len(chosen) - 1)))
    voices: dict[str, list[Voice]] = {s: [] for s in SPLITS}
    for i, (split, v, accent) in enumerate(chosen):
        voices[split].append(Voice(id=f"v{i:0{width}d}", espeak=f"{accent}+{v}",
                                   rate=rng.randint(*RATE_RANGE), pitch=rng.randint(*PITCH_RANGE)))
    return voices


# ---------------------------------------------------------------------------------------
# Planning: every random choice, made up front so that rendering is a pure function

@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one utterance."""
    utt_id: str
    speaker: str
    text: str  # lowercase words
    punctuation: str  # "." or "?", for espeak's intonation only
    voice: str  # espeak voice name
    rate: int
    pitch: int
    noise: str  # one of NOISE_KINDS
    noise_cutoff: float  # Hz, for "lowpass" noise
    snr_db: float
    lead_s: float
    trail_s: float
    peak: float
    noise_seed: int


def plan_corpus(config: SynthConfig) -> dict[str, list[Utterance]]:
    """The utterances of every split. Sentences are unique across the corpus."""
    config.validate()
    voices = assign_voices(config)
    seen: set[str] = set()
    plan: dict[str, list[Utterance]] = {}
    for split in HELD_OUT + ("train_labeled", "train_unlabeled"):
        text_rng, r = _rng(config, split, "text"), _rng(config, split, "audio")
        utts = []
        for i in range(config.num_utts(split)):
            voice = voices[split][i % len(voices[split])]  # round robin: equal shares per voice
            text, end = generate_sentence(text_rng)
            while text in seen:
                text, end = generate_sentence(text_rng)
            seen.add(text)
            utts.append(Utterance(
                utt_id=f"{voice.id}-{i:05d}", speaker=voice.id, text=text, punctuation=end, voice=voice.espeak,
                rate=round(voice.rate * r.uniform(1 - RATE_JITTER, 1 + RATE_JITTER)),
                pitch=min(99, max(0, voice.pitch + r.randint(-PITCH_JITTER, PITCH_JITTER))),
                noise=_pick(r, NOISE_KINDS), noise_cutoff=r.uniform(300.0, 3000.0),
                snr_db=r.uniform(config.snr_min, config.snr_max),
                lead_s=r.uniform(*SILENCE_RANGE), trail_s=r.uniform(*SILENCE_RANGE),
                peak=r.uniform(*PEAK_RANGE), noise_seed=r.getrandbits(63)))
        plan[split] = utts
    return {s: plan[s] for s in SPLITS}


# ---------------------------------------------------------------------------------------
# Rendering

def _speech_power(x: np.ndarray, sr: int) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest (pauses do not count)."""
    frame = max(1, sr // 50)
    n = len(x) // frame
    if n == 0:
        return float(np.mean(x ** 2)) if len(x) else 0.0
    energy = np.mean(x[:n * frame].reshape(n, frame) ** 2, axis=1)
    active = energy[energy >= energy.max() * 1e-3]
    return float(active.mean())


def make_noise(kind: str, n: int, sr: int, rng: np.random.Generator, cutoff: float = 1000.0) -> np.ndarray:
    """``n`` samples of unit-power noise: white, pink (-3 dB/octave) or low-passed white."""
    if kind == "white" or n < 2:
        noise = rng.standard_normal(n)
    else:
        # Shape white noise in the frequency domain; a power-of-two length keeps the FFT fast.
        size = 1 << (n - 1).bit_length()
        freqs = np.fft.rfftfreq(size, 1.0 / sr)
        if kind == "pink":
            gain = 1.0 / np.sqrt(np.maximum(freqs, 20.0))
        elif kind == "lowpass":
            gain = 1.0 / np.sqrt(1.0 + (freqs / cutoff) ** 4)  # second-order roll-off
        else:
            raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")
        noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(size)) * gain, size)[:n]
    power = np.mean(noise ** 2) if n else 0.0
    return noise / np.sqrt(power) if power > 0 else noise


@functools.lru_cache(maxsize=4)
def _resampler(orig_sr: int, new_sr: int):
    """torchaudio's sinc resampler (functional.resample's method) with its kernel computed once."""
    return torchaudio.transforms.Resample(orig_sr, new_sr)


@contextlib.contextmanager
def _one_torch_thread():
    """Run torch on one thread: for short signals thread start-up costs more than it saves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def render(utt: Utterance, synth: EspeakSynthesizer, sample_rate: int) -> np.ndarray:
    """The int16 samples of ``utt`` at ``sample_rate``: speech, silence padding, noise, peak level."""
    speech = synth.synthesize(utt.text + utt.punctuation, utt.voice, rate=utt.rate, pitch=utt.pitch)
    if synth.sample_rate != sample_rate:
        with torch.no_grad():
            speech = _resampler(synth.sample_rate, sample_rate)(torch.from_numpy(speech)).numpy()
    speech = speech.astype(np.float64)
    lead, trail = round(utt.lead_s * sample_rate), round(utt.trail_s * sample_rate)
    x = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    noise = make_noise(utt.noise, len(x), sample_rate, np.random.default_rng(utt.noise_seed), utt.noise_cutoff)
    x += noise * math.sqrt(_speech_power(speech, sample_rate) / 10.0 ** (utt.snr_db / 10.0))
    peak = np.max(np.abs(x)) if len(x) else 0.0
    if peak > 1e-9:  # silent input stays silent instead of dividing by zero
        x *= utt.peak / peak
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_flac(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 ``samples`` as 16-bit FLAC, atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, samples, sample_rate, format="FLAC", subtype="PCM_16")


_worker_synth = None  # one synthesiser per process
_MIN_JOBS_FOR_WORKERS = 300


def _render_to_file(job: tuple[Utterance, str, int]) -> int:
    """Render one utterance to its FLAC file; return its number of samples."""
    global _worker_synth
    utt, path, sample_rate = job
    if _worker_synth is None:
        _worker_synth = EspeakSynthesizer()
    samples = render(utt, _worker_synth, sample_rate)
    write_flac(path, samples, sample_rate)
    return len(samples)


def _init_worker() -> None:
    torch.set_num_threads(1)  # the workers are the parallelism


# ---------------------------------------------------------------------------------------
# The corpus

def _stamp(config: SynthConfig, audio_dir: Path) -> dict:
    return {"config": asdict(config), "audio_dir": str(audio_dir), "generator_version": GENERATOR_VERSION}


def _is_done(audio_dir: Path, data_dir: Path, config: SynthConfig) -> bool:
    try:
        stamp = json.loads((data_dir / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if stamp != _stamp(config, audio_dir):
        return False
    for split in SPLITS:
        if not all((data_dir / split / name).is_file() for name in ("wav.scp", "utt2spk", "utt2dur")):
            return False
        with open(data_dir / split / "wav.scp", encoding="utf-8") as f:  # the audio may have been deleted
            if not all(Path(line.split(maxsplit=1)[-1].strip()).is_file() for line in f if line.strip()):
                return False
    return True


def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use, not all of the machine's
    except AttributeError:
        return os.cpu_count() or 1


def _count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def make_corpus(audio_dir: str | os.PathLike, data_dir: str | os.PathLike, config: SynthConfig | None = None,
                progress: bool = True, num_workers: int | None = None) -> dict[str, int]:
    """Generate the corpus; return the number of utterances per split.

    Writes ``audio_dir/<split>/<utt>.flac``, Kaldi data directories ``data_dir/<split>``
    (wav.scp with absolute paths, utt2spk, spk2utt, text, utt2dur; no text for
    train_unlabeled) and ``data_dir/local/train_unlabeled.text``. Does nothing when
    ``data_dir/.synth_done`` records the same config. ``num_workers`` processes render
    the audio (default: one per CPU up to 4, or none for a small corpus); the result
    does not depend on it. A script that uses workers needs the ``if __name__ == "__main__"``
    guard (they are started with "spawn").
    """
    config = config or SynthConfig()
    audio_dir, data_dir = Path(audio_dir).resolve(), Path(data_dir)
    if _is_done(audio_dir, data_dir, config):
        print(f"make_corpus: {data_dir} already holds this corpus ({STAMP} matches); nothing to do",
              file=sys.stderr)
        return {s: _count_lines(data_dir / s / "utt2spk") for s in SPLITS}

    plan = plan_corpus(config)
    (data_dir / STAMP).unlink(missing_ok=True)  # an interrupted run must not look finished
    jobs = [(u, str(audio_dir / split / f"{u.utt_id}.flac"), config.sample_rate)
            for split in SPLITS for u in plan[split]]
    for split in SPLITS:
        (audio_dir / split).mkdir(parents=True, exist_ok=True)

    if num_workers is None:  # starting a worker costs seconds (importing torch): not worth it for a few files
        num_workers = 1 if len(jobs) < _MIN_JOBS_FOR_WORKERS else min(4, _num_cpus())
    bar = tqdm(total=len(jobs), desc="synthesising", unit="utt", file=sys.stderr, disable=not progress or not sys.stderr.isatty(),
               mininterval=1)
    if num_workers <= 1:
        lengths = []
        with _one_torch_thread():
            for job in jobs:
                lengths.append(_render_to_file(job))
                bar.update()
    else:
        # spawn, not fork: a forked copy of a process that has used torch threads can hang.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(num_workers, initializer=_init_worker) as pool:
            lengths = []
            for n in pool.imap(_render_to_file, jobs, chunksize=8):
                lengths.append(n)
                bar.update()
    bar.close()
    num_samples = {job[0].utt_id: n for job, n in zip(jobs, lengths)}

    for split in SPLITS:
        utts = plan[split]
        wanted = {f"{u.utt_id}.flac" for u in utts}
        for old in (audio_dir / split).glob("*.flac"):  # left over from a larger earlier corpus
            if old.name not in wanted:
                old.unlink()
        text = {u.utt_id: u.text.upper() for u in utts}
        write_data_dir(data_dir / split,
                       wav_scp={u.utt_id: str(audio_dir / split / f"{u.utt_id}.flac") for u in utts},
                       utt2spk={u.utt_id: u.speaker for u in utts},
                       text=None if split == "train_unlabeled" else text,
                       utt2dur={u.utt_id: num_samples[u.utt_id] / config.sample_rate for u in utts})
        if split == "train_unlabeled":  # kept apart: these transcripts must never reach training
            write_table(data_dir / "local" / "train_unlabeled.text", text)
    atomic_write_text(data_dir / STAMP, json.dumps(_stamp(config, audio_dir), indent=2, sort_keys=True) + "\n")
    return {s: len(plan[s]) for s in SPLITS}


def corpus_summary(data_dir: str | os.PathLike) -> dict[str, tuple[int, float]]:
    """``{split: (utterances, hours)}`` from the utt2dur files of a generated corpus."""
    out = {}
    for split in SPLITS:
        durs = [float(line.split()[1]) for line in (Path(data_dir) / split / "utt2dur").read_text().splitlines()
                if line.strip()]
        out[split] = (len(durs), sum(durs) / 3600.0)
    return out
