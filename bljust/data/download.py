"""Corpus downloads: resumable, checksummed, and safe archive extraction.

Every real recipe (LibriSpeech, TED-LIUM 2, CoVoST 2) fetches its archives here:

    fetch(url, "downloads", "downloads", md5="...", db_var="LIBRISPEECH")

- ``download`` writes to ``<dest>.part``, resumes it with an HTTP Range request,
  retries a transfer that drops, and renames to ``dest`` only once the checksum matches.
- ``extract`` checks every member of a tar/zip archive before writing anything and
  refuses members (or links) that would land outside the target folder.
- ``fetch`` does both and leaves ``<extract_dir>/.<archive>.done`` last, so a rerun
  after success sends no request at all.

Every failure is a ``DownloadError`` whose message names the URL (or archive) and,
given ``db_var``, tells how to point db.sh at a copy already on disk.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from bljust.fileio import atomic_write_text

CHUNK = 1 << 16
USER_AGENT = "bljust-download/1.0"
RETRY_PAUSE_S = 1.0  # pause before retry n is n * RETRY_PAUSE_S (tests set it to 0)
_MAX_LINK_HOPS = 40  # as the kernel's own limit on nested symlinks
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python < 3.11.4 has no extraction filters


class DownloadError(RuntimeError):
    """A download, checksum or extraction failed; the message says which URL/archive and why."""


class UnsafeArchiveError(DownloadError):
    """An archive member would be written (or link) outside the extraction folder."""


class _Interrupted(Exception):
    """A transfer that started but did not finish: worth resuming."""


# ---------------------------------------------------------------- messages


def _error(url: str, problem: str, db_var: str | None) -> DownloadError:
    """One sentence naming the URL, plus the db.sh hint when the recipe gave its variable."""
    hint = ""
    if db_var:
        hint = (f"; check the network connection or, if the corpus is already on disk, "
                f"set {db_var} in db.sh to its folder so nothing is downloaded")
    return DownloadError(f"cannot download {url}: {problem}{hint}.")


# ---------------------------------------------------------------- checksums


def _expected_digests(md5: str | None, sha256: str | None) -> dict[str, str]:
    return {algo: value.strip().lower() for algo, value in (("md5", md5), ("sha256", sha256)) if value}


def _file_digests(path: Path, algos: list[str]) -> dict[str, str]:
    """Hex digests of ``path`` for every algorithm, in one pass over the file."""
    hashes = {algo: hashlib.new(algo) for algo in algos}
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            for h in hashes.values():
                h.update(block)
    return {algo: h.hexdigest() for algo, h in hashes.items()}


def _mismatches(path: Path, expected: dict[str, str]) -> list[str]:
    """Human-readable mismatches between ``path`` and the expected digests (empty: it verifies)."""
    if not expected:
        return []
    actual = _file_digests(path, list(expected))
    return [f"{algo} is {actual[algo]}, expected {want}" for algo, want in expected.items() if actual[algo] != want]


# ---------------------------------------------------------------- download


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _open(url: str, offset: int, timeout: float, db_var: str | None):
    """Send the GET (with ``Range`` when resuming); None means the part is already whole (416)."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return None  # nothing left past our offset: verification decides if the part is right
        if e.code >= 500:
            raise _Interrupted(f"the server answered HTTP {e.code} {e.reason}") from e
        raise _error(url, f"the server answered HTTP {e.code} {e.reason}", db_var) from e
    except urllib.error.URLError as e:
        # Never connected (offline, refused, unknown host): retrying rarely helps, say so at once.
        raise _error(url, f"the server cannot be reached ({e.reason})", db_var) from e
    except (OSError, http.client.HTTPException) as e:
        raise _Interrupted(f"the connection failed before the response ({e!r})") from e


def _body_span(response, offset: int) -> tuple[int, int | None]:
    """(where the body starts in the file, the file's full size if known).

    A 200 is the whole file from byte 0; a 206 must start at our ``offset``.
    """
    if response.status != 206:
        length = response.headers.get("Content-Length")
        return 0, int(length) if length is not None else None
    content_range = response.headers.get("Content-Range", "")
    m = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", content_range.strip())
    if not m or int(m.group(1)) != offset:
        raise _Interrupted(f"the server resumed at {content_range!r}, not at byte {offset}")
    # The full size, not this response's length: a server may send less than we asked for.
    return offset, None if m.group(2) == "*" else int(m.group(2))


