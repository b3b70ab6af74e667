"""TED-LIUM release 2 (openslr SLR19) -> Kaldi data directories.

The layout the archive unpacks to, under a corpus folder (``$TEDLIUM2`` in db.sh):

    TEDLIUM_release2/{train,dev,test}/sph/<talk>.sph    one NIST SPHERE recording per talk
    TEDLIUM_release2/{train,dev,test}/stm/<talk>.stm    "<talk> <channel> <speaker> <start> <end> <label> words..."

Data directories: wav.scp keyed by recording (the talk id) with the plain .sph path
(soundfile reads SPHERE), ``segments`` cutting the talk into the stm's segments, speaker =
talk, utterance id ``<talk>-<start cs:07d>-<end cs:07d>`` (centiseconds, so the speaker
prefixes the id and ids sort by time), utt2dur from the segment times.

Transcripts are mapped as TED-LIUM's Kaldi recipe does (see ``normalize_words``);
segments whose transcript is ``ignore_time_segment_in_scoring`` are dropped, and ``<unk>``
(the corpus's own out-of-vocabulary marker) stays in ``text`` as a word.
"""
from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bljust.data.corpora import CorpusError
from bljust.data.datadir import write_data_dir

log = logging.getLogger(__name__)

SETS = ("train", "dev", "test")
UNLABELED_SET = "train_unlabeled"
IGNORE = "ignore_time_segment_in_scoring"
UNK = "<unk>"
SILENCE = "<sil>"
_VARIANT = re.compile(r"\(\d+\)")  # the(2): a pronunciation variant of "the" in the corpus dictionary
_UTT_NAME = re.compile(r"\(\S*\)")  # some stm lines end with the utterance's name in parentheses


@dataclass(frozen=True)
class Segment:
    talk: str
    start_cs: int  # centiseconds, as in the utterance id
    end_cs: int
    text: str

    @property
    def utt_id(self) -> str:
        return f"{self.talk}-{self.start_cs:07d}-{self.end_cs:07d}"

    @property
    def duration(self) -> float:
        return (self.end_cs - self.start_cs) / 100


def normalize_words(words: list[str]) -> list[str]:
    """Map stm words the way TED-LIUM's Kaldi recipe (s5_r2 prepare_data.sh) does.

    - ``the(2)`` -> ``the``: the stm marks pronunciation variants; they are one word.
    - ``<sil>`` is dropped: silence is not a word to recognise.
    - a trailing ``(<utterance name>)`` is dropped.
    - ``{NOISE}`` -> ``[NOISE]`` (any ``{...}`` tag): Kaldi's lexicon spells noise words so.
    - ``it 's`` -> ``it's``: the stm splits clitics off; Kaldi joins them when the joined
      word is in the corpus dictionary, ESPnet always does. We always do, so no dictionary is needed.
    - ``<unk>`` is kept as it is.
    """
    if words and _UTT_NAME.fullmatch(words[-1]):
        words = words[:-1]
    out: list[str] = []
    for w in words:
        w = _VARIANT.sub("", w)
        if not w or w == SILENCE:
            continue
        w = w.replace("{", "[").replace("}", "]")
        if w.startswith("'") and out and not out[-1].startswith(("[", "<")):
            out[-1] += w
            continue
        out.append(w)
    return out


def _is_label(field: str) -> bool:
    """The optional stm label (``<o,f0,male>``, dev's ``<F0_M>``), not the words ``<unk>``/``<sil>``."""
    return field.startswith("<") and field.endswith(">") and field not in (UNK, SILENCE)


