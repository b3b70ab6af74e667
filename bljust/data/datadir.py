"""Kaldi-style data directories: reading, writing, validating, fixing, subsetting, combining, splitting.

A data directory is a folder of plain-text tables, one ``<key> <value>`` per line,
sorted by key in C-locale byte order (``LC_ALL=C sort``), keys unique:

    wav.scp         <recording-id> <path> | <recording-id> <shell command> |
    text            <utt-id> <transcript>
    utt2spk         <utt-id> <speaker-id>
    spk2utt         <speaker-id> <utt-id> <utt-id> ...      (derived from utt2spk)
    segments        <utt-id> <recording-id> <start-s> <end-s>   (optional)
    utt2dur         <utt-id> <seconds>                      (optional)
    reco2dur        <recording-id> <seconds>                (optional)
    feats.scp       <utt-id> <ark-path:offset>              (optional)
    utt2num_frames  <utt-id> <frames>                       (optional)

Without ``segments`` every recording is one utterance, and wav.scp / reco2dur are keyed
by utterance id. Speaker ids must be prefixes of their utterance ids so that sorting by
utterance and by speaker agree (Kaldi's rule).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from bljust.fileio import atomic_open, atomic_write_text

log = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Tables keyed by utterance id.
UTT_FILES = ("utt2spk", "text", "segments", "feats.scp", "utt2dur", "utt2num_frames")
# Tables keyed by recording id (by utterance id when there is no segments file).
RECO_FILES = ("wav.scp", "reco2dur")
# Every table this module manages; spk2utt is always derived from utt2spk.
ALL_FILES = UTT_FILES + RECO_FILES + ("spk2utt",)

# Optional tables that only validation looks at (as Kaldi's validate_data_dir.sh does).
SPEAKER_EXTRA_FILES = ("cmvn.scp", "spk2gender", "spk2warp")
UTT_EXTRA_FILES = ("utt2warp", "vad.scp", "utt2lang", "utt2uniq")

# What a table's key is, for error messages.
_KEY_KIND = ({name: "utterance" for name in UTT_FILES + UTT_EXTRA_FILES}
             | {name: "speaker" for name in ("spk2utt",) + SPEAKER_EXTRA_FILES}
             | {"reco2dur": "recording", "reco2file_and_channel": "recording"})

# Characters that would make our field splitting differ from Kaldi's (which splits on ASCII
# space and tab only) or hide in messages: other whitespace (the CR of Windows line endings,
# a no-break space, ...), control characters and the byte-order mark.
_ODD_CHAR = re.compile(r"[^\S \t]|[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff]")


class DataDirError(ValueError):
    """A problem with a data directory; the message names the file, line and key where there is one."""


def _sort_key(key: str) -> bytes:
    """C-locale order is byte order of the UTF-8 encoding."""
    return key.encode()


def _sorted_keys(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=_sort_key)


# ---------------------------------------------------------------------------------------
# Reading and writing single tables

# A table read with line numbers: key -> (value, 1-based line number).
Rows = dict[str, tuple[str, int]]


def _odd_char_problem(line: str) -> str | None:
    """What is wrong with the first odd character of ``line`` (see _ODD_CHAR), or None."""
    m = _ODD_CHAR.search(line)
    if m is None:
        return None
    c = m.group()
    if c == "\r":
        return "contains a carriage return (Windows line endings?); convert the file with dos2unix"
    if c == "\ufeff":
        return f"contains a byte-order mark (U+FEFF) at column {m.start() + 1}; save the file as UTF-8 without BOM"
    return (f"contains U+{ord(c):04X} ({unicodedata.name(c, 'a control character')}) at column {m.start() + 1}; "
            f"only ASCII spaces and tabs may separate fields")


def _read_rows(path: PathLike, *, allow_empty_value: bool = False, check_sorted: bool = True,
               strict: bool = True, final_newline: bool = False) -> Rows:
    """Read ``<key> <value>`` lines keeping line numbers.

    ``strict``: raise DataDirError on the first problem. Otherwise (for fix_data_dir)
    skip blank lines, keep the first of duplicate keys, drop lines with no value or
    with odd characters (see _ODD_CHAR), and log a warning for each of those.
    ``final_newline``: the last line must end with a newline, as Kaldi's scripts require.
    """
    path = Path(path)
    kind = _KEY_KIND.get(path.name, "key")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataDirError(f"{path}: is a directory, expected a file") from None
    rows: Rows = {}
    prev = None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline does not start a line
    elif lines and final_newline:
        raise DataDirError(f"{path}:{len(lines)}: the last line does not end with a newline")
    for n, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataDirError(f"{path}:{n}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
        problem = _odd_char_problem(text)
        line = text.strip()
        if problem is None and not line:
            problem = "blank line"
        elif problem is None:
            parts = line.split(None, 1)
            key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            if key in rows:
                problem = f"duplicate {kind} '{key}' (first on line {rows[key][1]})"
            elif not value and not allow_empty_value:
                problem = (f"utterance '{key}' has an empty transcript" if path.name == "text"
                           else f"{kind} '{key}' has no value")
            elif check_sorted and strict and prev is not None and _sort_key(key) < _sort_key(prev):
                problem = (f"{kind} '{key}' is not in sorted order (it follows '{prev}'); "
                           f"sort the file with LC_ALL=C sort, or run utils/fix_data_dir.sh")
        if problem is not None:
            if strict:
                raise DataDirError(f"{path}:{n}: {problem}")
            log.warning("%s:%d: %s; line ignored", path, n, problem)
            continue
        rows[key] = (value, n)
        prev = key
    return rows


def read_table(path: PathLike, *, allow_empty_value: bool = False, check_sorted: bool = True) -> dict[str, str]:
    """Read a Kaldi table ``<key> <value...>`` into an insertion-ordered dict.

    The value is the rest of the line with surrounding whitespace removed (internal
    spaces kept). Raises DataDirError naming ``path:line`` for a blank line, a duplicate
    key, a key without value (unless ``allow_empty_value``), or, with ``check_sorted``,
    keys out of C-locale byte order.
    """
    return {k: v for k, (v, _) in _read_rows(path, allow_empty_value=allow_empty_value,
                                             check_sorted=check_sorted).items()}


def _table_text(path: PathLike, table: Mapping[str, object]) -> str:
    """The file content of ``table``: sorted ``key value`` lines (``key`` alone for an empty value)."""
    out = []
    for key in _sorted_keys(table):
        value = str(table[key])
        if not key or any(c.isspace() for c in key):
            raise DataDirError(f"{path}: key {key!r} is empty or contains whitespace")
        if "\n" in value or "\r" in value:
            raise DataDirError(f"{path}: the value of '{key}' contains a line break")
        out.append(f"{key} {value}\n" if value else f"{key}\n")
    return "".join(out)


def write_table(path: PathLike, table: Mapping[str, object]) -> None:
    """Write ``table`` atomically as ``key value`` lines sorted in C-locale byte order."""
    atomic_write_text(path, _table_text(path, table))


def format_float(x: float) -> str:
    """``%.3f`` when that is exact (the usual case for times), else the shortest exact repr."""
    s = f"{x:.3f}"
    return s if float(s) == x else repr(float(x))


# ---------------------------------------------------------------------------------------
# Speaker maps

def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert ``{utt: spk}`` into ``{spk: [utt, ...]}``, speakers and their utterances sorted (C locale)."""
    spk2utt: dict[str, list[str]] = {}
    for utt in _sorted_keys(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: spk2utt[spk] for spk in _sorted_keys(spk2utt)}


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Iterable[str] | str]) -> dict[str, str]:
    """Invert ``{spk: [utt, ...]}`` (or ``{spk: "utt utt ..."}``) into ``{utt: spk}`` sorted by utterance.

    Raises DataDirError when an utterance is listed under two speakers.
    """
    utt2spk: dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in (utts.split() if isinstance(utts, str) else utts):
            if utt in utt2spk and utt2spk[utt] != spk:
                raise DataDirError(f"utterance '{utt}' is listed under speakers '{utt2spk[utt]}' and '{spk}'")
            utt2spk[utt] = spk
    return {u: utt2spk[u] for u in _sorted_keys(utt2spk)}