def _transfer(url: str, part: Path, *, timeout: float, progress: bool, db_var: str | None) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (restarting it on a 200)."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout, db_var)
    if response is None:
        return
    with response:
        try:
            start, total = _body_span(response, offset)
        except _Interrupted:
            part.unlink(missing_ok=True)  # a part we cannot line up with the server is worthless
            raise
        received = start
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress or not sys.stderr.isatty(), file=sys.stderr,
        ) as bar:
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
            except (OSError, http.client.HTTPException) as e:
                raise _Interrupted(f"the connection dropped after {received} bytes ({e!r})") from e
    # http.client returns a short body silently when the peer closes early: count it ourselves.
    if total is not None and received < total:
        raise _Interrupted(f"the connection closed after {received} of {total} bytes")
    if progress and not sys.stderr.isatty():  # a log file gets one line, not a redrawn bar
        print(f"download: {part.name.removesuffix('.part')}: {received / 2**20:.1f} MiB", file=sys.stderr)


def _transfer_with_retries(url: str, part: Path, *, retries: int, timeout: float, progress: bool,
                           db_var: str | None) -> None:
    """Run ``_transfer`` until the part is whole, resuming after each interruption."""
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout=timeout, progress=progress, db_var=db_var)
            return
        except _Interrupted as e:
            why = str(e)
        if attempt < retries:
            print(f"download: {url}: {why}; resuming (retry {attempt + 1} of {retries})", file=sys.stderr)
            time.sleep((attempt + 1) * RETRY_PAUSE_S)
    raise _error(url, f"{why} (gave up after {retries + 1} attempts; run again to resume from {part.name})", db_var)


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
             db_var: str | None = None, retries: int = 3, timeout: float = 60, progress: bool = True) -> Path:
    """Download ``url`` to the file ``dest``; resumable, verified, atomic. Returns ``dest``.

    An existing ``dest`` that verifies (or with no checksum given) is kept without any request.
    """
    dest = Path(dest)
    expected = _expected_digests(md5, sha256)
    if dest.exists():
        bad = _mismatches(dest, expected)
        if not bad:
            return dest
        print(f"download: {dest} does not verify ({'; '.join(bad)}); downloading it again", file=sys.stderr)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    _transfer_with_retries(url, part, retries=retries, timeout=timeout, progress=progress, db_var=db_var)
    bad = _mismatches(part, expected)
    if bad:
        # A resumed part may hold stale bytes: delete it so the next run starts clean.
        part.unlink()
        raise _error(url, f"checksum mismatch, {'; '.join(bad)} (the partial file was deleted)", db_var)
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------- archive members

# A member as (name, kind, link target); kind is file, dir, symlink, hardlink or special.
Member = tuple[str, str, str | None]


def _tar_members(tf: tarfile.TarFile) -> list[Member]:
    members = []
    for m in tf.getmembers():
        if m.issym():
            members.append((m.name, "symlink", m.linkname))
        elif m.islnk():
            members.append((m.name, "hardlink", m.linkname))
        elif m.isdir():
            members.append((m.name, "dir", None))
        elif m.isreg():
            members.append((m.name, "file", None))
        else:
            members.append((m.name, "special", None))
    return members


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16  # Unix st_mode, 0 for archives made elsewhere


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    members = []
    for info in zf.infolist():
        mode = _zip_mode(info)
        if stat.S_ISLNK(mode):
            members.append((info.filename, "symlink", zf.read(info).decode("utf-8")))
        elif info.is_dir():
            members.append((info.filename, "dir", None))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            # Only these: many zip writers (Python's own writestr) leave the file-type bits at 0.
            members.append((info.filename, "special", None))
        else:
            members.append((info.filename, "file", None))
    return members


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", name) is not None


def _resolve(path: str, links: dict[str, str]) -> list[str] | None:
    """Components of ``path`` (relative to the archive root) after following the archive's
    own symlinks; None if it ever climbs above the root, is absolute, or loops.

    Resolving through the links matters: ``d -> .`` then ``e -> d/..`` looks harmless
    lexically but ``e`` is the root's parent on disk.
    """
    pending = list(PurePosixPath(path).parts)
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        here = "/".join(done + [part])
        if here in links:
            target = links[here]
            hops += 1
            if hops > _MAX_LINK_HOPS or _is_absolute(target):
                return None
            pending = list(PurePosixPath(target).parts) + pending  # relative to the link's folder
            continue
        done.append(part)
    return done


