"""From a trained model to transcripts: the self-contained model package, decoding checks against
it, ``python -m bljust.bin.transcribe`` and the Python API ``Speech2Text``.

A tiny audio corpus (1-s utterances of tones in noise) goes through the pipeline's steps
(compute_fbank -> CMVN -> char tokens -> 3 training steps -> package), so transcribe's features
must equal the dump's bit for bit. Three steps of CTC leave a model that emits only blanks, so the
package's blank is then made improbable (its output bias lowered): every frame then emits a token,
and any difference in features or normalisation shows in the hypotheses.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from bljust.bin import compute_cmvn_stats, compute_fbank, make_lang, pack, transcribe
from bljust.bin import decode as decode_cli
from bljust.data.audio import resample
from bljust.data.datadir import write_data_dir
from bljust.data.dataset import FeatureDataset
from bljust.decode.speech2text import Speech2Text
from bljust.features.cmvn import load_stats
from bljust.text.tokenizer import Tokenizer, build_tokenizer
from bljust.train import checkpoint
from bljust.train.config import load_train_config
from bljust.train.trainer import Trainer, TrainData

RATE = 16000
WORDS = {"CAT": 300.0, "DOG": 700.0, "BIRD": 1500.0, "FISH": 3100.0}  # a tone per word


def utterance(words: list[str], rng: np.random.Generator) -> np.ndarray:
    t = np.arange(RATE // 2) / RATE
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * WORDS[w] * t) for w in words])
    return (wave + 0.02 * rng.standard_normal(len(wave))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("audio_corpus")
    rng = np.random.default_rng(0)
    wavs, text = {}, {}
    for i in range(8):
        utt = f"spk1-{i:04d}"
        words = [list(WORDS)[j] for j in rng.integers(0, len(WORDS), size=2)]
        wavs[utt] = root / "audio" / f"{utt}.wav"
        wavs[utt].parent.mkdir(exist_ok=True)
        sf.write(wavs[utt], utterance(words, rng), RATE)  # 16-bit PCM
        text[utt] = " ".join(words)
    write_data_dir(root / "data", wav_scp={u: str(p) for u, p in wavs.items()}, utt2spk={u: "spk1" for u in wavs},
                   text=text)
    dump = root / "dump"
    dump.mkdir()
    assert compute_fbank.main([str(root / "data"), str(dump / "feats")]) == 0
    (dump / "feats.utt2num_frames").rename(dump / "utt2num_frames")
    (dump / "feats.frontend.yaml").rename(dump / "frontend.yaml")  # as asr.sh stage 3 keeps it
    shutil.copy(root / "data" / "text", dump / "text")
    assert compute_cmvn_stats.main([str(dump / "feats.scp"), str(root / "cmvn.ark")]) == 0
    build_tokenizer(list(text.values()), root / "tokens", "char")
    config = load_train_config(None, {
        "encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16, "dropout": 0.0},
        "unsup_conf": {"steps": 3, "num_negatives": 8, "ar_dim": 32}, "batch": {"max_frames": 300},
        "diag_interval": 0, "tensorboard": False, "strategy": "supervised", "max_epochs": 1,
        "phases": {"train": {"steps": 3}}})
    exp = root / "exp"
    Trainer(config, TrainData(str(dump), str(dump), str(root / "tokens"), str(root / "cmvn.ark")), exp).fit()
    package = checkpoint.load(exp / "model_best.pt")
    bias = next(k for k, v in package["model"].items() if k.startswith("sup.") and k.endswith("bias")
                and v.shape == (package["vocab_size"],))
    package["model"][bias][0] = -1e4  # no blanks: a token every frame
    checkpoint.save(package, exp / "model_best.pt")
    return {"root": root, "wavs": wavs, "text": text, "dump": dump, "exp": exp, "tokens": root / "tokens",
            "cmvn": root / "cmvn.ark"}


def decoded(corpus, tmp_path: Path, *args: str) -> dict[str, str]:
    out = tmp_path / "decode"
    assert decode_cli.main(["--exp_dir", str(corpus["exp"]), "--data_dir", str(corpus["dump"]), "--out_dir", str(out),
                            *args]) == 0
    lines = (out / "text").read_text().splitlines()
    return dict((line.split(" ", 1) + [""])[:2] for line in lines)


@pytest.fixture(scope="module")
def greedy(corpus, tmp_path_factory) -> dict[str, str]:
    """bin/decode's greedy hypotheses from the dump, with the token list and CMVN given (and checked)."""
    return decoded(corpus, tmp_path_factory.mktemp("greedy"), "--token_dir", str(corpus["tokens"]),
                   "--cmvn", str(corpus["cmvn"]))


