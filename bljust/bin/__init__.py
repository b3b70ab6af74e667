"""Command-line programs, one per pipeline step, run as ``python -m bljust.bin.<tool>``.

Every program's ``main`` is wrapped by ``cli``: bad input (a ``ValueError``, which bljust raises
with a message naming the file and line or utterance) and what the environment can do to a run
(a full or read-only disk, a missing permission, memory running out) end it with one line on
stderr and exit status 1, instead of a traceback. Nothing is left half-written: every file is
written under a temporary name and renamed when complete (``bljust/fileio.py``). With
``BLJUST_TRACEBACK=1`` in the environment the error is raised with its traceback instead.
"""
from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Callable

from bljust.errors import reason

# What to do about an environment error, by errno.
_ADVICE = {
    errno.ENOSPC: "free some space and run the same command again (completed files are kept; "
                  "a training run continues from its newest checkpoint)",
    errno.EDQUOT: "the disk quota is used up; free some space and run the same command again",
    errno.EROFS: "the file system is read-only; write the output elsewhere",
    errno.EACCES: "check the permissions of the file and its folder",
    errno.EPERM: "check the permissions of the file and its folder",
}


def describe_os_error(e: OSError) -> str:
    """'<path>: <what went wrong>[; <what to do>]' for an OSError."""
    what = reason(e)
    where = f"{e.filename} -> {e.filename2}" if e.filename2 else e.filename
    message = f"{where}: {what}" if where else what
    advice = _ADVICE.get(e.errno)
    return f"{message}; {advice}" if advice else message


def cli(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """``main(argv) -> exit status``, with environment errors turned into one line and status 1."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except (ValueError, OSError, MemoryError) as e:
            if os.environ.get("BLJUST_TRACEBACK"):
                raise
            if isinstance(e, OSError):
                message = describe_os_error(e)
            elif isinstance(e, MemoryError):
                message = "out of memory (host RAM); use smaller batches or fewer parallel jobs"
            else:
                message = str(e)
        print(f"ERROR: {message}", file=sys.stderr)
        return 1

    return run
