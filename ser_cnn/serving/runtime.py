"""Light runtimes: both models without TensorFlow or scikit-learn, a one-clip answer in a second.

Importing TensorFlow takes 3–4 s and scikit-learn (with skops) about 2 s more on the 2-core
development machine: most of a cold ``ser-cnn infer`` on one clip. So a run folder also holds
each model in a form a small runtime can execute, written at the end of training (or by
``python -m ser_cnn.serving.runtime RUN_DIR...`` for an existing run folder)::

    <cnn run>/model.tflite   the SavedModel converted by TensorFlow's own TFLiteConverter,
                             run by LiteRT (the ``ai-edge-litert`` package: its interpreter,
                             about 0.02 s to import and load, 50 MB resident)
    <mlp run>/model.npz      the StandardScaler + MLPClassifier as plain arrays (NumPy's .npz,
                             read without pickle), run by the forward pass below in NumPy
    <encoder run>/head.npz   the head on the frozen Whisper encoder as plain arrays, run with
                             Whisper's encoder in NumPy (ser_cnn.encoder.serve, .light)

Both are data, not code, like the files they are made from. The SavedModel and the skops file
stay the reference: each export is checked against it on probe inputs and refused beyond
:data:`TOLERANCE`, and ``tests/test_runtime.py`` checks the answers on ``examples/``.

Why LiteRT and not ONNX (``tf2onnx`` + ``onnxruntime``), measured on the shipped model, 2 cores
(shared with a training run, so the times are rough): both reproduce the SavedModel's
probabilities on the five examples and 100 RAVDESS clips within 1.4e-6 (every argmax equal),
and both import and load in about 0.05 s with 50–70 MB resident. ONNX Runtime scored a warm
batch about 1.3–1.5× faster (≈ 500 vs ≈ 380 clips/s), but the network is ~2 ms of a clip's
~50 ms (decoding and features dominate), so that buys < 2 % of a folder's throughput. LiteRT
needs one package at run time and none at export time (the converter ships inside TensorFlow,
in step with it); ONNX needs ``tf2onnx`` and ``onnx`` to export and ``onnxruntime`` to run, and
the ``tf2onnx`` 1.17 wheel installs top-level ``tests``, ``tools`` and ``examples`` packages into
site-packages, names this repository uses for its own folders.

``Recognizer(runtime=...)`` (``ser-cnn infer --runtime``) picks, per model:
``"auto"`` the light file when it is there and its runtime is installed, else the reference;
``"light"`` the light file or an error; ``"reference"`` the SavedModel and the skops file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from ser_cnn.errors import DataError, ParameterError
from ser_cnn.run import LIGHT_FILES, MODEL_FILES, load_pipeline, load_run, model_folders

RUNTIMES = ("auto", "light", "reference")
TOLERANCE = 1e-4  # largest probability difference an export may have from its reference
# LiteRT's interpreter threads; None: the Recognizer's (every core; 1 in a Ray actor). They run
# after the feature threads have prepared a batch, not beside them, so one thread only slowed
# batches down (`tools/benchmark.py scale`: results/benchmark_infer.json, key scale)
LITERT_THREADS = None
# what runs each model's light file and reference, as recorded in Recognizer.runtimes
LIGHT_NAMES = {"encoder": "numpy", "cnn": "litert", "mlp": "numpy"}
REFERENCE_NAMES = {"encoder": "keras", "cnn": "savedmodel", "mlp": "sklearn"}
_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


def litert_available() -> bool:
    """Whether LiteRT (the ``ai-edge-litert`` package) is installed."""
    return importlib.util.find_spec("ai_edge_litert") is not None


# -- the light models --------------------------------------------------------------------------


class LiteRTModel:
    """A ``model.tflite`` run by LiteRT's interpreter: ``serve(x)`` as the SavedModel's.

    One model call at a time (the interpreter is not thread-safe; the web app serves several
    requests at once). The first call happens here, so a broken file fails on loading.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            interpreter = Interpreter(
                model_path=str(self.path), num_threads=threads or os.cpu_count() or 1
            )
            (signature,) = interpreter.get_signature_list().values()
            (self._input,) = signature["inputs"]
            (self._output,) = signature["outputs"]
            self._interpreter = interpreter  # kept alive with its runner
            self._runner = interpreter.get_signature_runner()
            self._input_shape = tuple(interpreter.get_input_details()[0]["shape"][1:])
        except (ValueError, RuntimeError) as err:
            raise DataError(f"{self.path} is not a LiteRT model ser_cnn can run: {err}") from None
        self._lock = threading.Lock()
        self.serve(np.zeros((1, *self._input_shape), dtype=np.float32))

    def serve(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, n_labels) of log-mels ``x`` (n, n_mels, n_frames)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[1:] != self._input_shape:
            raise ParameterError(f"{self.path} takes (n, *{self._input_shape}), got {x.shape}")
        with self._lock:
            return np.array(self._runner(**{self._input: x})[self._output])


