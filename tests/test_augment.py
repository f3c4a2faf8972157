"""The training data pipeline: augmentation touches training batches only, is seeded, and keeps
shapes, ranges and labels as each kind promises."""

from __future__ import annotations

import numpy as np
import pytest

from ser_cnn.config import TrainConfig
from ser_cnn.training.augment import make_dataset

N_CLASSES = 8
ALL_ON = TrainConfig(
    batch_size=8,
    speed=0.15,
    time_shift=10,
    freq_masks=2,
    time_masks=2,
    mixup_alpha=0.2,
    noise_db=1.0,
)


@pytest.fixture(scope="module")
def batch(tiny_features):
    rng = np.random.default_rng(0)
    x = rng.normal(-40, 10, size=(16, *tiny_features.shape)).astype(np.float32)
    y = np.arange(16) % N_CLASSES
    return x, y


@pytest.fixture(scope="module")
def first_epoch(tiny_features):
    """The first epoch's clips and labels of make_dataset, on tiny-cache-shaped log-mels."""

    def run(x, y, config, *, training=True):
        ds = make_dataset(x, y, N_CLASSES, config, training=training, feature_config=tiny_features)
        clips, labels = zip(*((c.numpy(), lab.numpy()) for c, lab in ds), strict=True)
        return np.concatenate(clips), np.concatenate(labels)

    return run


def test_evaluation_data_is_left_alone(batch, first_epoch):
    x, y = batch
    clips, labels = first_epoch(x, y, ALL_ON, training=False)
    np.testing.assert_array_equal(clips, x)
    np.testing.assert_array_equal(labels.argmax(axis=1), y)


def test_augmented_batches_keep_shape_and_are_seeded(batch, first_epoch):
    x, y = batch
    clips, labels = first_epoch(x, y, ALL_ON)
    assert clips.shape == x.shape and clips.dtype == np.float32
    assert np.isfinite(clips).all()
    np.testing.assert_allclose(labels.sum(axis=1), 1, atol=1e-6)  # mixup mixes, keeps mass
    again, _ = first_epoch(x, y, ALL_ON)
    np.testing.assert_array_equal(clips, again)
    other, _ = first_epoch(x, y, ALL_ON.replace(seed=1))
    assert not np.allclose(clips, other)


def test_speed_perturbation_stretches_time_and_stays_in_range(tiny_features, first_epoch):
    n_mels, n_frames = tiny_features.shape
    x = np.full((64, n_mels, n_frames), -80.0, dtype=np.float32)
    x[:, :, 30:70] = -20.0  # a 40-frame burst in the middle
    y = np.zeros(64, dtype=int)
    config = TrainConfig(batch_size=64, speed=0.2)
    clips, _ = first_epoch(x, y, config)
    assert clips.min() >= -80.0 - 1e-3 and clips.max() <= -20.0 + 1e-3  # interpolation only
    lengths = (clips.mean(axis=1) > -50).sum(axis=1)
    assert len(set(lengths)) > 3  # different speeds, different durations
    assert lengths.min() >= 40 / 1.2 - 2 and lengths.max() <= 40 / 0.8 + 2


def test_time_shift_rolls_without_changing_content(batch, first_epoch):
    x, y = batch
    clips, _ = first_epoch(x, y, TrainConfig(batch_size=8, time_shift=10, seed=3))
    # the pipeline shuffles: match each output to an input by its sorted values
    for clip in clips:
        source = next(c for c in x if np.allclose(np.sort(c, axis=None), np.sort(clip, axis=None)))
        shifts = [s for s in range(-10, 11) if np.array_equal(np.roll(source, s, axis=1), clip)]
        assert shifts
