"""Reading audio: files and pipes, segments, resampling, and the errors that name wav.scp lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bljust.data import audio
from bljust.data.audio import AudioError, AudioReader, read_audio, resample
from bljust.data.datadir import write_data_dir


def ramp(n: int) -> np.ndarray:
    """Distinct, exactly representable 16-bit sample values."""
    return ((np.arange(n) % 20000) - 10000).astype(np.float32) / 32768


def wav(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    sf.write(path, samples, sr, subtype="PCM_16")
    return path


def data_dir(tmp_path: Path, wav_scp: dict[str, str], segments=None) -> Path:
    utts = segments if segments is not None else wav_scp
    d = tmp_path / "data"
    write_data_dir(d, wav_scp=wav_scp, utt2spk={u: u.split("-")[0] for u in utts}, segments=segments)
    return d


def test_read_audio_path_and_pipe_agree(tmp_path):
    x = ramp(1600)
    p = wav(tmp_path / "a.wav", x)
    from_file, sr = read_audio(str(p))
    from_pipe, sr2 = read_audio(f"cat {p} |")
    assert sr == sr2 == 16000
    assert from_file.dtype == np.float32 and from_file.shape == (1600,)
    np.testing.assert_array_equal(from_file, x)
    np.testing.assert_array_equal(from_pipe, x)
    flac = tmp_path / "a.flac"
    sf.write(flac, x, 16000)
    np.testing.assert_array_equal(read_audio(f"{flac}")[0], x)


def test_read_audio_first_channel_and_failing_pipe(tmp_path):
    stereo = np.stack([ramp(100), -ramp(100)], axis=1)
    p = wav(tmp_path / "st.wav", stereo)
    np.testing.assert_array_equal(read_audio(str(p))[0], ramp(100))
    with pytest.raises(AudioError) as e:
        read_audio("echo 'sox: cannot open input' >&2; exit 3 |")
    assert "exited with status 3" in str(e.value) and "sox: cannot open input" in str(e.value)


def test_resample_length():
    x = np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050).astype(np.float32)
    y = resample(x, 22050, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert resample(x, 22050, 22050) is x
    assert resample(np.zeros(0, np.float32), 22050, 16000).shape == (0,)


def test_reader_resamples_down(tmp_path):
    d = data_dir(tmp_path, {"s1-a": str(wav(tmp_path / "a.wav", ramp(22050), 22050)),
                            "s1-b": str(wav(tmp_path / "b.wav", ramp(16000), 16000))})
    reader = AudioReader(d, target_sr=16000)
    assert len(reader) == 2
    got = [(u, x.shape, sr) for u, x, sr in reader]
    assert got == [("s1-a", (16000,), 16000), ("s1-b", (16000,), 16000)]
    np.testing.assert_array_equal(reader.read("s1-b"), ramp(16000))


def test_reader_segments_slice_and_cache(tmp_path, monkeypatch):
    x = ramp(48000)
    d = data_dir(tmp_path, {"r1": str(wav(tmp_path / "r1.wav", x)), "r2": f"cat {wav(tmp_path / 'r2.wav', -x)} |"},
                 segments={"s1-a": ("r1", 0.5, 1.0), "s1-b": ("r1", 1.25, 3.0), "s2-c": ("r2", 0.0, 0.1)})
    calls = []
    real = audio.read_audio
    monkeypatch.setattr(audio, "read_audio", lambda e: calls.append(e) or real(e))
    out = {u: (s, sr) for u, s, sr in AudioReader(d)}
    np.testing.assert_array_equal(out["s1-a"][0], x[8000:16000])
    np.testing.assert_array_equal(out["s1-b"][0], x[20000:48000])
    np.testing.assert_array_equal(out["s2-c"][0], -x[:1600])
    assert len(calls) == 2  # each recording read once
    np.testing.assert_array_equal(AudioReader(d).read("s1-b"), x[20000:48000])


def test_reader_rejects_lower_rate(tmp_path):
    d = data_dir(tmp_path, {"s1-a": str(wav(tmp_path / "a.wav", ramp(100))),
                            "s1-n": str(wav(tmp_path / "n.wav", ramp(800), 8000))})
    with pytest.raises(AudioError) as e:
        list(AudioReader(d, target_sr=16000))
    msg = str(e.value)
    assert f"{d}/wav.scp:2" in msg and "'s1-n'" in msg and "8000 Hz" in msg and "16000 Hz" in msg
    assert [x.shape for _, x, _ in AudioReader(d, target_sr=8000)] == [(50,), (800,)]


def test_reader_missing_and_corrupt_files(tmp_path):
    good = str(wav(tmp_path / "a.wav", ramp(100)))
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x01garbage that is no audio at all")
    d = data_dir(tmp_path, {"s1-a": good, "s1-b": str(tmp_path / "bad.wav"), "s1-c": str(tmp_path / "gone.wav")})
    reader = AudioReader(d)
    with pytest.raises(AudioError) as e:
        reader.read("s1-b")
    assert f"{d}/wav.scp:2: utterance 's1-b'" in str(e.value) and "bad.wav" in str(e.value)
    with pytest.raises(AudioError) as e:
        reader.read("s1-c")
    assert f"{d}/wav.scp:3: utterance 's1-c'" in str(e.value) and "no such file" in str(e.value)
    assert "gone.wav" in str(e.value)


def test_reader_zero_length_recordings(tmp_path):
    empty_wav = wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    (tmp_path / "zero.wav").write_bytes(b"")
    d = data_dir(tmp_path, {"s1-a": str(empty_wav), "s1-b": str(tmp_path / "zero.wav"),
                            "s1-c": f"cat {tmp_path / 'zero.wav'} |"})
    got = [(u, x.shape, x.dtype, sr) for u, x, sr in AudioReader(d)]
    assert got == [("s1-a", (0,), np.float32, 16000), ("s1-b", (0,), np.float32, 16000),
                   ("s1-c", (0,), np.float32, 16000)]