def read_set(set_dir: str | os.PathLike) -> tuple[dict[str, Path], list[Segment]]:
    """Recordings ``{talk: sph path}`` and kept segments of one set folder (``.../train``).

    Raises CorpusError naming ``file:line`` for a line that is not an stm line, or a talk
    without its .sph file.
    """
    set_dir = Path(set_dir)
    stms = sorted((set_dir / "stm").glob("*.stm"))
    if not stms:
        raise CorpusError(f"{set_dir / 'stm'}: no .stm files")
    recordings: dict[str, Path] = {}
    segments: dict[str, Segment] = {}
    ignored = empty = 0
    for stm in stms:
        for n, line in enumerate(stm.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith(";;"):  # ";;" starts an stm comment
                continue
            fields = line.split()
            if len(fields) < 5:
                raise CorpusError(f"{stm}:{n}: expected '<talk> <channel> <speaker> <start> <end> [<label>] words'")
            talk, words = fields[0], fields[5:]
            try:
                start, end = float(fields[3]), float(fields[4])
            except ValueError:
                raise CorpusError(f"{stm}:{n}: start/end times '{fields[3]}' '{fields[4]}' are not numbers") from None
            if words and _is_label(words[0]):
                words = words[1:]
            if IGNORE in words:
                ignored += 1
                continue
            words = normalize_words(words)
            if not words:
                empty += 1
                continue
            seg = Segment(talk, round(start * 100), round(end * 100), " ".join(words))
            if seg.end_cs <= seg.start_cs:
                log.warning("%s:%d: segment ends (%s) before it starts (%s); skipped", stm, n, fields[4], fields[3])
                continue
            if seg.utt_id in segments:
                log.warning("%s:%d: a second segment with id %s; skipped", stm, n, seg.utt_id)
                continue
            if talk not in recordings:
                sph = set_dir / "sph" / f"{talk}.sph"
                if not sph.is_file():
                    raise CorpusError(f"{stm}:{n}: talk '{talk}' has no audio file {sph}")
                recordings[talk] = sph.resolve()
            segments[seg.utt_id] = seg
    log.info("%s: %d segments kept, %d ignore_time_segment_in_scoring and %d empty ones dropped",
             set_dir, len(segments), ignored, empty)
    return recordings, list(segments.values())


def write_set(data_dir: str | os.PathLike, recordings: dict[str, Path], segments: list[Segment], *,
              labeled: bool) -> float:
    """Write one data directory (no text when not ``labeled``); return its hours of speech."""
    used = {s.talk for s in segments}
    write_data_dir(data_dir, wav_scp={t: str(p) for t, p in recordings.items() if t in used},
                   utt2spk={s.utt_id: s.talk for s in segments},
                   text={s.utt_id: s.text for s in segments} if labeled else None,
                   segments={s.utt_id: (s.talk, s.start_cs / 100, s.end_cs / 100) for s in segments},
                   utt2dur={s.utt_id: s.duration for s in segments})
    return sum(s.duration for s in segments) / 3600


def split_by_talks(segments: list[Segment], labeled_hours: float, seed: int = 0) -> tuple[list[Segment], list[Segment]]:
    """(labeled, unlabeled): whole talks, in a seeded random order, until ``labeled_hours`` of speech.

    Whole talks, so no speaker is on both sides; a random order, so the subset is not
    biased towards speakers whose names sort first.
    """
    by_talk: dict[str, list[Segment]] = {}
    for s in segments:
        by_talk.setdefault(s.talk, []).append(s)
    talks = sorted(by_talk)
    random.Random(seed).shuffle(talks)
    labeled: list[Segment] = []
    chosen: set[str] = set()
    for talk in talks:
        if sum(s.duration for s in labeled) >= labeled_hours * 3600:
            break
        labeled += by_talk[talk]
        chosen.add(talk)
    unlabeled = [s for s in segments if s.talk not in chosen]
    return labeled, unlabeled


def prepare_tedlium2(corpus_dir: str | os.PathLike, data_dir: str | os.PathLike, labeled_hours: float | None = None,
                     seed: int = 0) -> dict[str, tuple[int, float]]:
    """Write ``train``, ``train_unlabeled``, ``dev`` and ``test``; return ``{set: (utterances, hours)}``.

    ``labeled_hours`` None: all of train is labeled and ``train_unlabeled`` is all train audio
    (the same segments, without text). Otherwise ``train`` is a subset of whole talks with
    about that many hours of speech and ``train_unlabeled`` is the rest.
    """
    root = Path(corpus_dir) / "TEDLIUM_release2"
    data_dir = Path(data_dir)
    missing = [s for s in SETS if not (root / s).is_dir()]
    if missing:
        raise CorpusError(f"{root}: missing set folder(s) {', '.join(missing)}; download the corpus (stage 0) "
                          f"or point TEDLIUM2 in db.sh at a folder holding TEDLIUM_release2/")
    summary = {}
    for name in ("dev", "test"):
        recordings, segments = read_set(root / name)
        summary[name] = (len(segments), write_set(data_dir / name, recordings, segments, labeled=True))
    recordings, segments = read_set(root / "train")
    if labeled_hours is None:
        labeled, unlabeled = segments, segments
    else:
        if labeled_hours <= 0:
            raise CorpusError(f"--labeled_hours must be > 0, got {labeled_hours}")
        labeled, unlabeled = split_by_talks(segments, labeled_hours, seed)
        if not unlabeled:
            total = sum(s.duration for s in segments) / 3600
            raise CorpusError(f"--labeled_hours {labeled_hours} takes every talk of train ({total:.2f} h), "
                              f"leaving no unlabeled audio; ask for fewer hours or leave the option out")
    summary["train"] = (len(labeled), write_set(data_dir / "train", recordings, labeled, labeled=True))
    summary[UNLABELED_SET] = (len(unlabeled), write_set(data_dir / UNLABELED_SET, recordings, unlabeled, labeled=False))
    return summary
