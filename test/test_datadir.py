"""Kaldi data directories: tables, validation rules, fix/subset/combine/split, the CLI."""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import pytest

from bljust.bin import datadir as cli
from bljust.data import datadir as dd
from bljust.data.datadir import DataDirError
from bljust.data.datadir_tools import combine_data_dirs, fix_data_dir, split_data_dir, subset_data_dir
from bljust.data.validate import validate_data_dir


def write_files(d: Path, **files: str) -> Path:
    """Write raw file contents; keyword ``wav_scp`` means ``wav.scp`` etc. (``_`` -> ``.`` for *_scp)."""
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        fname = name.replace("_scp", ".scp")
        if text is None:
            (d / fname).unlink(missing_ok=True)
        else:
            (d / fname).write_text(text)
    return d


BASE = dict(
    wav_scp="s1-a a.wav\ns1-b b.wav\ns2-c c.wav\n",
    utt2spk="s1-a s1\ns1-b s1\ns2-c s2\n",
    spk2utt="s1 s1-a s1-b\ns2 s2-c\n",
    text="s1-a hello  world\ns1-b foo\ns2-c bar\n",
)


def base_dir(tmp_path: Path, name: str = "d", **changes: str | None) -> Path:
    return write_files(tmp_path / name, **{**BASE, **changes})


def segmented_dir(tmp_path: Path, name: str = "seg") -> Path:
    return write_files(
        tmp_path / name,
        wav_scp="r1 r1.wav\nr2 r2.wav\nr3 r3.wav\n",
        segments="s1-a r1 0.00 1.50\ns1-b r1 1.50 3.00\ns2-c r2 0.25 2.00\n",
        utt2spk=BASE["utt2spk"], spk2utt=BASE["spk2utt"], text=BASE["text"],
    )


# ---------------------------------------------------------------------------------------
# Tables

def test_read_table_keeps_internal_spaces_and_order(tmp_path):
    p = tmp_path / "text"
    p.write_text("a  hello   big world \nb\tx y\n")
    assert dd.read_table(p) == {"a": "hello   big world", "b": "x y"}
    assert list(dd.read_table(p)) == ["a", "b"]


@pytest.mark.parametrize("content,message", [
    ("a 1\na 2\n", "t2:2: duplicate key 'a' (first on line 1)"),
    ("b 1\na 2\n", "t2:2: key 'a' is not in sorted order (it follows 'b')"),
    ("a 1\n\nb 2\n", "t2:2: blank line"),
    ("a 1\nb\n", "t2:2: key 'b' has no value"),
])
def test_read_table_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "t2"
    p.write_text(content)
    with pytest.raises(DataDirError) as e:
        dd.read_table(p)
    assert message in str(e.value)
    assert str(p) in str(e.value)


def test_read_table_options(tmp_path):
    p = tmp_path / "hyp"
    p.write_text("b x\na\n")
    assert dd.read_table(p, allow_empty_value=True, check_sorted=False) == {"b": "x", "a": ""}
    with pytest.raises(DataDirError, match="sorted"):
        dd.read_table(p, allow_empty_value=True)
    (tmp_path / "text").write_text("u1 \n")
    with pytest.raises(DataDirError, match=r"text:1: utterance 'u1' has an empty transcript"):
        dd.read_table(tmp_path / "text")


def test_write_table_sorts_in_c_locale_byte_order(tmp_path):
    p = tmp_path / "t"
    dd.write_table(p, {"a": "1", "B": "2", "_x": "3", "a-1": "4", "é": "5"})
    assert p.read_text().splitlines() == ["B 2", "_x 3", "a 1", "a-1 4", "é 5"]
    assert dd.read_table(p) == {"B": "2", "_x": "3", "a": "1", "a-1": "4", "é": "5"}


