"""Properties of the log-mel feature function."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import soundfile as sf

from ser_cnn.errors import ParameterError
from ser_cnn.features.logmel import (
    DEFAULT_CONFIG,
    FeatureConfig,
    WhisperFeatureConfig,
    fit_length,
    log_mel,
    log_mel_from_samples,
    mel_filterbank,
    mel_warp_matrix,
    trim_silence,
    whisper_log_mel,
    whisper_log_mel_from_samples,
)
from tests.conftest import voice

C = DEFAULT_CONFIG


@pytest.mark.parametrize("seconds", [0.2, 1.0, 2.9, 5.3])
def test_fixed_shape_dtype_and_finite_for_any_length(seconds):
    x = log_mel(voice(seconds=seconds), sr=16_000)
    assert x.shape == (C.n_mels, C.n_frames) == (64, 301)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x.max() - x.min() <= C.top_db + 1e-3


def test_path_equals_array(tmp_path):
    y = voice(sr=48_000)
    sf.write(tmp_path / "a.wav", y, 48_000, subtype="FLOAT")
    np.testing.assert_array_equal(log_mel(tmp_path / "a.wav"), log_mel(y, sr=48_000))


def test_matches_librosa_melspectrogram():
    y = fit_length(voice(seconds=2.5), C.n_samples)
    ours = log_mel_from_samples(y, C)
    power = librosa.feature.melspectrogram(
        y=y,
        sr=C.sample_rate,
        n_fft=C.n_fft,
        hop_length=C.hop_length,
        win_length=C.win_length,
        n_mels=C.n_mels,
        fmin=C.fmin,
        fmax=C.fmax,
        center=True,
        pad_mode="constant",
        power=2.0,
    )
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=C.top_db)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    np.testing.assert_allclose(
        mel_filterbank(C),
        librosa.filters.mel(
            sr=C.sample_rate, n_fft=C.n_fft, n_mels=C.n_mels, fmin=C.fmin, fmax=C.fmax
        ),
        atol=1e-7,
    )


def test_trim_removes_quiet_ends_only():
    y = voice(seconds=1.0, pad=0.5)
    trimmed = trim_silence(y, config=C)
    assert 0.9 * 16_000 < len(trimmed) < 1.2 * 16_000
    # the kept part is a contiguous slice of the input
    start = int(np.flatnonzero(y == trimmed[0])[0])
    np.testing.assert_array_equal(y[start : start + len(trimmed)], trimmed)


def test_fit_length_centre_crops_and_pads():
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(y, 4), [3, 4, 5, 6])
    padded = fit_length(y, 14)
    np.testing.assert_array_equal(padded, [0, 0, *range(10), 0, 0])
    assert len(fit_length(y, 10)) == 10


def test_resampled_input_gives_nearly_the_same_features():
    y16, y44 = voice(sr=16_000), voice(sr=44_100)
    a, b = log_mel(y16, sr=16_000), log_mel(y44, sr=44_100)
    loud = a > a.max() - 40  # compare where there is signal
    assert np.median(np.abs(a - b)[loud]) < 1.0  # dB


def test_gain_shifts_levels_only_without_level_normalisation():
    y = voice()
    absolute = FeatureConfig(level_db=None)  # how runs before level_db saw their input
    a, b = log_mel(y, sr=16_000, config=absolute), log_mel(y * 0.5, sr=16_000, config=absolute)
    loud = a > a.max() - 40
    assert np.median((a - b)[loud]) == pytest.approx(20 * np.log10(2), abs=0.1)
    # float32 rounding of the halved samples: far below a hundredth of a dB
    np.testing.assert_allclose(log_mel(y * 0.5, sr=16_000), log_mel(y, sr=16_000), atol=1e-2)


def test_config_round_trip_and_derived_values():
    c = FeatureConfig(n_mels=40, duration=2.0)
    assert FeatureConfig.from_dict(c.to_dict()) == c
    assert c.n_samples == 32_000 and c.n_frames == 201 and c.shape == (40, 201)
    assert log_mel(voice(), sr=16_000, config=c).shape == (40, 201)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n_mels = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [{"win_length": 1024}, {"fmax": 9000.0}, {"fmin": 9.0, "fmax": 5.0}, {"duration": 0.01}],
)
def test_invalid_configs_are_refused(kwargs):
    with pytest.raises(ParameterError):
        FeatureConfig(**kwargs)


def test_unknown_settings_are_refused():
    with pytest.raises(ParameterError, match="unknown feature settings"):
        FeatureConfig.from_dict({**C.to_dict(), "n_bins": 3})


def test_mel_warp_moves_a_tone_by_the_speed_factor():
    t = np.arange(48_000) / 16_000
    tone = {hz: log_mel_from_samples(0.3 * np.sin(2 * np.pi * hz * t)) for hz in (1000, 1250)}
    peak = {hz: int(lm.mean(axis=1).argmax()) for hz, lm in tone.items()}
    assert peak[1000] != peak[1250]
    up = mel_warp_matrix(1.25) @ tone[1000]
    down = mel_warp_matrix(1 / 1.25) @ tone[1250]
    assert int(up.mean(axis=1).argmax()) == peak[1250]
    assert int(down.mean(axis=1).argmax()) == peak[1000]


def test_mel_warp_identity_and_rows_sum_to_one():
    np.testing.assert_allclose(mel_warp_matrix(1.0), np.eye(64), atol=1e-6)
    for factor in (0.8, 1.2):
        warp = mel_warp_matrix(factor)
        assert warp.shape == (64, 64) and warp.dtype == np.float32
        np.testing.assert_allclose(warp.sum(axis=1), 1, atol=1e-6)
        assert (warp >= 0).all()
    with pytest.raises(ParameterError, match="positive"):
        mel_warp_matrix(0.0)


# -- Whisper's log-mel --------------------------------------------------------------------------
W = WhisperFeatureConfig()
WHISPER_MEL = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=80)  # Whisper's mel_filters(80)


def test_whisper_log_mel_matches_librosa():
    """Whisper's recipe (audio.py, log_mel_spectrogram) rebuilt from librosa: a centred,
    reflect-padded STFT with a periodic Hann window, last frame dropped, Slaney mel filters,
    log10 floored at 1e-10 and at max - 8, (x + 4) / 4. Float32 STFTs differ by 4e-5 here (at
    the quietest bins; 1e-4 is 0.004 dB)."""
    y = voice(seconds=2.0)
    stft = librosa.stft(y, n_fft=400, hop_length=160, window="hann", pad_mode="reflect")
    log = np.log10(np.maximum(WHISPER_MEL @ np.abs(stft[:, :-1]) ** 2, 1e-10))
    reference = (np.maximum(log, log.max() - 8) + 4) / 4
    ours = whisper_log_mel_from_samples(y)
    assert ours.shape == (80, len(y) // 160) == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_whisper_log_mel_of_a_sine_has_its_known_value():
    """A 1 kHz sine (on FFT bin 25, 40 Hz apart) levelled to -20 dBFS RMS has amplitude
    0.1·√2; with a periodic Hann window of 400 its bin holds power (100 a)² = 200 and each
    neighbour 50, nothing else. Its loudest mel band is therefore known exactly."""
    y = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(32_000) / 16_000)).astype(np.float32)
    band = 200 * WHISPER_MEL[:, 25] + 50 * (WHISPER_MEL[:, 24] + WHISPER_MEL[:, 26])
    expected = (np.log10(band.max()) + 4) / 4
    assert expected == pytest.approx(1.16542416, abs=1e-8)
    steady = whisper_log_mel(y, sr=16_000)[:, 3:-3]  # away from the reflected ends
    np.testing.assert_allclose(steady.max(axis=0), expected, atol=1e-6)
    assert set(steady.argmax(axis=0)) == {int(band.argmax())}


def test_whisper_log_mel_trims_levels_and_keeps_its_length():
    y = voice(seconds=1.5, pad=0.5)
    x = whisper_log_mel(y, sr=16_000)
    assert x.shape == (80, len(trim_silence(y, config=W)) // 160)
    assert 100 < x.shape[1] <= 150  # of 250: the quiet half-seconds are gone
    np.testing.assert_allclose(whisper_log_mel(0.01 * y, sr=16_000), x, atol=1e-4)
    assert x.max() - x.min() <= 2 + 1e-6  # floor: 8 log10 units / 4
    short = WhisperFeatureConfig(max_duration=1.0)
    assert whisper_log_mel(y, sr=16_000, config=short).shape == (80, 100)
    level = WhisperFeatureConfig(level_db=None)  # as recorded: gain moves every value
    louder = whisper_log_mel(y, sr=16_000, config=level).max()
    quieter = whisper_log_mel(0.01 * y, sr=16_000, config=level).max()
    assert louder - quieter == pytest.approx(1.0, abs=1e-3)  # -40 dB: 4 log10 units / 4


def test_whisper_config_round_trip_and_refusals(tmp_path):
    assert WhisperFeatureConfig.kind == "whisper_logmel" != FeatureConfig.kind
    c = WhisperFeatureConfig(max_duration=None, level_db=-23.0)
    assert WhisperFeatureConfig.from_dict(c.to_dict()) == c
    assert "win_length" not in c.to_dict() and c.win_length == 400 and c.n_samples is None
    with pytest.raises(ParameterError, match="unknown Whisper feature settings"):
        WhisperFeatureConfig.from_dict({**W.to_dict(), "duration": 3.0})
    with pytest.raises(ParameterError):
        WhisperFeatureConfig(fmax=9000.0)
    y = voice(sr=48_000)
    sf.write(tmp_path / "a.wav", y, 48_000, subtype="FLOAT")
    np.testing.assert_array_equal(W.compute(tmp_path / "a.wav"), whisper_log_mel(y, sr=48_000))