# ---------------------------------------------------------------------------------------
# Whole directories as raw string tables: {file name: {key: value}}.
# subset/combine/split/fix work on these, so every file is carried along unchanged.

Tables = dict[str, dict[str, str]]


def _read_tables(d: Path, *, strict: bool = True) -> Tables:
    """Read every managed table present in ``d`` (except spk2utt, which is derived)."""
    if not d.is_dir():
        raise DataDirError(f"{d}: no such data directory")
    tables: Tables = {}
    for name in UTT_FILES + RECO_FILES:
        if (d / name).is_file():
            rows = _read_rows(d / name, allow_empty_value=(name == "text"), strict=strict)
            tables[name] = {k: v for k, (v, _) in rows.items()}
    if "utt2spk" not in tables:
        if not (d / "spk2utt").is_file():
            raise DataDirError(f"{d}/utt2spk: no such file (and no spk2utt to derive it from)")
        rows = _read_rows(d / "spk2utt", strict=strict)
        tables["utt2spk"] = spk2utt_to_utt2spk({k: v for k, (v, _) in rows.items()})
    return tables


def _segment_reco(value: str) -> str:
    """The recording id of a segments value ``<reco> <start> <end>``."""
    return value.split()[0]


def _recordings_of(tables: Tables, utts: Iterable[str]) -> set[str]:
    """The recording ids (wav.scp keys) that ``utts`` need."""
    if "segments" in tables:
        seg = tables["segments"]
        return {_segment_reco(seg[u]) for u in utts if u in seg}
    return set(utts)


