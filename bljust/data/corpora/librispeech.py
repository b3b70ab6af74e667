"""LibriSpeech (openslr SLR12) -> Kaldi data directories.

The layout the archives unpack to, under a corpus folder (``$LIBRISPEECH`` in db.sh):

    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    "<utt-id> TRANSCRIPT" per line

Data directories, as in Kaldi's LibriSpeech recipe: utterance ids as distributed, speaker
``<speaker>-<chapter>`` (a prefix of the utterance id, and per-chapter CMVN-style speaker
groups), transcripts upper case with apostrophes exactly as distributed, wav.scp holding
plain FLAC paths (soundfile reads them; no pipes), utt2dur from the FLAC headers.

    prepare_librispeech("downloads", "data", unlabeled_parts=("train-clean-360", "train-other-500"))

writes ``data/train_clean_100`` (labeled), ``data/dev_clean``, ``data/dev_other``,
``data/test_clean``, ``data/test_other`` and ``data/train_unlabeled`` (the unlabeled parts
combined, without text; skipped when ``unlabeled_parts`` is empty).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from bljust.data.corpora import CorpusError
from bljust.data.datadir import write_data_dir

PARTS = ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100", "train-clean-360", "train-other-500")
EVAL_PARTS = ("dev-clean", "dev-other", "test-clean", "test-other")
TRAIN_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")
LABELED_PART = "train-clean-100"
DEFAULT_UNLABELED_PARTS = ("train-clean-360", "train-other-500")
UNLABELED_SET = "train_unlabeled"


def set_name(part: str) -> str:
    """The data directory of a part: ``train-clean-100`` -> ``train_clean_100``."""
    return part.replace("-", "_")


@dataclass
class Utterance:
    utt_id: str
    speaker: str  # <speaker>-<chapter>
    path: Path
    text: str


def read_part(part_dir: str | os.PathLike) -> list[Utterance]:
    """Every utterance of one part folder (``.../LibriSpeech/dev-clean``), from its transcripts.

    Raises CorpusError naming ``file:line`` for a malformed transcript line, an utterance id
    that does not belong to its chapter file, or a listed utterance without its FLAC file.
    """
    part_dir = Path(part_dir)
    if not part_dir.is_dir():
        raise CorpusError(f"{part_dir}: no such folder")
    utts: list[Utterance] = []
    for trans in sorted(part_dir.glob("*/*/*.trans.txt")):
        chapter = trans.name[: -len(".trans.txt")]
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise CorpusError(f"{trans}:{n}: expected '<utterance-id> <transcript>', got {line!r}")
            utt, text = fields
            if not utt.startswith(chapter + "-"):
                raise CorpusError(f"{trans}:{n}: utterance '{utt}' does not belong to chapter '{chapter}'")
            flac = trans.parent / f"{utt}.flac"
            if not flac.is_file():
                raise CorpusError(f"{trans}:{n}: utterance '{utt}' has no audio file {flac}")
            utts.append(Utterance(utt, chapter, flac.resolve(), " ".join(text.split())))
    if not utts:
        raise CorpusError(f"{part_dir}: no <speaker>/<chapter>/*.trans.txt transcripts in it")
    return utts


def _duration(path: Path) -> float:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise CorpusError(f"{path}: cannot read the audio header: {e}") from None
    return round(info.frames / info.samplerate, 3)


def write_set(data_dir: str | os.PathLike, utts: list[Utterance], *, labeled: bool) -> float:
    """Write one data directory (no text when not ``labeled``); return its hours of audio."""
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise CorpusError(f"utterance '{dup}' occurs twice in the parts written to {data_dir}")
    durations = {u.utt_id: _duration(u.path) for u in utts}
    write_data_dir(data_dir, wav_scp={u.utt_id: str(u.path) for u in utts},
                   utt2spk={u.utt_id: u.speaker for u in utts},
                   text={u.utt_id: u.text for u in utts} if labeled else None, utt2dur=durations)
    return sum(durations.values()) / 3600


def prepare_librispeech(corpus_dir: str | os.PathLike, data_dir: str | os.PathLike,
                        unlabeled_parts: tuple[str, ...] | list[str] = DEFAULT_UNLABELED_PARTS) -> dict[str, tuple[int, float]]:
    """Write every data directory of the recipe; return ``{set: (utterances, hours)}``.

    ``corpus_dir`` holds ``LibriSpeech/<part>``. ``unlabeled_parts`` are training parts whose
    audio forms ``train_unlabeled`` (transcripts dropped); ``("train-clean-100",)`` gives the
    CNN-LSTM study's setting of the same 100 h at both levels.
    """
    root = Path(corpus_dir) / "LibriSpeech"
    data_dir = Path(data_dir)
    for part in unlabeled_parts:
        if part not in TRAIN_PARTS:
            raise CorpusError(f"unlabeled part '{part}' is not a training part of LibriSpeech "
                              f"(choose from {', '.join(TRAIN_PARTS)})")
    needed = [*EVAL_PARTS, LABELED_PART, *(p for p in unlabeled_parts if p != LABELED_PART)]
    missing = [p for p in needed if not (root / p).is_dir()]
    if missing:
        raise CorpusError(f"{root}: missing part(s) {', '.join(missing)}; download them (stage 0) "
                          f"or point LIBRISPEECH in db.sh at a folder holding LibriSpeech/<part>")
    utts = {part: read_part(root / part) for part in needed}
    summary = {}
    for part in (LABELED_PART, *EVAL_PARTS):
        hours = write_set(data_dir / set_name(part), utts[part], labeled=True)
        summary[set_name(part)] = (len(utts[part]), hours)
    if unlabeled_parts:
        unlabeled = [u for part in unlabeled_parts for u in utts[part]]
        summary[UNLABELED_SET] = (len(unlabeled), write_set(data_dir / UNLABELED_SET, unlabeled, labeled=False))
    return summary
