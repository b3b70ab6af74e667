"""Speech to text with a model package alone: waveforms in, transcripts out.

    from bljust.decode.speech2text import Speech2Text

    s2t = Speech2Text.from_package("exp/asr_train_bljust_train_labeled_fbank_char")     # its model_best.pt, or any package file
    text = s2t(waveform, rate)                                  # numpy [samples] or [samples, channels]
    hyps = Speech2Text.from_package(path, nbest=5)(waveform, rate)   # [(text, score), ...], best first

The package (``bljust.train.package.model_package``) carries the token list, the CMVN statistics
and the front-end settings the model was trained with, so a waveform goes through what training's
audio went through: downmixed to mono, resampled to the package's rate, turned into the same
features (Kaldi fbank with the recorded settings, or 16-bit raw samples for an encoder that reads
audio) and normalised with the same CMVN. Decoding is the package's own unless options say
otherwise: greedy for ``model_best.pt``; for a packed model (``exp/<tag>/packed/<decode>.pt``,
``bljust.bin.pack``) the beam search, lexicon and LM it was scored with. A beam is CTC beam search
(``bljust.decode.beam``; optionally with a lexicon and an n-gram LM) or, for an RNN-T head, its own
search. ``python -m bljust.bin.transcribe`` is the command line.

A package written before packages carried these (format 1) needs ``token_dir`` and, if the model
was trained with CMVN, ``cmvn``; its front end is assumed to be compute_fbank's default.
"""
from __future__ import annotations

import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bljust.config import from_dict
from bljust.data.audio import resample
from bljust.data.dataset import FBANK_FRAME_SHIFT, BucketBatchSampler
from bljust.decode.beam import CtcBeamSearch
from bljust.decode.config import DecodeConfig
from bljust.decode.model_io import Cmvn, model_from_package, resolve_cmvn, resolve_tokenizer
from bljust.decode.packing import LANG_FILES, decode_settings, unpacked
from bljust.errors import reason
from bljust.features.fbank import FbankConfig, compute_fbank
from bljust.models.asr_model import AsrModel
from bljust.text.tokenizer import Tokenizer
from bljust.train import checkpoint

Hypotheses = list[tuple[str, float]]  # (text, score), best first


class AudioInputError(ValueError):
    """Audio that cannot be transcribed; the message names the file or input."""


def package_path(path: str | os.PathLike) -> Path:
    """A package file, or an experiment folder -> its model_best.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / "model_best.pt"
        if not path.is_file():
            raise checkpoint.CheckpointError(f"{path.parent}: no model_best.pt (not an experiment folder of a "
                                             "finished training?)")
    return path


def read_audio_file(entry: str) -> tuple[np.ndarray, int]:
    """A file path, or a shell command ending in ``|`` (a Kaldi pipe) -> (float32 [samples, channels], rate);
    anything soundfile reads (wav, flac, sph, mp3, ...). AudioInputError naming it when it cannot be read."""
    entry = entry.strip()
    if entry.endswith("|"):
        cmd = entry[:-1].strip()
        proc = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise AudioInputError(f"command '{cmd}' exited with status {proc.returncode}"
                                  f" ({tail[-1] if tail else 'no stderr output'})")
        source = io.BytesIO(proc.stdout)
    else:
        if not Path(entry).is_file():
            raise AudioInputError(f"{entry}: no such file")
        source = entry
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioInputError(f"{entry}: cannot be decoded as audio ({reason(e)})") from None
    return data, int(rate)


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """[samples] or [samples, channels] (soundfile's layout; [channels, samples], torchaudio's, is
    taken when its first axis is the shorter) -> float32 [samples], the mean of the channels.
    Signed integer samples (16-bit PCM, ...) are scaled to [-1, 1) by their type's range."""
    wave = np.asarray(waveform)
    if wave.dtype.kind == "i":
        wave = wave.astype(np.float64) / -float(np.iinfo(wave.dtype).min)
    elif wave.dtype.kind not in "f":
        raise AudioInputError(f"a waveform must hold floating-point or signed integer samples, got {wave.dtype}")
    if wave.ndim == 2:
        channel_axis = 0 if wave.shape[0] < wave.shape[1] else 1
        wave = wave.mean(axis=channel_axis) if wave.shape[channel_axis] > 1 else wave.reshape(-1)
    if wave.ndim != 1:
        raise AudioInputError(f"a waveform must be [samples] or [samples, channels], got shape {list(wave.shape)}")
    return np.ascontiguousarray(wave, dtype=np.float32)


