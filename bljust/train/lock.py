"""One training run per experiment folder: the lock file ``<exp_dir>/.lock``."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable


class LockError(RuntimeError):
    """The experiment folder is locked by another run (or the lock cannot be made); one line."""


def _warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def _pid_running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (signal 0 checks without signalling). A zombie
    (killed, not yet reaped by its parent, as right after a SIGKILL) does not run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    try:  # Linux: the state is the field after the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ExpLock:
    """``<exp_dir>/.lock``: held by one training run at a time.

    ``acquire`` creates the file with ``O_CREAT | O_EXCL`` (atomic: of two runs, one creates it and
    the other sees it) and writes ``{"pid": ..., "host": ..., "started": ...}`` into it; ``release``
    removes it, if it is still this process's. A lock already there is

    - held by a live process on this host (``os.kill(pid, 0)`` succeeds, or fails with
      PermissionError: another user's process): refused with ``LockError``;
    - stale, its process gone from this host (ProcessLookupError): taken over with a warning;
    - from another host, whose processes cannot be checked: refused, saying to remove the file
      if that run is dead;
    - unreadable (not the JSON this class writes, after a short wait for a writer): refused.

    A run that dies without clean-up (SIGKILL, a SIGTERM before training starts, where the
    trainer's own handler is not yet in place) leaves a stale lock for the next run to take over. A run
    taking over a stale lock re-reads it just before removing it, so of two runs taking it over
    at once only one gets it, unless the other's new lock appears in the microseconds between
    that read and the removal (a race this simple lock does not close).

    Used as ``with ExpLock(exp_dir): ...`` or with ``acquire()`` / ``release()``.
    """

    def __init__(self, exp_dir: str | os.PathLike, warn: Callable[[str], None] = _warn):
        self.exp_dir = Path(exp_dir)
        self.path = self.exp_dir / ".lock"
        self.warn = warn
        self._content: bytes | None = None  # what this process wrote, while it holds the lock
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        return self._content is not None

    def acquire(self) -> None:
        """Take the lock, or raise ``LockError`` naming the exp_dir and the holder's pid and host."""
        if self.held:
            return
        try:
            self._acquire()
        except OSError as e:  # a folder that cannot be made, a full disk
            raise LockError(f"cannot take the lock {self.path}: {e.strerror or e}") from None

    def _acquire(self) -> None:
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        host, pid = socket.gethostname(), os.getpid()
        content = json.dumps({"pid": pid, "host": host, "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        for _ in range(5):  # another run may take over or release the lock between our steps
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale(host)
                continue
            try:
                if os.write(fd, content) != len(content):
                    raise OSError(f"short write to {self.path}")
            except OSError:
                os.close(fd)
                self.path.unlink()
                raise
            os.close(fd)
            self._content, self._pid = content, pid
            return
        raise LockError(f"{self.exp_dir} is locked ({self.path} keeps reappearing); is another run starting?")

    def _take_over_if_stale(self, host: str) -> None:
        """Remove the lock there if its process is gone; raise ``LockError`` if it may be running."""
        raw, holder = self._read()
        if raw is None:  # released meanwhile: try again
            return
        remove = f"if that run is dead, remove {self.path}"
        if holder is None:
            raise LockError(f"{self.exp_dir} is locked by {self.path}, which is unreadable; {remove}")
        pid, lock_host = holder["pid"], holder["host"]
        who = f"pid {pid} on host {lock_host}" + (f", started {holder['started']}" if holder.get("started") else "")
        if lock_host != host:
            raise LockError(f"{self.exp_dir} is in use by another training run ({who}); it cannot be checked "
                            f"from {host}: {remove}")
        if _pid_running(pid):
            raise LockError(f"{self.exp_dir} is in use by another training run ({who}); wait for it to end, "
                            f"stop it, or use another --exp_dir (if pid {pid} is not a training run, remove {self.path})")
        # Stale. Remove it only if it is still the file judged stale (not one another run just made).
        if self._read()[0] == raw:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.warn(f"taking over the stale lock {self.path} of {who} (no such process)")

    def _read(self) -> tuple[bytes | None, dict | None]:
        """(the lock's bytes or None if absent, the holder or None if unreadable). A lock just
        created may not be written yet: an unreadable one is read again for up to a second."""
        for attempt in range(11):
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return None, None
            try:
                holder = json.loads(raw)
                if isinstance(holder, dict) and isinstance(holder.get("pid"), int) and isinstance(holder.get("host"), str):
                    return raw, holder
            except ValueError:
                pass
            if attempt < 10:
                time.sleep(0.1)
        return raw, None

    def release(self) -> None:
        """Remove the lock if this process holds it (a forked child never removes its parent's)."""
        if not self.held or os.getpid() != self._pid:
            return
        try:
            if self.path.read_bytes() == self._content:
                self.path.unlink()
        except OSError:  # gone already, or unreadable: leave it (the next run judges it stale)
            pass
        self._content = None

    def __enter__(self) -> ExpLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

