"""Download a corpus archive (resumable, checksummed) and optionally extract it.

    python -m bljust.bin.download --url https://www.openslr.org/resources/12/dev-clean.tar.gz \\
        --download_dir downloads --extract_dir downloads --md5 MD5 --db_var LIBRISPEECH

The archive is saved under --download_dir with the URL's file name; an interrupted run
resumes where it stopped. With --extract_dir it is also extracted there (once: a
``.<archive>.done`` marker makes reruns free). ``--checksums FILE`` looks the archive up
in a file in md5sum's format ("<digest>  <archive name>" per line; 32 hex digits are an
MD5, 64 a SHA-256), as recipes keep them in ``local/checksums.txt``. A failure prints
``ERROR: <message>`` and exits with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.data.download import DownloadError, archive_name, download, fetch

DIGEST_KINDS = {32: "md5", 64: "sha256"}


def checksum_from_file(path: str, archive: str) -> dict[str, str]:
    """``{"md5": ...}`` or ``{"sha256": ...}`` for ``archive`` in an md5sum-style file; {} if absent."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) == 2 and not fields[0].startswith("#") and fields[1].lstrip("*") == archive:
                kind = DIGEST_KINDS.get(len(fields[0]))
                if kind is None:
                    raise ValueError(f"{path}:{lineno}: '{fields[0]}' is neither an MD5 nor a SHA-256 digest")
                return {kind: fields[0]}
    return {}


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.download", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--url", required=True, help="URL of the archive")
    p.add_argument("--download_dir", required=True, help="folder the archive is saved in")
    p.add_argument("--extract_dir", help="also extract the archive into this folder (default: not extracted)")
    digest = p.add_mutually_exclusive_group()
    digest.add_argument("--md5", help="expected MD5 hex digest of the archive")
    digest.add_argument("--sha256", help="expected SHA-256 hex digest of the archive")
    digest.add_argument("--checksums", help="md5sum-style file holding the archive's digest (no line: not verified)")
    p.add_argument("--db_var", help="db.sh variable named in error messages (e.g. LIBRISPEECH)")
    args = p.parse_args(argv)
    checks = dict(md5=args.md5, sha256=args.sha256, db_var=args.db_var)
    try:
        if args.checksums:
            found = checksum_from_file(args.checksums, archive_name(args.url))
            if not found:
                print(f"WARNING: no checksum for {archive_name(args.url)} in {args.checksums}: it will not be verified",
                      file=sys.stderr)
            checks.update(found)
        if args.extract_dir:
            out = fetch(args.url, args.download_dir, args.extract_dir, **checks)
        else:
            out = download(args.url, Path(args.download_dir) / archive_name(args.url), **checks)
    except (DownloadError, ValueError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print(f"download: {args.url} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
