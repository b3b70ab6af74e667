"""The bad-input matrix: every file a command reads, damaged in every way a user meets, gives a
one-line named error.

Each case runs a ``python -m bljust.bin.<tool>`` program in-process on a copy of a small
prepared workspace, with one input damaged (missing, empty, truncated, garbage, of the wrong
size, mismatched with another input, unreadable) or the output location failing (a full or
read-only disk). It asserts:
- exit status != 0, and no traceback;
- exactly one ``ERROR:`` line, naming the file and, where it applies, the line or utterance;
- nothing written or changed where the program writes, apart from complete log files.

The process runs as root in CI, where permissions do not stop a read: "unreadable" is a
folder where a file is expected, and a failing disk is an ``OSError`` raised by the file writer.
"""
from __future__ import annotations

import errno
import hashlib
import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from bljust.data.dataset import write_dump
from bljust.data.datadir import write_data_dir
from conftest import make_dump, WORDS
from bljust.features.cmvn import accumulate_stats, save_stats
from bljust.text.tokenizer import build_tokenizer

TRAIN_YAML = """\
encoder_conf: {cnn_layers: 2, latent_dim: 24, lstm_layers: 1, lstm_units: 16, dropout: 0.0}
unsup_conf: {steps: 3, num_negatives: 8, ar_dim: 32}
max_epochs: 1
phases:
  train: {steps: 2}
batch: {max_frames: 800}
diag_interval: 0
tensorboard: false
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """data/train (audio), dump/{train,valid} (features), cmvn.ark, tokens/, lang/, conf/ and a
    trained model package exp/model, as the pipeline's stages leave them."""
    from bljust.bin import make_lang, train

    root = tmp_path_factory.mktemp("workspace")
    rng = np.random.default_rng(0)
    wavs = {}
    for i in range(3):
        utt = f"spk1-{i:04d}"
        wavs[utt] = root / "audio" / f"{utt}.wav"
        wavs[utt].parent.mkdir(exist_ok=True)
        sf.write(wavs[utt], (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    write_data_dir(root / "data" / "train", wav_scp={u: str(p) for u, p in wavs.items()},
                   utt2spk={u: "spk1" for u in wavs}, text={u: "CAT DOG" for u in wavs})
    mats = make_dump(root / "dump" / "train", 12, seed=1)
    make_dump(root / "dump" / "valid", 4, seed=3)
    save_stats(root / "cmvn.ark", accumulate_stats(mats))
    build_tokenizer([" ".join(WORDS)], root / "tokens", "char")
    (root / "conf").mkdir()
    (root / "conf" / "train.yaml").write_text(TRAIN_YAML)
    (root / "conf" / "decode.yaml").write_text("method: greedy\n")
    (root / "conf" / "decode_lm.yaml").write_text("method: beam\nbeam_size: 4\nlexicon: lang/lexicon.txt\n"
                                                  "lm: lang/lm_word.arpa\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert make_lang.main(["--text", "dump/train/text", "--token_dir", "tokens", "--out_dir", "lang"]) == 0
        assert train.main(TRAIN_ARGS + ["--exp_dir", "exp/model"]) == 0
    finally:
        os.chdir(cwd)
    return root


TRAIN_ARGS = ["--config", "conf/train.yaml", "--train_dir", "dump/train", "--valid_dir", "dump/valid",
              "--token_dir", "tokens", "--cmvn", "cmvn.ark"]
DECODE_ARGS = ["--config", "conf/decode.yaml", "--exp_dir", "exp/model", "--data_dir", "dump/valid",
               "--token_dir", "tokens", "--cmvn", "cmvn.ark", "--out_dir", "out/decode"]


# ---- ways to damage a file ---------------------------------------------------------------------

def missing(path: str) -> Callable[[Path], None]:
    return lambda w: (w / path).unlink()


def empty(path: str) -> Callable[[Path], None]:
    return lambda w: (w / path).write_bytes(b"")


def truncated(path: str, keep: float = 0.5) -> Callable[[Path], None]:
    def damage(w: Path) -> None:
        data = (w / path).read_bytes()
        (w / path).write_bytes(data[: int(len(data) * keep)])
    return damage


def garbage(path: str, content: bytes = bytes(range(256)) * 4) -> Callable[[Path], None]:
    return lambda w: (w / path).write_bytes(content)


def text(path: str, content: str) -> Callable[[Path], None]:
    return lambda w: (w / path).write_text(content)


def edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def damage(w: Path) -> None:
        content = (w / path).read_text()
        assert old in content, (path, old)
        (w / path).write_text(content.replace(old, new, 1))
    return damage


def line(path: str, n: int, new: str) -> Callable[[Path], None]:
    """Line ``n`` (1-based) replaced by ``new``."""
    def damage(w: Path) -> None:
        lines = (w / path).read_text().splitlines(True)
        lines[n - 1] = new + "\n"
        (w / path).write_text("".join(lines))
    return damage


def a_folder(path: str) -> Callable[[Path], None]:
    """Unreadable as a file (root reads any file whatever its permissions)."""
    def damage(w: Path) -> None:
        (w / path).unlink()
        (w / path).mkdir()
    return damage


def disk_error(code: int) -> Callable[[Path], None]:
    """Every file the program writes through bljust.fileio (all of them) fails with ``code``."""
    def damage(w: Path) -> None:
        import bljust.fileio as fileio

        real = fileio.tempfile.mkstemp

        def failing(*args, **kwargs):
            fd, tmp = real(*args, **kwargs)
            os.close(fd)
            os.unlink(tmp)
            raise OSError(code, os.strerror(code), tmp)

        DISK_PATCHES.append((fileio.tempfile, "mkstemp", failing))
    return damage


DISK_PATCHES: list[tuple] = []


@dataclass
class Case:
    id: str
    tool: str  # bljust.bin.<tool>
    args: list[str]
    damage: Callable[[Path], None]
    names: list[str]  # what the error line must contain (file, line, utterance)
    outputs: list[str] = field(default_factory=list)  # where the program writes: must stay as it was
    complete: list[str] = field(default_factory=list)  # files it may write (whole) before it meets the damage


CASES = [
    # -- train: the config
    Case("train/config missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("conf/train.yaml"),
         ["conf/train.yaml"], ["exp/new"]),
    Case("train/config garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], text("conf/train.yaml", "a: [1\n"),
         ["conf/train.yaml"], ["exp/new"]),
    Case("train/config not a mapping", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], text("conf/train.yaml", "- 1\n"),
         ["conf/train.yaml"], ["exp/new"]),
    Case("train/config unknown key", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         edit("conf/train.yaml", "max_epochs: 1", "max_epoch: 1"), ["conf/train.yaml", "max_epoch"], ["exp/new"]),
    Case("train/config wrong type", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         edit("conf/train.yaml", "max_epochs: 1", "max_epochs: one"), ["conf/train.yaml", "max_epochs"], ["exp/new"]),
    Case("train/config folder", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], a_folder("conf/train.yaml"),
         ["conf/train.yaml"], ["exp/new"]),
    # -- train: the features
    Case("train/feats.scp missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("dump/train/feats.scp"),
         ["dump/train/feats.scp"], ["exp/new"]),
    Case("train/feats.scp empty", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], empty("dump/train/feats.scp"),
         ["dump/train"], ["exp/new"]),
    Case("train/feats.scp garbage line", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         edit("dump/train/feats.scp", "spk1-0003 ", "spk1-0003"), ["dump/train/feats.scp", "spk1-0003"], ["exp/new"]),
    Case("train/feats.ark truncated", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         truncated("dump/train/feats.ark", 0.6), ["dump/train/feats.ark", "spk1-0007"], ["exp/new"],
         complete=["exp/new/config.yaml"]),  # met in training: the utterance is read in its batch
    Case("train/feats.ark truncated, read by a worker process", "train",
         TRAIN_ARGS + ["--exp_dir", "exp/new", "--batch.num_workers", "1"], truncated("dump/train/feats.ark", 0.6),
         ["dump/train/feats.ark", "spk1-0007"], ["exp/new"], complete=["exp/new/config.yaml"]),
    Case("train/training set empty", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         lambda w: [(w / "dump/train" / f).write_text("") for f in ("feats.scp", "utt2num_frames", "text")],
         ["dump/train", "no utterances"], ["exp/new"]),
    Case("train/feats.ark missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("dump/train/feats.ark"),
         ["dump/train/feats.ark"], ["exp/new"]),
    Case("train/feats.ark garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], garbage("dump/train/feats.ark"),
         ["dump/train/feats.ark"], ["exp/new"]),
    Case("train/utt2num_frames missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         missing("dump/train/utt2num_frames"), ["dump/train/utt2num_frames"], ["exp/new"]),
    Case("train/text missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("dump/train/text"),
         ["dump/train/text"], ["exp/new"]),
    Case("train/text of other utterances", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         edit("dump/train/text", "spk1-0011", "spk1-0099"), ["dump/train/text", "spk1-0011"], ["exp/new"]),
    Case("train/text unsorted", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         edit("dump/train/text", "spk1-0002", "spk1-9999"), ["dump/train/text:4", "spk1-0003"], ["exp/new"]),
    Case("train/text without a transcript", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         line("dump/train/text", 3, "spk1-0002"), ["dump/train/text:3", "spk1-0002"], ["exp/new"]),
    Case("train/valid dump empty", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], empty("dump/valid/feats.scp"),
         ["dump/valid"], ["exp/new"]),
    Case("train/features of another dimension", "train", ["--config", "conf/train.yaml", "--train_dir", "dump/train",
         "--valid_dir", "dump/valid", "--token_dir", "tokens", "--cmvn", "cmvn40.ark", "--exp_dir", "exp/new"],
         lambda w: save_stats(w / "cmvn40.ark", accumulate_stats([np.ones((5, 40), np.float32)])),
         ["cmvn40.ark", "40", "80"], ["exp/new"]),
    # -- train: CMVN, tokens, init
    Case("train/cmvn missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("cmvn.ark"),
         ["cmvn.ark"], ["exp/new"]),
    Case("train/cmvn garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], garbage("cmvn.ark"),
         ["cmvn.ark"], ["exp/new"]),
    Case("train/cmvn truncated", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], truncated("cmvn.ark"),
         ["cmvn.ark"], ["exp/new"]),
    Case("train/tokens missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], missing("tokens/tokens.txt"),
         ["tokens"], ["exp/new"]),
    Case("train/tokens empty", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], empty("tokens/tokens.txt"),
         ["tokens/tokens.txt"], ["exp/new"]),
    Case("train/tokenizer.yaml garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         text("tokens/tokenizer.yaml", "token_type: [\n"), ["tokens/tokenizer.yaml"], ["exp/new"]),
    Case("train/sentencepiece model garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         lambda w: (text("tokens/tokenizer.yaml", "token_type: unigram\n")(w), garbage("tokens/sp.model")(w)),
         ["tokens/sp.model"], ["exp/new"]),
    Case("train/tokens duplicated", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"],
         lambda w: (w / "tokens/tokens.txt").write_text((w / "tokens/tokens.txt").read_text() + "C\n"),
         ["tokens/tokens.txt", "C"], ["exp/new"]),
    Case("train/init missing", "train", TRAIN_ARGS + ["--exp_dir", "exp/new", "--init", "nope.pt"], lambda w: None,
         ["nope.pt"], ["exp/new"]),
    Case("train/init garbage", "train", TRAIN_ARGS + ["--exp_dir", "exp/new", "--init", "exp/model/model_best.pt"],
         garbage("exp/model/model_best.pt"), ["exp/model/model_best.pt"], ["exp/new"]),
    Case("train/disk full", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], disk_error(errno.ENOSPC),
         ["exp/new", "No space left on device"], []),
    Case("train/read-only disk", "train", TRAIN_ARGS + ["--exp_dir", "exp/new"], disk_error(errno.EROFS),
         ["exp/new", "Read-only file system"], []),
    # -- decode: the model package and what must match it
    Case("decode/model missing", "decode", DECODE_ARGS, missing("exp/model/model_best.pt"),
         ["exp/model"], ["out"]),
    Case("decode/model truncated", "decode", DECODE_ARGS, truncated("exp/model/model_best.pt"),
         ["exp/model/model_best.pt"], ["out"]),
    Case("decode/model garbage", "decode", DECODE_ARGS, garbage("exp/model/model_best.pt"),
         ["exp/model/model_best.pt"], ["out"]),
    Case("decode/model a folder", "decode", DECODE_ARGS, a_folder("exp/model/model_best.pt"),
         ["exp/model/model_best.pt"], ["out"]),
    Case("decode/token list of another size", "decode", DECODE_ARGS,
         lambda w: (w / "tokens/tokens.txt").write_text((w / "tokens/tokens.txt").read_text() + "X 15\nY 16\n"),
         ["tokens/tokens.txt", "exp/model/model_best.pt"], ["out"]),
    Case("decode/tokens missing", "decode", DECODE_ARGS, missing("tokens/tokens.txt"), ["tokens"], ["out"]),
    Case("decode/tokens garbage", "decode", DECODE_ARGS, garbage("tokens/tokens.txt"), ["tokens/tokens.txt"], ["out"]),
    Case("decode/features of another dimension", "decode",
         ["--exp_dir", "exp/model", "--data_dir", "dump/dim40", "--token_dir", "tokens", "--out_dir", "out/decode"],
         lambda w: write_dump(w / "dump/dim40", {"spk1-0000": np.ones((50, 40), np.float32)}),
         ["dump/dim40", "40", "80"], ["out"]),
    Case("decode/cmvn of another dimension", "decode", DECODE_ARGS,
         lambda w: save_stats(w / "cmvn.ark", accumulate_stats([np.ones((5, 40), np.float32)])),
         ["cmvn.ark", "40", "80"], ["out"]),
    Case("decode/cmvn garbage", "decode", DECODE_ARGS, garbage("cmvn.ark"), ["cmvn.ark"], ["out"]),
    Case("decode/feats.scp missing", "decode", DECODE_ARGS, missing("dump/valid/feats.scp"),
         ["dump/valid/feats.scp"], ["out"]),
    Case("decode/feats.ark truncated", "decode", DECODE_ARGS, truncated("dump/valid/feats.ark", 0.5),
         ["dump/valid/feats.ark"], ["out"]),
    Case("decode/config garbage", "decode", DECODE_ARGS, text("conf/decode.yaml", "method: [\n"),
         ["conf/decode.yaml"], ["out"]),
    Case("decode/config unknown method", "decode", DECODE_ARGS, text("conf/decode.yaml", "method: magic\n"),
         ["conf/decode.yaml", "method"], ["out"]),
    Case("decode/ARPA garbage", "decode", [*DECODE_ARGS[:1], "conf/decode_lm.yaml", *DECODE_ARGS[2:]],
         text("lang/lm_word.arpa", "this is not an ARPA file\n"), ["lang/lm_word.arpa"], ["out"]),
    Case("decode/ARPA truncated", "decode", [*DECODE_ARGS[:1], "conf/decode_lm.yaml", *DECODE_ARGS[2:]],
         truncated("lang/lm_word.arpa", 0.5), ["lang/lm_word.arpa"], ["out"]),
    Case("decode/ARPA missing", "decode", [*DECODE_ARGS[:1], "conf/decode_lm.yaml", *DECODE_ARGS[2:]],
         missing("lang/lm_word.arpa"), ["lang/lm_word.arpa"], ["out"]),
    Case("decode/lexicon with unknown tokens", "decode", [*DECODE_ARGS[:1], "conf/decode_lm.yaml", *DECODE_ARGS[2:]],
         text("lang/lexicon.txt", "CAT C A T\nZOO Z O O\n"), ["lang/lexicon.txt", "2"], ["out"]),
    Case("decode/lexicon empty", "decode", [*DECODE_ARGS[:1], "conf/decode_lm.yaml", *DECODE_ARGS[2:]],
         empty("lang/lexicon.txt"), ["lang/lexicon.txt"], ["out"]),
    Case("decode/disk full", "decode", DECODE_ARGS, disk_error(errno.ENOSPC), ["out/decode", "No space left"], []),
    # -- score
    Case("score/reference missing", "score", ["nope.txt", "dump/valid/text", "out/score"], lambda w: None,
         ["nope.txt"], ["out"]),
    Case("score/hypotheses of other utterances", "score", ["dump/valid/text", "hyp.txt", "out/score"],
         text("hyp.txt", "spk9-0001 CAT\n"), ["hyp.txt", "spk9-0001"], ["out"]),
    Case("score/hypotheses with a duplicated utterance", "score", ["dump/valid/text", "hyp.txt", "out/score"],
         lambda w: (w / "hyp.txt").write_text((w / "dump/valid/text").read_text() + "spk3-0000 CAT\n"),
         ["hyp.txt", "spk3-0000"], ["out"]),
    Case("score/reference garbage", "score", ["ref.txt", "dump/valid/text", "out/score"],
         garbage("ref.txt", b"\xff\xfe\x00 not text\n"), ["ref.txt"], ["out"]),
    # -- tokens, lang, CMVN
    Case("make_tokens/text missing", "make_tokens", ["nope/text", "out/tokens"], lambda w: None, ["nope/text"], ["out"]),
    Case("make_tokens/text empty", "make_tokens", ["dump/train/text", "out/tokens"], empty("dump/train/text"),
         ["dump/train/text"], ["out"]),
    Case("make_tokens/text without transcripts", "make_tokens", ["dump/train/text", "out/tokens"],
         text("dump/train/text", "spk1-0000\nspk1-0001\n"), ["dump/train/text"], ["out"]),
    Case("make_tokens/text not UTF-8", "make_tokens", ["dump/train/text", "out/tokens"],
         garbage("dump/train/text", b"spk1-0000 \xff\xfe\n"), ["dump/train/text", "1"], ["out"]),
    Case("make_lang/text missing", "make_lang", ["--text", "nope", "--token_dir", "tokens", "--out_dir", "out/lang"],
         lambda w: None, ["nope"], ["out"]),
    Case("make_lang/tokens missing", "make_lang", ["--text", "dump/train/text", "--token_dir", "tokens",
         "--out_dir", "out/lang"], missing("tokens/tokens.txt"), ["tokens"], ["out"]),
    Case("compute_cmvn_stats/scp missing", "compute_cmvn_stats", ["nope.scp", "out/cmvn.ark"], lambda w: None,
         ["nope.scp"], ["out"]),
    Case("compute_cmvn_stats/ark truncated", "compute_cmvn_stats", ["dump/train/feats.scp", "out/cmvn.ark"],
         truncated("dump/train/feats.ark", 0.5), ["dump/train/feats.ark"], ["out"]),
    Case("compute_cmvn_stats/read-only disk", "compute_cmvn_stats", ["dump/train/feats.scp", "out/cmvn.ark"],
         disk_error(errno.EROFS), ["out", "Read-only file system"], []),
    # -- features from audio, data directories
    Case("compute_fbank/audio missing", "compute_fbank", ["data/train", "out/feats.1"],
         missing("audio/spk1-0001.wav"), ["wav.scp:2", "spk1-0001"], ["out"]),
    Case("compute_fbank/audio garbage", "compute_fbank", ["data/train", "out/feats.1"],
         garbage("audio/spk1-0001.wav"), ["spk1-0001"], ["out"]),
    Case("compute_fbank/audio truncated", "compute_fbank", ["data/train", "out/feats.1"],
         truncated("audio/spk1-0001.wav", 0.001), ["spk1-0001"], ["out"]),
    Case("compute_fbank/wav.scp empty", "compute_fbank", ["data/train", "out/feats.1"],
         empty("data/train/wav.scp"), ["data/train"], ["out"]),
    Case("compute_fbank/disk full", "compute_fbank", ["data/train", "out/feats.1"], disk_error(errno.ENOSPC),
         ["out", "No space left"], []),
    Case("datadir/validate unsorted", "datadir", ["validate", "data/train"],
         lambda w: (w / "data/train/utt2spk").write_text("".join(reversed((w / "data/train/utt2spk").read_text()
                                                                         .splitlines(True)))),
         ["data/train/utt2spk"], []),
    Case("datadir/validate utt2spk missing", "datadir", ["validate", "data/train"], missing("data/train/utt2spk"),
         ["data/train/utt2spk"], []),
    Case("datadir/validate text of another utterance", "datadir", ["validate", "data/train"],
         edit("data/train/text", "spk1-0001", "spk1-0005"), ["data/train", "spk1-0005"], []),
    Case("datadir/split more parts than speakers", "datadir", ["split", "data/train", "2"], lambda w: None,
         ["data/train"], ["data/train/split2"]),
    # -- the other programs: a missing or bad input each
    Case("transcribe/audio missing", "transcribe", ["exp/model", "nope.wav"], lambda w: None, ["nope.wav"], []),
    Case("transcribe/audio garbage", "transcribe", ["exp/model", "bad.wav"], garbage("bad.wav"), ["bad.wav"], []),
    Case("transcribe/package garbage", "transcribe", ["exp/model", "audio/spk1-0000.wav"],
         garbage("exp/model/model_best.pt"), ["exp/model/model_best.pt"], []),
    Case("pack/package garbage", "pack", ["--exp_dir", "exp/model", "--out", "out/packed.pt"],
         garbage("exp/model/model_best.pt"), ["exp/model/model_best.pt"], ["out"]),
    Case("pack/lexicon missing", "pack", ["--exp_dir", "exp/model", "--out", "out/packed.pt", "--method", "beam",
         "--lexicon", "nope.txt"], lambda w: None, ["nope.txt"], ["out"]),
    Case("pack/disk full", "pack", ["--exp_dir", "exp/model", "--out", "out/packed.pt"], disk_error(errno.ENOSPC),
         ["out", "No space left"], ["out"]),
    Case("compare/experiment missing", "compare", ["exp/none", "exp/model"], lambda w: None, ["exp/none"], []),
    Case("make_results/experiment without scores", "make_results", ["exp/model"], lambda w: None, ["exp/model"],
         ["exp/model"]),
    Case("speed_perturb/audio missing", "speed_perturb", ["--factors", "0.9 1.1", "data/train", "out/sp", "out/audio"],
         missing("audio/spk1-0001.wav"), ["spk1-0001"], ["out"],
         complete=["out/audio/sp0.9-spk1-0000.flac", "out/audio/sp1.1-spk1-0000.flac"]),  # read one by one
    Case("prepare_corpus/corpus missing", "prepare_corpus", ["librispeech", "--corpus_dir", "nope", "--data_dir",
         "out/data"], lambda w: None, ["nope"], ["out"]),
    Case("download/server unreachable", "download", ["--url", "http://127.0.0.1:9/corpus.tar.gz", "--download_dir",
         "out/dl", "--md5", "0" * 32], lambda w: None, ["http://127.0.0.1:9/corpus.tar.gz"], ["out"]),
    Case("model_info/config missing", "model_info", ["--config", "nope.yaml"], lambda w: None, ["nope.yaml"], []),
    Case("model_info/unknown encoder", "model_info", ["--config", "conf/train.yaml"],
         lambda w: (w / "conf/train.yaml").write_text("encoder: rnn\n"), ["conf/train.yaml", "rnn"], []),
    Case("import_pretrained/checkpoint garbage", "import_pretrained", ["--format", "fairseq", "bad.pt", "out/init.pt"],
         garbage("bad.pt"), ["bad.pt"], ["out"]),
]


