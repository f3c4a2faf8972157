"""Band statistics and speaker normalisation: properties on random log-mels, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ser_cnn.errors import ParameterError
from ser_cnn.features.speaker import (
    STD_FLOOR,
    BandAccumulator,
    band_statistics,
    normalize,
    normalize_by_speaker,
)


def log_mels(n: int, *, seed: int = 0, level: float = -40.0, spread: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tilt = np.linspace(0.0, -20.0, 16)[:, None]  # a voice's spectral envelope, dB per band
    return (level + tilt + spread * rng.standard_normal((n, 16, 50))).astype(np.float32)


def test_each_speaker_gets_band_mean_0_and_std_1():
    features = np.concatenate([log_mels(6, seed=1), log_mels(4, seed=2, level=-10, spread=3)])
    speakers = np.array([7] * 6 + [9] * 4)
    out = normalize_by_speaker(features, speakers)
    assert out.shape == features.shape and out.dtype == np.float32
    for s in (7, 9):
        mean, std = band_statistics(out[speakers == s])
        np.testing.assert_allclose(mean, 0.0, atol=1e-5)
        np.testing.assert_allclose(std, 1.0, atol=1e-5)


def test_a_speaker_is_normalised_by_their_own_clips_only():
    a, b = log_mels(5, seed=3), log_mels(5, seed=4)
    speakers = np.array([1] * 5 + [2] * 5)
    first = normalize_by_speaker(np.concatenate([a, b]), speakers)
    # another speaker louder and in a different order: speaker 1's features do not move
    second = normalize_by_speaker(np.concatenate([b[::-1] + 30, a]), speakers[::-1])
    np.testing.assert_allclose(first[:5], second[5:], atol=1e-6)


def test_a_speakers_overall_level_and_envelope_drop_out():
    clips = log_mels(8, seed=5)
    louder = clips + np.linspace(5, 25, 16)[None, :, None]  # same voice, other microphone
    speakers = np.zeros(8, dtype=int)
    np.testing.assert_allclose(
        normalize_by_speaker(clips, speakers), normalize_by_speaker(louder, speakers), atol=1e-4
    )


def test_accumulated_statistics_equal_those_of_all_clips_at_once():
    features = log_mels(9, seed=6)
    acc = BandAccumulator()
    for batch in (features[:1], features[1:5], features[5:]):
        acc.add(batch)
    mean, std = acc.statistics()
    expected_mean, expected_std = band_statistics(features)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(std, expected_std, rtol=1e-5)
    np.testing.assert_allclose(
        normalize(features, mean, std), normalize(features, *band_statistics(features)), atol=1e-4
    )


def test_a_constant_band_stays_finite():
    features = log_mels(3, seed=7)
    features[:, 0, :] = -80.0  # padding only
    assert band_statistics(features)[1][0] == STD_FLOOR
    assert np.isfinite(normalize_by_speaker(features, np.zeros(3))).all()


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ParameterError, match="one speaker per clip"):
        normalize_by_speaker(log_mels(3), np.zeros(2))
    with pytest.raises(ParameterError, match="non-empty batch"):
        band_statistics(np.zeros((0, 16, 50)))
    with pytest.raises(ParameterError, match="n_clips, n_mels, n_frames"):
        band_statistics(np.zeros((16, 50)))
    acc = BandAccumulator()
    with pytest.raises(ParameterError, match="nothing to take statistics of"):
        acc.statistics()
    acc.add(log_mels(1))
    with pytest.raises(ParameterError, match="16 mel bands"):
        acc.add(np.zeros((1, 8, 50)))