def run_transcribe(capsys, *args: str) -> tuple[int, list[str], str]:
    capsys.readouterr()
    status = transcribe.main(list(args))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_the_package_carries_tokens_cmvn_and_front_end(corpus):
    package = torch.load(corpus["exp"] / "model_best.pt", map_location="cpu", weights_only=True)
    assert package["format"] == 2 and package["decode"] == {"method": "greedy"}
    assert package["tokens"]["symbols"] == Tokenizer(corpus["tokens"]).symbols
    assert package["tokens"]["token_type"] == "char" and "sp_model" not in package["tokens"]
    mean, istd = load_stats(corpus["cmvn"])
    assert np.array_equal(package["cmvn"]["mean"].numpy(), mean) and np.array_equal(package["cmvn"]["istd"].numpy(), istd)
    assert package["frontend"] == {"feats_type": "fbank", "sample_rate": 16000, "num_mel_bins": 80,
                                   "frame_length_ms": 25.0, "frame_shift_ms": 10.0, "dither": 0.0,
                                   "source": str(corpus["dump"] / "frontend.yaml")}


def test_transcribe_gives_decode_greedy_hypotheses(corpus, greedy, capsys, tmp_path):
    assert any(greedy.values())  # not all empty: the comparison means something
    utts = sorted(corpus["wavs"])[:5]
    status, lines, err = run_transcribe(capsys, str(corpus["exp"]), *(str(corpus["wavs"][u]) for u in utts))
    assert status == 0, err
    assert lines == [f"{u} {greedy[u]}".rstrip() for u in utts]
    # a package that carries its tokens and CMVN decodes without --token_dir / --cmvn, the same
    assert decoded(corpus, tmp_path) == greedy
    # wav.scp keys name the lines; batches of one utterance give the same
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"key{i} {corpus['wavs'][u]}\n" for i, u in enumerate(utts)))
    status, lines, err = run_transcribe(capsys, str(corpus["exp"] / "model_best.pt"), "--wav_scp", str(scp),
                                        "--max_frames", "1")
    assert status == 0, err
    assert lines == [f"key{i} {greedy[u]}".rstrip() for i, u in enumerate(utts)]


