"""CoVoST 2 (X -> En) over Common Voice 4 audio -> Kaldi data directories, one source language at a time.

Inputs (``lang`` is a Common Voice code: nl, mn, ar, sv-SE, ...):

    <commonvoice>/<lang>/validated.tsv    Common Voice Corpus 4: client_id, path, sentence, ...
    <commonvoice>/<lang>/clips/<path>     its mp3 clips (48 kHz; resampled to 16 kHz when read)
    <tsv_dir>/covost_v2.<lang>_en.tsv     CoVoST 2: path, sentence, translation, client_id, split

As CoVoST's own loader does, the CoVoST rows are joined with validated.tsv on ``path``
(transcript and speaker come from Common Voice), and ``split`` values ``train`` and
``train_covost`` make the training set, ``dev`` and ``test`` the other two. Both tsv
files are read without quote processing (``csv.QUOTE_NONE``, backslash escapes):
transcripts contain unbalanced quotes that a quoting reader would swallow.

Outputs in ``data_dir``: ``train_<lang>``, ``dev_<lang>``, ``test_<lang>`` (labeled;
text normalised by ``bljust.text.normalize``) and ``train_unlabeled_<lang>`` (no text):
every validated clip with audio on disk that is in no CoVoST dev or test split, so no
evaluation audio is ever trained on. Utterance ids are ``<speaker>-<clip>`` with the
speaker the first 12 hex digits of Common Voice's client_id (a SHA-512 hex digest), so
the speaker prefixes its utterances as Kaldi requires.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import Counter
from pathlib import Path

from bljust.data.corpora import CorpusError
from bljust.data.datadir import write_data_dir
from bljust.data.datadir_tools import combine_data_dirs
from bljust.text.normalize import normalize

log = logging.getLogger(__name__)

LABELED_SPLITS = {"train": "train", "train_covost": "train", "dev": "dev", "test": "test"}
HELD_OUT = ("dev", "test")  # clips of these splits (and their *_covost variants) never go into unlabeled data
SPEAKER_CHARS = 12
COMMONVOICE_URL = "https://commonvoice.mozilla.org/datasets"
_HEX = re.compile(r"[0-9a-f]+")


def tsv_name(lang: str) -> str:
    """The CoVoST 2 X -> En file of ``lang``, as in its archive ``<name>.tar.gz``."""
    return f"covost_v2.{lang}_en.tsv"


def read_tsv(path: str | os.PathLike, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header line, as dicts; quotes are plain characters."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    rows = []
    with f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        try:
            header = next(reader, None)
            if header is None:
                raise CorpusError(f"{path}: empty file, expected a header line")
            missing = [c for c in required if c not in header]
            if missing:
                raise CorpusError(f"{path}:1: no column {', '.join(missing)} in the header {header}")
            for row in reader:
                if not row:
                    continue  # a blank line
                if len(row) != len(header):
                    raise CorpusError(f"{path}:{reader.line_num}: {len(row)} tab-separated fields, "
                                      f"the header has {len(header)}")
                rows.append(dict(zip(header, row)))
        except (UnicodeDecodeError, csv.Error) as e:
            raise CorpusError(f"{path}:{reader.line_num}: {e}") from None
    return rows


def speaker_id(client_id: str) -> str:
    """A short speaker id: the client_id's first hex digits (a hash of it if it is not hex)."""
    if not _HEX.fullmatch(client_id) or len(client_id) < SPEAKER_CHARS:
        client_id = hashlib.sha1(client_id.encode()).hexdigest()
    return client_id[:SPEAKER_CHARS]


def utterance_id(client_id: str, clip: str) -> str:
    """``<speaker>-<clip name without extension>``, e.g. ``1a2b3c4d5e6f-common_voice_nl_17691386``."""
    return f"{speaker_id(client_id)}-{Path(clip).stem}"


def check_commonvoice(commonvoice: str | os.PathLike | None, langs: list[str]) -> Path:
    """The Common Voice folder, or a CorpusError that says what to download, from where, and what to set."""
    where = Path(commonvoice) if commonvoice else None
    missing = [lang for lang in langs if where is None
               or not (where / lang / "validated.tsv").is_file() or not (where / lang / "clips").is_dir()]
    if not missing:
        return where
    if where is None:
        problem = "COMMONVOICE is not set in db.sh"
    else:
        problem = "COMMONVOICE=" + str(where) + " has no " + ", ".join(
            f"{where / lang}/validated.tsv with {where / lang}/clips/" for lang in missing)
    raise CorpusError(
        f"{problem}. CoVoST 2 takes its audio and transcripts from Common Voice Corpus 4 "
        f"(cv-corpus-4-2019-12-10), whose licence needs a manual download: on {COMMONVOICE_URL} pick "
        f"'Common Voice Corpus 4' and download the archive of each language ({', '.join(missing)}), "
        f"unpack each into <folder>/<lang>/ so that <folder>/<lang>/validated.tsv and "
        f"<folder>/<lang>/clips/*.mp3 exist, then set COMMONVOICE=<folder> in db.sh.")


