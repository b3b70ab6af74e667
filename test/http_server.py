"""A tiny HTTP file server on 127.0.0.1 for download tests (a helper, not a test file).

    from http_server import serve_directory

    with serve_directory(tmp_path / "www") as server:
        download(f"{server.url}/corpus.tar.gz", ...)
        assert server.requests == [("/corpus.tar.gz", None)]

It serves files under ``root`` with Content-Length, answers single ``Range: bytes=N-``
and ``bytes=N-M`` requests with 206 + Content-Range (416 past the end), 404 for anything
missing. Setting ``server.drop_after = n`` cuts the next file response after n body bytes
by closing the connection, once, like a network drop. ``server.ignore_range = True``
makes it answer every request with the whole file (200), like a server without ranges.
"""
from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class FileServer(ThreadingHTTPServer):
    """The server, plus the state tests read and set."""

    daemon_threads = True

    def __init__(self, root: Path, drop_after: int | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.drop_after = drop_after
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def take_drop_after(self) -> int | None:
        """The byte count at which to cut this response; it applies to one response only."""
        with self.lock:
            n, self.drop_after = self.drop_after, None
            return n


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=N-`` / ``bytes=N-M`` range; None: serve it all."""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", (header or "").strip())
    if not m:
        return None
    first = int(m.group(1))
    if m.group(2) and int(m.group(2)) < first:
        return None  # an invalid range is ignored (RFC 9110), as real servers do
    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return first, last


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def _file(self) -> Path | None:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = (self.server.root / rel).resolve()
        if not path.is_relative_to(self.server.root) or not path.is_file():
            return None
        return path

    def do_GET(self):
        range_header = self.headers.get("Range")
        with self.server.lock:
            self.server.requests.append((urllib.parse.urlsplit(self.path).path, range_header))
        path = self._file()
        if path is None:
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        span = None if self.server.ignore_range else _parse_range(range_header, len(data))
        if span is not None and span[0] >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if span is None:
            self.send_response(200)
            body = data
        else:
            first, last = span
            body = data[first : last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = self.server.take_drop_after()
        if cut is not None:
            # Send part of the promised body, then hang up: the client sees a short read.
            self.wfile.write(body[:cut])
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve_directory(root: Path, *, drop_after: int | None = None) -> Iterator[FileServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) from a daemon thread for the ``with`` block."""
    server = FileServer(root, drop_after=drop_after)
    # A short poll interval keeps shutdown (and so each test's teardown) fast.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
