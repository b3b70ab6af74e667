"""Crash-safe file writing: every file the toolkit produces goes through here.

A reader never sees a half-written file, and an interrupted write leaves the
previous version untouched: data is written to a temporary file in the same
folder, flushed to disk, then renamed over the target (rename is atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _MODE)
    try:
        if "b" in mode:
            f = os.fdopen(fd, mode)
        else:
            f = os.fdopen(fd, mode, encoding=encoding)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _raise_naming(e, path)
        raise


def _raise_naming(e: BaseException, path: Path) -> None:
    """Re-raise a failed write of ``path`` as an OSError that names it, where ``e`` does not: a
    file object's write() gives an OSError without a file name, and a library's writer (torch.save)
    a RuntimeError when the disk is full."""
    if isinstance(e, OSError) and not e.filename:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    if isinstance(e, RuntimeError) and shutil.disk_usage(path.parent).free < 1 << 20:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for a library that writes files itself (torch.save, soundfile).

    The temporary path keeps ``path``'s suffix so format detection by extension still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _MODE)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _raise_naming(e, path)
        raise
