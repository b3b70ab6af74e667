"""A tiny Common Voice 4 + CoVoST 2 corpus in the real layouts (a helper for test_recipe_covost2.py).

    <cv_root>/<lang>/validated.tsv                Common Voice 4 columns
    <cv_root>/<lang>/clips/common_voice_<lang>_<n>.mp3   espeak-ng speech, 48 kHz mono mp3
    <www>/covost_v2.<lang>_en.tsv.tar.gz          holding covost_v2.<lang>_en.tsv

Transcripts carry what real ones do: quotes that open a field and never close, typographic
quotes and apostrophes, accents, Arabic punctuation and vowel marks. Per language every
split has its clips, one train transcript is punctuation only (dropped by normalisation),
one clip is in Common Voice but not in CoVoST (unlabeled only), and one train clip's
split is ``train_covost``.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bljust.data.audio import resample
from bljust.data.espeak import EspeakSynthesizer

CV_COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent")
COVOST_COLUMNS = ("path", "sentence", "translation", "client_id", "split")
RATE = 48000
VARIANTS = ("m3", "f1", "m1", "f4")  # one espeak variant per speaker (none with random breath noise)
# (split, speaker, transcript); split None: a validated clip that CoVoST does not use.
SENTENCES = {
    "nl": [
        ("train", "anna", '"Kom maar binnen," zei hij.'),
        ("train", "anna", "Zo’n mooie dag, vind je niet?"),
        ("train", "bert", "Één café en twee cafés."),
        ("train", "bert", "..."),
        ("train_covost", "bert", "De kinderen spelen buiten."),
        ("dev", "carla", "Waar staat de fiets?"),
        ("dev", "carla", "Het regent vandaag."),
        ("test", "dirk", "Hij zei: „Ga naar huis!”"),
        ("test", "dirk", "Het is ’s avonds koud."),
        (None, "anna", "Dit zinnetje staat niet in CoVoST."),
    ],
    "ar": [
        ("train", "amal", '"الكتاب على الطاولة'),
        ("train", "amal", "مرحبًا، كيف حالك؟"),
        ("train", "badr", "ذهب الولد إلى المدرسة."),
        ("train", "badr", "؟!"),
        ("train_covost", "badr", "هذا بيت كبير؛ وجميل"),
        ("dev", "dana", "أين القلم؟"),
        ("dev", "dana", "الجو جميل اليوم"),
        ("test", "fadi", "الشمس مشرقة"),
        ("test", "fadi", "أحب القراءة كثيرًا."),
        (None, "amal", "هذه الجملة ليست في المجموعة"),
    ],
}


def client_id(speaker: str) -> str:
    """A Common Voice style client_id: 128 hex digits."""
    return hashlib.sha512(speaker.encode()).hexdigest()


def clip_name(lang: str, i: int) -> str:
    return f"common_voice_{lang}_{19000000 + i}.mp3"


def _tsv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    # Written as Common Voice and CoVoST do: tab-separated, no quoting at all.
    return "".join("\t".join(r[c] for c in columns) + "\n" for r in [dict(zip(columns, columns)), *rows])


def build_commonvoice(cv_root: Path, synth: EspeakSynthesizer) -> None:
    """``cv_root/<lang>/`` for every language of SENTENCES."""
    for lang, sentences in SENTENCES.items():
        clips = cv_root / lang / "clips"
        clips.mkdir(parents=True)
        rows = []
        for i, (_, speaker, text) in enumerate(sentences):
            voice = f"{lang}+{VARIANTS[sorted({s for _, s, _ in sentences}).index(speaker)]}"
            samples = synth.synthesize(text if any(c.isalpha() for c in text) else "een", voice)
            samples = resample(samples, synth.sample_rate, RATE)
            sf.write(clips / clip_name(lang, i), 0.5 * samples / max(1e-3, float(np.abs(samples).max())),
                     RATE, format="MP3")
            rows.append({"client_id": client_id(speaker), "path": clip_name(lang, i), "sentence": text,
                         "up_votes": "2", "down_votes": "0", "age": "", "gender": "", "accent": ""})
        (cv_root / lang / "validated.tsv").write_text(_tsv(CV_COLUMNS, rows), encoding="utf-8")


def build_covost_archives(www: Path) -> None:
    """``www/covost_v2.<lang>_en.tsv.tar.gz`` for every language of SENTENCES."""
    www.mkdir(parents=True, exist_ok=True)
    for lang, sentences in SENTENCES.items():
        rows = [{"path": clip_name(lang, i), "sentence": text, "translation": f'"Translation" {i}',
                 "client_id": client_id(speaker), "split": split}
                for i, (split, speaker, text) in enumerate(sentences) if split is not None]
        name = f"covost_v2.{lang}_en.tsv"
        data = _tsv(COVOST_COLUMNS, rows).encode("utf-8")
        with tarfile.open(www / f"{name}.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def clips_of(lang: str, splits: tuple[str, ...]) -> set[str]:
    """Clip names (without .mp3) of ``lang`` in the given CoVoST splits."""
    return {clip_name(lang, i)[:-4] for i, (split, _, _) in enumerate(SENTENCES[lang]) if split in splits}