@dataclass(frozen=True)
class Frontend:
    """How audio becomes the model's input, as recorded in the package."""

    feats_type: str  # fbank | raw
    fbank: FbankConfig  # for raw, only sample_rate counts
    source: str

    @classmethod
    def of(cls, pkg: dict) -> "Frontend":
        settings = dict(pkg.get("frontend") or {})
        if not settings:  # a format-1 package: compute_fbank's defaults
            raw = pkg["input_dim"] == 1
            return cls("raw" if raw else "fbank", FbankConfig(num_mel_bins=80 if raw else pkg["input_dim"]),
                       "defaults (the package records no front end)")
        try:
            feats_type, source = settings.pop("feats_type"), settings.pop("source", "?")
            if feats_type not in ("fbank", "raw"):
                raise ValueError(f"feats_type {feats_type!r}")
            return cls(feats_type, FbankConfig(**settings), source)
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint.CheckpointError(f"its front-end settings are damaged ({reason(e)})") from None

    @property
    def frame_shift(self) -> float:
        """Seconds per row of the features."""
        return 1 / self.fbank.sample_rate if self.feats_type == "raw" else self.fbank.frame_shift_ms / 1000

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """float32 [samples] at sample_rate -> float32 [rows, dim], as the training dump holds them."""
        if self.feats_type == "raw":  # a raw dump stores 16-bit samples (compute_fbank)
            pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)
            return (pcm.astype(np.float32) / 32768.0).reshape(-1, 1)
        if self.fbank.num_frames(len(samples)) == 0:
            return np.zeros((0, self.fbank.num_mel_bins), np.float32)
        return compute_fbank(samples, self.fbank)


