"""The light runtimes (ser_cnn.serving.runtime): LiteRT for the CNN, NumPy for the MLP.

They must give the reference's probabilities (SavedModel, skops pipeline) within 1e-4, be
chosen by ``runtime="auto"`` only when their file and runtime are there, and keep TensorFlow
and scikit-learn out of the process: that is what makes a cold one-clip answer fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ser_cnn.audio.io import load_audio
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.classic import classic_features
from ser_cnn.ravdess import EMOTIONS
from ser_cnn.run import LIGHT_FILES, load_pipeline
from ser_cnn.serving import runtime
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))
SHIPPED_PROBABILITIES = REPO / "tests" / "reference" / "shipped_probabilities.json"
SHIPPED_MODELS = ("encoder", "cnn", "mlp")
needs_litert = pytest.mark.skipif(
    not runtime.litert_available(),
    reason="LiteRT (ai-edge-litert) is not installed: `make install` installs it",
)


def probabilities(predictions, model: str) -> np.ndarray:
    return np.array([[p.scores[model].probabilities[e] for e in EMOTIONS] for p in predictions])


def shipped_light_files() -> None:
    """Skip unless the shipped run has every light file and LiteRT is installed."""
    missing = [k for k in SHIPPED_MODELS if not (DEFAULT_RUN / k / LIGHT_FILES[k]).is_file()]
    if missing:
        pytest.skip(
            f"the shipped run has no light file for {missing}: run "
            "`python -m ser_cnn.serving.runtime checkpoints/ravdess_fold1`"
        )
    if not runtime.litert_available():
        pytest.skip("LiteRT (ai-edge-litert) is not installed: `make install` installs it")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A copy of the shipped run with every light file, written by ``python -m
    ser_cnn.serving.runtime``."""
    if not runtime.litert_available():
        pytest.skip("LiteRT (ai-edge-litert) is not installed: `make install` installs it")
    folder = shutil.copytree(DEFAULT_RUN, tmp_path_factory.mktemp("light") / "run")
    for kind in SHIPPED_MODELS:
        (folder / kind / LIGHT_FILES[kind]).unlink(missing_ok=True)
    assert runtime.main([str(folder)]) == 0
    return folder


@pytest.fixture
def mlp_only(tmp_path):
    """A copy of the shipped MLP run folder without its light file."""
    folder = shutil.copytree(DEFAULT_RUN / "mlp", tmp_path / "mlp")
    (folder / LIGHT_FILES["mlp"]).unlink(missing_ok=True)
    return folder


def test_mlp_arrays_give_the_pipelines_probabilities(mlp_only):
    pipeline = load_pipeline(mlp_only / "model.skops")
    light = runtime.NumpyMLP(runtime.write_mlp_arrays(pipeline, mlp_only / "model.npz"))
    scaler = pipeline.steps[0][1]
    x = np.concatenate(
        [
            np.stack([classic_features(p) for p in EXAMPLES]),
            scaler.mean_ + scaler.scale_ * np.random.default_rng(0).normal(size=(50, 180)),
        ]
    ).astype(np.float32)
    # the same operations in the same precision: equal to the last bit on this machine
    np.testing.assert_allclose(light.predict_proba(x), pipeline.predict_proba(x), atol=1e-6)
    with pytest.raises(ParameterError, match=r"takes \(n, 180\)"):
        light.predict_proba(x[:, :10])


def test_an_export_that_differs_is_refused_and_removed(mlp_only, monkeypatch):
    monkeypatch.setattr(runtime, "TOLERANCE", -1.0)
    with pytest.raises(DataError, match=r"differ from model\.skops's"):
        runtime.export(mlp_only)
    assert not (mlp_only / "model.npz").exists()


def test_a_damaged_light_file_is_a_data_error(mlp_only):
    (mlp_only / "model.npz").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="not a ser_cnn MLP array file"):
        runtime.NumpyMLP(mlp_only / "model.npz")


