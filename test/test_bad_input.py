"""Inputs that must be skipped (and counted) rather than crash, and errors from the pipeline's tools."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bljust.bin.compute_fbank import main as compute_fbank
from bljust.data.datadir import read_table, write_data_dir
from bljust.train.config import load_train_config
from bljust.train.trainer import Trainer, TrainData
from bljust.features.fbank import ArkWriter
from conftest import make_dump


def test_fbank_skips_and_lists_recordings_too_short_for_a_frame(tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = {}
    for utt, n in (("s1-a", 16000), ("s1-b", 0), ("s1-c", 200), ("s1-d", 8000)):
        paths[utt] = tmp_path / f"{utt}.wav"
        sf.write(paths[utt], (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    write_data_dir(tmp_path / "data", wav_scp={u: str(p) for u, p in paths.items()},
                   utt2spk={u: "s1" for u in paths}, text={u: "HELLO" for u in paths})
    assert compute_fbank([str(tmp_path / "data"), str(tmp_path / "out" / "feats.1")]) == 0
    err = capsys.readouterr().err
    assert "skipping utterance 's1-b': 0 samples" in err and "skipping utterance 's1-c': 200 samples" in err
    assert "2 utterances written, 2 skipped" in err
    assert (tmp_path / "out" / "feats.1.skipped").read_text() == "s1-b\ns1-c\n"
    assert [l.split()[0] for l in (tmp_path / "out" / "feats.1.scp").read_text().splitlines()] == ["s1-a", "s1-d"]


def test_raw_waveform_dump_reads_back_as_samples(tmp_path, capsys):
    """--feats_type raw: 16-bit samples in Kaldi wav entries; the dataset gives [T, 1] in [-1, 1),
    counts rows as samples and converts a 10 ms-frame budget into samples via frame_shift."""
    from bljust.data.dataset import FeatureDataset

    rng = np.random.default_rng(0)
    waves = {"s1-a": 0.3 * rng.standard_normal(16000), "s1-b": np.zeros(0), "s1-c": 0.3 * rng.standard_normal(4000)}
    for utt, w in waves.items():
        sf.write(tmp_path / f"{utt}.wav", w.astype(np.float32), 16000, subtype="PCM_16")
    write_data_dir(tmp_path / "data", wav_scp={u: str(tmp_path / f"{u}.wav") for u in waves},
                   utt2spk={u: "s1" for u in waves}, text={u: "HELLO" for u in waves})
    out = tmp_path / "dump"
    assert compute_fbank([str(tmp_path / "data"), str(out / "feats.1"), "--feats_type", "raw"]) == 0
    assert "skipping utterance 's1-b': no samples" in capsys.readouterr().err
    (out / "feats.1.scp").rename(out / "feats.scp")
    (out / "feats.1.utt2num_frames").rename(out / "utt2num_frames")
    assert read_table(out / "utt2num_frames") == {"s1-a": "16000", "s1-c": "4000"}
    (out / "frame_shift").write_text("0.0000625\n")
    data = FeatureDataset(out)
    samples, _ = data["s1-a"]
    assert samples.shape == (16000, 1) and samples.dtype == np.float32
    pcm = sf.read(tmp_path / "s1-a.wav", dtype="int16")[0]
    assert np.array_equal(samples[:, 0], pcm / 32768.0)  # 16-bit audio survives exactly
    assert data.hours() == pytest.approx(20000 / 16000 / 3600) and data.rows(4000) == 640000  # 40 s of samples
    assert (out / "feats.1.ark").stat().st_size < 2 * 20000 + 200  # two bytes a sample


def test_fbank_names_a_missing_file(tmp_path, capsys):
    write_data_dir(tmp_path / "data", wav_scp={"s1-a": str(tmp_path / "nope.wav")}, utt2spk={"s1-a": "s1"})
    assert compute_fbank([str(tmp_path / "data"), str(tmp_path / "out" / "feats.1")]) == 1
    err = capsys.readouterr().err
    assert "wav.scp:1" in err and "s1-a" in err
    assert not (tmp_path / "out" / "feats.1.scp").exists()


def test_trainer_skips_utterances_too_short_for_ctc(tmp_path, tiny_corpus):
    train = tmp_path / "train"
    make_dump(train, 8, seed=5)
    # Two utterances the encoder cannot learn from: 3 frames (below the 4-frame subsampling step)
    # and 12 frames (3 encoder frames) for a 9-token transcript.
    writer = ArkWriter(tmp_path / "short.ark")
    writer.write("spk5-9998", np.zeros((3, 80), np.float32))
    writer.write("spk5-9999", np.zeros((12, 80), np.float32))
    writer.close(tmp_path / "short.scp")
    for name, extra in (("feats.scp", (tmp_path / "short.scp").read_text()),
                        ("utt2num_frames", "spk5-9998 3\nspk5-9999 12\n"), ("text", "spk5-9998 CAT\nspk5-9999 DOG BIRD\n")):
        with open(train / name, "a") as f:
            f.write(extra)
    cfg = load_train_config(None, {"encoder_conf": {"cnn_layers": 2, "latent_dim": 16, "lstm_layers": 1, "lstm_units": 8},
                                   "max_epochs": 1, "phases": {"train": {"steps": 1}}, "diag_interval": 0})
    trainer = Trainer(cfg, TrainData(str(train), tiny_corpus["valid_dir"], tiny_corpus["token_dir"], tiny_corpus["cmvn"]),
                      tmp_path / "exp")
    skipped = (tmp_path / "exp" / "skipped_train.txt").read_text().splitlines()
    assert skipped == ["spk5-9998 3 input frames < receptive field step of 4",
                       "spk5-9999 3 encoder frames < 9 needed by CTC for 9 tokens"]
    assert sorted(u for b in trainer.labeled.sampler.batches for u in b) == [f"spk5-{i:04d}" for i in range(8)]


def test_trainer_needs_some_usable_data(tmp_path, tiny_corpus):
    train = tmp_path / "train"
    make_dump(train, 2, seed=6, frames=(3, 4))
    cfg = load_train_config(None, {"max_epochs": 1, "diag_interval": 0})
    with pytest.raises(ValueError, match="no utterance is long enough to train on"):
        Trainer(cfg, TrainData(str(train), tiny_corpus["valid_dir"], tiny_corpus["token_dir"], tiny_corpus["cmvn"]), tmp_path / "exp")
