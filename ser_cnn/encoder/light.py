"""Whisper's encoder in plain NumPy: the Keras model's hidden states without Keras or TensorFlow.

Importing TensorFlow alone takes seconds, so a one-clip answer through
:mod:`ser_cnn.encoder.whisper` cannot start fast. :class:`LightEncoder` is its light twin, as
``model.tflite`` is the CNN's and ``model.npz`` the MLP's (:mod:`ser_cnn.serving.runtime`): the same
forward pass in NumPy alone, float32, from the same CTranslate2 tensors
(:func:`ser_cnn.encoder.ct2.read_ct2`), returning what the model of
:func:`~ser_cnn.encoder.whisper.build_encoder` returns: every hidden state,
``(n_layer + 1, ceil(frames / 2), n_state)`` a clip, the final LayerNorm on the last. The Keras
model stays the reference: ``tests/test_encoder.py`` checks one against the other (its
``LIGHT_ATOL``). Nothing here imports Keras or TensorFlow.

How it is made fast on a CPU (measured by ``tools/benchmark_encoder.py``):

* **No padding.** The clips of a call are packed one after another, so every dense layer is
  one GEMM over the rows of all clips and no row is computed for padding; only attention is
  done clip by clip, each clip's queries over its own keys, which is what the clip alone gets
  (Keras's key mask, without computing the masked part). Clips are grouped into calls of at
  most :data:`BATCH_FRAMES` frames in their order, to bound memory; length buckets would only
  matter for a padded batch, and there is none.
* **Convolutions as GEMMs** (im2col): each clip's frames sit between zero rows in one buffer,
  the three taps of every output frame are one strided row of it (stride 2 for conv2), and
  the convolution is one matrix product over all clips.
* **Folded at load**, each weight rounded to float32 once: each block's LayerNorm scale and
  shift into the dense layer after it, attention's 1/sqrt(head width) into the query columns of
  the fused q, k, v matrix (a power of two for tiny: exact).
* **GELU**, the exact erf form (Keras's ``activation="gelu"`` is ``approximate=False``), with
  erfc in float32 NumPy (:func:`gelu`), as accurate as TensorFlow's: ``scipy.special.erf``
  works in double precision one element at a time, about 25 ns an element, which made it the
  slowest step of the whole encoder; this is about 5 ns.
* **No subnormal numbers.** GELU of x below about -13 is a subnormal float32 (under 1.2e-38),
  and a GEMM that multiplies those takes the CPU's slow path (TensorFlow turns subnormals off
  in its threads; NumPy cannot): with them the encoder took twice as long. GELU's tail is cut
  where it is below 1e-22 (:data:`_GELU_TAIL`), softmax logits are floored at 80 below their
  row's largest (weights of 1.8e-35 instead of nothing).
* **Cache-sized pieces.** Dense layers run over :data:`ROWS` rows at a time (LayerNorm, GEMM,
  GELU and the next GEMM while the rows are still in the core's cache), elementwise steps in
  place. With more than one thread the pieces (and the clips' attention) are shared among
  Python threads, NumPy and BLAS releasing the GIL, each thread taking the next piece left,
  so that LayerNorm, GELU and softmax, which NumPy runs on one core, use every core too. The
  BLAS runs one thread: on a machine shared with other jobs, OpenBLAS's own threads (which
  spin while they wait for each other) made a batch 3 to 10 times slower (measured), while a
  Python thread held back by the system only takes fewer pieces. One clip of a few seconds (fewer
  than 2 × :data:`ROWS` positions) runs on one thread.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ser_cnn.encoder.ct2 import read_ct2, read_header
from ser_cnn.encoder.whisper import (
    LN_EPS,
    PINNED,
    SPEC,
    WEIGHTS_FILE,
    EncoderSource,
    WhisperDimensions,
    _sha256,
    _weight,
    check_source,
    dimensions_from_tensors,
)
from ser_cnn.errors import DataError, ParameterError

ROWS = 128  # rows of a dense step at a time: a 4 × 384-wide hidden chunk stays in a 2 MB cache
GELU_STEP = 1 << 15  # elements of one GELU pass: its four temporaries fit in the cache
# Threads share the rows, each with one BLAS thread; False (for measuring): one Python thread
# and ``threads`` BLAS threads.
SHARE_ROWS = True
BATCH_FRAMES = 16_000  # most log-mel frames in one forward pass (160 s of audio, ~0.2 GB)

# erfc(z) = t exp(-z² + Σ c_k t^k), t = 1 / (1 + z / 2), z >= 0, within 1.2e-7 of it relatively
# everywhere: Numerical Recipes' erfcc (Press et al., 2nd ed., §6.2), a Chebyshev fit.
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)
# GELU's 1/2 in the constant term: erfc / 2 = t exp(c_0 - ln 2 + ...)
_HALF_ERFC32 = (np.float32(_ERFC[0] - np.log(2)), *(np.float32(c) for c in _ERFC[1:]))
_HALF_OVER_SQRT2 = np.float32(0.5 / np.sqrt(2))  # t of z = |x| / sqrt 2
# |x| at most this in erfc's term: GELU(-10) = -7.6e-23 and smaller beyond, so the outputs past
# it move by less than 1e-22, but none is subnormal (below 1.2e-38), which the next GEMM would
# multiply on the CPU's slow path (see the module's docstring).
_GELU_TAIL = np.float32(10.0)
_SOFTMAX_FLOOR = np.float32(-80.0)  # logits below the row's largest: weights >= 1.8e-35, not 0


def gelu(x: np.ndarray) -> np.ndarray:
    """Whisper's (exact, erf) GELU ``x (1 + erf(x / sqrt 2)) / 2``, in place on a float32 array.

    Computed as ``max(x, 0) - |x| erfc(|x| / sqrt 2) / 2``: no ``1 + erf`` cancelling to nothing
    for negative x, so small outputs keep their relative precision, as TensorFlow's GELU (an
    erfc too) does; within 3e-7 of the float64 value, no bias.
    """
    if not x.flags.c_contiguous:
        raise ParameterError("gelu works in place on a C-contiguous array")
    flat = x.reshape(-1)
    step = min(GELU_STEP, flat.size)
    a, t, p, sq = (np.empty(step, dtype=np.float32) for _ in range(4))
    c = _HALF_ERFC32
    for start in range(0, flat.size, step):
        v = flat[start : start + step]
        n = v.size
        an, tn, pn, sqn = a[:n], t[:n], p[:n], sq[:n]
        np.abs(v, out=an)
        np.minimum(an, _GELU_TAIL, out=an)  # no subnormal numbers (see _GELU_TAIL)
        np.multiply(an, _HALF_OVER_SQRT2, out=tn)
        tn += 1
        np.divide(1, tn, out=tn)
        np.multiply(tn, c[-1], out=pn)
        for coefficient in c[-2:0:-1]:
            pn += coefficient
            pn *= tn
        pn += c[0]  # with ln(1/2): erfc / 2
        np.multiply(an, an, out=sqn)
        sqn *= np.float32(0.5)  # z² = x² / 2
        pn -= sqn
        np.exp(pn, out=pn)
        pn *= tn  # erfc(|x| / sqrt 2) / 2
        pn *= an
        np.maximum(v, 0, out=v)
        v -= pn
    return x


def _normalize(x: np.ndarray) -> np.ndarray:
    """LayerNorm without its scale and shift (folded into the next layer): a new array."""
    out = x - x.mean(axis=1, keepdims=True)
    var = np.einsum("ij,ij->i", out, out)
    var *= np.float32(1 / x.shape[1])
    var += np.float32(LN_EPS)
    np.sqrt(var, out=var)
    out /= var[:, None]
    return out


# -- the weights, prepared once -----------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    qkv_w: np.ndarray  # (n_state, 3 n_state): LayerNorm folded in, queries scaled
    qkv_b: np.ndarray
    out_w: np.ndarray  # (n_state, n_state)
    out_b: np.ndarray
    fc1_w: np.ndarray  # (n_state, 4 n_state): LayerNorm folded in
    fc1_b: np.ndarray
    fc2_w: np.ndarray  # (4 n_state, n_state)
    fc2_b: np.ndarray


@dataclass(frozen=True)
class LightWeights:
    """A Whisper encoder's tensors as :class:`LightEncoder` uses them: float32, contiguous."""

    dims: WhisperDimensions
    conv1_w: np.ndarray  # (3 n_mels, n_state): im2col layout, tap-major
    conv1_b: np.ndarray
    conv2_w: np.ndarray  # (3 n_state, n_state): im2col layout, tap-major
    conv2_b: np.ndarray
    positions: np.ndarray  # (n_audio_ctx, n_state): the stored table, as Keras loads it
    blocks: tuple[_Block, ...]
    ln_gamma: np.ndarray  # the final LayerNorm, applied as is
    ln_beta: np.ndarray

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> LightWeights:
        """From :func:`ser_cnn.encoder.ct2.read_ct2`'s tensors (``"encoder/..."`` names).

        Raises
        ------
        DataError
            A tensor is missing or has another shape than the model's others imply.
        """
        dims = dimensions_from_tensors(tensors)
        d, m = dims.n_audio_state, dims.n_mels

        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            """A tensor as stored when float16 (widened exactly where it is used), else as
            Keras's load_weights takes it: float32, integers dequantised."""
            w = tensors.get(f"encoder/{name}")
            if w is None or w.dtype != np.float16 or f"encoder/{name}_scale" in tensors:
                w = _weight(tensors, name)
            if w.shape != shape:
                raise DataError(f"tensor 'encoder/{name}' has shape {w.shape}, expected {shape}")
            return w

        def scaled(w: np.ndarray, factor) -> np.ndarray:
            """w × factor in float32, C-ordered (a product of two float32s, rounded once)."""
            out = np.empty(w.shape, dtype=np.float32)  # C order, whatever w's layout
            return np.multiply(w, np.asarray(factor, dtype=np.float32), out=out)

        def conv(name: str, n_in: int) -> tuple[np.ndarray, np.ndarray]:
            w = get(f"{name}/weight", (d, n_in, 3))  # (out, in, taps) -> row k * n_in + i
            bias = get(f"{name}/bias", (d,)).astype(np.float32)
            return scaled(w.transpose(2, 1, 0), 1.0).reshape(3 * n_in, d), bias

        def dense(name, n_in, n_out, norm=None, columns=1.0) -> tuple[np.ndarray, np.ndarray]:
            """(x̂ γ + β) W + b = x̂ (γ W) + (β W + b) after a LayerNorm, else x W + b; each
            output column × ``columns``."""
            w, b = get(f"{name}/weight", (n_out, n_in)), get(f"{name}/bias", (n_out,))
            gamma, bias = np.ones(n_in), b.astype(np.float64)
            if norm is not None:
                gamma, beta = get(f"{norm}/gamma", (n_in,)), get(f"{norm}/beta", (n_in,))
                bias += w.astype(np.float64) @ beta.astype(np.float64)
            columns = np.broadcast_to(np.asarray(columns, dtype=np.float64), (n_out,))
            return scaled(w.T, gamma[:, None] * columns), (bias * columns).astype(np.float32)

        blocks = []
        queries = np.repeat([(d // dims.n_audio_head) ** -0.5, 1.0, 1.0], d)  # 1/sqrt(width)
        for i in range(dims.n_audio_layer):
            p = f"layer_{i}"
            attn_ln, ffn_ln = f"{p}/self_attention/layer_norm", f"{p}/ffn/layer_norm"
            blocks.append(
                _Block(
                    *dense(f"{p}/self_attention/linear_0", d, 3 * d, attn_ln, columns=queries),
                    *dense(f"{p}/self_attention/linear_1", d, d),
                    *dense(f"{p}/ffn/linear_0", d, 4 * d, ffn_ln),
                    *dense(f"{p}/ffn/linear_1", 4 * d, d),
                )
            )
        conv1_w, conv1_b = conv("conv1", m)
        conv2_w, conv2_b = conv("conv2", d)
        return cls(
            dims=dims,
            conv1_w=conv1_w,
            conv1_b=conv1_b,
            conv2_w=conv2_w,
            conv2_b=conv2_b,
            positions=get("position_encodings/encodings", (dims.n_audio_ctx, d)).astype(np.float32),
            blocks=tuple(blocks),
            ln_gamma=get("layer_norm/gamma", (d,)).astype(np.float32),
            ln_beta=get("layer_norm/beta", (d,)).astype(np.float32),
        )


@functools.lru_cache(maxsize=4)
def _read_weights(path: str, size: int, mtime_ns: int) -> LightWeights:
    """The prepared weights of a model.bin, once per process while the file stays the same."""
    header = read_header(path)
    if header.spec != SPEC:
        raise DataError(f"{path}: holds a {header.spec or 'unnamed'} model; expected {SPEC}")
    return LightWeights.from_tensors(read_ct2(path, prefix="encoder/"))


# -- threads ------------------------------------------------------------------------------------


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_POOL_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="light-encoder")
        return _POOLS[workers]


@functools.cache
def _blas_controller():
    """threadpoolctl's handle on the BLAS NumPy uses, found once (None: not installed)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


class _BlasThreads:
    """Sets the BLAS to ``n`` threads for a ``with`` block."""

    def __init__(self, n: int):
        self.n, self.limit = n, None

    def __enter__(self):
        controller = _blas_controller()
        if controller is not None:
            self.limit = controller.limit(limits=self.n, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self.limit is not None:
            self.limit.restore_original_limits()


# -- the encoder --------------------------------------------------------------------------------


class LightEncoder:
    """Whisper's encoder in NumPy: :meth:`encode` as :class:`ser_cnn.encoder.whisper.Encoder`'s.

    Parameters
    ----------
    weights : LightWeights
    source : EncoderSource, optional
        Where the weights came from (``None`` for tensors given directly).
    threads : int, optional
        CPU threads to use; default: every core this process may run on.
    """

    def __init__(
        self,
        weights: LightWeights,
        source: EncoderSource | None = None,
        *,
        threads: int | None = None,
    ):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ParameterError(f"threads must be a positive integer, got {threads!r}")
        self.weights, self.source = weights, source
        self.threads = threads or default_threads()

    @property
    def dims(self) -> WhisperDimensions:
        return self.weights.dims

    @classmethod
    def load(
        cls,
        source_or_path: EncoderSource | dict | str | os.PathLike | None = None,
        *,
        threads: int | None = None,
    ) -> LightEncoder:
        """The encoder of a CTranslate2 Whisper ``model.bin``, its weights read once per process.

        Parameters
        ----------
        source_or_path : EncoderSource, dict, path, optional
            ``None`` (default): the pinned weights package, checked as
            :func:`~ser_cnn.encoder.whisper.load_encoder` checks it; a dict: the weights
            expected (:meth:`EncoderSource.to_dict`), checked the same way; an
            :class:`EncoderSource`: its file, already checked; a path: a ``model.bin`` or a
            folder holding one (``source`` then names no package, only the file's SHA-256).
        threads : int, optional
            See :class:`LightEncoder`.

        Raises
        ------
        DataError
            The weights are missing, differ from those expected, or are not a Whisper model.
        """
        if source_or_path is None or isinstance(source_or_path, dict):
            source = check_source(PINNED if source_or_path is None else source_or_path)
        elif isinstance(source_or_path, EncoderSource):
            source = source_or_path
        else:
            path = Path(source_or_path)
            if path.is_dir():
                path = path / WEIGHTS_FILE
            if not path.is_file():
                raise DataError(f"{path}: no such file; expected a CTranslate2 model.bin")
            path = path.resolve()
            source = EncoderSource("", "", path, _sha256(path))
        stat = Path(source.path).stat()
        weights = _read_weights(os.fspath(source.path), stat.st_size, stat.st_mtime_ns)
        return cls(weights, source, threads=threads)

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], *, threads: int | None = None):
        """From :func:`ser_cnn.encoder.ct2.read_ct2`'s tensors, with no source."""
        return cls(LightWeights.from_tensors(tensors), threads=threads)

    # -- the Encoder interface ------------------------------------------------------------------

    def encode(self, log_mels: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every hidden state of each clip, as :meth:`ser_cnn.encoder.whisper.Encoder.encode`.

        Parameters
        ----------
        log_mels : sequence of np.ndarray, each shape (n_mels, frames_i)
            Whisper log-mels as :func:`ser_cnn.features.logmel.whisper_log_mel` returns them.

        Returns
        -------
        list of np.ndarray, each shape (n_audio_layer + 1, ceil(frames_i / 2), n_audio_state)
            float32; each clip's states as it gets them alone.
        """
        mels = self._check([np.asarray(m).T for m in log_mels])
        out: list[np.ndarray] = []
        for group in self._groups([len(m) for m in mels]):
            states, offsets, halves = self._forward([mels[i] for i in group])
            out += [states[:, o : o + h].copy() for o, h in zip(offsets, halves, strict=True)]
        return out

    def hidden_states(self, log_mel: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """What :func:`~ser_cnn.encoder.whisper.build_encoder`'s model returns for a padded batch.

        Parameters
        ----------
        log_mel : np.ndarray, shape (batch, frames, n_mels)
            Time first, padded past each clip's length (with anything: it is not read).
        lengths : np.ndarray, shape (batch,)
            Each clip's frames, 1 to ``frames``.

        Returns
        -------
        np.ndarray, shape (batch, n_audio_layer + 1, ceil(frames / 2), n_audio_state)
            float32; frames at or past ceil(lengths / 2) are zero.
        """
        log_mel = np.asarray(log_mel)
        lengths = np.asarray(lengths).reshape(-1)
        if log_mel.ndim != 3 or len(lengths) != len(log_mel):
            raise ParameterError(
                f"need log_mel (batch, frames, n_mels) and lengths (batch,), got "
                f"{log_mel.shape} and {lengths.shape}"
            )
        n, frames = log_mel.shape[:2]
        if n and not (lengths.min() >= 1 and lengths.max() <= frames):
            raise ParameterError(f"lengths must be 1 to {frames}, got {lengths.tolist()}")
        mels = self._check([log_mel[i, : int(k)] for i, k in enumerate(lengths)])
        d = self.dims
        out = np.zeros((n, d.n_audio_layer + 1, (frames + 1) // 2, d.n_audio_state), np.float32)
        for group in self._groups([len(m) for m in mels]):
            states, offsets, halves = self._forward([mels[i] for i in group])
            for i, o, h in zip(group, offsets, halves, strict=True):
                out[i, :, :h] = states[:, o : o + h]
        return out

    def __call__(self, inputs: dict, training: bool = False) -> np.ndarray:
        """As the Keras model: ``{"log_mel": ..., "lengths": ...}`` -> :meth:`hidden_states`."""
        return self.hidden_states(inputs["log_mel"], inputs["lengths"])

    # -- the forward pass -----------------------------------------------------------------------

    def _check(self, mels: list[np.ndarray]) -> list[np.ndarray]:
        """Time-first float32 log-mels, refused unless (frames, n_mels) with 1 to max frames."""
        d = self.dims
        if not mels:
            raise ParameterError("need at least one log-mel to encode")
        shapes = [m.shape[::-1] for m in mels]  # as the caller passed them: (n_mels, frames)
        if any(len(s) != 2 or s[0] != d.n_mels or not 1 <= s[1] <= d.max_frames for s in shapes):
            raise ParameterError(
                f"log-mels must have shape ({d.n_mels}, frames), 1 <= frames <= "
                f"{d.max_frames} ({d.max_frames // 100} s), got {shapes}"
            )
        return [np.asarray(m, dtype=np.float32) for m in mels]

    @staticmethod
    def _groups(frames: list[int]) -> list[list[int]]:
        """Consecutive clips, at most BATCH_FRAMES frames a group (a longer clip alone)."""
        groups: list[list[int]] = [[]]
        total = 0
        for i, n in enumerate(frames):
            if groups[-1] and total + n > BATCH_FRAMES:
                groups.append([])
                total = 0
            groups[-1].append(i)
            total += n
        return groups

    def _forward(self, mels: list[np.ndarray]) -> tuple[np.ndarray, list[int], list[int]]:
        """States of clips packed one after another: (n_layer + 1, Σ halves, n_state)."""
        w = self.weights
        d = w.dims.n_audio_state
        frames = [len(m) for m in mels]
        halves = [(n + 1) // 2 for n in frames]
        offsets = np.concatenate([[0], np.cumsum(halves)[:-1]]).astype(int).tolist()
        rows = sum(halves)
        workers = min(self.threads, max(1, rows // ROWS)) if SHARE_ROWS else 1
        blas = 1 if SHARE_ROWS else self.threads
        with _BlasThreads(blas):
            x = self._convolutions(mels, frames, halves, workers)
            states = np.empty((len(w.blocks) + 1, rows, d), dtype=np.float32)
            states[0] = x
            qkv = np.empty((rows, 3 * d), dtype=np.float32)
            y = np.empty((rows, d), dtype=np.float32)
            for i, block in enumerate(w.blocks):
                self._map(workers, rows, lambda r, b=block: self._qkv(x, qkv, b, r))
                self._map_clips(
                    workers, offsets, halves, lambda o, h: self._attention(qkv, y, o, h)
                )
                self._map(workers, rows, lambda r, b=block: self._mlp(x, y, b, r))
                states[i + 1] = x
            self._map(workers, rows, lambda r: self._final_norm(states[-1], r))
        return states, offsets, halves

    def _convolutions(self, mels, frames, halves, workers) -> np.ndarray:
        """conv1, conv2 (GELU each) and positions, packed: (Σ halves, n_state)."""
        w = self.weights
        m, d = w.dims.n_mels, w.dims.n_audio_state
        # Each clip: a zero row, its frames, one or two zero rows (an even block, so that every
        # clip's stride-2 windows start on even rows of the whole buffer).
        blocks = [n + 2 + n % 2 for n in frames]
        starts = np.concatenate([[0], np.cumsum(blocks)[:-1]]).astype(int)
        total = int(sum(blocks))
        padded = np.zeros((total, m), dtype=np.float32)
        for s, mel in zip(starts, mels, strict=True):
            padded[s + 1 : s + 1 + len(mel)] = mel
        # conv1: output row r (frame r + 1 of the buffer) from buffer rows r, r + 1, r + 2
        step = padded.strides
        cols = np.ascontiguousarray(as_strided(padded, (total - 2, 3 * m), step))
        hidden = np.empty((total, d), dtype=np.float32)
        inner = hidden[1:-1]

        def conv1(r: slice) -> None:
            np.matmul(cols[r], w.conv1_w, out=inner[r])
            inner[r] += w.conv1_b
            gelu(inner[r])

        self._map(workers, total - 2, conv1)
        pads = [
            i
            for s, n, b in zip(starts, frames, blocks, strict=True)
            for i in (s, *range(s + n + 1, s + b))
        ]
        hidden[pads] = 0  # the zeros conv2 of each clip alone sees past its ends
        # conv2: output s of a clip from its block's rows 2s, 2s + 1, 2s + 2 (stride 2)
        windows = as_strided(hidden, (total // 2 - 1, 3 * d), (2 * hidden.strides[0], 4))
        keep = np.concatenate([np.arange(h) + s // 2 for s, h in zip(starts, halves, strict=True)])
        cols2 = windows[keep]  # a copy: only the clips' own outputs
        position = np.concatenate([np.arange(h) for h in halves])
        x = np.empty((len(keep), d), dtype=np.float32)

        def conv2(r: slice) -> None:
            np.matmul(cols2[r], w.conv2_w, out=x[r])
            x[r] += w.conv2_b
            gelu(x[r])
            x[r] += w.positions[position[r]]

        self._map(workers, len(keep), conv2)
        return x

    @staticmethod
    def _qkv(x: np.ndarray, qkv: np.ndarray, block: _Block, r: slice) -> None:
        np.matmul(_normalize(x[r]), block.qkv_w, out=qkv[r])
        qkv[r] += block.qkv_b

    def _attention(self, qkv: np.ndarray, y: np.ndarray, offset: int, n: int) -> None:
        """One clip's self-attention over its own n positions, into y's rows."""
        heads = self.dims.n_audio_head
        width = self.dims.n_audio_state // heads
        t = qkv[offset : offset + n].reshape(n, 3, heads, width)
        q = t[:, 0].transpose(1, 0, 2)  # (heads, n, width), scaled at load
        k = t[:, 1].transpose(1, 2, 0)  # (heads, width, n)
        v = t[:, 2].transpose(1, 0, 2)
        logits = np.matmul(q, k)
        logits -= logits.max(axis=-1, keepdims=True)
        np.maximum(logits, _SOFTMAX_FLOOR, out=logits)  # no subnormal weights either
        np.exp(logits, out=logits)
        total = logits.sum(axis=-1, keepdims=True)
        out = y[offset : offset + n].reshape(n, heads, width).transpose(1, 0, 2)
        np.matmul(logits, v, out=out)
        out /= total  # normalised after the product: n × width divisions, not n × n

    @staticmethod
    def _mlp(x: np.ndarray, y: np.ndarray, block: _Block, r: slice) -> None:
        """Attention's output projection and residual, then the MLP and its residual."""
        xr = x[r]
        xr += np.matmul(y[r], block.out_w)
        xr += block.out_b
        h = np.matmul(_normalize(xr), block.fc1_w)
        h += block.fc1_b
        gelu(h)
        xr += np.matmul(h, block.fc2_w)
        xr += block.fc2_b

    def _final_norm(self, last: np.ndarray, r: slice) -> None:
        out = _normalize(last[r])
        out *= self.weights.ln_gamma
        out += self.weights.ln_beta
        last[r] = out

    # -- sharing the work -----------------------------------------------------------------------

    @staticmethod
    def _map(workers: int, rows: int, step: Callable[[slice], None]) -> None:
        """``step`` on each slice of ROWS consecutive rows."""
        _share(workers, [slice(i, min(i + ROWS, rows)) for i in range(0, rows, ROWS)], step)

    @staticmethod
    def _map_clips(workers, offsets, halves, step: Callable[[int, int], None]) -> None:
        """``step(offset, n)`` on each clip, the longest first (so the shares even out)."""
        clips = sorted(zip(offsets, halves, strict=True), key=lambda c: -c[1])
        _share(workers, clips, lambda clip: step(*clip))


def _share(workers: int, items: list, step: Callable) -> None:
    """``step(item)`` for every item: the calling thread and ``workers - 1`` pool threads each
    take the next item left until none is (a thread the system holds back takes fewer)."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            step(item)
        return
    left = iter(items)  # taking from a list's iterator is atomic under the GIL

    def run() -> None:
        for item in left:
            step(item)

    helpers = [_pool(workers - 1).submit(run) for _ in range(min(workers, len(items)) - 1)]
    try:
        run()
    finally:
        for helper in helpers:  # all done before the arrays are used or freed; errors raised
            helper.result()
