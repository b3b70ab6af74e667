"""Turning an exception from a library into the short reason a one-line error message quotes."""
from __future__ import annotations


def reason(e: BaseException) -> str:
    """The first line of ``e``'s message (an OSError's strerror), printable, or its type's name."""
    text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)[:200]