class NumpyMLP:
    """A ``model.npz`` of :func:`write_mlp_arrays`: ``predict_proba(x)`` as the pipeline's.

    The same operations in the same order and precision as scikit-learn's StandardScaler and
    MLPClassifier (scaling in the input's float type, layers in the weights' type): the
    probabilities equal the pipeline's to the last bit (measured with scikit-learn 1.9.1).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = dict(f)
            n_layers = int(arrays["n_layers"])
            self.mean, self.scale = arrays["mean"], arrays["scale"]
            self.coefs = [arrays[f"coef_{i}"] for i in range(n_layers)]
            self.intercepts = [arrays[f"intercept_{i}"] for i in range(n_layers)]
            self.activation = str(arrays["activation"])
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{self.path} is not a ser_cnn MLP array file: {err}") from None
        if self.activation not in _ACTIVATIONS:
            raise DataError(f"{self.path}: unknown activation {self.activation!r}")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        x = np.array(x, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ParameterError(f"{self.path} takes (n, {self.mean.shape[0]}), got {x.shape}")
        x -= self.mean.astype(x.dtype, copy=False)  # as scikit-learn (1.9) does
        x /= self.scale.astype(x.dtype, copy=False)
        a = x
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            a = a @ w
            a += b
            if i < len(self.coefs) - 1:
                _activate(a, self.activation)
        a -= a.max(axis=1, keepdims=True)  # softmax, in place
        np.exp(a, out=a)
        a /= a.sum(axis=1, keepdims=True)
        return a


def _activate(a: np.ndarray, name: str) -> None:
    if name == "relu":
        np.maximum(a, 0, out=a)
    elif name == "tanh":
        np.tanh(a, out=a)
    elif name == "logistic":
        a *= -1
        np.exp(a, out=a)
        a += 1
        np.reciprocal(a, out=a)


# -- choosing and loading ----------------------------------------------------------------------


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ParameterError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return runtime


def uses_light(run_dir: str | os.PathLike, model: str, runtime: str) -> bool:
    """Whether ``runtime`` runs this run folder's ``model`` ("encoder", "cnn" or "mlp") on its
    light file."""
    if check_runtime(runtime) == "reference":
        return False
    path = Path(run_dir) / LIGHT_FILES[model]
    installed = model != "cnn" or litert_available()  # the others' run in NumPy
    if runtime == "auto":
        return path.is_file() and installed
    if not path.is_file():
        raise DataError(
            f"{run_dir} has no {LIGHT_FILES[model]} (the {model.upper()} for the light runtime): "
            f"write it with `python -m ser_cnn.serving.runtime {run_dir}`, or use runtime "
            "'reference'"
        )
    if not installed:
        raise DataError(
            "the light runtime of the CNN needs LiteRT: `pip install ai-edge-litert`, "
            "or use runtime 'reference'"
        )
    return True


def load_model(
    run_dir: str | os.PathLike, model: str, runtime: str = "auto", *, threads: int | None = None
):
    """The model of a run folder, and what runs it (see :data:`LIGHT_NAMES`, ``REFERENCE_NAMES``).

    A CNN has ``serve(x)``, an MLP ``predict_proba(x)``, an encoder run
    ``predict_proba(log_mels)`` (:class:`ser_cnn.encoder.serve.EncoderModel`: Whisper log-mels
    of any lengths), whichever the runtime. ``threads``: the CPU threads of the light models
    (LiteRT's interpreter, unless :data:`LITERT_THREADS` says otherwise, and the NumPy encoder;
    default: every core this process may run on).
    """
    run_dir = Path(run_dir)
    if model == "encoder":  # the NumPy encoder and head.npz, or Keras's and model.keras
        from ser_cnn.encoder.serve import load_encoder_model

        light = uses_light(run_dir, model, runtime)
        names = LIGHT_NAMES if light else REFERENCE_NAMES
        loaded = load_encoder_model(run_dir, light=light)
        if light and threads is not None:
            loaded.encoder.threads = threads  # LightEncoder's public setting
        return loaded, names[model]
    if uses_light(run_dir, model, runtime):
        path = run_dir / LIGHT_FILES[model]
        cnn_threads = LITERT_THREADS or threads
        light = LiteRTModel(path, threads=cnn_threads) if model == "cnn" else NumpyMLP(path)
        return light, LIGHT_NAMES[model]
    if model == "cnn":
        import tensorflow as tf  # the SavedModel needs TensorFlow only, not Keras

        return tf.saved_model.load(str(run_dir / MODEL_FILES["cnn"])), REFERENCE_NAMES["cnn"]
    return load_pipeline(run_dir / MODEL_FILES["mlp"]), REFERENCE_NAMES["mlp"]


# -- exporting ---------------------------------------------------------------------------------


def write_litert(saved_model: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert a SavedModel to a LiteRT flatbuffer with TensorFlow's converter (float32)."""
    import tensorflow as tf

    out = Path(out)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    out.write_bytes(converter.convert())
    return out


