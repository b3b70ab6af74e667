"""Shared fixtures: tiny feature dump directories made on the fly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bljust.data.dataset import write_dump
from bljust.features.cmvn import accumulate_stats, save_stats
from bljust.text.tokenizer import build_tokenizer

WORDS = ["CAT", "DOG", "BIRD", "FISH"]


def make_dump(path: Path, n_utts: int, seed: int, labeled: bool = True, frames=(60, 140)) -> list[np.ndarray]:
    """A feature dump dir whose 80-dim features carry the words as band patterns."""
    rng = np.random.default_rng(seed)
    text, mats = {}, {}
    for i in range(n_utts):
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=2)]
        n = int(rng.integers(*frames))
        mat = rng.normal(size=(n, 80)).astype(np.float32)
        for k, w in enumerate(words):
            band = WORDS.index(w) * 20
            mat[k * n // 2 : (k + 1) * n // 2, band : band + 20] += 3.0
        utt = f"spk{seed}-{i:04d}"
        text[utt], mats[utt] = " ".join(words), mat
    write_dump(path, mats, text if labeled else None)
    return list(mats.values())


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict[str, str]:
    """Labeled, unlabeled and validation dumps, CMVN stats and a character token list."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    mats = make_dump(root / "train", 24, seed=1)
    make_dump(root / "unlabeled", 24, seed=2, labeled=False)
    make_dump(root / "valid", 6, seed=3)
    save_stats(root / "cmvn.ark", accumulate_stats(mats))
    build_tokenizer([" ".join(WORDS)], root / "tokens", "char")
    return {"train_dir": str(root / "train"), "valid_dir": str(root / "valid"), "unlabeled_dir": str(root / "unlabeled"),
            "token_dir": str(root / "tokens"), "cmvn": str(root / "cmvn.ark")}
