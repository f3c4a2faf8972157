"""Training data pipeline of the CNN: tf.data, shuffling and augmentation of the cached log-mels.

Augmentations act on raw log-mel tensors (dB) of the training actors only. Every random draw is
a stateless op keyed by a seed stream derived from ``config.seed``, so the same seed gives the
same augmentations, epoch by epoch, whatever the thread scheduling. The degraded copies of the
training clips (audio degradations) are not made here: they come from the cache
(:func:`ser_cnn.features.cache.training_copies`).
"""

from __future__ import annotations

import numpy as np

from ser_cnn.config import TrainConfig
from ser_cnn.errors import ParameterError
from ser_cnn.features.logmel import FeatureConfig

SPEED_STEPS = 21  # speed factors on a grid over 1 ± speed (one warp matrix each)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    *,
    training: bool,
    feature_config: FeatureConfig | None = None,
    copies: np.ndarray | None = None,
):
    """tf.data pipeline: one-hot labels; for training, shuffling and augmentation.

    The augmentations, each set in ``config``: speed perturbation (mel warp + time stretch,
    ``feature_config`` gives the mel scale), random circular time shift, SpecAugment frequency
    and time masks (filled with the clip's mean), Gaussian noise, and mixup of pairs within a
    batch (labels mixed alike). With ``copies`` (shape (n, k, n_mels, n_frames), the cache's
    :func:`ser_cnn.features.cache.training_copies`), each clip is drawn clean or as one of its k
    copies, uniformly.
    """
    import tensorflow as tf

    onehot = np.eye(n_classes, dtype=np.float32)[y]
    if not training:
        return tf.data.Dataset.from_tensor_slices((x.astype(np.float32), onehot)).batch(
            config.batch_size
        )
    if copies is not None:  # slot 0 is the clean clip
        x = np.concatenate([x[:, None], copies], axis=1)
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), onehot))
    ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    n_mels, n_frames = x.shape[-2:]
    if config.speed:
        from ser_cnn.features.logmel import DEFAULT_CONFIG, mel_warp_matrix

        factors = np.linspace(1 - config.speed, 1 + config.speed, SPEED_STEPS)
        mel_config = feature_config or DEFAULT_CONFIG
        if mel_config.n_mels != n_mels:
            raise ParameterError(f"feature_config has {mel_config.n_mels} bands, x has {n_mels}")
        warps = tf.constant(np.stack([mel_warp_matrix(f, config=mel_config) for f in factors]))
        lengths = tf.constant(np.round(n_frames / factors).astype(np.int32))

    def seeds(offset: int):
        # one int64 per element, different every epoch, the same in every run with this seed
        return tf.data.Dataset.random(seed=config.seed + offset, rerandomize_each_iteration=True)

    def augment(example, key):
        clip, label = example
        keys = tf.unstack(tf.random.split(tf.stack([key, key // 7]), 8))
        speed_key, keys = keys[-1], iter(keys[:-1])
        if copies is not None:  # a key of its own: the other draws stay as they were without
            copy_key = tf.stack([key // 11, key])
            slots = copies.shape[1] + 1
            clip = tf.gather(clip, tf.random.stateless_uniform([], copy_key, 0, slots, tf.int32))
        if config.speed:
            pick = tf.random.stateless_uniform([], speed_key, 0, SPEED_STEPS, tf.int32)
            clip = tf.linalg.matmul(tf.gather(warps, pick), clip)
            # stretch in time, then centre-crop or pad with the clip's floor back to n_frames
            floor = tf.reduce_min(clip)
            image = tf.image.resize((clip - floor)[..., None], [n_mels, tf.gather(lengths, pick)])
            clip = tf.image.resize_with_crop_or_pad(image, n_mels, n_frames)[..., 0] + floor
        if config.time_shift:
            shift = tf.random.stateless_uniform(
                [], next(keys), -config.time_shift, config.time_shift + 1, tf.int32
            )
            clip = tf.roll(clip, shift, axis=1)
        fill = tf.reduce_mean(clip)
        for _ in range(config.freq_masks):
            clip = _mask(clip, fill, n_mels, config.freq_mask_width, next(keys), axis=0)
        for _ in range(config.time_masks):
            clip = _mask(clip, fill, n_frames, config.time_mask_width, next(keys), axis=1)
        if config.noise_db:
            clip += tf.random.stateless_normal(tf.shape(clip), next(keys), stddev=config.noise_db)
        return clip, label

    ds = tf.data.Dataset.zip((ds, seeds(0)))
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(config.batch_size)
    if config.mixup_alpha > 0:
        ds = tf.data.Dataset.zip((ds, seeds(1)))
        ds = ds.map(lambda batch, key: _mixup(*batch, config.mixup_alpha, key))
    return ds.prefetch(tf.data.AUTOTUNE)


def _mask(clip, fill, size: int, max_width: int, key, *, axis: int):
    import tensorflow as tf

    if max_width <= 0:
        return clip
    k1, k2 = tf.unstack(tf.random.split(key, 2))
    width = tf.random.stateless_uniform([], k1, 0, max_width + 1, tf.int32)
    start = tf.random.stateless_uniform([], k2, 0, tf.maximum(size - width, 0) + 1, tf.int32)
    index = tf.range(size)
    hit = (index >= start) & (index < start + width)
    hit = tf.reshape(hit, [-1, 1] if axis == 0 else [1, -1])
    return tf.where(hit, fill, clip)


def _mixup(clips, labels, alpha: float, key):
    import tensorflow as tf

    k1, k2, k3 = tf.unstack(tf.random.split(tf.stack([key, key // 7]), 3))
    n = tf.shape(clips)[0]
    # Beta(α, α) from two Gamma draws; one λ per clip
    a = tf.random.stateless_gamma([n], k1, alpha)
    b = tf.random.stateless_gamma([n], k2, alpha)
    lam = a / (a + b)
    partner = tf.argsort(tf.random.stateless_uniform([n], k3))
    lam_x = tf.reshape(lam, [-1, 1, 1])
    lam_y = tf.reshape(lam, [-1, 1])
    clips = lam_x * clips + (1 - lam_x) * tf.gather(clips, partner)
    labels = lam_y * labels + (1 - lam_y) * tf.gather(labels, partner)
    return clips, labels
