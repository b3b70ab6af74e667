"""A packed model: a model package with the decoding it was scored with, lexicon and LM included.

``bljust.bin.pack`` (asr.sh stage 8) writes one per experiment and decode config. On top of the
package's network, token list, CMVN and front end (``bljust.train.package.model_package``) it
holds::

    decode      the decode config's search settings (``SEARCH_KEYS``), the package's default decoding
    lexicon     {data (uint8 tensor: the file's bytes), source (the file it came from)}: with one
    lm          the same, of the KenLM n-gram (ARPA or binary): with one

so ``transcribe`` and ``Speech2Text`` decode with it as stage 6 did, with no other file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch

from bljust.decode.config import SEARCH_KEYS, DecodeConfig
from bljust.train.checkpoint import CheckpointError

LANG_FILES = ("lexicon", "lm")
GREEDY = {"method": "greedy"}  # the decoding of a package as training writes it


def pack(package: dict, config: DecodeConfig) -> dict:
    """``package`` with ``config``'s search as its default decoding, and the bytes of its lexicon and LM."""
    if package.get("tokens") is None:
        raise ValueError("it carries no token list (written before packages did), so it cannot be packed; "
                         "bljust.bin.decode --token_dir decodes it")
    settings = asdict(config)
    packed = {**package, "decode": {key: settings[key] for key in SEARCH_KEYS}}
    for key in LANG_FILES:
        packed.pop(key, None)
        path = getattr(config, key)
        if path is not None:
            data = Path(path).read_bytes()
            packed[key] = {"data": torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else
                           torch.zeros(0, dtype=torch.uint8), "source": str(path)}
    return packed


def decode_settings(package: dict, path: str | os.PathLike) -> dict:
    """The package's default decoding: DecodeConfig search keys ({"method": "greedy"} for a model
    package as training writes it). CheckpointError for damaged settings."""
    settings = package.get("decode") or GREEDY
    if not isinstance(settings, dict) or not set(settings) <= set(SEARCH_KEYS) or "method" not in settings:
        raise CheckpointError(f"{path}: its decode settings are damaged (expected a dict of {', '.join(SEARCH_KEYS)})")
    return dict(settings)


def describe(package: dict) -> str:
    """"beam 500, lexicon (<source>), LM (<source>)": what a package decodes with by default."""
    settings = package.get("decode") or GREEDY
    parts = [settings["method"] if settings["method"] == "greedy" else f"beam {settings.get('beam_size', 10)}"]
    parts += [f"{'LM' if key == 'lm' else key} ({package[key]['source']})" for key in LANG_FILES if package.get(key)]
    return ", ".join(parts)


@contextlib.contextmanager
def unpacked(package: dict, path: str | os.PathLike) -> Iterator[dict[str, str | None]]:
    """{"lexicon": file or None, "lm": file or None}: the package's lexicon and LM written to temporary
    files (flashlight and KenLM read files), removed on exit; a beam search built inside keeps them in
    memory. CheckpointError naming ``path`` for a damaged entry."""
    with tempfile.TemporaryDirectory(prefix="bljust_lang_") as tmp:
        files: dict[str, str | None] = dict.fromkeys(LANG_FILES)
        for key in LANG_FILES:
            entry = package.get(key)
            if entry is None:
                continue
            data = entry.get("data") if isinstance(entry, dict) else None
            if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.dim() != 1:
                raise CheckpointError(f"{path}: its {key} is damaged (expected the file's bytes)")
            files[key] = os.path.join(tmp, f"{key}{Path(str(entry.get('source', ''))).suffix}")
            Path(files[key]).write_bytes(data.numpy().tobytes())
        try:
            yield files
        except ValueError as e:  # the file it was packed from, not the temporary one
            message = str(e)
            for key, file in files.items():
                if file:
                    message = message.replace(file, str(package[key].get("source", key)))
            if message == str(e):
                raise
            raise ValueError(f"{path}: {message}") from None
