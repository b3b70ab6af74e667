"""Load a trained model package (``model_best.pt`` / ``model_last.pt``) for inference.

A package of format 2 (``bljust.train.package.model_package`` lists its keys) carries its
token list, CMVN statistics and front-end settings, so it decodes alone; one written before
carries the network only, and needs the token folder and CMVN statistics it was trained with.
Given both, a token list or CMVN that differs from the package's is an error naming both.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from bljust.config import from_dict
from bljust.errors import reason
from bljust.features.cmvn import load_stats
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.text.tokenizer import TokenListError, Tokenizer
from bljust.train import checkpoint
from bljust.train.checkpoint import CheckpointError

Cmvn = tuple[np.ndarray, np.ndarray]  # (mean, inverse std), float32 [D]


def model_from_package(pkg: dict, path: str | os.PathLike, device: str = "cpu") -> AsrModel:
    model = AsrModel(pkg["input_dim"], pkg["vocab_size"], from_dict(ModelConfig, pkg["config"], where=str(path)))
    model.load_state_dict(pkg["model"])
    return model.to(torch.device(device)).eval()


def load_model(path: str | os.PathLike, device: str = "cpu") -> AsrModel:
    return model_from_package(checkpoint.load(path), path, device)


def package_tokenizer(pkg: dict, path: str | os.PathLike) -> Tokenizer | None:
    """The package's own token list as a Tokenizer; None for a package without one (format 1)."""
    tokens = pkg.get("tokens")
    if tokens is None:
        return None
    # Through a token folder, so the package's list gets the same checks as a folder's.
    with tempfile.TemporaryDirectory(prefix="bljust_tokens_") as tmp:
        try:
            symbols, token_type, sp_model = tokens["symbols"], tokens["token_type"], tokens.get("sp_model")
            (Path(tmp) / "tokens.txt").write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")
            (Path(tmp) / "tokenizer.yaml").write_text(yaml.safe_dump({"token_type": token_type}), encoding="utf-8")
            if sp_model is not None:
                (Path(tmp) / "sp.model").write_bytes(sp_model.numpy().tobytes())
            tokenizer = Tokenizer(tmp)  # a sentencepiece model is read into memory: the folder may go
        except (KeyError, TypeError, AttributeError, TokenListError) as e:
            what = reason(e).replace(tmp + os.sep, "")
            raise CheckpointError(f"{path}: its token list is damaged ({what})") from None
    if tokenizer.vocab_size != pkg["vocab_size"]:
        raise CheckpointError(f"{path}: its token list has {tokenizer.vocab_size} tokens, its model {pkg['vocab_size']}")
    return tokenizer


def resolve_tokenizer(pkg: dict, path: str | os.PathLike, token_dir: str | os.PathLike | None) -> Tokenizer:
    """The token list to decode with: ``token_dir``'s, which must equal the package's where it has one
    (every symbol, the token type and a sentencepiece model), or else the package's own."""
    own = package_tokenizer(pkg, path)
    if token_dir is None:
        if own is None:
            raise ValueError(f"{path} carries no token list (written before packages did): give the token "
                             "folder it was trained with (--token_dir)")
        return own
    given = Tokenizer(token_dir)
    tokens_txt = Path(token_dir) / "tokens.txt"
    advice = "decode with the token list it was trained with" + (" (or leave --token_dir out: the package carries "
                                                                  "its own)" if own is not None else "")
    if given.vocab_size != pkg["vocab_size"]:
        raise ValueError(f"{tokens_txt} has {given.vocab_size} tokens, but {path} was trained with "
                         f"{pkg['vocab_size']}: {advice}")
    if own is None:
        return given
    for i, (mine, theirs) in enumerate(zip(given.symbols, own.symbols)):
        if mine != theirs:
            raise ValueError(f"{tokens_txt}:{i + 1}: token {i} is '{mine}', but {path} was trained with '{theirs}' "
                             f"as token {i} (its token list: {pkg['tokens'].get('source', '?')}): {advice}")
    if given.token_type != own.token_type:
        raise ValueError(f"{Path(token_dir) / 'tokenizer.yaml'}: token_type {given.token_type}, but {path} was trained "
                         f"with {own.token_type}: {advice}")
    sp_model = pkg["tokens"].get("sp_model")
    if sp_model is not None and (Path(token_dir) / "sp.model").read_bytes() != sp_model.numpy().tobytes():
        raise ValueError(f"{Path(token_dir) / 'sp.model'} differs from the sentencepiece model {path} was trained "
                         f"with: {advice}")
    return given


def package_cmvn(pkg: dict) -> Cmvn | None:
    """The package's CMVN (mean, inverse std); None when it was trained without, or does not say (format 1)."""
    cmvn = pkg.get("cmvn")
    if cmvn is None:
        return None
    return cmvn["mean"].numpy().astype(np.float32), cmvn["istd"].numpy().astype(np.float32)


def resolve_cmvn(pkg: dict, path: str | os.PathLike, cmvn: str | os.PathLike | None) -> Cmvn | None:
    """The CMVN to decode with: ``cmvn``'s statistics, which must equal the package's where it records
    them, or else the package's own (None: no normalisation)."""
    if "cmvn" not in pkg:  # format 1: the caller says
        return load_stats(cmvn) if cmvn else None
    own = package_cmvn(pkg)
    if cmvn is None:
        return own
    mean, istd = load_stats(cmvn)
    if own is None:
        raise ValueError(f"{cmvn}: {path} was trained without CMVN; leave --cmvn out")
    if mean.shape != own[0].shape:
        raise ValueError(f"{cmvn}: CMVN statistics of dimension {mean.shape[0]}, but {path} was trained with CMVN of "
                         f"dimension {own[0].shape[0]} ({pkg['cmvn'].get('source', '?')}); leave --cmvn out: the "
                         "package carries its own")
    if not (np.array_equal(mean, own[0]) and np.array_equal(istd, own[1])):
        raise ValueError(f"{cmvn}: other CMVN statistics than {path} was trained with ({pkg['cmvn'].get('source', '?')}); "
                         "leave --cmvn out: the package carries its own")
    return mean, istd