def test_write_table_bad_key_leaves_old_file(tmp_path):
    p = tmp_path / "t"
    p.write_text("old 1\n")
    with pytest.raises(DataDirError, match="whitespace"):
        dd.write_table(p, {"a b": "1"})
    assert p.read_text() == "old 1\n"
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_speaker_maps():
    u2s = {"s2-c": "s2", "s1-b": "s1", "s1-a": "s1"}
    s2u = dd.utt2spk_to_spk2utt(u2s)
    assert s2u == {"s1": ["s1-a", "s1-b"], "s2": ["s2-c"]}
    assert list(s2u) == ["s1", "s2"]
    assert dd.spk2utt_to_utt2spk(s2u) == {"s1-a": "s1", "s1-b": "s1", "s2-c": "s2"}
    assert dd.spk2utt_to_utt2spk({"s1": "s1-b s1-a"}) == {"s1-a": "s1", "s1-b": "s1"}
    with pytest.raises(DataDirError, match="'u' is listed under speakers 'a' and 'b'"):
        dd.spk2utt_to_utt2spk({"a": ["u"], "b": ["u"]})


# ---------------------------------------------------------------------------------------
# Writing and loading

def test_write_and_load_data_dir(tmp_path):
    d = tmp_path / "w"
    (d).mkdir()
    (d / "feats.scp").write_text("stale 1\n")  # from an earlier version: must go
    dd.write_data_dir(d, wav_scp={"r1": "cat r1.wav |", "r0": "r0.flac"},
                      utt2spk={"s2-u1": "s2", "s1-u2": "s1", "s1-u1": "s1"},
                      text={"s2-u1": "c", "s1-u2": "b b", "s1-u1": "a"},
                      segments={"s2-u1": ("r1", 0, 1.5), "s1-u2": ("r0", 0.1, 0.3), "s1-u1": ("r0", 1 / 3, 2)},
                      utt2dur={"s2-u1": 1.5, "s1-u2": 0.2, "s1-u1": 5 / 3})
    assert (d / "spk2utt").read_text() == "s1 s1-u1 s1-u2\ns2 s2-u1\n"
    assert (d / "segments").read_text().splitlines() == [
        f"s1-u1 r0 {1 / 3!r} 2.000", "s1-u2 r0 0.100 0.300", "s2-u1 r1 0.000 1.500"]
    assert not (d / "feats.scp").exists()
    loaded = validate_data_dir(d)
    assert loaded.utt_ids == ["s1-u1", "s1-u2", "s2-u1"]
    assert loaded.segments["s1-u1"] == ("r0", 1 / 3, 2.0)  # exact round trip
    assert loaded.utt2dur["s1-u2"] == 0.2
    assert loaded.wav_scp["r1"] == "cat r1.wav |"
    assert loaded.spk2utt == {"s1": ["s1-u1", "s1-u2"], "s2": ["s2-u1"]}
    again = dd.load_data_dir(d)
    assert again.text == {"s1-u1": "a", "s1-u2": "b b", "s2-u1": "c"}
    assert again.feats_scp is None and again.utt2num_frames is None


def test_failed_write_leaves_every_old_file(tmp_path, monkeypatch):
    d = base_dir(tmp_path)
    before = {p.name: p.read_text() for p in d.iterdir()}
    real = dd.atomic_open

    @contextlib.contextmanager
    def failing(path, mode="w", **kw):
        with real(path, mode, **kw) as f:
            if Path(path).name == "text":
                raise OSError("No space left on device")
            yield f

    monkeypatch.setattr(dd, "atomic_open", failing)
    with pytest.raises(OSError, match="No space"):
        dd.write_data_dir(d, wav_scp={"s9-x": "x.wav"}, utt2spk={"s9-x": "s9"}, text={"s9-x": "new"})
    with pytest.raises(OSError, match="No space"):
        fix_data_dir(base_dir(tmp_path, text="s1-a x\n"))
    d_after = {p.name: p.read_text() for p in d.iterdir() if p.is_file()}
    assert d_after == {**before, "text": "s1-a x\n"}  # only our own change; fix wrote nothing
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------
# Validation: each rule with the message it gives

def test_validate_accepts_good_dirs(tmp_path):
    validate_data_dir(base_dir(tmp_path))
    validate_data_dir(segmented_dir(tmp_path))  # r3 unused: allowed
    validate_data_dir(base_dir(tmp_path, "nt", text=None), require_text=False)
    validate_data_dir(base_dir(tmp_path, "nw", wav_scp=None), require_wav=False)