def _member_problem(name: str, kind: str, link: str | None, links: dict[str, str]) -> str | None:
    """Why one member is unsafe to extract, or None."""
    path = PurePosixPath(name)
    if _is_absolute(name):
        return "has an absolute path"
    if ".." in path.parts:
        return "has a '..' component"
    if kind == "special":
        return "is a device or other special file"
    if kind == "symlink":
        if _is_absolute(link) or _resolve(str(path.parent / link), links) is None:
            return f"is a symlink to {link!r} outside the target folder"
        return None
    if kind == "hardlink" and (_is_absolute(link) or _resolve(link, links) is None):
        return f"is a hard link to {link!r} outside the target folder"
    if _resolve(name, links) is None:
        return "resolves outside the target folder (through a symlink)"
    return None


def _check_members(archive: Path, members: list[Member]) -> None:
    """Raise UnsafeArchiveError for the first unsafe member; runs before anything is written."""
    links = {str(PurePosixPath(name)): link for name, kind, link in members if kind == "symlink"}
    for name, kind, link in members:
        problem = _member_problem(name, kind, link, links)
        if problem:
            raise UnsafeArchiveError(f"refusing to extract {archive}: member {name!r} {problem}")


# ---------------------------------------------------------------- extraction


def _extract_tar(tf: tarfile.TarFile, into: Path) -> None:
    # The "data" filter (Python >= 3.11.4) is a second guard behind our own checks.
    if hasattr(tarfile, "data_filter"):
        tf.extractall(into, filter="data")
    else:
        tf.extractall(into)


def _extract_zip(zf: zipfile.ZipFile, into: Path) -> None:
    for info in zf.infolist():
        if stat.S_ISLNK(_zip_mode(info)):  # zipfile would write the link as a small text file
            link = into / info.filename
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(zf.read(info).decode("utf-8"), link)
        else:
            zf.extract(info, into)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _move_into(src_dir: Path, dst_dir: Path) -> None:
    """Move every entry of ``src_dir`` into ``dst_dir``, merging folders that exist in both
    (LibriSpeech's archives all unpack into one ``LibriSpeech/`` folder)."""
    for entry in src_dir.iterdir():
        dst = dst_dir / entry.name
        both_dirs = dst.is_dir() and not dst.is_symlink() and entry.is_dir() and not entry.is_symlink()
        if both_dirs:
            _move_into(entry, dst)
            continue
        if os.path.lexists(dst):
            _remove(dst)
        os.replace(entry, dst)


def extract(archive: str | os.PathLike, target_dir: str | os.PathLike) -> Path:
    """Extract a .tar, .tar.gz/.tgz, .tar.bz2 or .zip archive into ``target_dir``, safely.

    All members are checked first; the archive is unpacked into a temporary sibling folder
    whose entries are moved into ``target_dir`` only once everything is out.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    is_zip = archive.name.lower().endswith(".zip")
    try:
        opened = zipfile.ZipFile(archive) if is_zip else tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise DownloadError(f"cannot open archive {archive}: {e}; delete it and run again") from e
    with opened:
        _check_members(archive, _zip_members(opened) if is_zip else _tar_members(opened))
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.extracting-", dir=target_dir.parent))
        try:
            if is_zip:
                _extract_zip(opened, tmp)
            else:
                _extract_tar(opened, tmp)
            _move_into(tmp, target_dir)
        except _TAR_FILTER_ERROR as e:
            raise UnsafeArchiveError(f"refusing to extract {archive}: {e}") from e
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise DownloadError(f"cannot extract {archive}: {e}; delete it and run again") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target_dir


# ---------------------------------------------------------------- fetch


def archive_name(url: str) -> str:
    """The file name a URL's path ends with (``.../12/dev-clean.tar.gz`` -> ``dev-clean.tar.gz``)."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise DownloadError(f"cannot download {url}: the URL does not end with a file name.")
    return name


def fetch(url: str, download_dir: str | os.PathLike, extract_dir: str | os.PathLike, *, md5: str | None = None,
          sha256: str | None = None, db_var: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` into ``download_dir`` and extract it into ``extract_dir``; idempotent.

    The marker ``extract_dir/.<archive>.done`` is written last; once it exists nothing is
    requested again. Returns ``extract_dir``.
    """
    extract_dir = Path(extract_dir)
    name = archive_name(url)
    marker = extract_dir / f".{name}.done"
    if marker.exists():
        return extract_dir
    archive = download(url, Path(download_dir) / name, md5=md5, sha256=sha256, db_var=db_var, progress=progress)
    extract(archive, extract_dir)
    atomic_write_text(marker, url + "\n")
    return extract_dir
