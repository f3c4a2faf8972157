"""Property tests of audio loading on synthetic audio: every rate, depth, format and layout."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.audio.io import SAMPLE_RATE, load_audio, stream_audio, to_mono_float
from tests.conftest import voice

RATES = [8_000, 16_000, 22_050, 44_100, 48_000, 96_000]
WAV_SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"]


@pytest.mark.parametrize("sr", RATES)
def test_any_rate_becomes_16k_mono_float32(tmp_path, sr):
    path = tmp_path / "clip.wav"
    sf.write(path, voice(sr=sr, seconds=1.0), sr)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.isfinite(y).all()
    assert len(y) == pytest.approx(1.6 * SAMPLE_RATE, abs=2)  # 1.0 s voice + 2 × 0.3 s pad


@pytest.mark.parametrize("subtype", WAV_SUBTYPES)
def test_every_wav_bit_depth_reads_the_same_signal(tmp_path, subtype):
    x = voice(sr=SAMPLE_RATE)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SAMPLE_RATE, subtype=subtype)
    y = load_audio(path)
    step = 2.0**-7 if subtype == "PCM_U8" else 2.0**-15  # quantisation error bound
    assert np.max(np.abs(y - x)) <= step


@pytest.mark.parametrize(
    ("fmt", "suffix", "tol"), [("FLAC", ".flac", 2**-15), ("OGG", ".ogg", 0.1)]
)
def test_flac_and_ogg(tmp_path, fmt, suffix, tol):
    x = voice(sr=SAMPLE_RATE)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, x, SAMPLE_RATE, format=fmt)
    y = load_audio(path)
    assert len(y) == len(x)
    assert np.max(np.abs(y - x)) <= tol


def test_path_and_array_give_the_same_samples(tmp_path):
    x = voice(sr=44_100)
    path = tmp_path / "clip.wav"
    sf.write(path, x, 44_100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), load_audio(x, sr=44_100))


@pytest.mark.parametrize("channels", [2, 6])
def test_identical_channels_equal_mono(tmp_path, channels):
    x = voice(sr=48_000)
    multi = np.repeat(x[:, None], channels, axis=1)
    sf.write(tmp_path / "multi.wav", multi, 48_000, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", x, 48_000, subtype="FLOAT")
    np.testing.assert_allclose(
        load_audio(tmp_path / "multi.wav"), load_audio(tmp_path / "mono.wav"), atol=1e-7
    )


def test_stereo_is_averaged():
    left, right = voice(seed=1), voice(f0=300, seed=2)
    y = load_audio(np.stack([left, right], axis=1), sr=SAMPLE_RATE)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_channels_first_and_last_arrays_agree():
    x = np.stack([voice(seed=1), voice(seed=2)], axis=1)  # (n, 2) as soundfile returns
    np.testing.assert_array_equal(load_audio(x, sr=8000), load_audio(x.T, sr=8000))


@pytest.mark.parametrize(
    ("dtype", "scale", "offset"),
    [(np.int16, 2**15, 0), (np.int32, 2**31, 0), (np.uint8, 2**7, 2**7)],
)
def test_integer_arrays_are_scaled_to_unit_range(dtype, scale, offset):
    x = voice()
    ints = np.round(x * (scale - 1) + offset).astype(dtype)
    y = to_mono_float(ints)
    assert y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= 1.5 / scale


def test_stream_blocks_concatenate_to_the_whole_file(tmp_path):
    x = np.tile(voice(sr=48_000), 5)
    path = tmp_path / "long.wav"
    sf.write(path, x, 48_000, subtype="FLOAT")
    blocks = list(stream_audio(path, block_seconds=1.0))
    assert len(blocks) > 5
    streamed, whole = np.concatenate(blocks), load_audio(path)
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-3
