"""A model package (``model_best.pt``, ``model_last.pt``): everything that turns audio into text, in
one file that loads alone: the network, and ``inference_info``'s token list, CMVN statistics,
front-end settings and default decoding.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from bljust.config import ConfigError, from_dict, load_yaml
from bljust.data.dataset import FeatureDataset
from bljust.features.fbank import FbankConfig
from bljust.text.tokenizer import Tokenizer
from bljust.train.checkpoint import finite_state

PACKAGE_FORMAT = 2  # 1 (no "format" key): config, input_dim, vocab_size, steps and model only


def model_package(model: torch.nn.Module, model_config: dict, steps: int, inference: dict | None = None) -> dict:
    """``model_best.pt`` / ``model_last.pt``: everything that turns audio into text, nothing more.

    ``inference`` (``inference_info``) adds what lies outside the network::

        format      2
        config      the model config (dict); input_dim, vocab_size, steps (ints); model (its state dict)
        tokens      {token_type, symbols (list of str, id order), sp_model (uint8 tensor: the bytes of
                    sp.model; sentencepiece only), source (the token folder it came from)}
        cmvn        {mean, istd (float32 tensors [input_dim]: what the features were normalised with),
                    source (the stats file)}, or None: trained without CMVN
        frontend    {feats_type (fbank|raw), sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms,
                    dither, source (the frontend.yaml it was read from, or why defaults were assumed)}
        decode      default decoding settings: {method: greedy}

    A package written before format 2 has none of these; it decodes with ``--token_dir`` / ``--cmvn``.

    Why one torch file and not safetensors: the package is read with ``torch.load(weights_only=True)``
    (``load``), whose unpickler builds only tensors and plain data and refuses any other object, so
    loading a package cannot run code; that is the safety safetensors would bring. It stays a single
    file (the token list, CMVN and front end travel with the weights) and every reader (decoding,
    checkpoint averaging, ``init:`` from a package) keeps working unchanged.
    """
    package = {"config": model_config, "input_dim": model.input_dim, "vocab_size": model.vocab_size, "steps": steps,
               "model": finite_state(model, steps)}
    if inference is not None:
        package = {"format": PACKAGE_FORMAT, **package, **inference}
    return package


FRONTEND_FILE = "frontend.yaml"  # beside a dump's feats.scp: how compute_fbank made it (stage 3)
FEATS_TYPES = ("fbank", "raw")


def frontend_info(train_dir: str | Path, input_dim: int, frame_shift: float) -> dict:
    """The front end the training dump was made with, from ``<train_dir>/frontend.yaml`` (written by
    ``bljust.bin.compute_fbank``): feats_type, sample_rate and, for fbank, FbankConfig's settings;
    ``source`` says where they come from. A dump without the file (made before it was written) gets
    compute_fbank's defaults, with the dump's own dimension and rate, and ``source`` says so."""
    path = Path(train_dir) / FRONTEND_FILE
    if path.is_file():
        settings = load_yaml(path)
        feats_type = settings.pop("feats_type", "fbank")
        if feats_type not in FEATS_TYPES:
            raise ConfigError(f"{path}: feats_type must be 'fbank' or 'raw', got {feats_type!r}")
        fbank = from_dict(FbankConfig, settings, where=str(path))
        source = str(path)
    else:
        feats_type = "raw" if input_dim == 1 else "fbank"
        rate = round(1 / frame_shift) if feats_type == "raw" else FbankConfig.sample_rate
        fbank = FbankConfig(sample_rate=rate, num_mel_bins=input_dim if feats_type == "fbank" else FbankConfig.num_mel_bins)
        source = f"defaults (no {path}: a dump made before front-end settings were recorded)"
    if feats_type == "fbank" and fbank.num_mel_bins != input_dim:
        raise ConfigError(f"{path}: num_mel_bins {fbank.num_mel_bins}, but the features of {train_dir} have "
                          f"dimension {input_dim}")
    if feats_type == "raw":
        if input_dim != 1:
            raise ConfigError(f"{path}: feats_type raw, but the features of {train_dir} have dimension {input_dim}")
        return {"feats_type": "raw", "sample_rate": fbank.sample_rate, "source": source}
    return {"feats_type": "fbank", **asdict(fbank), "source": source}


def inference_info(token_dir: str | Path, tokenizer: Tokenizer, train_set: FeatureDataset, input_dim: int) -> dict:
    """What a model package carries besides the network, so that it alone turns audio into text
    (``model_package`` lists the keys): the token list (of ``token_dir``), the CMVN statistics and
    front end of the training set, and the default decoding."""
    tokens = {"token_type": tokenizer.token_type, "symbols": list(tokenizer.symbols), "source": str(token_dir)}
    if tokenizer.token_type != "char":
        tokens["sp_model"] = torch.frombuffer(bytearray(tokenizer.sp_model_bytes), dtype=torch.uint8)
    cmvn = None
    if train_set.mean is not None:
        cmvn = {"mean": torch.from_numpy(train_set.mean.copy()), "istd": torch.from_numpy(train_set.istd.copy()),
                "source": str(train_set.cmvn)}
    return {"tokens": tokens, "cmvn": cmvn, "frontend": frontend_info(train_set.dir, input_dim, train_set.frame_shift),
            "decode": {"method": "greedy"}}
