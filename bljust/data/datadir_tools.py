"""The tools that rewrite whole data directories, as Kaldi's utils/ scripts do: fix, subset, combine, split.

They read every table of a directory as raw strings (``Tables``), so tables they do not
interpret are carried along unchanged, and write through ``datadir._write_tables``:
sorted, spk2utt regenerated, all files or none.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Iterable

from bljust.data.datadir import (ALL_FILES, RECO_FILES, UTT_FILES, DataDirError, PathLike, Tables, _parse_durations,
                                 _parse_num_frames, _parse_segments, _read_rows, _sort_key, _sorted_keys,
                                 _write_tables, format_float, spk2utt_to_utt2spk, utt2spk_to_spk2utt)
from bljust.fileio import atomic_open, atomic_write_text

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Whole directories as raw string tables

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


def _utt_ids(tables: Tables) -> list[str]:
    return _sorted_keys(tables["utt2spk"])


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
