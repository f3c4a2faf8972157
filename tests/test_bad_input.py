"""Every kind of bad input gets an AudioError or ParameterError that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.audio.io import load_audio
from ser_cnn.errors import AudioError, ParameterError, SerError
from ser_cnn.features.logmel import log_mel
from tests.conftest import voice


def _wav(path, y=None, sr=16_000, **kw):
    sf.write(path, voice(sr=sr) if y is None else y, sr, **kw)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    with pytest.raises(AudioError, match=r"not an audio file"):
        load_audio(tmp_path / "notes.wav")


def test_truncated_wav(tmp_path):
    data = _wav(tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(tmp_path / "cut.wav")


def test_truncated_flac(tmp_path):
    data = _wav(tmp_path / "full.flac", format="FLAC").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"truncated|corrupt"):
        load_audio(tmp_path / "cut.flac")


def test_wav_header_only(tmp_path):
    data = _wav(tmp_path / "full.wav").read_bytes()
    (tmp_path / "head.wav").write_bytes(data[:30])
    with pytest.raises(AudioError):
        load_audio(tmp_path / "head.wav")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_in_a_file(tmp_path, bad):
    y = voice()
    y[100] = bad
    _wav(tmp_path / "nan.wav", y, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_non_finite_samples_in_an_array():
    y = voice()
    y[5] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(y, sr=16_000)


def test_too_short(tmp_path):
    _wav(tmp_path / "blip.wav", voice(pad=0, seconds=0.05))
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "blip.wav")


def test_digital_silence(tmp_path):
    _wav(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.float32))
    with pytest.raises(AudioError, match="digital silence"):
        load_audio(tmp_path / "silent.wav")


def test_array_needs_sample_rate():
    with pytest.raises(ParameterError, match="sample rate"):
        load_audio(voice())


def test_file_must_not_get_sample_rate(tmp_path):
    with pytest.raises(ParameterError, match="only with an array"):
        load_audio(_wav(tmp_path / "a.wav"), sr=16_000)


@pytest.mark.parametrize("sr", [0, -16_000, float("nan")])
def test_bad_sample_rate(sr):
    with pytest.raises(ParameterError, match="positive"):
        load_audio(voice(), sr=sr)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2, 100)), np.zeros(0), np.array(["a", "b"]), np.zeros((100, 100))]
)
def test_bad_array_shapes_and_types(bad):
    with pytest.raises(ParameterError):
        load_audio(bad, sr=16_000)


def test_wrong_source_type():
    with pytest.raises(ParameterError, match="path or a numpy array"):
        load_audio([0.1, 0.2], sr=16_000)


def test_features_refuse_through_the_same_errors(tmp_path):
    (tmp_path / "empty.wav").touch()
    with pytest.raises(SerError):
        log_mel(tmp_path / "empty.wav")


def test_errors_are_value_errors_too():
    # so callers who catch ValueError (the usual contract for bad arguments) still catch them
    assert issubclass(AudioError, ValueError) and issubclass(ParameterError, ValueError)