def snapshot(root: Path, paths: list[str]) -> dict[str, str]:
    """Every file under the output paths -> a hash of its content."""
    out = {}
    for p in paths:
        for f in [root / p] if (root / p).is_file() else sorted((root / p).rglob("*")):
            if f.is_file():
                out[str(f.relative_to(root))] = hashlib.sha1(f.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_named_line(case: Case, workspace: Path, tmp_path: Path, monkeypatch, capsys):
    work = tmp_path / "w"
    shutil.copytree(workspace, work, symlinks=True)
    for table in work.rglob("*.scp"):  # they name files by absolute path: the copy's own
        table.write_text(table.read_text().replace(str(workspace), str(work)))
    monkeypatch.chdir(work)
    DISK_PATCHES.clear()
    case.damage(work)
    before = snapshot(work, case.outputs)
    for target, name, value in DISK_PATCHES:
        monkeypatch.setattr(target, name, value)
    main = importlib.import_module(f"bljust.bin.{case.tool}").main
    capsys.readouterr()
    try:
        status = main(case.args)
    except SystemExit as e:  # argparse
        status = e.code
    err = capsys.readouterr().err
    assert status not in (0, None), f"exit status {status}; stderr:\n{err}"
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("ERROR") or ": error: " in line]
    assert len(errors) == 1, f"expected one ERROR line, got:\n{err}"
    assert err.strip().splitlines()[-1] == errors[0], f"the error goes on over more lines:\n{err}"
    for name in case.names:
        assert name in errors[0], f"'{name}' not named in: {errors[0]}"
    after = snapshot(work, case.outputs)
    changed = {f for f in set(before) | set(after) if before.get(f) != after.get(f)
               and not f.endswith(".log") and f not in case.complete}
    assert not changed, f"written or changed: {sorted(changed)}"