def _restrict(tables: Tables, utts: set[str]) -> Tables:
    """``tables`` limited to ``utts`` and the recordings they use."""
    out: Tables = {}
    for name in UTT_FILES:
        if name in tables:
            out[name] = {k: v for k, v in tables[name].items() if k in utts}
    recos = _recordings_of(out, utts)
    for name in RECO_FILES:
        if name in tables:
            out[name] = {k: v for k, v in tables[name].items() if k in recos}
    return out


def _write_tables(d: Path, tables: Tables) -> None:
    """Write ``tables`` plus the derived spk2utt; remove managed files that ``tables`` lacks.

    All content is rendered before the first write, so a bad key fails with nothing written.
    """
    contents = {name: _table_text(d / name, tables[name]) for name in UTT_FILES + RECO_FILES if name in tables}
    spk2utt = utt2spk_to_spk2utt(tables["utt2spk"])
    contents["spk2utt"] = _table_text(d / "spk2utt", {s: " ".join(u) for s, u in spk2utt.items()})
    d.mkdir(parents=True, exist_ok=True)
    # Every file is written to its temporary sibling first; the renames happen only once
    # all writes succeeded, so a failed write (disk full) leaves the old directory whole.
    with contextlib.ExitStack() as stack:
        for name, text in contents.items():
            stack.enter_context(atomic_open(d / name, "w")).write(text)
    # A stale file from an earlier version of the directory would no longer match it.
    for name in ALL_FILES:
        if name not in contents:
            (d / name).unlink(missing_ok=True)


def _utt_ids(tables: Tables) -> list[str]:
    return _sorted_keys(tables["utt2spk"])


def write_data_dir(path: PathLike, *, wav_scp: Mapping[str, str], utt2spk: Mapping[str, str],
                   text: Mapping[str, str] | None = None,
                   segments: Mapping[str, tuple[str, float, float]] | None = None,
                   utt2dur: Mapping[str, float] | None = None) -> None:
    """Write a data directory: every given table sorted, plus spk2utt derived from utt2spk.

    ``segments`` values are ``(recording_id, start_s, end_s)``; times and durations are
    written as ``%.3f`` when exact, else as the shortest exact repr. Managed files that
    are not given (an old segments, feats.scp, ...) are removed, so the directory
    describes exactly what was given. Each file is written atomically.
    """
    tables: Tables = {"wav.scp": dict(wav_scp), "utt2spk": dict(utt2spk)}
    if text is not None:
        tables["text"] = dict(text)
    if segments is not None:
        tables["segments"] = {u: f"{r} {format_float(s)} {format_float(e)}" for u, (r, s, e) in segments.items()}
    if utt2dur is not None:
        tables["utt2dur"] = {u: format_float(d) for u, d in utt2dur.items()}
    _write_tables(Path(path), tables)


# ---------------------------------------------------------------------------------------
# Loading with parsed values

