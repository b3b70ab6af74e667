"""bljust.data.download against a real HTTP server on 127.0.0.1 (test/http_server.py)."""
from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from http_server import serve_directory

from bljust.bin.download import main as download_main
from bljust.data import download as dl
from bljust.data.download import DownloadError, UnsafeArchiveError, download, extract, fetch

REPO = Path(__file__).resolve().parents[1]
SIZE = 200_000


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_PAUSE_S", 0.0)


@pytest.fixture
def www(tmp_path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(random.Random(0).randbytes(SIZE))
    return root


@pytest.fixture
def server(www):
    with serve_directory(www) as s:
        yield s


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A port with nothing listening on it (bound once by us, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Archive entries: (name, kind, payload) with kind file | dir | symlink | hardlink | chardev.

def make_tar(path: Path, entries) -> Path:
    with tarfile.open(path, "w:" + {".gz": "gz", ".tgz": "gz", ".bz2": "bz2"}.get(path.suffix, "")) as tf:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE}[kind]
            info.linkname = payload if kind in ("symlink", "hardlink") else ""
            tf.addfile(info)
    return path


def make_zip(path: Path, entries) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, kind, payload in entries:
            if kind in ("file", "dir"):
                zf.writestr(name, payload or b"")  # a name ending in "/" is a folder entry
            elif kind == "symlink":
                info = zipfile.ZipInfo(name)
                info.create_system = 3  # Unix, so external_attr carries st_mode
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, payload)
            else:
                raise ValueError(kind)
    return path


def make_archive(path: Path, entries) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_zip(path, entries) if path.suffix == ".zip" else make_tar(path, entries)


# ---------------------------------------------------------------- download


