"""Level invariance and noise-robust framing: by design, in the features and the shipped model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ser_cnn.audio.degrade import pad
from ser_cnn.audio.io import load_audio
from ser_cnn.features.logmel import FeatureConfig, clip_log_mel, trim_silence
from tests.conftest import REPO

CLIP = REPO / "examples" / "03-01-05-02-01-01-11.flac"  # angry, actor 11: unseen in training
GAINS_DB = (-30.0, -10.0, 0.0, 6.0)  # the clip peaks below -6 dBFS: +6 dB does not clip
SR = 16_000


def _room_tone(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    """Faint brown-ish noise at ``dbfs`` RMS, as a quiet room sounds between words."""
    rng = np.random.default_rng(seed)
    tone = np.cumsum(rng.standard_normal(round(seconds * SR)))
    tone -= np.convolve(tone, np.ones(400) / 400, mode="same")  # no drifting DC
    return (tone / np.sqrt(np.mean(tone**2)) * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    y = load_audio(CLIP)
    assert np.abs(y).max() * 10 ** (max(GAINS_DB) / 20) < 1.0  # no clipping at the top gain
    return y


def test_log_mel_does_not_depend_on_gain(clip):
    reference = clip_log_mel(clip)
    for db in GAINS_DB:
        scaled = clip_log_mel(clip * np.float32(10 ** (db / 20)))
        # float32 rounding of the samples moves a frame's level by ~1e-4 dB at most
        np.testing.assert_allclose(scaled, reference, atol=1e-3, err_msg=f"{db} dB")


def test_old_runs_keep_the_recording_level(clip):
    old = FeatureConfig.from_dict({})  # a record from before level_db and the framing settings
    assert old.level_db is None and old.noise_margin_db is None and old.trim_preemphasis is None
    quieter = clip_log_mel(clip * np.float32(0.1), old)
    assert np.max(clip_log_mel(clip, old)) - np.max(quieter) == pytest.approx(20.0, abs=0.01)


def test_steady_noise_around_speech_is_trimmed(clip):
    speech = trim_silence(clip)
    rng = np.random.default_rng(0)
    padded = np.concatenate([np.zeros(round(0.3 * SR)), clip, np.zeros(2 * SR)])
    noise = np.sqrt(np.mean(speech**2)) / 10 ** (20 / 20)  # 20 dB SNR over the speech
    noisy = (padded + noise * rng.standard_normal(len(padded))).astype(np.float32)
    kept = trim_silence(noisy)
    # the speech is kept, but for its softest 0.15 s under the noise; the 2.3 s of noise go
    assert abs(len(kept) - len(speech)) <= 0.15 * SR
    without_margin = trim_silence(noisy, config=FeatureConfig(noise_margin_db=None))
    assert len(without_margin) > len(noisy) - 0.1 * SR  # 40 dB below the peak keeps it all


def test_faint_room_tone_padding_is_trimmed(clip):
    padded = np.concatenate([_room_tone(0.3, -70, 1), clip, _room_tone(2.0, -70, 2)])
    assert len(trim_silence(padded)) == len(trim_silence(clip))


def test_room_tone_quieter_than_the_recordings_own_noise_is_trimmed(clip):
    # the benchmark's padding on a quiet recording (RAVDESS speech is quiet: -36 dBFS median)
    # that keeps its room noise around the speech; tone below that noise pulls the
    # 10th-percentile floor down, and only the pre-emphasised level, which the tone's rumble
    # cannot reach, still finds where the speech is
    quiet = clip * np.float32(0.1)
    padded = pad(quiet, SR, before=0.3, after=2.0, tone_db=-70.0, rng=np.random.default_rng(0))
    assert abs(len(trim_silence(padded)) - len(trim_silence(quiet))) <= 2 * 160  # two frames
    off = FeatureConfig(trim_preemphasis=None)
    assert len(trim_silence(padded, config=off)) > len(trim_silence(quiet, config=off)) + SR


def test_untrimmed_room_tone_leaves_the_speech_in_view(clip):
    # tone 25 dB below the speech's loudest frame, 4 s of it after; the trim is told not to see
    # it (no pre-emphasis: its rumble would go), so the window has to find the speech
    config = FeatureConfig(trim_preemphasis=None)
    speech = trim_silence(clip, config=config)
    peak_db = 10 * np.log10(np.max(np.convolve(speech**2, np.ones(400) / 400, "valid")))
    tone = [_room_tone(s, peak_db - 25, seed) for s, seed in ((0.5, 5), (4.0, 6))]
    padded = np.concatenate([tone[0], clip, tone[1]])
    assert len(trim_silence(padded, config=config)) > len(padded) - 0.1 * SR
    reference = clip_log_mel(clip, config)
    loudest = clip_log_mel(padded, config)
    middle = clip_log_mel(padded, dataclasses.replace(config, loudest_window=None))

    def speech_frames(x):  # frames within 20 dB of the clip's loudest
        return np.sum(x.max(axis=0) > reference.max() - 20)

    assert speech_frames(loudest) >= 0.95 * speech_frames(reference)
    assert speech_frames(middle) < 0.8 * speech_frames(reference)  # the middle cuts speech off


@pytest.fixture(scope="module")
def shipped():
    import ser_cnn

    rec = ser_cnn.load_recognizer(models=["cnn"])
    if rec.feature_config.level_db is None:
        pytest.skip("the shipped model was trained before level normalisation")
    return rec


def test_shipped_model_answer_does_not_depend_on_gain(shipped, clip):
    probs = [
        shipped.predict(clip * np.float32(10 ** (db / 20)), sr=SR).scores["cnn"].probabilities
        for db in GAINS_DB
    ]
    for db, p in zip(GAINS_DB, probs, strict=True):
        np.testing.assert_allclose(
            list(p.values()), list(probs[2].values()), atol=1e-3, err_msg=f"{db} dB"
        )


def test_shipped_model_keeps_its_answer_with_room_tone_padding(shipped, clip):
    padded = np.concatenate([_room_tone(0.3, -70, 3), clip, _room_tone(2.0, -70, 4)])
    before = shipped.predict(clip, sr=SR).scores["cnn"]
    after = shipped.predict(padded, sr=SR).scores["cnn"]
    assert after.emotion == before.emotion
    assert after.probability == pytest.approx(before.probability, abs=0.05)


def test_room_tone_past_the_long_limit_does_not_window_a_clip(shipped, clip, tmp_path):
    # 3 s of room tone after a 3.7 s clip: the file lasts 7 s, but its speech is what decides
    # whether it is cut into windows, so it is analysed whole, exactly as the clip alone
    import soundfile as sf

    padded = np.concatenate([_room_tone(0.3, -70, 5), clip, _room_tone(3.0, -70, 6)])
    assert len(padded) > 2 * shipped.window * SR
    sf.write(tmp_path / "padded.wav", padded, SR, subtype="FLOAT")
    before = shipped.predict(clip, sr=SR).scores["cnn"].probabilities
    for source, sr in ((padded, SR), (tmp_path / "padded.wav", None)):
        p = shipped.predict(source, sr=sr)
        assert not p.windows
        # the same trimmed samples: only float32 rounding in the model separates them
        np.testing.assert_allclose(
            list(p.scores["cnn"].probabilities.values()), list(before.values()), atol=1e-6
        )