BAD_CASES = {
    "utt2spk unsorted": (dict(utt2spk="s1-b s1\ns1-a s1\ns2-c s2\n"),
                         "utt2spk:2: utterance 's1-a' is not in sorted order"),
    "text duplicate": (dict(text="s1-a x\ns1-a y\ns1-b foo\ns2-c bar\n"),
                       "text:2: duplicate utterance 's1-a' (first on line 1)"),
    "no utt2spk": (dict(utt2spk=None), "utt2spk: no such file"),
    "no spk2utt": (dict(spk2utt=None), "spk2utt: no such file"),
    "spk2utt wrong speaker": (dict(spk2utt="s1 s1-a\ns2 s1-b s2-c\n"),
                              "spk2utt:2: speaker 's2' lists utterance 's1-b', but utt2spk:2 gives its speaker as 's1'"),
    "spk2utt missing utt": (dict(spk2utt="s1 s1-a\ns2 s2-c\n"),
                            "utt2spk:2: utterance 's1-b' (speaker 's1') is missing from spk2utt"),
    "spk2utt unsorted list": (dict(spk2utt="s1 s1-b s1-a\ns2 s2-c\n"),
                              "spk2utt:1: the utterances of speaker 's1' are not sorted"),
    "speaker not prefix": (dict(wav_scp="a a\nb b\n", utt2spk="a spkA\nb spkA\n", spk2utt="spkA a b\n",
                                text="a x\nb y\n"),
                           "utt2spk:1: speaker id 'spkA' is not a prefix of utterance id 'a'"),
    "text extra utt": (dict(text="s1-a x\ns1-b foo\ns1-z extra\ns2-c bar\n"),
                       "text:3: utterance 's1-z' has a transcript but is not in utt2spk"),
    "text missing utt": (dict(text="s1-a x\ns2-c bar\n"), "utt2spk:2: utterance 's1-b' has no transcript in text"),
    "empty transcript": (dict(text="s1-a x\ns1-b\ns2-c bar\n"), "text:2: utterance 's1-b' has an empty transcript"),
    "no text": (dict(text=None), "text: no such file"),
    "wav.scp extra": (dict(wav_scp="s1-a a\ns1-b b\ns1-x x\ns2-c c\n"), "wav.scp:3: utterance 's1-x' is not in utt2spk"),
    "wav.scp missing": (dict(wav_scp="s1-a a\ns2-c c\n"), "utt2spk:2: utterance 's1-b' has no entry in wav.scp"),
    "no wav.scp": (dict(wav_scp=None), "wav.scp: no such file"),
    "feats.scp missing utt": (dict(feats_scp="s1-a f:1\ns2-c f:9\n"),
                              "utt2spk:2: utterance 's1-b' has no entry in feats.scp"),
    "utt2dur not a number": (dict(utt2dur="s1-a 1.0\ns1-b abc\ns2-c 2\n"),
                             "utt2dur:2: utterance 's1-b': duration 'abc' is not a number"),
    "utt2dur extra": (dict(utt2dur="s1-a 1.0\ns1-b 1\ns2-c 2\ns3-d 1\n"), "utt2dur:4: utterance 's3-d' is not in utt2spk"),
    "utt2num_frames not int": (dict(utt2num_frames="s1-a 10\ns1-b 1.5\ns2-c 7\n"),
                               "utt2num_frames:2: utterance 's1-b': number of frames '1.5' is not an integer"),
    "utt2num_frames missing": (dict(utt2num_frames="s1-a 10\ns1-b 3\n"),
                               "utt2spk:3: utterance 's2-c' has no entry in utt2num_frames"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_validate_rules(tmp_path, case):
    changes, message = BAD_CASES[case]
    d = base_dir(tmp_path, **changes)
    with pytest.raises(DataDirError) as e:
        validate_data_dir(d)
    assert message in str(e.value)
    assert str(e.value).startswith(str(d))


SEG_CASES = {
    "unknown recording": ("s1-a r1 0 1.5\ns1-b r9 1.5 3\ns2-c r2 0.25 2\n",
                          "segments:2: utterance 's1-b' refers to recording 'r9', which is not in wav.scp"),
    "start >= end": ("s1-a r1 0 1.5\ns1-b r1 3 3\ns2-c r2 0.25 2\n",
                     "segments:2: utterance 's1-b': need 0 <= start < end, got start 3 end 3"),
    "negative start": ("s1-a r1 -1 1.5\ns1-b r1 1.5 3\ns2-c r2 0.25 2\n", "segments:1: utterance 's1-a': need 0 <= start"),
    "not a number": ("s1-a r1 0 1.5\ns1-b r1 1.5 3\ns2-c r2 x 2\n",
                     "segments:3: utterance 's2-c': start time 'x' is not a number"),
    "wrong field count": ("s1-a r1 0 1.5\ns1-b r1 1.5\ns2-c r2 0.25 2\n",
                          "segments:2: utterance 's1-b': expected '<utt> <recording> <start> <end>'"),
    "missing utt": ("s1-a r1 0 1.5\ns2-c r2 0.25 2\n", "utt2spk:2: utterance 's1-b' has no entry in segments"),
}


@pytest.mark.parametrize("case", SEG_CASES)
def test_validate_segments_rules(tmp_path, case):
    content, message = SEG_CASES[case]
    d = segmented_dir(tmp_path)
    (d / "segments").write_text(content)
    with pytest.raises(DataDirError) as e:
        validate_data_dir(d)
    assert message in str(e.value)


def test_validate_requirements(tmp_path):
    d = base_dir(tmp_path)
    with pytest.raises(DataDirError, match=r"feats.scp: no such file"):
        validate_data_dir(d, require_feats=True)
    (d / "feats.scp").write_text("s1-a f:1\ns1-b f:2\ns2-c f:3\n")
    assert validate_data_dir(d, require_feats=True).feats_scp["s1-b"] == "f:2"
    # text is still checked when present, even if not required
    (d / "text").write_text("s1-a x\ns1-b\ns2-c y\n")
    with pytest.raises(DataDirError, match="empty transcript"):
        validate_data_dir(d, require_text=False)
    with pytest.raises(DataDirError, match="no such data directory"):
        validate_data_dir(tmp_path / "nope")


# ---------------------------------------------------------------------------------------
# fix_data_dir

def test_fix_data_dir(tmp_path, caplog):
    d = write_files(
        tmp_path / "f",
        wav_scp="s2-c c.wav\ns1-a a.wav\ns1-b b.wav\ns1-d d.wav\n",
        utt2spk="s1-b s1\ns1-a s1\ns2-c s2\ns1-a s1\ns1-d s1\n",  # unsorted, a duplicate
        text="s1-a first\ns1-a second\ns1-b hi\ns1-d \ns9-z orphan\n",  # s2-c has no text, s1-d is empty
        utt2dur="s1-a 1\ns1-b 2\ns2-c 3\ns1-d 4\n",
    )
    original = (d / "utt2spk").read_text()
    with caplog.at_level(logging.WARNING):
        dropped = fix_data_dir(d)
    assert dropped == 3  # s2-c (no text), s1-d (empty text), s9-z (only in text)
    assert "duplicate utterance 's1-a'" in caplog.text
    fixed = validate_data_dir(d)
    assert fixed.utt_ids == ["s1-a", "s1-b"]
    assert fixed.text == {"s1-a": "first", "s1-b": "hi"}  # the first of duplicates kept
    assert fixed.wav_scp == {"s1-a": "a.wav", "s1-b": "b.wav"}
    assert fixed.spk2utt == {"s1": ["s1-a", "s1-b"]}
    assert (d / ".backup" / "utt2spk").read_text() == original
    assert fix_data_dir(d) == 0  # idempotent


def test_fix_data_dir_with_segments_drops_unused_recordings(tmp_path):
    d = segmented_dir(tmp_path)
    (d / "wav.scp").write_text("r2 r2.wav\nr3 r3.wav\n")  # r1 gone: its two segments go
    (d / "reco2dur").write_text("r2 5\nr3 6\n")
    (d / "spk2utt").unlink()
    assert fix_data_dir(d) == 2
    fixed = validate_data_dir(d)
    assert fixed.utt_ids == ["s2-c"]
    assert fixed.wav_scp == {"r2": "r2.wav"}  # r3 no longer referenced
    assert fixed.reco2dur == {"r2": 5.0}
    assert fixed.segments == {"s2-c": ("r2", 0.25, 2.0)}


# ---------------------------------------------------------------------------------------
# subset_data_dir

def test_subset_selectors(tmp_path):
    src = base_dir(tmp_path, utt2dur="s1-a 3\ns1-b 1\ns2-c 2\n")
    cases = {
        "first": (dict(first=2), ["s1-a", "s1-b"]),
        "last": (dict(last=1), ["s2-c"]),
        "shortest": (dict(shortest=2), ["s1-b", "s2-c"]),
        "spk": (dict(spk_list=["s2"]), ["s2-c"]),
        "utt": (dict(utt_list=["s2-c", "s1-a", "unknown"]), ["s1-a", "s2-c"]),
    }
    for name, (kw, want) in cases.items():
        dst = tmp_path / name
        subset_data_dir(src, dst, **kw)
        got = validate_data_dir(dst)
        assert got.utt_ids == want, name
        assert set(got.wav_scp) == set(want) and set(got.utt2dur) == set(want)
    (tmp_path / "list").write_text("s1-b\n")
    subset_data_dir(src, tmp_path / "fromfile", utt_list=tmp_path / "list")
    assert dd.load_data_dir(tmp_path / "fromfile").text == {"s1-b": "foo"}


def test_subset_filters_recordings_and_errors(tmp_path):
    src = segmented_dir(tmp_path)
    subset_data_dir(src, tmp_path / "sub", last=1)
    sub = validate_data_dir(tmp_path / "sub")
    assert sub.wav_scp == {"r2": "r2.wav"} and sub.segments == {"s2-c": ("r2", 0.25, 2.0)}
    subset_data_dir(src, tmp_path / "short", shortest=1)  # durations from segments
    assert dd.load_data_dir(tmp_path / "short").utt_ids == ["s1-a"]
    with pytest.raises(DataDirError, match="cannot take 4 utterances from .*, it has 3"):
        subset_data_dir(src, tmp_path / "x", first=4)
    with pytest.raises(DataDirError, match="exactly one of"):
        subset_data_dir(src, tmp_path / "x", first=1, last=1)
    with pytest.raises(DataDirError, match="no utterance"):
        subset_data_dir(src, tmp_path / "x", spk_list=["nobody"])
    with pytest.raises(DataDirError, match="shortest utterances needs utt2dur"):
        subset_data_dir(base_dir(tmp_path), tmp_path / "x", shortest=1)


# ---------------------------------------------------------------------------------------
# combine_data_dirs

def test_combine(tmp_path, caplog):
    a = base_dir(tmp_path, "a")
    b = write_files(tmp_path / "b", wav_scp="s3-x x.wav\n", utt2spk="s3-x s3\n", spk2utt="s3 s3-x\n",
                    text="s3-x more\n", utt2dur="s3-x 1.5\n")
    with caplog.at_level(logging.WARNING):
        combine_data_dirs(tmp_path / "ab", [a, b])
    ab = validate_data_dir(tmp_path / "ab")
    assert ab.utt_ids == ["s1-a", "s1-b", "s2-c", "s3-x"]
    assert ab.text["s3-x"] == "more" and ab.spk2utt["s3"] == ["s3-x"]
    assert ab.utt2dur is None and "utt2dur is missing from" in caplog.text


def test_combine_errors(tmp_path):
    a = base_dir(tmp_path, "a")
    b = base_dir(tmp_path, "b", wav_scp="s1-b other.wav\n", utt2spk="s1-b s1\n", spk2utt="s1 s1-b\n", text="s1-b x\n")
    with pytest.raises(DataDirError) as e:
        combine_data_dirs(tmp_path / "ab", [a, b])
    assert f"utterance 's1-b' is in both {a}/utt2spk and {b}/utt2spk" in str(e.value)
    (b / "wav.scp").unlink()
    with pytest.raises(DataDirError, match=r"b/wav.scp: no such file \(every source of combine needs it\)"):
        combine_data_dirs(tmp_path / "ab", [a, b])
    assert not (tmp_path / "ab").exists()


def test_combine_segments_with_whole_recordings(tmp_path):
    seg = segmented_dir(tmp_path)
    plain = write_files(tmp_path / "p", wav_scp="s4-y y.wav\n", utt2spk="s4-y s4\n", spk2utt="s4 s4-y\n",
                        text="s4-y z\n", utt2dur="s4-y 2.5\n")
    (seg / "utt2dur").write_text("s1-a 1.5\ns1-b 1.5\ns2-c 1.75\n")
    combine_data_dirs(tmp_path / "all", [seg, plain])
    out = validate_data_dir(tmp_path / "all")
    assert out.segments["s4-y"] == ("s4-y", 0.0, 2.5)
    assert out.wav_scp["s4-y"] == "y.wav" and out.wav_scp["r1"] == "r1.wav"


# ---------------------------------------------------------------------------------------
# split_data_dir

def many_speakers(tmp_path: Path, counts: list[int]) -> Path:
    utt2spk = {f"spk{s}-u{i:02d}": f"spk{s}" for s, c in enumerate(counts) for i in range(c)}
    d = tmp_path / "many"
    dd.write_data_dir(d, wav_scp={u: f"{u}.wav" for u in utt2spk}, utt2spk=utt2spk,
                      text={u: "t" for u in utt2spk})
    return d


def test_split_by_speaker_keeps_speakers_whole(tmp_path):
    d = many_speakers(tmp_path, [5, 1, 1, 1, 4, 2])
    parts = split_data_dir(d, 3)
    assert parts == [d / "split3" / str(i) for i in (1, 2, 3)]
    seen = []
    for p in parts:
        part = validate_data_dir(p)
        seen += part.utt_ids
        assert set(part.wav_scp) == set(part.utt_ids)
    assert seen == dd.load_data_dir(d).utt_ids  # every utterance once, order kept
    speakers = [set(dd.load_data_dir(p).spk2utt) for p in parts]
    assert not (speakers[0] & speakers[1] or speakers[1] & speakers[2] or speakers[0] & speakers[2])
    sizes = [len(dd.load_data_dir(p).utt_ids) for p in parts]
    assert sizes == [5, 3, 6]  # best contiguous balance of 5|1 1 1|4 2


def test_split_per_utt_and_errors(tmp_path):
    d = many_speakers(tmp_path, [5, 2])
    parts = split_data_dir(d, 3, per_utt=True)
    assert [len(validate_data_dir(p).utt_ids) for p in parts] == [2, 3, 2]
    assert parts[0].parent.name == "split3utt"
    with pytest.raises(DataDirError, match=r"into 3 parts: it has 2 speakers"):
        split_data_dir(d, 3)
    with pytest.raises(DataDirError, match=r"into 8 parts: it has 7 utterances"):
        split_data_dir(d, 8, per_utt=True)


def test_split_is_a_no_op_when_up_to_date(tmp_path):
    d = many_speakers(tmp_path, [2, 2])
    parts = split_data_dir(d, 2)
    stamp = (parts[0] / "utt2spk").stat().st_mtime_ns
    os.utime(d / "text", ns=(stamp - 10**9, stamp - 10**9))  # sources older than the split
    (parts[0] / "text").write_text("marker\n")
    split_data_dir(d, 2)
    assert (parts[0] / "text").read_text() == "marker\n"  # nothing rewritten
    os.utime(d / "text", ns=(stamp + 10**9, stamp + 10**9))  # a source changed
    split_data_dir(d, 2)
    assert (parts[0] / "text").read_text() != "marker\n"
    validate_data_dir(parts[0])


# ---------------------------------------------------------------------------------------
# The CLI

def test_cli_validate_and_errors(tmp_path, capsys):
    d = base_dir(tmp_path)
    assert cli.main(["validate", str(d)]) == 0
    assert capsys.readouterr().out == f"Successfully validated data-directory {d}\n"
    (d / "text").write_text("s1-a x\ns1-b\ns2-c y\n")
    assert cli.main(["validate", str(d)]) == 1
    err = capsys.readouterr().err
    assert err == f"ERROR: {d}/text:2: utterance 's1-b' has an empty transcript\n"
    assert cli.main(["validate", "--no-text", str(base_dir(tmp_path, "e", text=None))]) == 0


def test_cli_fix_subset_split(tmp_path, capsys):
    d = base_dir(tmp_path, text="s1-a x\ns2-c y\n")
    assert cli.main(["fix", str(d)]) == 0
    assert "kept 2 utterances, dropped 1" in capsys.readouterr().out
    assert cli.main(["subset", "--first", "1", str(d), str(tmp_path / "one")]) == 0
    assert dd.load_data_dir(tmp_path / "one").utt_ids == ["s1-a"]
    assert cli.main(["split", "--per-utt", str(d), "2"]) == 0
    assert (d / "split2utt" / "2" / "utt2spk").read_text() == "s2-c s2\n"
    assert cli.main(["split", str(d), "3"]) == 1
    assert "it has 2 speakers" in capsys.readouterr().err