@dataclass
class DataDir:
    """A loaded data directory; a table whose file is absent is None."""
    path: Path
    wav_scp: dict[str, str] | None = None
    utt2spk: dict[str, str] | None = None
    spk2utt: dict[str, list[str]] | None = None
    text: dict[str, str] | None = None
    segments: dict[str, tuple[str, float, float]] | None = None  # utt -> (recording, start_s, end_s)
    utt2dur: dict[str, float] | None = None
    feats_scp: dict[str, str] | None = None
    utt2num_frames: dict[str, int] | None = None
    reco2dur: dict[str, float] | None = None

    @property
    def utt_ids(self) -> list[str]:
        """Utterance ids in C-locale order (from utt2spk, else segments, else wav.scp)."""
        for table in (self.utt2spk, self.segments, self.wav_scp):
            if table is not None:
                return _sorted_keys(table)
        return []


def _parse_float(path: Path, n: int, key: str, what: str, s: str) -> float:
    try:
        x = float(s)
    except ValueError:
        x = float("nan")
    if x != x or x in (float("inf"), float("-inf")):
        raise DataDirError(f"{path}:{n}: {_KEY_KIND.get(path.name, 'key')} '{key}': {what} '{s}' is not a number")
    return x


def _parse_durations(path: Path, rows: Rows) -> dict[str, float]:
    out = {}
    for key, (value, n) in rows.items():
        x = _parse_float(path, n, key, "duration", value)
        if x < 0:
            raise DataDirError(f"{path}:{n}: {_KEY_KIND.get(path.name, 'key')} '{key}': negative duration {value}")
        out[key] = x
    return out


def _parse_num_frames(path: Path, rows: Rows) -> dict[str, int]:
    out = {}
    for key, (value, n) in rows.items():
        try:
            x = int(value)
        except ValueError:
            raise DataDirError(f"{path}:{n}: utterance '{key}': number of frames '{value}' is not an integer") from None
        if x < 0:
            raise DataDirError(f"{path}:{n}: utterance '{key}': negative number of frames {value}")
        out[key] = x
    return out


def _parse_segments(path: Path, rows: Rows) -> dict[str, tuple[str, float, float]]:
    out = {}
    for utt, (value, n) in rows.items():
        fields = value.split()
        if len(fields) != 3:
            raise DataDirError(f"{path}:{n}: utterance '{utt}': expected '<utt> <recording> <start> <end>', "
                               f"got '{utt} {value}'")
        reco, s, e = fields
        start = _parse_float(path, n, utt, "start time", s)
        end = _parse_float(path, n, utt, "end time", e)
        if not 0 <= start < end:
            raise DataDirError(f"{path}:{n}: utterance '{utt}': need 0 <= start < end, got start {s} end {e}")
        out[utt] = (reco, start, end)
    return out


def _parse_spk2utt(path: Path, rows: Rows) -> dict[str, list[str]]:
    return {spk: value.split() for spk, (value, _) in rows.items()}


def load_data_dir(path: PathLike) -> DataDir:
    """Load every table present in ``path``, values parsed (floats, ints, speaker lists).

    Files must be sorted with unique keys; content rules are checked by validate_data_dir.
    """
    d = Path(path)
    if not d.is_dir():
        raise DataDirError(f"{d}: no such data directory")

    def rows(name: str, **kw) -> Rows | None:
        return _read_rows(d / name, **kw) if (d / name).is_file() else None

    dd = DataDir(path=d)
    for name, attr in (("wav.scp", "wav_scp"), ("utt2spk", "utt2spk"), ("feats.scp", "feats_scp")):
        r = rows(name)
        setattr(dd, attr, None if r is None else {k: v for k, (v, _) in r.items()})
    r = rows("text", allow_empty_value=True)
    dd.text = None if r is None else {k: v for k, (v, _) in r.items()}
    r = rows("spk2utt")
    dd.spk2utt = None if r is None else _parse_spk2utt(d / "spk2utt", r)
    r = rows("segments")
    dd.segments = None if r is None else _parse_segments(d / "segments", r)
    r = rows("utt2dur")
    dd.utt2dur = None if r is None else _parse_durations(d / "utt2dur", r)
    r = rows("reco2dur")
    dd.reco2dur = None if r is None else _parse_durations(d / "reco2dur", r)
    r = rows("utt2num_frames")
    dd.utt2num_frames = None if r is None else _parse_num_frames(d / "utt2num_frames", r)
    return dd


