"""The CNN: its architecture (:class:`CNNConfig`) and a pure builder, no I/O, no global state.

Input is a batch of raw log-mel tensors, shape (batch, n_mels, n_frames), in dB. The model's
first layer normalises each mel band with statistics of the training actors, so the exported
SavedModel takes exactly what :func:`ser_cnn.features.logmel.log_mel` returns and cannot be fed
features normalised differently from training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ser_cnn.errors import ParameterError

INPUT_NAME = "log_mel"
OUTPUT_NAME = "probabilities"
UTTERANCE_EPS = 1e-3  # dB²: keeps a flat (silent) clip finite


def utterance_normalize(features: np.ndarray) -> np.ndarray:
    """NumPy twin of the model's utterance normalisation, for computing band statistics.

    features: (n, n_mels, n_frames) -> same shape, each clip with mean 0 and variance 1.
    """
    mean = features.mean(axis=(1, 2), keepdims=True)
    var = features.var(axis=(1, 2), keepdims=True)
    return (features - mean) / np.sqrt(var + UTTERANCE_EPS)


@dataclass(frozen=True)
class CNNConfig:
    """The CNN's architecture: :func:`build_cnn` takes it whole and every run folder stores it,
    so a trained network can be rebuilt exactly. The defaults are the shipped recipe's
    (``configs/robust_dropout.toml``, ``checkpoints/ravdess_fold1``); the studio recipe before
    it (``configs/studio.toml``) had ``dropout = 0.3`` and no utterance normalisation."""

    # Channels of each conv block. Each block is ``convs_per_block`` 3×3 convolutions with batch
    # normalisation and ReLU, then 2×2 max pooling. 32-64-128-128 beat 16-32-64-128 on fold 1.
    filters: tuple[int, ...] = (32, 64, 128, 128)
    convs_per_block: int = 1
    # Average this many 10 ms frames into one before the first convolution: prosody changes over
    # tens of milliseconds, and 2 halves the cost of every layer.
    time_pool: int = 2
    dense: int = 128  # width of the hidden dense layer after pooling
    # Before the hidden and the output layer. 0.1: with degraded copies of every training clip
    # (which regularise already) the robust models underfitted at 0.3; over six folds 0.1 raised
    # validation accuracy on clean clips 0.542 -> 0.664 and the validation mean of the
    # benchmark's 13 conditions 0.475 -> 0.567 (configs/robust_dropout.toml,
    # results/robustness_validation.json). The studio recipe, without copies, keeps 0.3.
    dropout: float = 0.1
    # Standardise each clip over all its bands and frames before the band normalisation, so the
    # overall level and contrast of a recording (microphone distance, gain) drop out: part of
    # the robust recipe (configs/robust.toml), which the benchmark chose for recordings that do
    # not sound like the studio (docs/results.md#robustness). Off in the studio recipe.
    utterance_norm: bool = True
    bn_momentum: float = 0.9  # moving averages that keep up: 0.99 lagged, validation collapsed

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        except (TypeError, ValueError):
            raise ParameterError(
                f"filters must be a list of channel counts, got {self.filters!r}"
            ) from None
        if not self.filters or min(self.filters) < 1:
            raise ParameterError(f"filters must be positive channel counts, got {self.filters}")
        if self.convs_per_block < 1 or self.time_pool < 1 or self.dense < 1:
            raise ParameterError("convs_per_block, time_pool and dense must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ParameterError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"filters": list(self.filters)}

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ParameterError(f"unknown architecture settings {sorted(unknown)}")
        return cls(**d)


def build_cnn(
    input_shape: tuple[int, int],
    n_classes: int,
    config: CNNConfig = CNNConfig(),
    *,
    band_mean: np.ndarray | None = None,
    band_std: np.ndarray | None = None,
    compute_dtype: str = "float32",
    name: str = "ser_cnn",
):
    """Build the (uncompiled) log-mel CNN.

    Parameters
    ----------
    input_shape : (n_mels, n_frames)
        Shape of one log-mel tensor.
    n_classes : int
        Number of emotions; the output is a softmax over them.
    config : CNNConfig
        The architecture (default: the shipped recipe's).
    band_mean, band_std : np.ndarray, shape (n_mels,), optional
        Per-band statistics of the training data. Default: 0 and 1 (no normalisation).
    compute_dtype : {"float32", "bfloat16"}
        Arithmetic of the convolutional body and hidden layer. "bfloat16" keeps float32 weights
        (mixed precision) and roughly halves training time on CPUs with bfloat16 instructions;
        the input normalisation and the softmax stay float32 either way. Weights are
        interchangeable between the two, so a model trained in bfloat16 is exported in float32.

    Returns
    -------
    keras.Model
        Input ``log_mel`` (batch, n_mels, n_frames) float32; output ``probabilities``
        (batch, n_classes), rows summing to 1.
    """
    import keras  # here, not at import: inference reads CNNConfig without loading Keras
    from keras import layers

    n_mels, n_frames = input_shape
    mean = np.zeros(n_mels) if band_mean is None else np.asarray(band_mean, dtype=np.float64)
    std = np.ones(n_mels) if band_std is None else np.asarray(band_std, dtype=np.float64)
    if mean.shape != (n_mels,) or std.shape != (n_mels,):
        raise ParameterError(f"band statistics must have shape ({n_mels},)")
    if compute_dtype not in ("float32", "bfloat16"):
        raise ParameterError(
            f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}"
        )
    body = "mixed_bfloat16" if compute_dtype == "bfloat16" else "float32"

    inputs = keras.Input(shape=(n_mels, n_frames), name=INPUT_NAME)
    x = inputs
    if config.utterance_norm:
        x = layers.LayerNormalization(
            axis=(1, 2), epsilon=UTTERANCE_EPS, center=False, scale=False, name="utterance_norm"
        )(x)
    x = layers.Normalization(axis=1, mean=mean, variance=np.square(std), name="band_norm")(x)
    x = layers.Reshape((n_mels, n_frames, 1), name="add_channel", dtype=body)(x)
    if config.time_pool > 1:
        x = layers.AveragePooling2D((1, config.time_pool), name="time_pool", dtype=body)(x)
    for i, width in enumerate(config.filters):
        for j in range(config.convs_per_block):
            x = layers.Conv2D(
                width, 3, padding="same", use_bias=False, name=f"conv{i}_{j}", dtype=body
            )(x)
            x = layers.BatchNormalization(
                momentum=config.bn_momentum, name=f"bn{i}_{j}", dtype=body
            )(x)
            x = layers.ReLU(name=f"relu{i}_{j}", dtype=body)(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}", dtype=body)(x)
    # Keep where in frequency each channel fires (the spectral envelope carries much of the
    # emotion: high-band energy in anger, low in sadness): flatten frequency × channels per frame.
    # Then statistics pooling, mean and max over time, so the decision uses the whole utterance
    # and does not depend on where speech sits in the window.
    _, f_left, t_left, channels = x.shape
    x = layers.Permute((2, 1, 3), name="time_first", dtype=body)(x)
    x = layers.Reshape((t_left, f_left * channels), name="flatten_freq", dtype=body)(x)
    x = layers.Concatenate(name="stats_pool", dtype=body)(
        [
            layers.GlobalAveragePooling1D(name="time_mean", dtype=body)(x),
            layers.GlobalMaxPooling1D(name="time_max", dtype=body)(x),
        ]
    )
    x = layers.Dropout(config.dropout, name="drop_hidden", dtype=body)(x)
    x = layers.Dense(config.dense, activation="relu", name="hidden", dtype=body)(x)
    x = layers.Dropout(config.dropout, name="drop_out", dtype=body)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name=OUTPUT_NAME, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