def test_speech2text_on_waveforms(corpus, greedy, tmp_path):
    import bljust

    s2t = bljust.Speech2Text.from_package(corpus["exp"])  # the package's public API
    assert isinstance(s2t, Speech2Text)
    utt = sorted(corpus["wavs"])[0]
    wave, rate = sf.read(corpus["wavs"][utt], dtype="float32")
    assert s2t(wave, rate) == greedy[utt]
    assert s2t(np.stack([wave, wave], axis=1), rate) == greedy[utt]  # stereo, downmixed
    assert s2t(np.stack([wave, wave]), rate) == greedy[utt]  # [channels, samples] too
    assert s2t((wave * 32768).astype(np.int16), rate) == greedy[utt]  # 16-bit samples
    high = resample(wave, RATE, 44100)
    text = s2t(high, 44100)  # resampled: slightly other features, so only: it transcribes
    assert isinstance(text, str) and text
    assert s2t.transcribe([(wave, rate), (high, 44100)]) == [greedy[utt], text]
    # n-best from beam search; the best is what bin/decode's beam search gives
    hyps = Speech2Text.from_package(corpus["exp"], nbest=3)(wave, rate)
    assert 1 <= len(hyps) <= 3 and all(isinstance(t, str) and isinstance(s, float) for t, s in hyps)
    assert len({t for t, _ in hyps}) == len(hyps) and [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
    assert hyps[0][0] == decoded(corpus, tmp_path, "--method", "beam", "--beam_size", "10")[utt]
    # a stereo file through the command line
    sf.write(tmp_path / "stereo.flac", np.stack([wave, wave], axis=1), rate)
    assert transcribe.main([str(corpus["exp"]), str(tmp_path / "stereo.flac")]) == 0


def test_a_package_alone_is_enough(corpus, greedy, tmp_path, capsys):
    alone = tmp_path / "alone" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(corpus["exp"] / "model_best.pt", alone)
    utt = sorted(corpus["wavs"])[1]
    wav = tmp_path / f"{utt}.wav"
    shutil.copy(corpus["wavs"][utt], wav)
    hidden = {p: p.with_name(p.name + ".away") for p in (corpus["tokens"], corpus["dump"], corpus["cmvn"])}
    try:  # the files the package was made from are gone
        for p, away in hidden.items():
            p.rename(away)
        status, lines, err = run_transcribe(capsys, str(alone), str(wav))
        s2t = Speech2Text.from_package(alone)
    finally:
        for p, away in hidden.items():
            away.rename(p)
    assert status == 0, err
    assert lines == [f"{utt} {greedy[utt]}".rstrip()]
    assert s2t(*sf.read(wav, dtype="float32")) == greedy[utt]


def test_a_packed_model_transcribes_as_stage_6_decoded_with_lexicon_and_lm(corpus, tmp_path, capfd):
    lang = tmp_path / "lang"
    assert make_lang.main(["--text", str(corpus["dump"] / "text"), "--token_dir", str(corpus["tokens"]),
                           "--out_dir", str(lang), "--word_order", "2"]) == 0
    config = tmp_path / "decode_lm.yaml"
    config.write_text(f"method: beam\nbeam_size: 20\nlexicon: {lang}/lexicon.txt\nlm: {lang}/lm_word.arpa\n"
                      "lm_weight: 0.5\nword_score: -1.0\n")
    stage6 = decoded(corpus, tmp_path, "--config", str(config), "--beam_threshold", "40")
    assert any(stage6.values())
    packed = corpus["exp"] / "packed" / "decode_lm.pt"
    assert pack.main(["--exp_dir", str(corpus["exp"]), "--config", str(config), "--out", str(packed),
                      "--beam_threshold", "40"]) == 0
    package = torch.load(packed, map_location="cpu", weights_only=True)
    assert package["decode"] == {"method": "beam", "beam_size": 20, "beam_size_token": None, "beam_threshold": 40.0,
                                 "lm_weight": 0.5, "word_score": -1.0, "log_add": True}
    for key, name in (("lexicon", "lexicon.txt"), ("lm", "lm_word.arpa")):
        assert package[key]["data"].numpy().tobytes() == (lang / name).read_bytes()
        assert package[key]["source"] == str(lang / name)

    utts = sorted(corpus["wavs"])[:4]
    wavs = [str(corpus["wavs"][u]) for u in utts]
    (lang / "lm_word.arpa").rename(tmp_path / "lm.away")  # the package alone: its own lexicon and LM
    (lang / "lexicon.txt").rename(tmp_path / "lexicon.away")
    status, lines, err = run_transcribe(capfd, str(packed), *wavs)
    assert status == 0, err
    assert lines == [f"{u} {stage6[u]}".rstrip() for u in utts] and "beam 20 + lexicon + LM" in err
    assert "Reading" not in err and "bljust_lang_" not in err  # KenLM's loading chatter, naming a temporary file
    wave, rate = sf.read(wavs[0], dtype="float32")
    assert Speech2Text.from_package(packed)(wave, rate) == stage6[utts[0]]
    # options override the package's decoding: greedy, or the beam without its LM
    greedy = decoded(corpus, tmp_path / "g")
    assert Speech2Text.from_package(packed, method="greedy")(wave, rate) == greedy[utts[0]]
    no_lm = Speech2Text.from_package(packed, lm="none")
    assert no_lm.config.lm is None and no_lm.config.lexicon is not None and no_lm.config.beam_size == 20

    # a lexicon the token list cannot spell: one line naming it, and nothing written
    (tmp_path / "lexicon.away").rename(lang / "lexicon.txt")
    (tmp_path / "lm.away").rename(lang / "lm_word.arpa")
    with open(lang / "lexicon.txt", "a") as f:
        f.write("ZEBRA Z E B R A\n")
    before = packed.read_bytes()
    capfd.readouterr()
    error = one_error(capfd, pack.main(["--exp_dir", str(corpus["exp"]), "--config", str(config), "--out", str(packed)]))
    assert error == f"ERROR: {packed}: {lang / 'lexicon.txt'}:5: token(s) Z E not in the token list"
    assert packed.read_bytes() == before


def one_error(capsys, status: int) -> str:
    err = capsys.readouterr().err
    assert status == 1, err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


def test_decode_refuses_a_token_list_or_cmvn_other_than_the_package(corpus, tmp_path, capsys):
    tokens = tmp_path / "tokens"
    shutil.copytree(corpus["tokens"], tokens)
    lines = (tokens / "tokens.txt").read_text().splitlines()
    (a, i), (b, j) = (line.rsplit(" ", 1) for line in lines[3:5])
    lines[3:5] = [f"{b} {i}", f"{a} {j}"]  # same size, two symbols swapped
    (tokens / "tokens.txt").write_text("".join(line + "\n" for line in lines))
    args = ["--exp_dir", str(corpus["exp"]), "--data_dir", str(corpus["dump"]), "--out_dir", str(tmp_path / "out")]
    capsys.readouterr()
    error = one_error(capsys, decode_cli.main([*args, "--token_dir", str(tokens)]))
    assert f"{tokens / 'tokens.txt'}:4: token 3 is '{b}'" in error and str(corpus["exp"] / "model_best.pt") in error
    other = tmp_path / "cmvn.ark"
    from bljust.features.cmvn import accumulate_stats, save_stats
    save_stats(other, accumulate_stats([np.ones((5, 80), np.float32), np.zeros((5, 80), np.float32)]))
    error = one_error(capsys, decode_cli.main([*args, "--cmvn", str(other)]))
    assert str(other) in error and "other CMVN statistics" in error
    assert not (tmp_path / "out").exists()


def test_a_package_without_tokens_decodes_as_before(corpus, greedy, tmp_path, capsys):
    exp = tmp_path / "old"
    exp.mkdir()
    package = checkpoint.load(corpus["exp"] / "model_best.pt")
    checkpoint.save({k: package[k] for k in ("config", "input_dim", "vocab_size", "steps", "model")},
                    exp / "model_best.pt")
    args = ["--exp_dir", str(exp), "--data_dir", str(corpus["dump"])]
    assert decode_cli.main([*args, "--token_dir", str(corpus["tokens"]), "--cmvn", str(corpus["cmvn"]),
                            "--out_dir", str(tmp_path / "d")]) == 0
    assert dict(line.split(" ", 1) for line in (tmp_path / "d/text").read_text().splitlines()) == \
        {u: t for u, t in greedy.items()}
    capsys.readouterr()
    error = one_error(capsys, decode_cli.main([*args, "--out_dir", str(tmp_path / "e")]))
    assert "carries no token list" in error and "--token_dir" in error


def test_bad_audio_is_one_named_line(corpus, tmp_path, capsys):
    good = str(corpus["wavs"][sorted(corpus["wavs"])[0]])
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(bytes(range(256)) * 4)
    for bad in (garbage, tmp_path / "missing.flac"):
        capsys.readouterr()
        status = transcribe.main([str(corpus["exp"]), good, str(bad)])
        assert str(bad) in one_error(capsys, status)
    low = tmp_path / "low.wav"
    sf.write(low, np.zeros(8000, np.float32), 8000)
    capsys.readouterr()
    assert "below the model's 16000 Hz" in one_error(capsys, transcribe.main([str(corpus["exp"]), str(low)]))
    capsys.readouterr()
    assert "max_frames must be >= 1, got 0" in one_error(capsys, transcribe.main([str(corpus["exp"]), good, "--max_frames", "0"]))
    scp = tmp_path / "wav.scp"
    scp.write_text(f"a {good}\nb {garbage}\n")
    capsys.readouterr()
    assert f"{scp}:2: 'b'" in one_error(capsys, transcribe.main([str(corpus["exp"]), "--wav_scp", str(scp)]))
    assert capsys.readouterr().out == ""  # nothing printed before the error
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, np.float32), RATE)
    status, lines, err = run_transcribe(capsys, str(corpus["exp"]), str(short))
    assert status == 0 and lines == ["short"] and "too short" in err


