"""Checking a data directory by the rules of Kaldi's ``utils/validate_data_dir.sh`` (validate_data_dir)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from bljust.data.datadir import (SPEAKER_EXTRA_FILES, UTT_EXTRA_FILES, DataDir, DataDirError, PathLike, Rows,
                                 _parse_durations, _parse_num_frames, _parse_segments, _parse_spk2utt, _read_rows,
                                 _sort_key)

log = logging.getLogger(__name__)


def _check_same_keys(ref_path: Path, ref: Rows, path: Path, rows: Rows, kind: str = "utterance") -> None:
    """Raise for the first key of ``rows`` not in ``ref`` and then the first key of ``ref`` not in ``rows``."""
    for key, (_, n) in rows.items():
        if key not in ref:
            raise DataDirError(f"{path}:{n}: {kind} '{key}' is not in {ref_path.name}")
    for key, (_, n) in ref.items():
        if key not in rows:
            raise DataDirError(f"{ref_path}:{n}: {kind} '{key}' has no entry in {path.name}")


# Words Kaldi reserves for its language models and graphs (sentence boundaries, the first
# disambiguation symbol); matched as grep -w does, between non-word characters.
_RESERVED_WORD = re.compile(r"(?<!\w)(?:</?s>|#0)(?!\w)")


def _gender_problem(value: str) -> str | None:
    return None if value in ("m", "f") else f"gender '{value}' is not m or f"


def _warp_problem(value: str) -> str | None:
    try:
        ok = 0.5 < float(value) < 1.5
    except ValueError:
        ok = False
    return None if ok else f"warp factor '{value}' is not a number between 0.5 and 1.5"


def _file_and_channel_problem(value: str) -> str | None:
    fields = value.split()
    if len(fields) == 2 and fields[1] in ("A", "B", "1"):  # Kaldi only warns about "1"
        return None
    return f"expected '<file> <channel>' with channel A or B, got '{value}'"


_VALUE_PROBLEM = {"spk2gender": _gender_problem, "spk2warp": _warp_problem, "utt2warp": _warp_problem,
                  "reco2file_and_channel": _file_and_channel_problem}


def validate_data_dir(path: PathLike, *, require_text: bool = True, require_wav: bool = True,
                      require_feats: bool = False) -> DataDir:
    """Check ``path`` by the rules of Kaldi's ``utils/validate_data_dir.sh``; return it loaded.

    Raises DataDirError for the first problem, naming ``file:line`` and the key where
    there is one. Checked, as Kaldi's validate_data_dir.sh and validate_text.pl do: every
    table sorted (C locale) with unique keys, its last line ending in a newline; utt2spk
    present, not empty, one speaker per line, and sorted by speaker too; spk2utt its exact
    inverse; text, wav.scp (segments when there is one), feats.scp, utt2dur,
    utt2num_frames, utt2warp, vad.scp, utt2lang, utt2uniq covering exactly the utterances
    of utt2spk; cmvn.scp, spk2gender (m/f), spk2warp covering exactly the speakers;
    reco2dur and reco2file_and_channel (channel A or B) keyed like wav.scp; segments with
    4 fields, end > start, and a recording in wav.scp (and a wav.scp at all); no wav.scp
    path starting with '~'; no <s>, </s> or #0 in a transcript; no carriage return,
    whitespace other than ASCII space/tab, or control character in any table.

    Stricter than Kaldi: every table must be UTF-8; an empty transcript is an error; a
    speaker id must be a prefix of its utterance ids; durations and times must be numbers
    (Kaldi's awk compares words as strings). More lenient: a wav.scp recording no segment
    uses, zero durations and zero frame counts are accepted (zero-length audio is skipped
    and listed by feature extraction), and text is checked whenever it exists.
    """
    d = Path(path)
    if not d.is_dir():
        raise DataDirError(f"{d}: no such data directory")

    def need(name: str, hint: str = "") -> Path:
        if not (d / name).is_file():
            raise DataDirError(f"{d / name}: no such file{hint}")
        return d / name

    def read(p: Path, **kw) -> Rows:
        return _read_rows(p, final_newline=True, **kw)

    # utt2spk: the reference utterance set, sorted by utterance and by speaker alike.
    p_u2s = need("utt2spk")
    u2s = read(p_u2s)
    if not u2s:
        raise DataDirError(f"{p_u2s}: no utterances (empty file)")
    prev = None
    for utt, (spk, n) in u2s.items():
        if len(spk.split()) != 1:
            raise DataDirError(f"{p_u2s}:{n}: utterance '{utt}': expected one speaker id, got '{spk}'")
        if not utt.startswith(spk):
            raise DataDirError(f"{p_u2s}:{n}: speaker id '{spk}' is not a prefix of utterance id '{utt}' "
                               f"(Kaldi requires this so that sorting by utterance and by speaker agree)")
        if prev is not None and _sort_key(spk) < _sort_key(prev[0]):
            raise DataDirError(f"{p_u2s}:{n}: speaker '{spk}' sorts before speaker '{prev[0]}' of line {prev[1]}: "
                               f"utt2spk is not also sorted by speaker, as Kaldi requires (no speaker id "
                               f"should be a prefix of another)")
        prev = (spk, n)

    # spk2utt: exactly the inverse of utt2spk.
    p_s2u = need("spk2utt", " (create it with utils/utt2spk_to_spk2utt.sh or utils/fix_data_dir.sh)")
    s2u_rows = read(p_s2u)
    listed: set[str] = set()
    for spk, (value, n) in s2u_rows.items():
        utts = value.split()
        if [_sort_key(u) for u in utts] != sorted(_sort_key(u) for u in utts) or len(set(utts)) != len(utts):
            raise DataDirError(f"{p_s2u}:{n}: the utterances of speaker '{spk}' are not sorted and unique")
        for utt in utts:
            if utt not in u2s:
                raise DataDirError(f"{p_s2u}:{n}: speaker '{spk}' lists utterance '{utt}', which is not in utt2spk")
            if u2s[utt][0] != spk:
                raise DataDirError(f"{p_s2u}:{n}: speaker '{spk}' lists utterance '{utt}', but "
                                   f"utt2spk:{u2s[utt][1]} gives its speaker as '{u2s[utt][0]}'")
        listed.update(utts)
    for utt, (spk, n) in u2s.items():
        if utt not in listed:
            raise DataDirError(f"{p_u2s}:{n}: utterance '{utt}' (speaker '{spk}') is missing from spk2utt")

    # text: same utterances, no empty transcript, no reserved word.
    text_rows = None
    if require_text or (d / "text").is_file():
        p_text = need("text", " (a data directory without transcripts needs --no-text)")
        text_rows = read(p_text, allow_empty_value=True)
        for utt, (value, n) in text_rows.items():
            if utt not in u2s:
                raise DataDirError(f"{p_text}:{n}: utterance '{utt}' has a transcript but is not in utt2spk "
                                   f"(no speaker or audio for it)")
            if not value:
                raise DataDirError(f"{p_text}:{n}: utterance '{utt}' has an empty transcript")
            reserved = _RESERVED_WORD.search(value)
            if reserved:
                raise DataDirError(f"{p_text}:{n}: utterance '{utt}': the transcript contains "
                                   f"'{reserved.group()}', a symbol Kaldi reserves")
        for utt, (_, n) in u2s.items():
            if utt not in text_rows:
                raise DataDirError(f"{p_u2s}:{n}: utterance '{utt}' has no transcript in text")

    # wav.scp, segments and reco2dur.
    wav_rows = None
    if require_wav:
        need("wav.scp", " (a data directory without audio needs --no-wav)")
    has_segments = (d / "segments").is_file()
    if (d / "wav.scp").is_file():
        wav_rows = read(d / "wav.scp")
        for key, (value, n) in wav_rows.items():
            if value.startswith("~"):
                raise DataDirError(f"{d / 'wav.scp'}:{n}: {'recording' if has_segments else 'utterance'} "
                                   f"'{key}': '~' is not expanded when a file is opened; give the full path")
    segments = None
    if has_segments:
        p_seg = d / "segments"
        if wav_rows is None:
            raise DataDirError(f"{d / 'wav.scp'}: no such file, but segments refers to recordings in it")
        seg_rows = read(p_seg)
        segments = _parse_segments(p_seg, seg_rows)
        _check_same_keys(p_u2s, u2s, p_seg, seg_rows)
        for utt, (reco, _, _) in segments.items():
            if reco not in wav_rows:
                raise DataDirError(f"{p_seg}:{seg_rows[utt][1]}: utterance '{utt}' refers to recording "
                                   f"'{reco}', which is not in wav.scp")
    elif wav_rows is not None:
        _check_same_keys(p_u2s, u2s, d / "wav.scp", wav_rows)
    reco2dur = None
    if (d / "reco2dur").is_file():
        r2d_rows = read(d / "reco2dur")
        reco2dur = _parse_durations(d / "reco2dur", r2d_rows)
        if wav_rows is not None:
            _check_same_keys(d / "wav.scp", wav_rows, d / "reco2dur", r2d_rows,
                             "recording" if has_segments else "utterance")

    # Optional per-utterance tables.
    if require_feats:
        need("feats.scp", " (features have not been computed)")
    feats_rows = None
    if (d / "feats.scp").is_file():
        feats_rows = read(d / "feats.scp")
        _check_same_keys(p_u2s, u2s, d / "feats.scp", feats_rows)
    utt2dur = None
    if (d / "utt2dur").is_file():
        rows = read(d / "utt2dur")
        utt2dur = _parse_durations(d / "utt2dur", rows)
        _check_same_keys(p_u2s, u2s, d / "utt2dur", rows)
    utt2num_frames = None
    if (d / "utt2num_frames").is_file():
        rows = read(d / "utt2num_frames")
        utt2num_frames = _parse_num_frames(d / "utt2num_frames", rows)
        _check_same_keys(p_u2s, u2s, d / "utt2num_frames", rows)

    # Tables only validation looks at, keyed by speaker, utterance, or like wav.scp.
    for name in SPEAKER_EXTRA_FILES + UTT_EXTRA_FILES + ("reco2file_and_channel",):
        p = d / name
        if not p.is_file():
            continue
        if name in SPEAKER_EXTRA_FILES:
            ref_path, ref, kind = p_s2u, s2u_rows, "speaker"
        elif name == "reco2file_and_channel" and wav_rows is not None:
            ref_path, ref, kind = d / "wav.scp", wav_rows, "recording" if has_segments else "utterance"
        else:
            ref_path, ref, kind = p_u2s, u2s, "utterance"
        rows = read(p)
        value_problem = _VALUE_PROBLEM.get(name, lambda value: None)
        for key, (value, n) in rows.items():
            problem = value_problem(value)
            if problem is not None:
                raise DataDirError(f"{p}:{n}: {kind} '{key}': {problem}")
            if name == "reco2file_and_channel" and value.split()[1] == "1":
                log.warning("%s:%d: channel '1' should be A or B", p, n)
        _check_same_keys(ref_path, ref, p, rows, kind)

    def plain(rows: Rows | None) -> dict[str, str] | None:
        return None if rows is None else {k: v for k, (v, _) in rows.items()}

    return DataDir(path=d, wav_scp=plain(wav_rows), utt2spk=plain(u2s), spk2utt=_parse_spk2utt(p_s2u, s2u_rows),
                   text=plain(text_rows), segments=segments, utt2dur=utt2dur, feats_scp=plain(feats_rows),
                   utt2num_frames=utt2num_frames, reco2dur=reco2dur)
