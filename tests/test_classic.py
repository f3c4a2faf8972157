"""The classic 180-number feature vector of the MLP baseline."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from ser_cnn.features.classic import (
    DEFAULT_CLASSIC,
    ClassicConfig,
    classic_features,
    classic_from_samples,
)
from tests.conftest import voice


@pytest.mark.parametrize("seconds", [0.3, 1.0, 4.0])
def test_shape_dtype_finite(seconds):
    v = classic_features(voice(seconds=seconds), sr=16_000)
    assert v.shape == (180,) == DEFAULT_CLASSIC.shape
    assert v.dtype == np.float32 and np.isfinite(v).all()


def test_path_equals_array(tmp_path):
    y = voice(sr=22_050)
    sf.write(tmp_path / "a.wav", y, 22_050, subtype="FLOAT")
    np.testing.assert_array_equal(
        classic_features(tmp_path / "a.wav"), classic_features(y, sr=22_050)
    )


def test_mfcc_and_mel_parts_equal_librosa():
    y = voice(seconds=2.0)
    v = classic_from_samples(y)
    magnitude = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    mel = librosa.feature.melspectrogram(S=magnitude**2, sr=16_000, n_mels=128)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=40)
    np.testing.assert_allclose(v[:40], mfcc.mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(v[52:], mel.mean(axis=1), rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize(("hz", "pitch_class"), [(440.0, 9), (261.63, 0), (392.0, 7)])
def test_chroma_names_the_pitch_class_of_a_tone(hz, pitch_class):
    t = np.arange(16_000) / 16_000
    v = classic_from_samples((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
    chroma = v[40:52]
    assert int(np.argmax(chroma)) == pitch_class
    assert chroma.max() <= 1.0 + 1e-6


def test_config_round_trip():
    c = ClassicConfig(n_mfcc=20)
    assert ClassicConfig.from_dict(c.to_dict()) == c and c.shape == (160,)