def test_download_verifies_md5_and_sha256(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    dest = download(f"{server.url}/data.bin", tmp_path / "dl" / "data.bin", md5=md5(data), sha256=sha256(data),
                    progress=False)
    assert dest == tmp_path / "dl" / "data.bin"
    assert dest.read_bytes() == data
    assert not (tmp_path / "dl" / "data.bin.part").exists()
    assert server.requests == [("/data.bin", None)]


def test_progress_bar_goes_to_stderr(tmp_path, server, capsys):
    download(f"{server.url}/data.bin", tmp_path / "data.bin", progress=True)
    captured = capsys.readouterr()
    assert "data.bin" in captured.err and captured.out == ""


def test_dropped_connection_resumes_with_range(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    server.drop_after = 50_000
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", md5=md5(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests == [("/data.bin", None), ("/data.bin", "bytes=50000-")]


def test_rerun_with_part_present_sends_range(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    url, dest = f"{server.url}/data.bin", tmp_path / "data.bin"
    server.drop_after = 70_000
    with pytest.raises(DownloadError, match="resume"):
        download(url, dest, sha256=sha256(data), retries=0, progress=False)
    part = tmp_path / "data.bin.part"
    assert part.stat().st_size == 70_000 and not dest.exists()
    download(url, dest, sha256=sha256(data), progress=False)
    assert server.requests[-1] == ("/data.bin", "bytes=70000-")
    assert dest.read_bytes() == data and not part.exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path, www, server):
    data, stale = (www / "data.bin").read_bytes(), b"stale bytes from another file"
    (tmp_path / "data.bin.part").write_bytes(stale)
    server.ignore_range = True
    download(f"{server.url}/data.bin", tmp_path / "data.bin", md5=md5(data), progress=False)
    assert server.requests == [("/data.bin", f"bytes={len(stale)}-")]
    assert (tmp_path / "data.bin").read_bytes() == data


def test_complete_part_answered_416_is_verified_and_kept(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    (tmp_path / "data.bin.part").write_bytes(data)
    download(f"{server.url}/data.bin", tmp_path / "data.bin", md5=md5(data), progress=False)
    assert server.requests == [("/data.bin", f"bytes={SIZE}-")]
    assert (tmp_path / "data.bin").read_bytes() == data


def test_checksum_mismatch_leaves_no_part_and_no_dest(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    url, wrong = f"{server.url}/data.bin", "0" * 32
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "data.bin", md5=wrong, db_var="LIBRISPEECH", progress=False)
    msg = str(err.value)
    assert url in msg and wrong in msg and md5(data) in msg and "LIBRISPEECH" in msg
    assert list(tmp_path.iterdir()) == [www]


def test_existing_verified_dest_makes_no_request(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    dest = tmp_path / "data.bin"
    dest.write_bytes(data)
    assert download(f"{server.url}/data.bin", dest, md5=md5(data), sha256=sha256(data), progress=False) == dest
    assert download(f"{server.url}/data.bin", dest, progress=False) == dest
    assert server.requests == []


def test_existing_corrupt_dest_is_downloaded_again(tmp_path, www, server):
    data = (www / "data.bin").read_bytes()
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"truncated")
    download(f"{server.url}/data.bin", dest, md5=md5(data), progress=False)
    assert dest.read_bytes() == data and server.requests == [("/data.bin", None)]


def test_unreachable_server_names_url_and_db_var(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/corpus.tar.gz"
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "corpus.tar.gz", db_var="LIBRISPEECH", progress=False)
    assert url in str(err.value) and "set LIBRISPEECH in db.sh" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_http_404_names_url_and_db_var(tmp_path, server):
    url = f"{server.url}/missing.tar.gz"
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "dl" / "missing.tar.gz", db_var="TEDLIUM2", progress=False)
    assert url in str(err.value) and "404" in str(err.value) and "TEDLIUM2" in str(err.value)
    assert list((tmp_path / "dl").iterdir()) == []
    assert server.requests == [("/missing.tar.gz", None)]  # a 404 is final: no retries


# ---------------------------------------------------------------- extract

CORPUS = [
    ("Corpus/", "dir", None),
    ("Corpus/a/1.txt", "file", b"one"),
    ("Corpus/b/2.txt", "file", b"two"),
    ("Corpus/a/two.txt", "symlink", "../b/2.txt"),
]


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".zip"])
def test_extract_keeps_layout_and_merges(tmp_path, suffix):
    first = make_archive(tmp_path / f"first{suffix}", CORPUS)
    second = make_archive(tmp_path / f"second{suffix}", [("Corpus/c/3.txt", "file", b"three")])
    target = tmp_path / "out" / "target"
    assert extract(first, target) == target
    extract(second, target)
    corpus = target / "Corpus"
    assert (corpus / "a" / "1.txt").read_bytes() == b"one"
    assert (corpus / "a" / "two.txt").is_symlink() and (corpus / "a" / "two.txt").read_bytes() == b"two"
    assert (corpus / "c" / "3.txt").read_bytes() == b"three"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["target"]  # no temporary folder left


# attack: (members, the member that must be named in the refusal)
ATTACKS = {
    "dotdot": ([("../evil", "file", b"x")], "../evil"),
    "absolute": ([("/bljust-evil/abs", "file", b"x")], "/bljust-evil/abs"),
    "symlink_outside": ([("Corpus/link", "symlink", "../../evil"), ("Corpus/link/x", "file", b"x")], "Corpus/link"),
}
TAR_ONLY_ATTACKS = {
    # Lexically "d/.." is the root, but with d -> . it is the root's parent on disk.
    "symlink_chain": ([("d", "symlink", "."), ("e", "symlink", "d/.."), ("e/evil", "file", b"x")], "e"),
    "hardlink_outside": ([("Corpus/h", "hardlink", "../evil")], "Corpus/h"),
    "device": ([("Corpus/null", "chardev", None)], "Corpus/null"),
}
CASES = [(s, a) for s in (".tar.gz", ".zip") for a in ATTACKS] + [(".tar.gz", a) for a in TAR_ONLY_ATTACKS]