class Speech2Text:
    """A model package ready to transcribe: ``s2t(waveform, rate) -> text`` (with ``nbest``, a list
    of at most ``nbest`` (text, score), best first), or ``s2t.transcribe([(waveform, rate), ...])``
    for many at once, batched by length."""

    def __init__(self, model: AsrModel, tokenizer: Tokenizer, frontend: Frontend, cmvn: Cmvn | None,
                 config: DecodeConfig | None = None, nbest: int | None = None, name: str = "model"):
        """``config``: the search (its lexicon and LM files are read here) and ``max_frames``; default greedy.
        ``nbest``: return up to this many (text, score) per input, from a beam search."""
        config = config or DecodeConfig()
        self.model, self.tokenizer, self.frontend, self.cmvn, self.nbest = model, tokenizer, frontend, cmvn, nbest
        self.config, self.name = config, name
        self.device = next(model.parameters()).device
        if nbest is not None and nbest < 1:
            raise ValueError(f"nbest must be >= 1, got {nbest}")
        if nbest is not None and config.method != "beam":
            raise ValueError("nbest needs beam search")
        self.max_rows = max(1, round(config.max_frames * FBANK_FRAME_SHIFT / frontend.frame_shift))
        self._ctc: _CtcNBest | None = None
        self._own = None
        if config.method == "beam":
            head = model.sup
            if head.own_beam_search(config.beam_size) is not None:
                if config.lm is not None or config.lexicon is not None:
                    raise ValueError("lm / lexicon: supported by CTC beam search only, not by this model's "
                                     f"{type(head).__name__} beam search")
                self._own = head
            else:
                self._ctc = _CtcNBest(tokenizer, config.beam_size, config.beam_size_token, config.beam_threshold,
                                      config.lm, config.lm_weight, config.word_score, config.lexicon, config.log_add)
                self._ctc.n = nbest or 1

    @classmethod
    def from_package(cls, path: str | os.PathLike, device: str = "cpu", token_dir: str | None = None,
                     cmvn: str | None = None, nbest: int | None = None, **options) -> "Speech2Text":
        """``path``: a package file or an experiment folder (its model_best.pt). ``options``: DecodeConfig's
        search keys and max_frames (method, beam_size, lexicon, lm, lm_weight, word_score, ...); those not
        given are the package's own decoding (greedy for a package as training writes it; a packed one,
        ``bljust.bin.pack``, has the beam search, lexicon and LM it was scored with). A beam_size or nbest
        alone asks for beam search; lexicon or lm "none" leaves the package's out. ``token_dir`` and
        ``cmvn`` are for a package that does not carry its own; given, they must equal the package's."""
        path = package_path(path)
        return cls.from_loaded(checkpoint.load(path), path, device, token_dir, cmvn, nbest, **options)

    @classmethod
    def from_loaded(cls, pkg: dict, path: str | os.PathLike, device: str = "cpu", token_dir: str | None = None,
                    cmvn: str | None = None, nbest: int | None = None, **options) -> "Speech2Text":
        """``from_package`` of a package already in memory; ``path`` names it in errors."""
        tokenizer = resolve_tokenizer(pkg, path, token_dir)
        stats = resolve_cmvn(pkg, path, cmvn)
        try:
            frontend = Frontend.of(pkg)
        except checkpoint.CheckpointError as e:
            raise checkpoint.CheckpointError(f"{path}: {e}") from None
        model = model_from_package(pkg, path, device)
        given = {key: value for key, value in options.items() if value is not None}
        if "method" not in given and ("beam_size" in given or nbest is not None):
            given["method"] = "beam"
        settings = {**decode_settings(pkg, path), **given}
        if nbest is not None and "beam_size" not in given:
            settings["beam_size"] = max(nbest, settings.get("beam_size", 10))
        with unpacked(pkg, path) as lang:
            for key in LANG_FILES:
                if given.get(key) in ("none", ""):
                    settings[key] = None
                elif key not in given and settings["method"] == "beam":
                    settings[key] = lang[key]
            if settings["method"] != "beam" and (settings.get("lexicon") or settings.get("lm")):
                raise ValueError("a lexicon or an LM needs beam search: give a beam size")
            config = from_dict(DecodeConfig, settings, where=f"{path}'s decoding with the options given")
            return cls(model, tokenizer, frontend, stats, config, nbest, name=str(path))

    @property
    def sample_rate(self) -> int:
        return self.frontend.fbank.sample_rate

    def features(self, waveform: np.ndarray, rate: int, name: str = "waveform") -> np.ndarray | None:
        """A waveform at ``rate`` -> the model's input [rows, dim] (CMVN applied), or None when it is too
        short for the encoder. AudioInputError naming ``name`` for audio that cannot be used."""
        samples = to_mono(waveform)
        if len(samples) and not np.isfinite(samples).all():
            raise AudioInputError(f"{name}: {int((~np.isfinite(samples)).sum())} of its {len(samples)} samples are "
                                  "NaN or infinite")
        if rate <= 0:
            raise AudioInputError(f"{name}: sample rate {rate} Hz")
        if len(samples) and rate < self.sample_rate:
            raise AudioInputError(f"{name}: sample rate {rate} Hz, below the model's {self.sample_rate} Hz; upsampling "
                                  "cannot restore the missing band")
        samples = resample(samples, int(rate), self.sample_rate)
        feats = self.frontend(samples)
        if not np.isfinite(feats).all():
            raise AudioInputError(f"{name}: its features have NaN or infinite values; are its samples far outside [-1, 1]?")
        if len(feats) < max(1, self.model.encoder.min_input_frames):
            return None
        if self.cmvn is not None:
            feats = (feats - self.cmvn[0]) * self.cmvn[1]
        return feats

    def __call__(self, waveform: np.ndarray, rate: int) -> str | Hypotheses:
        return self.transcribe([(waveform, rate)])[0]

    def transcribe(self, inputs: list[tuple[np.ndarray, int]]) -> list[str | Hypotheses]:
        """[(waveform, rate), ...] -> their transcripts (or n-best lists), in order."""
        return self.decode([self.features(w, r, f"waveform {i}") for i, (w, r) in enumerate(inputs)])

    @torch.no_grad()
    def decode(self, feats: list[np.ndarray | None]) -> list[str | Hypotheses]:
        """Features (``features``; None: too short, transcribed as nothing) -> transcripts, batched by length."""
        empty: str | Hypotheses = "" if self.nbest is None else []
        results: list[str | Hypotheses] = [empty] * len(feats)
        lengths = {f"{i:012d}": len(f) for i, f in enumerate(feats) if f is not None}
        if not lengths:
            return results
        for keys in BucketBatchSampler(lengths, self.max_rows, shuffle=False).batches:
            items = [feats[int(k)] for k in keys]
            lens = torch.tensor([len(m) for m in items])
            batch = torch.zeros(len(items), int(lens.max()), items[0].shape[1])
            for b, m in enumerate(items):
                batch[b, : len(m)] = torch.from_numpy(m)
            enc, out = self.model(batch.to(self.device), lens.to(self.device))
            for k, hyps in zip(keys, self._search(out, enc.lengths)):
                results[int(k)] = hyps[0][0] if self.nbest is None else hyps
        return results

    def _search(self, out: torch.Tensor, lengths: torch.Tensor) -> list[Hypotheses]:
        """Per utterance, (text, score) best first: one for greedy search, up to nbest for a beam."""
        text = self.tokenizer.decode
        if self._ctc is not None:
            self._ctc.decode(out, lengths)
            return [[(text(ids), score) for ids, score in found] or [("", 0.0)] for found in self._ctc.found]
        if self._own is not None:
            head, n = self._own, self.nbest or 1
            if not hasattr(head, "nbest"):
                return [[(text(ids), 0.0)] for ids in head.own_beam_search(self.config.beam_size)(out, lengths)]
            # ranked as the head's beam_search picks its best: log-probability per label (+ 1 for the final blank)
            ranked = [sorted(h, key=lambda h: -h[1] / (len(h[0]) + 1)) for h in head.nbest(out, lengths, self.config.beam_size)]
            return [[(text(ids), score) for ids, score in h[:n]] or [("", 0.0)] for h in ranked]
        return [[(text(ids), 0.0)] for ids in self.model.sup.greedy(out, lengths)]


class _CtcNBest(CtcBeamSearch):
    """CTC beam search that also keeps, per utterance of the last ``decode``, its ``n`` best distinct
    label sequences with flashlight's scores (``found``)."""

    n = 1

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        self.found: list[list[tuple[list[int], float]]] = []
        return super().decode(log_probs, lengths)

    def _best(self, results) -> list[int]:
        hyps, seen = [], set()
        for result in results:
            ids = super()._best([result])
            if tuple(ids) not in seen:
                seen.add(tuple(ids))
                hyps.append((ids, float(result.score)))
            if len(hyps) == self.n:
                break
        self.found.append(hyps)
        return hyps[0][0] if hyps else []
