"""The small head on the frozen encoder: pooled hidden states in, emotion probabilities out.

Every hidden state of the encoder (the input of block 1, each block's output) is pooled over
the clip's frames into its mean and standard deviation (:func:`pool`). The head weighs the
layers with learned softmax weights, as SUPERB-style probes do, and classifies the weighted
statistics with one hidden layer. The architecture is a :class:`HeadConfig`, taken whole by
:func:`build_head` and stored with every run.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ser_cnn.errors import DataError, ParameterError

POOL_EPS = 1e-5  # variance floor of a clip's frames: a constant layer stays finite
POOLINGS = ("weighted", "concat")
OUTPUT_LAYER = "probabilities"  # the (usual) softmax output layer
NOISY_LAYER, GATE_LAYER = "noisy_probabilities", "noise_gate"  # HeadConfig.noise_gate's layers
# HeadConfig.home_gate's layers: the wide expert (and its noisy twin, with a noise gate), the gate
WIDE_LAYER, WIDE_NOISY_LAYER = "wide_probabilities", "wide_noisy_probabilities"
HOME_GATE_LAYER = "home_gate"


def pool(states: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over frames of every hidden state.

    Parameters
    ----------
    states : np.ndarray, shape (n_layer + 1, frames, n_state)

    Returns
    -------
    np.ndarray, shape (n_layer + 1, 2 * n_state), float32
    """
    x = np.asarray(states, dtype=np.float32)
    return np.concatenate([x.mean(axis=1), np.sqrt(x.var(axis=1) + POOL_EPS)], axis=-1)


def clip_normalize(pooled: np.ndarray) -> np.ndarray:
    """Standardise each layer's pooled vector by its own mean and spread (its 2 · n_state
    numbers): a per-clip normalisation that needs no other clip.

    pooled: (..., n_layer + 1, width) -> same shape.
    """
    mean = pooled.mean(axis=-1, keepdims=True)
    return (pooled - mean) / (pooled.std(axis=-1, keepdims=True) + POOL_EPS)