@pytest.mark.parametrize("suffix,attack", CASES)
def test_unsafe_archive_is_refused_before_writing(tmp_path, suffix, attack):
    evil, refused = {**ATTACKS, **TAR_ONLY_ATTACKS}[attack]
    # A harmless member first: validation must refuse the archive before writing even that.
    archive = make_archive(tmp_path / "arch" / f"bad{suffix}", [("Corpus/ok.txt", "file", b"ok")] + evil)
    with pytest.raises(UnsafeArchiveError) as err:
        extract(archive, tmp_path / "out" / "target")
    assert str(archive) in str(err.value) and repr(refused) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch"]  # no target, no temporary folder, no ../evil


# ---------------------------------------------------------------- fetch


@pytest.fixture
def corpus_archive(www) -> tuple[str, bytes]:
    path = make_tar(www / "corpus.tar.gz", CORPUS)
    return path.name, path.read_bytes()


def test_fetch_requests_once_then_never(tmp_path, server, corpus_archive):
    name, data = corpus_archive
    url, extract_dir = f"{server.url}/{name}", tmp_path / "db"
    assert fetch(url, tmp_path / "downloads", extract_dir, md5=md5(data), progress=False) == extract_dir
    assert len(server.requests) == 1
    assert (extract_dir / "Corpus" / "b" / "2.txt").read_bytes() == b"two"
    assert (extract_dir / f".{name}.done").exists() and (tmp_path / "downloads" / name).read_bytes() == data
    fetch(url, tmp_path / "downloads", extract_dir, md5=md5(data), progress=False)
    assert len(server.requests) == 1


def test_fetch_checksum_mismatch_writes_no_marker(tmp_path, server, corpus_archive):
    name, _ = corpus_archive
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(f"{server.url}/{name}", tmp_path / "downloads", tmp_path / "db", sha256="f" * 64, progress=False)
    assert not (tmp_path / "db").exists()
    assert list((tmp_path / "downloads").iterdir()) == []


# ---------------------------------------------------------------- CLI


def test_cli_downloads_and_extracts(tmp_path, server, corpus_archive):
    name, data = corpus_archive
    rc = download_main(["--url", f"{server.url}/{name}", "--download_dir", str(tmp_path / "dl"),
                        "--extract_dir", str(tmp_path / "db"), "--md5", md5(data)])
    assert rc == 0
    assert (tmp_path / "db" / "Corpus" / "a" / "1.txt").read_bytes() == b"one"


def test_cli_failure_prints_error_and_exits_1(tmp_path, server):
    url = f"{server.url}/missing.tar.gz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "bljust.bin.download", "--url", url, "--download_dir",
                           str(tmp_path / "dl"), "--db_var", "COVOST2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and url in proc.stderr and "COVOST2" in proc.stderr


def test_cli_takes_the_digest_from_a_checksum_file(tmp_path, server, corpus_archive, capsys):
    name, data = corpus_archive
    sums = tmp_path / "checksums.txt"
    sums.write_text(f"# digests\n{hashlib.sha256(data).hexdigest()}  {name}\n{'0' * 32}  other.tar.gz\n")
    args = ["--url", f"{server.url}/{name}", "--checksums", str(sums)]
    assert download_main([*args, "--download_dir", str(tmp_path / "ok")]) == 0
    sums.write_text(f"{'0' * 64}  {name}\n")  # a wrong SHA-256
    assert download_main([*args, "--download_dir", str(tmp_path / "bad")]) == 1
    assert "ERROR: " in capsys.readouterr().err and not (tmp_path / "bad" / name).exists()
    sums.write_text(f"abc  {name}\n")
    assert download_main([*args, "--download_dir", str(tmp_path / "odd")]) == 1
    assert f"{sums}:1: 'abc' is neither an MD5 nor a SHA-256 digest" in capsys.readouterr().err