# ---------------------------------------------------------------------------------------
# Validation

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


# ---------------------------------------------------------------------------------------
# Fixing

def _entry_problem(name: str, key: str, value: str) -> str | None:
    """Why ``key value`` of table ``name`` would fail validation on its own, or None."""
    try:
        if name == "segments":
            _parse_segments(Path(name), {key: (value, 0)})
        elif name in ("utt2dur", "reco2dur"):
            _parse_durations(Path(name), {key: (value, 0)})
        elif name == "utt2num_frames":
            _parse_num_frames(Path(name), {key: (value, 0)})
    except DataDirError as e:
        return str(e).split(": ", 1)[1]
    if name == "utt2spk" and len(value.split()) != 1:
        return f"utterance '{key}': expected one speaker id, got '{value}'"
    if name == "text" and not value:
        return f"utterance '{key}' has an empty transcript"
    return None


def _drop_malformed(tables: Tables, d: Path) -> None:
    """Drop (with a warning) entries that could never validate, so fix_data_dir yields a valid directory."""
    for name, table in tables.items():
        for key, value in list(table.items()):
            problem = _entry_problem(name, key, value)
            if problem is not None:
                log.warning("%s: dropping the entry of '%s': %s", d / name, key, problem)
                del table[key]


def fix_data_dir(path: PathLike) -> int:
    """Make ``path`` consistent, like Kaldi's ``utils/fix_data_dir.sh``; return the number of utterances dropped.

    Keeps the utterances present in every per-utterance table (and, with segments, whose
    recording is in wav.scp/reco2dur), drops recordings nobody references, sorts every
    table and regenerates spk2utt. Unsorted input is fine; of duplicate keys the first is
    kept (with a warning). The original files are first copied to ``path/.backup/``.
    Everything is computed before anything is written, and every write is atomic.
    """
    d = Path(path)
    tables = _read_tables(d, strict=False)
    _drop_malformed(tables, d)

    utt_tables = [name for name in UTT_FILES if name in tables]
    seen: set[str] = set().union(*(tables[n] for n in utt_tables))
    utts = set(tables["utt2spk"])
    for name in utt_tables:
        utts &= set(tables[name])
    if "segments" in tables:
        seg = tables["segments"]
        for name in RECO_FILES:
            if name in tables:
                utts = {u for u in utts if _segment_reco(seg[u]) in tables[name]}
    else:
        for name in RECO_FILES:
            if name in tables:
                seen |= set(tables[name])
                utts &= set(tables[name])
    if not utts:
        raise DataDirError(f"{d}: no utterance is present in every file ({', '.join(utt_tables)}); "
                           f"nothing changed")
    fixed = _restrict(tables, utts)
    dropped = sorted(seen - utts, key=_sort_key)

    backup = d / ".backup"
    for name in ALL_FILES:
        if (d / name).is_file():
            with open(d / name, "rb") as src, atomic_open(backup / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    _write_tables(d, fixed)
    if dropped:
        shown = ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        log.warning("%s: dropped %d utterance(s) not present in every file: %s", d, len(dropped), shown)
    log.info("%s: kept %d utterance(s), dropped %d; old files are in %s", d, len(utts), len(dropped), backup)
    return len(dropped)


# ---------------------------------------------------------------------------------------
# Subsets, unions and splits

def _read_id_list(path_or_ids: PathLike | Iterable[str]) -> list[str]:
    """Ids from a file (first field of each line) or from an iterable of ids."""
    if isinstance(path_or_ids, (str, os.PathLike)):
        p = Path(path_or_ids)
        if not p.is_file():
            raise DataDirError(f"{p}: no such file")
        return [line.split()[0] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(path_or_ids)


def _durations(tables: Tables, src: Path) -> dict[str, float]:
    """Utterance lengths for --shortest: utt2dur, else segments, else utt2num_frames."""
    if "utt2dur" in tables:
        return _parse_durations(src / "utt2dur", {k: (v, 0) for k, v in tables["utt2dur"].items()})
    if "segments" in tables:
        segs = _parse_segments(src / "segments", {k: (v, 0) for k, v in tables["segments"].items()})
        return {u: e - s for u, (_, s, e) in segs.items()}
    if "utt2num_frames" in tables:
        return {k: float(v) for k, v in _parse_num_frames(src / "utt2num_frames",
                                                           {k: (v, 0) for k, v in tables["utt2num_frames"].items()}).items()}
    raise DataDirError(f"{src}: selecting the shortest utterances needs utt2dur, segments or utt2num_frames")


def subset_data_dir(src: PathLike, dst: PathLike, *, utt_list: PathLike | Iterable[str] | None = None,
                    spk_list: PathLike | Iterable[str] | None = None, first: int | None = None,
                    last: int | None = None, shortest: int | None = None) -> None:
    """Write ``dst``: a copy of ``src`` restricted to some utterances, every table filtered alike.

    Exactly one selector: ``utt_list`` / ``spk_list`` (a file with one id per line, or an
    iterable of ids; ids not in ``src`` are ignored), or the ``first`` / ``last`` N
    utterances in sorted order, or the ``shortest`` N (by utt2dur, segments or
    utt2num_frames). With segments, only the recordings still used are kept.
    """
    src, dst = Path(src), Path(dst)
    given = {k: v for k, v in dict(utt_list=utt_list, spk_list=spk_list, first=first, last=last,
                                   shortest=shortest).items() if v is not None}
    if len(given) != 1:
        raise DataDirError(f"subset_data_dir: give exactly one of utt_list, spk_list, first, last, shortest "
                           f"(got {', '.join(given) or 'none'})")
    if dst.resolve() == src.resolve():
        raise DataDirError(f"subset_data_dir: source and destination are the same directory {src}")
    tables = _read_tables(src)
    utts = _utt_ids(tables)
    (how, arg), = given.items()
    if how in ("first", "last", "shortest"):
        n = int(arg)
        if not 0 < n <= len(utts):
            raise DataDirError(f"subset_data_dir: cannot take {n} utterances from {src}, it has {len(utts)}")
        if how == "first":
            chosen = utts[:n]
        elif how == "last":
            chosen = utts[-n:]
        else:
            durs = _durations(tables, src)
            chosen = sorted(utts, key=lambda u: (durs.get(u, float("inf")), _sort_key(u)))[:n]
    elif how == "utt_list":
        wanted = set(_read_id_list(arg))
        chosen = [u for u in utts if u in wanted]
    else:
        wanted = set(_read_id_list(arg))
        chosen = [u for u in utts if tables["utt2spk"][u] in wanted]
    if not chosen:
        raise DataDirError(f"subset_data_dir: no utterance of {src} matches the {how.replace('_', ' ')}")
    _write_tables(dst, _restrict(tables, set(chosen)))
    log.info("subset_data_dir: %d of %d utterances of %s -> %s", len(chosen), len(utts), src, dst)


def combine_data_dirs(dst: PathLike, srcs: list[PathLike]) -> None:
    """Write ``dst`` as the union of the data directories ``srcs``.

    An utterance id in two sources is an error naming both. A table present in only some
    sources is dropped with a warning, except wav.scp and utt2spk, which every source
    needs; when only some sources have segments, the others get whole-recording
    segments from their utt2dur (an error without it). A recording id shared by sources
    must have the same wav.scp entry.
    """
    dst = Path(dst)
    if not srcs:
        raise DataDirError("combine_data_dirs: no source directories")
    srcs = [Path(s) for s in srcs]
    for s in srcs:
        if s.resolve() == dst.resolve():
            raise DataDirError(f"combine_data_dirs: destination {dst} is also a source")
    all_tables = []
    for s in srcs:
        t = _read_tables(s)
        for name in ("wav.scp", "utt2spk"):
            if name not in t:
                raise DataDirError(f"{s / name}: no such file (every source of combine needs it)")
        all_tables.append(t)

    with_segments = [s for s, t in zip(srcs, all_tables) if "segments" in t]
    if with_segments and len(with_segments) < len(srcs):
        for s, t in zip(srcs, all_tables):
            if "segments" in t:
                continue
            if "utt2dur" not in t:
                raise DataDirError(f"combine_data_dirs: {with_segments[0]} has segments but {s} has neither "
                                   f"segments nor utt2dur to make whole-recording segments from")
            durs = _durations({"utt2dur": t["utt2dur"]}, s)
            t["segments"] = {u: f"{u} 0 {format_float(durs[u])}" for u in t["utt2dur"]}
            t.setdefault("reco2dur", dict(t["utt2dur"]))

    out: Tables = {}
    owner: dict[str, dict[str, Path]] = {}  # table -> key -> source it came from
    for name in UTT_FILES + RECO_FILES:
        have = [s for s, t in zip(srcs, all_tables) if name in t]
        if not have:
            continue
        if len(have) < len(srcs):
            missing = [str(s) for s, t in zip(srcs, all_tables) if name not in t]
            log.warning("combine_data_dirs: %s is missing from %s; the combined directory will have no %s",
                        name, ", ".join(missing), name)
            continue
        merged: dict[str, str] = {}
        owner[name] = {}
        for s, t in zip(srcs, all_tables):
            for key, value in t[name].items():
                if key in merged:
                    other = owner[name][key]
                    if name in RECO_FILES and "segments" in t and merged[key] == value:
                        continue  # the same recording used by both sources
                    kind = "recording" if name in RECO_FILES and "segments" in t else "utterance"
                    raise DataDirError(f"combine_data_dirs: {kind} '{key}' is in both {other / name} and {s / name}")
                merged[key] = value
                owner[name][key] = s
        out[name] = merged
    _write_tables(dst, out)
    log.info("combine_data_dirs: %d utterances from %d directories -> %s", len(out["utt2spk"]), len(srcs), dst)


def _contiguous_parts(counts: list[int], n: int) -> list[tuple[int, int]]:
    """Split ``counts`` (in order) into ``n`` non-empty contiguous ranges with sums close to equal.

    Returns ``[(begin, end), ...]``. Contiguous ranges keep every part sorted and the
    concatenation of the parts in the original order, as Kaldi's split_scp.pl does.
    """
    total = sum(counts)
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)
    bounds = [0]
    for k in range(1, n):
        target = total * k / n
        lo, hi = bounds[-1] + 1, len(counts) - (n - k)  # leave at least one item per remaining part
        best = min(range(lo, hi + 1), key=lambda i: (abs(prefix[i] - target), i))
        bounds.append(best)
    bounds.append(len(counts))
    return list(zip(bounds[:-1], bounds[1:]))


def split_data_dir(src: PathLike, n: int, *, per_utt: bool = False) -> list[Path]:
    """Split ``src`` into ``n`` data directories ``src/split{n}/1..n`` (``split{n}utt`` with ``per_utt``).

    By default each speaker goes whole into one part and parts are balanced by number
    of utterances; ``per_utt`` balances utterances regardless of speaker. Parts are
    contiguous runs of the sorted utterances. Nothing is rewritten when a complete
    split exists that is newer than the source tables. Returns the part directories.
    """
    src = Path(src)
    n = int(n)
    split_dir = src / (f"split{n}utt" if per_utt else f"split{n}")
    parts = [split_dir / str(i) for i in range(1, n + 1)]
    done = split_dir / ".complete"
    sources = [src / name for name in ALL_FILES if (src / name).is_file()]
    if not sources:
        raise DataDirError(f"{src}: no such data directory (or no utt2spk in it)")
    newest = max(p.stat().st_mtime_ns for p in sources)
    if done.is_file() and done.stat().st_mtime_ns >= newest and all((p / "utt2spk").is_file() for p in parts):
        log.info("split_data_dir: %s is up to date", split_dir)
        return parts

    tables = _read_tables(src)
    utts = _utt_ids(tables)
    if per_utt:
        groups = [[u] for u in utts]
        if not 1 <= n <= len(groups):
            raise DataDirError(f"cannot split {src} into {n} parts: it has {len(groups)} utterances")
    else:
        spk2utt = utt2spk_to_spk2utt(tables["utt2spk"])
        groups = list(spk2utt.values())
        if not 1 <= n <= len(groups):
            raise DataDirError(f"cannot split {src} into {n} parts: it has {len(groups)} speakers "
                               f"(split by utterance with --per-utt)")
    done.unlink(missing_ok=True)  # an interrupted re-split must not look complete
    for part, (b, e) in zip(parts, _contiguous_parts([len(g) for g in groups], n)):
        _write_tables(part, _restrict(tables, {u for g in groups[b:e] for u in g}))
    atomic_write_text(done, f"{n} parts of {len(utts)} utterances\n")
    return parts