def test_a_full_disk_stops_training_with_one_line_and_the_resume_is_exact(workspace, tmp_path, monkeypatch, capsys):
    import torch

    import bljust.fileio
    from bljust.bin import train
    from bljust.train import checkpoint

    work = tmp_path / "w"
    shutil.copytree(workspace, work, symlinks=True)
    for table in work.rglob("*.scp"):
        table.write_text(table.read_text().replace(str(workspace), str(work)))
    monkeypatch.chdir(work)
    args = TRAIN_ARGS + ["--phases.train.steps", "6", "--checkpoint_interval", "2"]
    assert train.main(args + ["--exp_dir", "exp/whole"]) == 0

    real_save = torch.save

    def save_on_a_full_disk(obj, f, *rest, **kwargs):
        if "step_4" in str(f):  # as torch.save fails when the disk fills up: a RuntimeError
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f, *rest, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(checkpoint.torch, "save", save_on_a_full_disk)
        m.setattr(bljust.fileio.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 0))
        capsys.readouterr()
        assert train.main(args + ["--exp_dir", "exp/cut"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "exp/cut/checkpoints/step_4.pt: No space left on device" in errors[0], errors
    assert [p.name for p in sorted((work / "exp/cut/checkpoints").iterdir())] == ["step_2.pt"]  # no partial file
    assert train.main(args + ["--exp_dir", "exp/cut", "--resume"]) == 0
    whole, cut = (checkpoint.load(work / f"exp/{x}/model_last.pt")["model"] for x in ("whole", "cut"))
    for name, value in whole.items():
        assert torch.equal(value, cut[name]), name
    untimed = lambda x: [r[:r.rindex(",")] for r in (work / f"exp/{x}/train_steps.csv").read_text().splitlines()]  # noqa: E731
    assert untimed("whole") == untimed("cut")  # the last column is wall_s


def test_the_matrix_is_large():
    assert len(CASES) >= 60
