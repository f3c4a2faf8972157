"""Inference: the Python API, long recordings, and the CLI on every kind of input."""

from __future__ import annotations

import ast
import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.errors import AudioError, DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from tests.conftest import REPO, voice

EXAMPLES = REPO / "examples"
# The shipped model's answers on examples/, written by `ser-cnn infer --all --format json
# --runtime reference examples/` (run in the repository root) when the robust recipe's fold-1
# run was shipped, with its temperature, again when the encoder's fold-1 run joined it (the
# CNN's and the MLP's answers unchanged), when its head gained a noise gate (closed on these
# clean clips: the encoder's probabilities moved by at most 5e-5, no answer changed), and when
# it gained a home gate and the other corpora's experts (its temperature refitted: the encoder's
# probabilities moved by at most 0.012, no answer changed); a change of answers must be a
# deliberate new reference.
SHIPPED_PROBABILITIES = REPO / "tests" / "reference" / "shipped_probabilities.json"
INFER = [sys.executable, str(REPO / "scripts" / "infer.py")]
SHIPPED_MODELS = ("encoder", "cnn", "mlp")  # the order of their answers: the encoder's first


@pytest.fixture(scope="module")
def rec():
    return load_recognizer()


def run_cli(*args, timeout=180):
    return subprocess.run(
        [*INFER, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_shipped_model_is_self_describing():
    for model in SHIPPED_MODELS:
        config = json.loads((DEFAULT_RUN / model / "config.json").read_text())
        assert config["labels"] == list(EMOTIONS)
        assert config["split"]["test"] == [1, 11, 20, 21]
    assert (DEFAULT_RUN / "cnn" / "saved_model" / "saved_model.pb").exists()
    # CNN 6 MB and MLP 2 MB, as before; the encoder's head 0.5 MB (Keras and arrays: 3,840
    # pooled numbers × 8 emotions), never the encoder's weights (the package's)
    size = sum(f.stat().st_size for f in DEFAULT_RUN.rglob("*") if f.is_file())
    assert size < 20_000_000
    assert not list(DEFAULT_RUN.rglob("*.bin"))


def test_shipped_model_answers_as_it_always_has():
    # the reference runtime (SavedModel, skops); the light one is held to 1e-4 in test_runtime
    rec = load_recognizer(runtime="reference")
    reference = json.loads(SHIPPED_PROBABILITIES.read_text())
    files = [REPO / r["file"] for r in reference]
    assert sorted(files) == sorted(EXAMPLES.glob("03-*"))
    assert all(set(SHIPPED_MODELS) <= set(r) for r in reference)
    for ref, got in zip(reference, rec.predict_many(files), strict=True):
        assert list(got.scores) == list(SHIPPED_MODELS)
        for m in SHIPPED_MODELS:
            assert got.scores[m].emotion == ref[m]["emotion"], (ref["file"], m)
            np.testing.assert_allclose(
                [got.scores[m].probabilities[e] for e in EMOTIONS],
                [ref[m]["probabilities"][e] for e in EMOTIONS],
                rtol=0,
                # float32 sums whose order TensorFlow's kernels pick by CPU and threads: up to
                # 1.3e-6 seen between two machines; another model moves them far more
                atol=1e-5,
                err_msg=f"{ref['file']} {m}",
            )


def test_examples_are_unseen_by_the_shipped_model():
    for model in SHIPPED_MODELS:
        config = json.loads((DEFAULT_RUN / model / "config.json").read_text())
        seen = set(config["split"]["train"]) | set(config["split"]["val"])
        actors = {int(p.stem.rsplit("-", 1)[1]) for p in EXAMPLES.glob("03-*")}
        assert actors and not actors & seen


def test_api_on_an_example_clip(rec):
    p = rec.predict(EXAMPLES / "03-01-05-02-01-01-11.flac")
    assert list(p.scores) == list(SHIPPED_MODELS) == list(rec.models)
    for scores in p.scores.values():
        assert list(scores.probabilities) == list(EMOTIONS)
        assert sum(scores.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert scores.emotion == max(scores.probabilities, key=scores.probabilities.get)
    assert p.emotion == p.scores["encoder"].emotion and 0 < p.probability <= 1  # the headline
    assert not p.windows


def test_api_on_an_array_equals_the_file(rec, tmp_path):
    y = voice(sr=44_100, seconds=2.0)
    sf.write(tmp_path / "v.wav", y, 44_100, subtype="FLOAT")
    a = rec.predict(y, sr=44_100)
    b = rec.predict(tmp_path / "v.wav")
    for m in SHIPPED_MODELS:
        np.testing.assert_allclose(
            list(a.scores[m].probabilities.values()),
            list(b.scores[m].probabilities.values()),
            atol=1e-5,
        )


def test_flac_and_wav_of_the_same_clip_agree(rec, tmp_path):
    y, sr = sf.read(EXAMPLES / "03-01-03-02-02-01-20.flac", dtype="int16")
    sf.write(tmp_path / "same.wav", y, sr, subtype="PCM_16")
    a = rec.predict(EXAMPLES / "03-01-03-02-02-01-20.flac")
    b = rec.predict(tmp_path / "same.wav")
    assert a.scores == b.scores


def test_batched_prediction_equals_one_by_one(rec):
    files = sorted(EXAMPLES.glob("03-*"))
    batched = rec.predict_many(files, batch_size=3)
    for f, b in zip(files, batched, strict=True):
        single = rec.predict(f)
        for m in SHIPPED_MODELS:  # the encoder: several clips of their own lengths per call
            np.testing.assert_allclose(
                list(single.scores[m].probabilities.values()),
                list(b.scores[m].probabilities.values()),
                atol=1e-5,
            )


def test_long_recording_windows_and_times(rec):
    sr, seconds, window, hop = 16_000, 20.0, 3.0, 1.5
    rng = np.random.default_rng(0)
    y = np.concatenate([voice(sr=sr, seconds=1.4, pad=0.3, seed=i) for i in range(10)])
    y = np.concatenate(
        [y, 0.01 * rng.standard_normal(round(seconds * sr) - len(y)).astype(np.float32)]
    )
    p = rec.predict(y, sr=sr, window=window, hop=hop)
    starts = np.arange(0, seconds - window + 1e-9, hop)  # full windows
    expected = [(s, s + window) for s in starts]
    if seconds - expected[-1][1] > 0:  # the audio left over gets a last, shorter window
        expected.append((starts[-1] + hop, seconds))
    got = [(w.start, w.end) for w in p.windows]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert p.duration == pytest.approx(seconds)
    for m in SHIPPED_MODELS:
        overall = np.mean([list(w.scores[m].probabilities.values()) for w in p.windows], axis=0)
        np.testing.assert_allclose(list(p.scores[m].probabilities.values()), overall, atol=1e-6)


def test_long_file_is_streamed_and_silent_windows_are_marked(rec, tmp_path):
    sr = 22_050
    speech = np.concatenate([voice(sr=sr, seconds=1.4, seed=i) for i in range(4)])
    y = np.concatenate([speech, np.zeros(5 * sr, dtype=np.float32), speech])
    sf.write(tmp_path / "long.wav", y, sr, subtype="PCM_16")
    p = rec.predict(tmp_path / "long.wav")
    assert len(p.windows) > 5
    assert any(w.silent for w in p.windows) and not all(w.silent for w in p.windows)
    assert all(not w.scores for w in p.windows if w.silent)
    assert p.windows[-1].end == pytest.approx(len(y) / sr, abs=1e-3)


def test_windows_of_room_tone_in_a_long_recording_are_not_averaged(rec):
    sr = 16_000
    rng = np.random.default_rng(0)
    speech = np.concatenate([voice(sr=sr, seconds=1.4, seed=i) for i in range(4)])
    gap = np.zeros(8 * sr, dtype=np.float32)  # 8 s between two stretches of speech
    y = np.concatenate([speech, gap, speech])
    y += (3e-3 * rng.standard_normal(len(y))).astype(np.float32)  # room tone throughout, -50 dBFS
    p = rec.predict(y, sr=sr)
    gap_start, gap_end = len(speech) / sr, (len(speech) + len(gap)) / sr
    in_gap = [w for w in p.windows if gap_start + 0.1 <= w.start and w.end <= gap_end - 0.1]
    assert len(in_gap) >= 2  # 3 s windows every 1.5 s fit into the 8 s gap
    assert all(w.silent and not w.scores for w in in_gap)
    spoken = [w for w in p.windows if w.start < gap_start - 1 or w.end > gap_end + 1]
    assert spoken and not any(w.silent for w in spoken)
    voiced = [w for w in p.windows if not w.silent]
    for m in SHIPPED_MODELS:
        overall = np.mean([list(w.scores[m].probabilities.values()) for w in voiced], axis=0)
        np.testing.assert_allclose(list(p.scores[m].probabilities.values()), overall, atol=1e-6)


def test_long_silence_is_an_error(rec, tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(16_000 * 10, dtype=np.int16), 16_000)
    with pytest.raises(AudioError, match="silence"):
        rec.predict(tmp_path / "quiet.wav")


def test_api_errors(rec, tmp_path):
    with pytest.raises(ParameterError):
        rec.predict(voice(), sr=16_000, window=3, hop=4)
    with pytest.raises(DataError, match="no such run folder"):
        load_recognizer(tmp_path / "nothing")
    with pytest.raises(ParameterError):
        load_recognizer(models=("svm",))


def test_one_model_only(tmp_path):
    shutil.copytree(DEFAULT_RUN / "mlp", tmp_path / "mlp")
    rec = load_recognizer(tmp_path / "mlp")
    assert rec.models == ("mlp",)
    assert set(rec.predict(voice(), sr=16_000).scores) == {"mlp"}


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Every input the CLI must take in its stride: good ones and bad ones."""
    d = tmp_path_factory.mktemp("zoo")
    x = voice(sr=48_000, seconds=1.5)
    good = {}
    for sr in (8_000, 22_050, 44_100, 96_000):
        good[f"rate_{sr}.wav"] = (voice(sr=sr, seconds=1.5), sr, {})
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"):
        good[f"depth_{subtype}.wav"] = (x, 48_000, {"subtype": subtype})
    good["clip.flac"] = (x, 48_000, {"format": "FLAC"})
    good["clip.ogg"] = (x, 48_000, {"format": "OGG"})
    good["stereo.wav"] = (np.stack([x, 0.5 * x], axis=1), 48_000, {})
    good["six channels.wav"] = (np.repeat(x[:, None], 6, axis=1), 48_000, {"subtype": "FLOAT"})
    good["Ärger – prise 1.wav"] = (x, 48_000, {})
    for name, (y, sr, kw) in good.items():
        sf.write(d / name, y, sr, **kw)
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.wav").touch()
    (bad / "text.wav").write_text("definitely not audio")
    full = (d / "rate_8000.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(full[: len(full) // 3])
    sf.write(bad / "short.wav", voice(sr=16_000, seconds=0.05, pad=0), 16_000)
    sf.write(bad / "silence.wav", np.zeros(32_000, dtype=np.int16), 16_000)
    nan = x.copy()
    nan[1000] = np.nan
    sf.write(bad / "nan.wav", nan, 48_000, subtype="FLOAT")
    (d / "no_audio").mkdir()
    (d / "no_audio" / "readme.txt").write_text("nothing here")
    return d, sorted(good), bad


@pytest.mark.slow
def test_cli_every_good_input_is_analysed(zoo):
    d, good, _ = zoo
    result = run_cli("--format", "json", "--quiet", *[d / g for g in good])
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["file"].rsplit("/", 1)[-1] for r in records] == good
    for r in records:
        assert r["ok"] and r["error"] is None
        for m in SHIPPED_MODELS:
            assert sum(r[m]["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
            assert r[m]["emotion"] in EMOTIONS


BAD_CASES = {
    "empty.wav": "empty (0 bytes)",
    "text.wav": "not an audio file",
    "truncated.wav": "truncated",
    "short.wav": "too short",
    "silence.wav": "digital silence",
    "nan.wav": "NaN or infinite",
}


@pytest.mark.slow
def test_cli_bad_inputs_get_one_clear_line_each_and_the_rest_still_run(zoo):
    d, good, bad = zoo
    missing = d / "missing.wav"
    args = [missing, d / "no_audio", *[bad / b for b in BAD_CASES], d / good[0]]
    result = run_cli("--quiet", *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(BAD_CASES) + 2
    assert any(str(missing) in e and "no such file" in e for e in errors)
    assert any("no_audio" in e and "no audio files" in e for e in errors)
    for name, problem in BAD_CASES.items():
        assert any(name in e and problem in e for e in errors), (name, errors)
    assert good[0] in result.stdout  # the good file after the bad ones was still analysed


@pytest.mark.slow
def test_cli_folder_all_and_csv(zoo):
    d, good, _ = zoo
    result = run_cli("--format", "csv", "--quiet", "--model", "cnn", d)
    assert result.returncode == 1  # the folder holds the bad files too
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(good) + len(BAD_CASES)
    ok = [r for r in rows if r["ok"] == "True"]
    assert len(ok) == len(good)
    for r in ok:
        assert sum(float(r[f"cnn_p_{e}"]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-4)
        assert "mlp_emotion" not in r


@pytest.mark.slow
def test_cli_table_on_the_examples():
    result = run_cli("--top-k", "3", EXAMPLES)
    assert result.returncode == 0, result.stderr
    for name in ("ENCODER", "CNN", "MLP"):  # `make demo`: every shipped model answers
        assert result.stdout.count(f"  {name} ") == 5, result.stdout
    assert "5 of 5 analysed" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--top-k", "0", "x.wav"],
        ["--model", "svm", "x.wav"],
        ["--window", "-1", "x.wav"],
        ["--window", "2", "--hop", "3", "x.wav"],
        ["--all", "--top-k", "2", "x.wav"],
    ],
)
def test_cli_usage_errors_exit_2(args):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_cli_missing_run_folder(tmp_path):
    result = run_cli("--run", tmp_path / "none", EXAMPLES, timeout=60)
    assert result.returncode == 1 and "no such run folder" in result.stderr
    assert "Traceback" not in result.stderr


# -- serving imports no training code ---------------------------------------------------------

# What serving a run folder may import of ser_cnn: reading audio and features, the run folder
# and its settings, the runtimes, applying a stored temperature.
SERVING = {
    "ser_cnn",
    "ser_cnn.config",
    "ser_cnn.errors",
    "ser_cnn.model",
    "ser_cnn.ravdess",
    "ser_cnn.run",
    "ser_cnn.settings",
    "ser_cnn.audio",
    "ser_cnn.audio.io",
    "ser_cnn.audio.front_end",  # an encoder run's front end, its stages:
    "ser_cnn.audio.denoise",  # noisereduce imported only when a clip needs it
    "ser_cnn.audio.dereverb",  # NumPy and SciPy's FFT only
    "ser_cnn.audio.degradations",  # the names a config's degradations may use; imports nothing
    "ser_cnn.features",
    "ser_cnn.features.classic",
    "ser_cnn.features.logmel",
    "ser_cnn.features.speaker",
    "ser_cnn.serving",
    "ser_cnn.serving.batch",  # the rows of `--format csv` and of the Ray engine
    "ser_cnn.serving.calibration",
    "ser_cnn.serving.inference",
    "ser_cnn.serving.prediction",
    "ser_cnn.serving.runtime",
    # the encoder run: Whisper's encoder in NumPy (light) and its weights' reader and checks,
    # pooling, the head as arrays, and HeadTraining (its run's settings; fit_head's Keras is
    # imported only when it trains)
    "ser_cnn.encoder",
    "ser_cnn.encoder.ct2",
    "ser_cnn.encoder.fit",
    "ser_cnn.encoder.head",
    "ser_cnn.encoder.light",
    "ser_cnn.encoder.serve",
    "ser_cnn.encoder.whisper",
}
# Never imported by a serving module, not even lazily. (ser_cnn.training.metrics is not loaded
# either, but ser_cnn.run's one writer, which training calls, draws a run's pictures with it.)
TRAINING = (
    "ser_cnn.training.train",
    "ser_cnn.training.cv",
    "ser_cnn.training.calibrate",
    "ser_cnn.training.mlp",
    "ser_cnn.training.augment",
    "ser_cnn.audio.degrade",
    "ser_cnn.features.cache",
    "ser_cnn.encoder.train",
    "ser_cnn.encoder.cache",
)


def test_serving_imports_no_training_code():
    """Importing ser_cnn.serving.inference and answering for a clip loads only the serving modules
    (in a fresh process); none of them imports a training module, not even inside a function (the
    run-level calibration fitting lives in ser_cnn.training.calibrate, which scores caches)."""
    code = (
        "import sys\n"
        "from ser_cnn.serving.inference import load_recognizer\n"
        f"load_recognizer(runtime='light').predict({str(sorted(EXAMPLES.glob('03-*'))[0])!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "      ('ser_cnn', 'tensorflow', 'keras', 'sklearn', 'matplotlib', 'pyroomacoustics')\n"
        "      or m == 'scipy.optimize'))\n"
    )
    from ser_cnn.serving.runtime import litert_available

    if not litert_available():
        code = code.replace("load_recognizer(runtime='light').predict", "print")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert loaded <= SERVING, sorted(loaded - SERVING)
    # and no serving module imports a training module anywhere, lazily included
    for name in sorted(SERVING):
        folder = REPO / name.replace(".", "/")
        path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        assert not imported & set(TRAINING), (name, sorted(imported & set(TRAINING)))