def speaker_statistics(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over one speaker's clips of every pooled number, as
    :func:`ser_cnn.features.speaker.band_statistics` takes them of log-mel bands (its floor).

    pooled: (n_clips, n_layer + 1, width) -> mean, std: each (n_layer + 1, width), float64.
    """
    from ser_cnn.features.speaker import band_statistics

    pooled = np.asarray(pooled)
    mean, std = band_statistics(pooled.reshape(len(pooled), -1, 1))
    return mean.reshape(pooled.shape[1:]), std.reshape(pooled.shape[1:])


def speaker_normalize(pooled: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Standardise every speaker's pooled states by that speaker's own
    :func:`speaker_statistics`, taken of their clips as recorded (version 0).

    pooled: (versions, n_clips, n_layer + 1, width); speakers: (n_clips,), no None -> float32,
    the same shape: every version of a clip with its speaker's statistics.
    """
    speakers = np.asarray(speakers, dtype=object)
    if any(s is None for s in speakers):
        raise DataError("speaker normalisation needs every clip's speaker")
    out = np.empty(pooled.shape, dtype=np.float32)
    for who in set(speakers):
        mine = speakers == who
        mean, std = speaker_statistics(pooled[0, mine])
        out[:, mine] = (pooled[:, mine] - mean) / std
    return out


@dataclass(frozen=True)
class HeadConfig:
    """The head's architecture; :func:`build_head` takes it whole and each run stores it."""

    # "weighted": a learned softmax weighting of the layers' statistics (one vector of
    # 2 · n_state); "concat": every layer's statistics side by side (n_layer + 1 times longer).
    pooling: str = "weighted"
    hidden: int = 256  # width of the hidden dense layer; 0: straight to the output
    dropout: float = 0.3  # on the pooled statistics and the hidden layer
    clip_norm: bool = False  # see :func:`clip_normalize`
    # Each speaker's statistics standardised by that speaker's own (:func:`speaker_normalize`):
    # the model then needs several recordings of a speaker before it judges any of them.
    speaker_norm: bool = False
    # Two linear experts and a gate (a linear head only): the output layer fitted as usual, a
    # second one (NOISY_LAYER) fitted with copies that always carry noise too, and a logistic
    # gate g (GATE_LAYER) that tells such copies from the usual ones; the answer is
    # (1 - g) · probabilities + g · noisy_probabilities, so a clean clip keeps the usual answer.
    noise_gate: bool = False
    # Two sets of experts and a second gate (a linear head only): the layers above fitted on
    # the home corpus's clips alone (HeadTraining.home_corpus), the same again (WIDE_LAYER,
    # WIDE_NOISY_LAYER) on every training corpus, and a logistic gate h (HOME_GATE_LAYER) that
    # tells the other corpora's clips from the home corpus's; the answer is
    # (1 - h) · home + h · wide, so a clip like the home corpus's keeps the home answer.
    home_gate: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ParameterError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.hidden < 0 or not 0 <= self.dropout < 1:
            raise ParameterError("need hidden >= 0 and 0 <= dropout < 1")
        if (self.noise_gate or self.home_gate) and self.hidden:
            raise ParameterError(f"a gate needs a linear head (hidden = 0), got {self.hidden}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ParameterError(f"unknown head settings {sorted(unknown)}")
        return cls(**d)


def build_head(
    n_states: int,
    width: int,
    n_classes: int,
    config: HeadConfig = HeadConfig(),
    *,
    mean: np.ndarray,
    std: np.ndarray,
):
    """The head as a Keras model.

    Parameters
    ----------
    n_states, width : int
        Hidden states per clip (n_layer + 1) and the length of one pooled vector (2 · n_state).
    n_classes : int
    config : HeadConfig
    mean, std : np.ndarray, shape (n_states, width)
        Statistics of the training clips' pooled vectors: the first layer standardises with
        them, so the model takes :func:`pool`'s output as it is.

    Returns
    -------
    keras.Model
        (batch, n_states, width) float32 -> (batch, n_classes) probabilities.
    """
    import keras
    from keras import layers, ops

    inputs = keras.Input((n_states, width), name="pooled_states")
    x = (inputs - ops.convert_to_tensor(mean, "float32")) / ops.convert_to_tensor(std, "float32")
    if config.pooling == "weighted":
        x = layer_weights_class()(name="layer_weights")(x)
    else:
        x = layers.Flatten()(x)
    x = layers.Dropout(config.dropout)(x)
    if config.hidden:
        x = layers.Dense(config.hidden, activation="relu")(x)
        x = layers.Dropout(config.dropout)(x)

    def softmax(name: str):
        return layers.Dense(n_classes, activation="softmax", name=name)(x)

    def gate(name: str):
        return layers.Dense(1, activation="sigmoid", name=name)(x)

    def mix(a, b, g):
        return a + g * (b - a)  # (1 - g) · a + g · b

    outputs = softmax(OUTPUT_LAYER)
    if config.noise_gate:
        noisy = softmax(NOISY_LAYER)
        noise = gate(GATE_LAYER)
        outputs = mix(outputs, noisy, noise)
    if config.home_gate:
        wide = softmax(WIDE_LAYER)
        if config.noise_gate:
            wide = mix(wide, softmax(WIDE_NOISY_LAYER), noise)
        outputs = mix(outputs, wide, gate(HOME_GATE_LAYER))
    return keras.Model(inputs, outputs, name="encoder_head")


@functools.cache
def layer_weights_class():
    """The Keras layer of learned layer weights (defined on first use: Keras loads late)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="ser_cnn")
    class LayerWeights(keras.layers.Layer):
        """Softmax-weighted sum over axis 1 (the encoder's layers); starts equal."""

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[1],), initializer="zeros", name="w")

        def call(self, x):
            return ops.einsum("l,blw->bw", ops.softmax(self.w), x)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[2])

    return LayerWeights