def prepare_covost2(lang: str, commonvoice: str | os.PathLike, tsv_dir: str | os.PathLike,
                    data_dir: str | os.PathLike) -> dict[str, int]:
    """Write the four data directories of ``lang``; returns utterances per directory."""
    cv_dir = check_commonvoice(commonvoice, [lang]) / lang
    clips = cv_dir / "clips"
    covost_tsv = Path(tsv_dir) / tsv_name(lang)
    if not covost_tsv.is_file():
        raise CorpusError(f"{covost_tsv}: no such file; download it first (./run.sh --stage 0 --stop_stage 0 "
                          f"runs local/download.sh)")
    validated = {row["path"]: row for row in read_tsv(cv_dir / "validated.tsv", ("client_id", "path", "sentence"))}
    covost = read_tsv(covost_tsv, ("path", "split"))
    dropped: Counter[str] = Counter()
    has_audio: dict[str, bool] = {}

    def audio(clip: str) -> str | None:
        """The clip's absolute path, or None when it is not on disk."""
        if clip not in has_audio:
            has_audio[clip] = (clips / clip).is_file()
        return os.path.abspath(clips / clip) if has_audio[clip] else None

    # set -> utterance -> (wav.scp entry, speaker, text)
    sets: dict[str, dict[str, tuple[str, str, str]]] = {"train": {}, "dev": {}, "test": {}}
    held_out = set()
    for row in covost:
        clip, split = row["path"], row["split"]
        if split.split("_")[0] in HELD_OUT:
            held_out.add(clip)
        if split not in LABELED_SPLITS:
            continue
        cv = validated.get(clip)
        if cv is None:
            dropped["not in validated.tsv"] += 1
            continue
        wav = audio(clip)
        if wav is None:
            dropped["audio missing"] += 1
            continue
        text = normalize(cv["sentence"], lang)
        if not text:
            dropped["empty transcript after normalisation"] += 1
            continue
        utt = utterance_id(cv["client_id"], clip)
        sets[LABELED_SPLITS[split]][utt] = (wav, speaker_id(cv["client_id"]), text)

    unlabeled = {}
    for clip, cv in validated.items():
        if clip in held_out:
            continue
        wav = audio(clip)
        if wav is None:
            dropped["unlabeled: audio missing"] += 1
            continue
        unlabeled[utterance_id(cv["client_id"], clip)] = (wav, speaker_id(cv["client_id"]), "")
    sets["train_unlabeled"] = unlabeled

    counts = {}
    for name, utts in sets.items():
        if not utts:
            raise CorpusError(f"{covost_tsv}: no usable utterance for {name}_{lang} "
                              f"(dropped: {dict(dropped) or 'none'}); is {cv_dir} Common Voice 4 of '{lang}'?")
        write_data_dir(Path(data_dir) / f"{name}_{lang}",
                       wav_scp={u: w for u, (w, _, _) in utts.items()},
                       utt2spk={u: s for u, (_, s, _) in utts.items()},
                       text=None if name == "train_unlabeled" else {u: t for u, (_, _, t) in utts.items()})
        counts[f"{name}_{lang}"] = len(utts)
    log.info("covost2 %s: %s", lang, ", ".join(f"{k} {v} utterances" for k, v in counts.items()))
    for why, n in sorted(dropped.items()):
        log.warning("covost2 %s: dropped %d clip(s): %s", lang, n, why)
    if dropped["not in validated.tsv"]:
        log.warning("covost2 %s: CoVoST rows missing from %s usually mean COMMONVOICE is not the version 4 "
                    "release that CoVoST 2 was built from", lang, cv_dir / "validated.tsv")
    return counts


def combine_languages(langs: list[str], data_dir: str | os.PathLike) -> str:
    """Multilingual training sets ``train_<l1>_<l2>...`` (and dev, train_unlabeled) from per-language ones.

    Utterance ids stay unique across languages: clip names carry the language. Test sets
    stay per language so each language is scored on its own. Returns the combined name.
    """
    name = "_".join(langs)
    data_dir = Path(data_dir)
    for prefix in ("train", "dev", "train_unlabeled"):
        combine_data_dirs(data_dir / f"{prefix}_{name}", [data_dir / f"{prefix}_{lang}" for lang in langs])
    return name