def test_raw_front_end_equals_a_raw_dump(corpus, tmp_path):
    from bljust.decode.speech2text import Frontend
    from bljust.features.fbank import FbankConfig

    assert compute_fbank.main(["--feats_type", "raw", str(corpus["root"] / "data"), str(tmp_path / "feats")]) == 0
    (tmp_path / "feats.utt2num_frames").rename(tmp_path / "utt2num_frames")
    (tmp_path / "frame_shift").write_text(f"{1 / RATE}\n")
    dataset = FeatureDataset(tmp_path)
    utt = sorted(corpus["wavs"])[2]
    wave, _ = sf.read(corpus["wavs"][utt], dtype="float32")
    assert np.array_equal(Frontend("raw", FbankConfig(), "test")(wave), dataset[utt][0])


def test_a_sentencepiece_token_list_travels_in_the_package(tmp_path):
    from bljust.decode.model_io import package_tokenizer, resolve_tokenizer
    from bljust.train.package import inference_info

    texts = [f"{a} {b} {c}" for a in WORDS for b in WORDS for c in ("THE CAT SAT", "ON THE MAT", "A BIG DOG")]
    tokenizer = build_tokenizer(texts, tmp_path / "sp", "unigram", vocab_size=20)
    class NoCmvn:
        dir, mean, frame_shift = tmp_path / "unused", None, 0.01

    info = inference_info(tmp_path / "sp", tokenizer, NoCmvn(), 80)
    assert info["tokens"]["sp_model"].dtype == torch.uint8 and info["cmvn"] is None
    package = {"vocab_size": tokenizer.vocab_size, **info}
    own = package_tokenizer(package, "pkg.pt")
    assert own.symbols == tokenizer.symbols and own.encode("BIRD ON THE MAT") == tokenizer.encode("BIRD ON THE MAT")
    assert resolve_tokenizer(package, "pkg.pt", tmp_path / "sp").symbols == tokenizer.symbols
    build_tokenizer([t.replace("DOG", "FROG") for t in texts], tmp_path / "other", "unigram", vocab_size=20)
    with pytest.raises(ValueError, match="pkg.pt was trained with"):
        resolve_tokenizer(package, "pkg.pt", tmp_path / "other")