def test_runtime_choice(mlp_only, monkeypatch):
    with pytest.raises(ParameterError, match="runtime must be one of"):
        load_recognizer(mlp_only, runtime="fast")
    # auto: the reference when the light file is missing; light: an error that says what to do
    assert load_recognizer(mlp_only).runtimes == {"mlp": ("sklearn",)}
    with pytest.raises(DataError, match=r"no model.npz .*python -m ser_cnn.serving.runtime"):
        load_recognizer(mlp_only, runtime="light")
    runtime.export(mlp_only)
    assert load_recognizer(mlp_only).runtimes == {"mlp": ("numpy",)}
    assert load_recognizer(mlp_only, runtime="reference").runtimes == {"mlp": ("sklearn",)}
    # the CNN's light file is used only where LiteRT is installed
    monkeypatch.setattr(runtime, "litert_available", lambda: False)
    (mlp_only / "model.tflite").touch()
    assert not runtime.uses_light(mlp_only, "cnn", "auto")
    with pytest.raises(DataError, match="needs LiteRT"):
        runtime.uses_light(mlp_only, "cnn", "light")


@pytest.mark.slow  # converts the model: TensorFlow's import and the converter, ~10 s
@needs_litert
def test_light_runtime_gives_the_reference_probabilities(exported):
    light = load_recognizer(exported, runtime="light")
    reference = load_recognizer(exported, runtime="reference")
    assert light.runtimes == {"encoder": ("numpy",), "cnn": ("litert",), "mlp": ("numpy",)}
    assert reference.runtimes == {
        "encoder": ("keras",),
        "cnn": ("savedmodel",),
        "mlp": ("sklearn",),
    }
    assert load_recognizer(exported).runtimes == light.runtimes  # auto
    got, expected = light.predict_many(EXAMPLES), reference.predict_many(EXAMPLES)
    shipped = {r["file"]: r for r in json.loads(SHIPPED_PROBABILITIES.read_text())}
    for m in SHIPPED_MODELS:
        np.testing.assert_allclose(
            probabilities(got, m), probabilities(expected, m), rtol=0, atol=1e-4, err_msg=m
        )
        assert [p.scores[m].emotion for p in got] == [p.scores[m].emotion for p in expected]
        recorded = [shipped[str(p.relative_to(REPO))][m]["probabilities"] for p in EXAMPLES]
        np.testing.assert_allclose(
            probabilities(got, m), [[r[e] for e in EMOTIONS] for r in recorded], atol=1e-4
        )
    # a long recording's windows go through the same batched calls
    y = np.concatenate([load_audio(p, target_sr=16_000) for p in EXAMPLES[:3]])
    a, b = light.predict(y, sr=16_000), reference.predict(y, sr=16_000)
    assert a.windows and len(a.windows) == len(b.windows)
    for m in SHIPPED_MODELS:
        assert abs(a.scores[m].probability - b.scores[m].probability) < 1e-4


def check_light_cli(run_dir) -> None:
    """`ser-cnn infer --runtime light` answers without importing TensorFlow or scikit-learn."""
    code = (
        "import sys\n"
        "from ser_cnn.cli.infer import main\n"
        f"status = main(['--runtime', 'light', '--run', {str(run_dir)!r}, '--model', 'all',\n"
        f"               {str(EXAMPLES[0])!r}])\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'skops') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
        "sys.exit(status)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: []" in out.stdout, out.stdout  # the encoder's NumPy twin and head.npz too
    assert "ENCODER " in out.stdout and "CNN " in out.stdout and "MLP " in out.stdout


@pytest.mark.slow
@needs_litert
def test_light_path_imports_neither_tensorflow_nor_scikit_learn(exported):
    check_light_cli(exported)


def test_shipped_light_path_imports_neither_tensorflow_nor_scikit_learn():
    shipped_light_files()
    check_light_cli(DEFAULT_RUN)


def test_shipped_light_files_match_the_reference():
    """The shipped model's light files answer as the reference does (make test's check)."""
    shipped_light_files()
    got = load_recognizer(runtime="light").predict_many(EXAMPLES)
    expected = load_recognizer(runtime="reference").predict_many(EXAMPLES)
    for m in SHIPPED_MODELS:
        np.testing.assert_allclose(
            probabilities(got, m), probabilities(expected, m), rtol=0, atol=1e-4, err_msg=m
        )
