"""The encoder's serving front end: the noise-floor estimate and gated spectral denoising."""

from __future__ import annotations

import numpy as np
import pytest

from ser_cnn.audio.denoise import (
    DenoiseConfig,
    denoise,
    floor_snr,
    floor_spread,
    needs_denoising,
)
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.errors import ParameterError

SR = 16_000
# A frame's mean square of white noise over 400 samples varies by about 7 % (sqrt(2 / 400)),
# 0.3 dB, so a percentile of frame powers lands within 0.5 dB of the noise's power.
FLOOR_DB_TOLERANCE = 0.5


def bursts(rng, *, snr_db: float, seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A tone on for half of every 0.5 s, in white noise ``snr_db`` below its power; returns
    the mixture and the tone. Each burst has another pitch, as syllables do."""
    t = np.arange(round(seconds * SR)) / SR
    pitch = 200.0 * 1.25 ** (t // 0.5)  # 200 Hz, then a major third higher each burst
    tone = np.sqrt(2) * np.sin(2 * np.pi * pitch * t) * ((t % 0.5) < 0.25)  # power 1 when on
    noise = rng.standard_normal(len(t)) * 10 ** (-snr_db / 20)
    return (tone + noise).astype(np.float32), tone.astype(np.float32)


def test_the_floor_snr_is_speech_over_the_noise_in_the_pauses():
    rng = np.random.default_rng(0)
    for snr in (5.0, 10.0, 20.0):
        y, _ = bursts(rng, snr_db=snr)
        expected = 10 * np.log10((1 + 10 ** (-snr / 10)) / 10 ** (-snr / 10))  # (S + N) / N
        assert floor_snr(y, SR) == pytest.approx(expected, abs=FLOOR_DB_TOLERANCE)
    _, tone = bursts(rng, snr_db=10.0)
    assert floor_snr(tone, SR) == float("inf")  # digital silence between the bursts
    assert floor_snr(np.zeros(SR, np.float32), SR) == 0.0
    with pytest.raises(ParameterError, match=r"two 0\.025 s frames"):
        floor_snr(np.ones(500, np.float32), SR)


def test_a_moving_floor_is_told_from_a_steady_one():
    rng = np.random.default_rng(3)
    steady, _ = bursts(rng, snr_db=5.0)
    t = np.arange(len(steady)) / SR
    # noise whose level swings by 20 dB at 3 Hz, as voices do: its quiet frames differ widely
    swing = 10 ** (np.sin(2 * np.pi * 3 * t) / 2)
    _, tone = bursts(rng, snr_db=5.0)
    moving = (tone + rng.standard_normal(len(t)) * 10 ** (-5 / 20) * swing).astype(np.float32)
    assert floor_spread(steady, SR) < 1.5  # frames of one white noise: 0.3 dB each
    assert floor_spread(moving, SR) > 6.0
    gate = DenoiseConfig(below_db=30.0, steady_db=3.0)
    assert needs_denoising(steady, SR, config=gate) and not needs_denoising(moving, SR, config=gate)
    assert np.array_equal(denoise(moving, SR, config=gate), moving)  # left as recorded
    assert needs_denoising(moving, SR, config=DenoiseConfig(below_db=30.0))  # no steadiness asked
    assert not needs_denoising(steady, SR, config=DenoiseConfig(below_db=5.0))  # SNR above


def test_a_clip_above_the_gate_passes_untouched():
    y, _ = bursts(np.random.default_rng(1), snr_db=20.0)
    assert np.array_equal(denoise(y, SR, config=DenoiseConfig(below_db=10.0)), y)
    assert np.array_equal(denoise(y[:100], SR, config=DenoiseConfig(below_db=1e9)), y[:100])


def test_a_clip_below_the_gate_loses_its_noise():
    pytest.importorskip("noisereduce")
    y, tone = bursts(np.random.default_rng(2), snr_db=5.0)
    pauses = tone == 0
    out = denoise(y, SR, config=DenoiseConfig())  # the gate at 15 dB, all of the noise
    assert out.dtype == np.float32 and out.shape == y.shape
    assert floor_snr(y, SR) < DenoiseConfig().below_db

    def pause_db(z):  # the pauses' power against the noise's as recorded
        return 10 * np.log10(np.mean(z[pauses] ** 2) / np.mean(y[pauses] ** 2))

    # The gate attenuates what stands less than 1.5 std above the noise's profile; its masks
    # are smoothed over 500 Hz and 50 ms, so the tone loses some too, the pauses far more.
    assert pause_db(out) < -15.0  # -23.6 dB here
    assert floor_snr(out, SR) > floor_snr(y, SR) + 10.0  # 6.6 -> 21.3 dB here
    lighter = denoise(y, SR, config=DenoiseConfig(amount=0.4))
    assert pause_db(out) < pause_db(lighter) < -2.0  # less taken away
    whole = denoise(y, SR, config=DenoiseConfig(profile="clip"))  # the profile from every frame
    assert not np.allclose(whole, out) and pause_db(whole) < -15.0


def test_denoise_settings_are_checked_and_travel_with_the_head_training():
    for amount in (0.0, 1.5):
        with pytest.raises(ParameterError, match="amount"):
            DenoiseConfig(amount=amount)
    with pytest.raises(ParameterError, match="profile"):
        DenoiseConfig(profile="music")
    with pytest.raises(ParameterError, match="unknown denoise settings"):
        DenoiseConfig.from_dict({"below": 10})
    training = HeadTraining.from_dict({"denoise": {"below_db": 8.0, "amount": 0.5}})
    assert training.denoise == DenoiseConfig(below_db=8.0, amount=0.5, profile="pauses")
    assert HeadTraining.from_dict(training.to_dict()) == training  # as a run stores it
    assert HeadTraining.from_dict({}).denoise is None  # runs written before it: none