def write_mlp_arrays(pipeline, out: str | os.PathLike) -> Path:
    """Save a Pipeline(StandardScaler, MLPClassifier) as the arrays :class:`NumpyMLP` reads."""
    scaler, mlp = (step for _, step in pipeline.steps)
    kinds = (type(scaler).__name__, type(mlp).__name__)
    if kinds != ("StandardScaler", "MLPClassifier"):
        raise DataError(f"expected StandardScaler then MLPClassifier, got {kinds}")
    if mlp.out_activation_ != "softmax" or mlp.activation not in _ACTIVATIONS:
        raise DataError(
            f"only a softmax MLP with a hidden activation of {_ACTIVATIONS} is exported, "
            f"got {mlp.out_activation_!r} and {mlp.activation!r}"
        )
    if list(mlp.classes_) != list(range(len(mlp.classes_))):
        raise DataError(f"the MLP's classes must be 0..n-1 in order, got {list(mlp.classes_)}")
    n_features = mlp.coefs_[0].shape[0]
    arrays = {
        # with_mean/with_std False behave as mean 0, scale 1
        "mean": scaler.mean_ if scaler.with_mean else np.zeros(n_features),
        "scale": scaler.scale_ if scaler.with_std else np.ones(n_features),
        "n_layers": np.array(len(mlp.coefs_)),
        "activation": np.array(mlp.activation),
    }
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        arrays[f"coef_{i}"], arrays[f"intercept_{i}"] = w, b
    out = Path(out)
    with out.open("wb") as f:  # a file object: np.savez would append .npz to another name
        np.savez(f, **arrays)
    return out


def _probe(run, reference, n: int = 8) -> np.ndarray:
    """Inputs shaped and scaled like the model's real ones, to compare an export with."""
    rng = np.random.default_rng(0)
    if run.model == "mlp":
        scaler = reference.steps[0][1]
        return (scaler.mean_ + scaler.scale_ * rng.normal(0, 1, (n, len(scaler.mean_)))).astype(
            np.float32
        )
    x = rng.normal(0, 1, (n, *run.features.shape))
    if not run.speaker_normalized and run.normalization is not None:  # dB, as the log-mel
        mean = np.asarray(run.normalization.band_mean)[:, None]
        x = mean + np.asarray(run.normalization.band_std)[:, None] * x
    return x.astype(np.float32)


def export(run_dir: str | os.PathLike) -> Path:
    """Write one model run folder's light file and check it against the reference model.

    Raises :class:`DataError` (and leaves no file) when the two differ by more than
    :data:`TOLERANCE` on probe inputs, and for a CNN without LiteRT installed to check with.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if run.model == "encoder":  # head.npz from model.keras (the encoder is not in the folder)
        from ser_cnn.encoder.serve import export_head

        return export_head(run_dir)
    if run.model == "cnn" and not litert_available():
        raise DataError(
            f"{run_dir}: exporting the CNN needs LiteRT to check the result with "
            "(`pip install ai-edge-litert`)"
        )
    out = run_dir / LIGHT_FILES[run.model]
    reference, _ = load_model(run_dir, run.model, "reference")
    x = _probe(run, reference)
    if run.model == "cnn":
        write_litert(run_dir / MODEL_FILES["cnn"], out)
        expected = np.asarray(reference.serve(x))
        load_light = LiteRTModel
    else:
        write_mlp_arrays(reference, out)
        expected = reference.predict_proba(x)
        load_light = NumpyMLP
    try:
        light = load_light(out)
        got = light.serve(x) if run.model == "cnn" else light.predict_proba(x)
    except DataError:
        out.unlink(missing_ok=True)
        raise
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise DataError(
            f"{out}: its probabilities differ from {MODEL_FILES[run.model]}'s by {difference:.2g} "
            f"(more than {TOLERANCE:g}); not written"
        )
    return out


def export_after_training(run_dir: str | os.PathLike) -> Path | None:
    """:func:`export` for a run just trained: a failure warns (inference then uses the
    reference) instead of losing the training."""
    try:
        return export(run_dir)
    except Exception as err:  # the run is complete without it
        warnings.warn(
            f"{run_dir}: no light model ({type(err).__name__}: {err}); inference will use "
            "the reference runtime",
            stacklevel=2,
        )
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m ser_cnn.serving.runtime RUN_DIR...``: write the light files of existing run
    folders (a run folder, or a folder with cnn/ and mlp/)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0].strip("`: "))
    p.add_argument("run_dirs", nargs="+", help="run folders")
    args = p.parse_args(argv)
    status = 0
    for arg in args.run_dirs:
        try:
            folders = model_folders(arg)
            if not folders:
                raise DataError(f"{arg} holds no run folder")
            for folder in folders.values():
                print(f"{export(folder)}: written and checked")
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
