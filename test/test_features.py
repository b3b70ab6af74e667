"""Fbank, ark/scp storage, CMVN, SpecAugment and speed perturbation."""
import kaldiio
import numpy as np
import pytest
import torch

from bljust.features.cmvn import accumulate_stats, load_stats, save_stats
from bljust.features.fbank import ArkWriter, FbankConfig, compute_fbank
from bljust.features.specaug import SpecAugConfig, spec_augment
from bljust.features.speed_perturb import perturb_speed


def tone(seconds=1.0, freq=440.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_fbank_shape_and_peak_bin():
    cfg = FbankConfig()
    feats = compute_fbank(tone(1.0, 1000.0), cfg)
    assert feats.shape == (98, 80) == (cfg.num_frames(16000), 80)
    # A 1 kHz tone puts its energy in one mel bin, the same in every frame.
    peaks = feats.argmax(axis=1)
    assert len(set(peaks.tolist())) == 1 and 20 < peaks[0] < 40
    assert cfg.num_frames(399) == 0 and cfg.num_frames(400) == 1


def test_ark_writer_round_trip_and_atomicity(tmp_path):
    mats = {"u1": np.random.rand(5, 80).astype(np.float32), "u2": np.random.rand(7, 80).astype(np.float32)}
    w = ArkWriter(tmp_path / "feats.1.ark")
    for k, m in mats.items():
        w.write(k, m)
    w.close(tmp_path / "feats.1.scp")
    loaded = kaldiio.load_scp(str(tmp_path / "feats.1.scp"))
    for k, m in mats.items():
        np.testing.assert_array_equal(loaded[k], m)
    # An aborted writer leaves the previous ark untouched and writes no scp.
    w = ArkWriter(tmp_path / "feats.1.ark")
    w.write("u3", mats["u1"])
    w.abort(RuntimeError("crash"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.1.ark", "feats.1.scp"]
    np.testing.assert_array_equal(kaldiio.load_scp(str(tmp_path / "feats.1.scp"))["u2"], mats["u2"])


def test_compressed_features_are_a_quarter_of_the_size(tmp_path):
    """Kaldi's kSpeechFeature compression: about 1 byte per value, errors far below a feature's spread."""
    rng = np.random.default_rng(0)
    mats = {f"u{i}": (rng.normal(size=(300, 80)) * 3 + 10).astype(np.float32) for i in range(4)}
    sizes = {}
    for compress in (False, True):
        w = ArkWriter(tmp_path / f"{compress}.ark", compress=compress)
        for k, m in mats.items():
            w.write(k, m)
        w.close(tmp_path / f"{compress}.scp")
        sizes[compress] = (tmp_path / f"{compress}.ark").stat().st_size
    assert 3.5 < sizes[False] / sizes[True] < 4.1
    loaded = kaldiio.load_scp(str(tmp_path / "True.scp"))
    for k, m in mats.items():
        assert loaded[k].dtype == np.float32 and np.abs(loaded[k] - m).mean() < 0.01 * m.std()


def test_cmvn_stats(tmp_path):
    rng = np.random.default_rng(0)
    mats = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (100, 250, 50)]
    stats = accumulate_stats(mats)
    assert stats.shape == (2, 5) and stats[0, -1] == 400
    save_stats(tmp_path / "cmvn.ark", stats)
    mean, istd = load_stats(tmp_path / "cmvn.ark")
    allf = np.concatenate(mats)
    np.testing.assert_allclose(mean, allf.mean(0), rtol=1e-5)
    np.testing.assert_allclose(istd, 1 / allf.std(0), rtol=1e-4)
    with pytest.raises(ValueError, match="no feature frames"):
        accumulate_stats([])


def test_specaug_masks_within_lengths():
    feats = torch.ones(4, 200, 80)
    lengths = torch.tensor([200, 150, 80, 30])
    cfg = SpecAugConfig(freq_masks=2, freq_width=10, time_masks=2, time_width=40, time_width_ratio=0.2)
    out = spec_augment(feats, lengths, cfg, torch.Generator().manual_seed(0))
    masked_freq = (out == 0).all(dim=1)  # [B, F] bins masked over all frames
    assert (masked_freq.sum(1) <= 2 * 10).all()
    time_masked = (out == 0).all(dim=2)  # [B, T]
    for b, n in enumerate(lengths.tolist()):
        assert not time_masked[b, n:].any()  # masks never land in padding
        assert time_masked[b].sum() <= 2 * min(40, int(n * 0.2))
    again = spec_augment(feats, lengths, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert spec_augment(feats, lengths, SpecAugConfig(enabled=False), torch.Generator()) is feats


def test_speed_perturbation_changes_length_and_pitch():
    x = tone(1.0, 500.0)
    fast = perturb_speed(x, 1.1)
    assert abs(len(fast) - 16000 / 1.1) <= 2
    spec = np.abs(np.fft.rfft(fast))
    assert abs(spec.argmax() * 16000 / len(fast) - 550.0) < 5
    assert perturb_speed(x, 1.0) is x
