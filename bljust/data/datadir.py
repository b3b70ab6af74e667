"""Kaldi-style data directories: the table format, and reading and writing tables and whole directories.

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

Checking a directory against Kaldi's rules is ``bljust.data.validate``; the tools fix, subset,
combine and split are ``bljust.data.datadir_tools``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
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
# write_data_dir and the tools of datadir_tools work on these, so every file is carried along unchanged.

Tables = dict[str, dict[str, str]]


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
