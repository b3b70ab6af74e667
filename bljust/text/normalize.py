"""Transcript normalisation for scoring and token lists: one small function, language aware.

    normalize("Hij zei: „Zo’n dag!”", "nl")      -> "hij zei zo'n dag"
    normalize("مرحبًا، كيف حالك؟", "ar")          -> "مرحبا كيف حالك"

Steps: Unicode NFKC (full-width forms, ligatures, presentation forms become plain
letters); lower case (a no-op for scripts without case; Turkish and Azeri dotted and
dotless i kept apart); for Arabic-script languages the optional vowel marks (harakat)
and the elongation character (tatweel) are removed, since Common Voice writes them
inconsistently and they would otherwise count as errors; punctuation and symbols of
every script, Arabic ، ؛ ؟ included, become spaces; an apostrophe between two letters
(zo'n, l'homme) is kept as ', every other one is dropped; spaces are collapsed.
Digits are kept as they are: spelling numbers out needs per-language rules.
"""
from __future__ import annotations

import re
import unicodedata

# Languages written in Arabic script (Common Voice / CoVoST codes).
ARABIC_SCRIPT = frozenset({"ar", "fa", "ur", "ps", "ckb", "ug", "sd"})
# Fathatan .. sukun and the other Arabic combining marks, superscript alef; tatweel.
_ARABIC_MARKS = re.compile("[\u064b-\u065f\u0670\u0640]")
# Typographic apostrophes that stand for the ASCII one inside words.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'"})


def _base(lang: str) -> str:
    """``sv-SE`` -> ``sv``, ``zh-CN`` -> ``zh``."""
    return lang.replace("_", "-").split("-")[0].lower()


def normalize(text: str, lang: str) -> str:
    """Normalise one transcript of language ``lang`` (an ISO 639 code as Common Voice uses)."""
    lang = _base(lang)
    text = unicodedata.normalize("NFKC", text)
    if lang in ("tr", "az"):  # str.lower() would turn I into i and İ into i + combining dot
        text = text.replace("I", "ı").replace("İ", "i")
    text = text.lower()
    if lang in ARABIC_SCRIPT:
        text = _ARABIC_MARKS.sub("", text)
    text = text.translate(_APOSTROPHES)
    out = []
    for i, ch in enumerate(text):
        if ch == "'":
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            out.append(ch if inside_word else "")
            continue
        category = unicodedata.category(ch)
        if category[0] in "PSZ" or category == "Cc":  # punctuation, symbols, spaces, controls
            out.append(" ")
        elif category[0] == "C":
            # Format characters (bidi marks, zero-width joiners) are invisible noise, except
            # the zero-width non-joiner, which is part of Persian spelling.
            out.append(ch if ch == "\u200c" and lang == "fa" else "")
        else:
            out.append(ch)
    return " ".join("".join(out).split())
