"""scripts/train.py end to end on a tiny synthetic cache: the CNN and the MLP run folders."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from ser_cnn.baseline import DEFAULT_CLASSIC, load_pipeline, save_pipeline
from ser_cnn.ravdess import EMOTIONS, split
from ser_cnn.features import FeatureConfig
from ser_cnn.preprocess import load_cache, preprocess
from ser_cnn.speaker import band_statistics, normalize_by_speaker
from ser_cnn.train import TrainConfig, select, train_cnn, train_mlp
from tests.conftest import REPO, make_ravdess_tree

pytestmark = pytest.mark.slow

# A small feature window keeps the tiny CNN fast; everything else is as in a real run.
TINY = FeatureConfig(n_mels=32, duration=1.0)
ACTORS = (1, 2, 3, 4, 5, 6)
TINY_SPLIT = split(test_actors=[1, 2], val_actors=[3, 4])


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_ravdess_tree(root / "ravdess", actors=ACTORS)
    preprocess(root / "ravdess", root / "logmel", config=TINY, jobs=1, progress=False)
    preprocess(root / "ravdess", root / "classic", config=DEFAULT_CLASSIC, jobs=1, progress=False)
    return root


def test_train_script_writes_a_complete_run_folder(caches, tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            "--cache",
            str(caches / "logmel"),
            "--test-actors",
            "1,2",
            "--val-actors",
            "3,4",
            "--epochs",
            "2",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 2/2" in result.stdout and "test: accuracy" in result.stdout
    for name in (
        "saved_model/saved_model.pb",
        "model.keras",
        "config.json",
        "normalization.json",
        "history.csv",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == list(EMOTIONS)
    assert config["features"] == TINY.to_dict()
    assert config["split"] == {
        "fold": None,
        "train": [5, 6, *range(7, 25)],
        "val": [3, 4],
        "test": [1, 2],
    }
    assert config["training"]["epochs"] == 2 and config["seed"] == 0
    assert config["versions"]["tensorflow"] == tf.__version__
    assert {"git_commit", "parameters", "clips"} <= set(config)
    assert len(pd.read_csv(run / "history.csv")) == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "uar", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert np.sum(metrics["confusion_matrix"]) == 16  # 2 test actors × 8 emotions


def test_normalisation_and_split_never_see_test_actors(caches, tmp_path):
    result = train_cnn(
        caches / "logmel", tmp_path / "run", TINY_SPLIT, TrainConfig(epochs=1), verbose=0
    )
    config = json.loads((result.run_dir / "config.json").read_text())
    train, val, test = (set(config["split"][k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    manifest, features, _ = load_cache(caches / "logmel")
    assert config["training"]["utterance_norm"] is False
    mean, std = band_statistics(features[select(manifest, tuple(train))])
    np.testing.assert_allclose(config["normalization"]["band_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(config["normalization"]["band_std"], std, rtol=1e-6)
    everything = band_statistics(features)[0]
    assert not np.allclose(config["normalization"]["band_mean"], everything)
    saved = json.loads((result.run_dir / "normalization.json").read_text())
    assert saved["band_mean"] == config["normalization"]["band_mean"]
    assert config["clips"] == {"train": 16, "val": 16, "test": 16}


def test_same_seed_same_split_and_close_numbers(caches, tmp_path):
    cfg = TrainConfig(epochs=2, seed=7)
    a = train_cnn(caches / "logmel", tmp_path / "a", TINY_SPLIT, cfg, verbose=0)
    b = train_cnn(caches / "logmel", tmp_path / "b", TINY_SPLIT, cfg, verbose=0)
    ha, hb = pd.read_csv(a.run_dir / "history.csv"), pd.read_csv(b.run_dir / "history.csv")
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-3)


def test_bfloat16_training_saves_and_scores_a_float32_model(caches, tmp_path):
    augmented = TrainConfig(
        epochs=1, precision="bfloat16", speed=0.1, time_shift=5, freq_masks=1, time_masks=1
    )
    result = train_cnn(caches / "logmel", tmp_path / "run", TINY_SPLIT, augmented, verbose=0)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["training"]["precision"] == "bfloat16"
    assert config["training"]["speed"] == 0.1
    model = keras.saving.load_model(result.run_dir / "model.keras")
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    manifest, features, _ = load_cache(caches / "logmel")
    test = select(manifest, TINY_SPLIT.test)
    predicted = model.predict(features[test], verbose=0).argmax(axis=1)
    truth = manifest["emotion_code"].to_numpy()[test] - 1
    assert result.metrics["accuracy"] == pytest.approx(np.mean(predicted == truth))


def test_mlp_run_folder_and_reload(caches, tmp_path):
    result = train_mlp(caches / "classic", tmp_path / "mlp", TINY_SPLIT, seed=0)
    run = result.run_dir
    for name in (
        "model.joblib",
        "config.json",
        "metrics.json",
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "mlp" and config["labels"] == list(EMOTIONS)
    assert config["versions"]["scikit-learn"]
    manifest, features, _ = load_cache(caches / "classic")
    pipeline = load_pipeline(run / "model.joblib")
    test = features[select(manifest, (1, 2))]
    probs = pipeline.predict_proba(test)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(
        np.mean(
            probs.argmax(1) == manifest[select(manifest, (1, 2))]["emotion_code"].to_numpy() - 1
        )
    )


def test_mlp_reload_under_another_version_warns(caches, tmp_path):
    import joblib

    result = train_mlp(caches / "classic", tmp_path / "mlp", TINY_SPLIT, seed=0)
    saved = joblib.load(result.run_dir / "model.joblib")
    saved["sklearn_version"] = "0.1.0"
    joblib.dump(saved, tmp_path / "old.joblib")
    with pytest.warns(UserWarning, match="saved with scikit-learn 0.1.0"):
        load_pipeline(tmp_path / "old.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_pipeline(saved["pipeline"], tmp_path / "same.joblib")
        load_pipeline(tmp_path / "same.joblib")


def test_mlp_emotion_subset_and_random_split(caches, tmp_path):
    subset = ("calm", "happy", "fearful", "disgust")
    result = train_mlp(caches / "classic", tmp_path / "r", None, random_split=True, emotions=subset)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["labels"] == list(subset)
    assert "LEAKS SPEAKERS" in config["split"]["kind"]
    assert sum(config["clips"].values()) == len(ACTORS) * 4


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "mlp", "--split", "random", "--fold", "2"],
        ["--model", "mlp", "--split", "random", "--cv"],
        ["--model", "mlp", "--split", "random", "--test-actors", "1,2"],
        ["--split", "random"],
        ["--emotions", "calm,happy"],
        ["--model", "mlp", "--emotions", "calm,joy"],
        ["--fold", "1", "--test-actors", "1,2"],
        ["--model", "mlp", "--refit"],
    ],
)
def test_contradictory_options_are_usage_errors(args):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_missing_cache_names_the_command(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), "--cache", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "scripts/preprocess.py" in result.stderr and "Traceback" not in result.stderr


def test_saved_pipeline_predicts_the_same_probabilities(tmp_path):
    from ser_cnn.baseline import fit_mlp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 180)).astype(np.float32)
    y = np.repeat(np.arange(8), 10)
    x[np.arange(80), y] += 3.0  # learnable
    fit = fit_mlp(
        x[::2],
        y[::2],
        x[1::2],
        y[1::2],
        hidden_grid=((16,),),
        alpha_grid=(1e-3,),
        max_epochs=20,
        patience=5,
    )
    before = fit.pipeline.predict_proba(x)
    save_pipeline(fit.pipeline, tmp_path / "m.joblib")
    np.testing.assert_array_equal(load_pipeline(tmp_path / "m.joblib").predict_proba(x), before)


def test_precision_is_resolved_or_refused():
    from ser_cnn.errors import ParameterError
    from ser_cnn.train import resolve_precision

    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    assert resolve_precision("auto") in ("float32", "bfloat16")
    with pytest.raises(ParameterError, match="precision"):
        resolve_precision("float16")


def test_weight_averaging_saves_the_averaged_weights(caches, tmp_path):
    import dataclasses

    from ser_cnn.train import build_model

    # training loss as the monitor: both runs keep their last epoch
    raw_config = TrainConfig(
        epochs=6, learning_rate=0.01, precision="float32", monitor="loss", ema=0.0
    )
    avg_config = dataclasses.replace(raw_config, ema=0.999)  # an average that barely moves
    runs = {}
    for name, config in (("raw", raw_config), ("avg", avg_config)):
        result = train_cnn(caches / "logmel", tmp_path / name, TINY_SPLIT, config, verbose=0)
        model = keras.saving.load_model(result.run_dir / "model.keras")
        runs[name] = model.get_layer("conv1_0").get_weights()[0]
    keras.utils.set_random_seed(raw_config.seed)
    fresh = build_model(TINY, raw_config, np.zeros(TINY.n_mels), np.ones(TINY.n_mels))
    init = fresh.get_layer("conv1_0").get_weights()[0]
    moved = {name: float(np.abs(w - init).mean()) for name, w in runs.items()}
    # the saved averaged weights stay near where training started, the raw ones moved on
    assert moved["avg"] < 0.5 * moved["raw"], moved


def test_refit_trains_on_validation_actors_and_never_on_test_actors(caches, tmp_path):
    config = TrainConfig(epochs=3, refit=True, precision="float32")
    result = train_cnn(caches / "logmel", tmp_path / "run", TINY_SPLIT, config, verbose=0)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["training"]["refit"] is True
    assert saved["split"]["val"] == [3, 4] and saved["split"]["test"] == [1, 2]
    assert saved["clips"] == {"train": 32, "val": 0, "test": 16}
    manifest, features, _ = load_cache(caches / "logmel")
    fitted_on = tuple(saved["split"]["train"] + saved["split"]["val"])
    mean, std = band_statistics(features[select(manifest, fitted_on)])
    np.testing.assert_allclose(saved["normalization"]["band_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(saved["normalization"]["band_std"], std, rtol=1e-6)
    assert not np.allclose(mean, band_statistics(features)[0])  # test actors left out
    # nothing was selected: every planned epoch ran and the last one is kept
    assert result.epochs_run == result.best_epoch == 3
    assert result.metrics["validation"] is None
    assert len(pd.read_csv(result.run_dir / "history.csv")) == 3


def test_refit_keeps_the_averaged_weights(caches, tmp_path):
    import dataclasses

    from ser_cnn.train import build_model

    raw = TrainConfig(epochs=6, learning_rate=0.01, precision="float32", refit=True, ema=0.0)
    moved = {}
    for name, config in (("raw", raw), ("avg", dataclasses.replace(raw, ema=0.999))):
        result = train_cnn(caches / "logmel", tmp_path / name, TINY_SPLIT, config, verbose=0)
        trained = keras.saving.load_model(result.run_dir / "model.keras")
        keras.utils.set_random_seed(config.seed)
        fresh = build_model(TINY, config, np.zeros(TINY.n_mels), np.ones(TINY.n_mels))
        before = fresh.get_layer("conv1_0").get_weights()[0]
        after = trained.get_layer("conv1_0").get_weights()[0]
        moved[name] = float(np.abs(after - before).mean())
    # without validation no callback swaps the average in: fit() must end with it in place
    assert moved["avg"] < 0.5 * moved["raw"], moved


def test_refit_runs_get_their_own_default_folder(caches, tmp_path):
    # run from an empty folder: the default run folder is relative to where train.py is called
    args = ["--cache", str(caches / "logmel"), "--test-actors", "1,2", "--val-actors", "3,4"]
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), *args, "--refit", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "checkpoints" / "cnn_refit_test1-2_seed0"
    assert json.loads((run / "config.json").read_text())["training"]["refit"] is True
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [run.name]


def test_speaker_normalised_run_from_training_to_inference(caches, tmp_path):
    from ser_cnn.errors import ParameterError
    from ser_cnn.inference import load_recognizer

    args = ["--cache", str(caches / "logmel"), "--test-actors", "1,2", "--val-actors", "3,4"]
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            *args,
            "--speaker-norm",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "checkpoints" / "cnn_speaker_test1-2_seed0"  # its own default folder
    saved = json.loads((run / "config.json").read_text())
    assert saved["input"]["speaker_normalized"] is True
    assert saved["training"]["speaker_norm"] is True

    # training and testing saw every actor standardised by that actor's own statistics
    manifest, features, _ = load_cache(caches / "logmel")
    x = normalize_by_speaker(features, manifest["actor"].to_numpy())
    train = select(manifest, tuple(saved["split"]["train"]))
    np.testing.assert_allclose(
        saved["normalization"]["band_mean"], band_statistics(x[train])[0], atol=1e-5
    )
    model = keras.saving.load_model(run / "model.keras")
    test = select(manifest, (1, 2))
    predicted = model.predict(x[test], verbose=0).argmax(axis=1)
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=int)
    np.add.at(confusion, (manifest["emotion_code"].to_numpy()[test] - 1, predicted), 1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == confusion.tolist()

    # inference: the speaker's statistics come from their recordings, as in training
    files = sorted((caches / "ravdess" / "Actor_01").glob("*.wav"))
    rec = load_recognizer(run)
    with pytest.raises(ParameterError, match="speaker-normalised"):
        rec.predict(files[0])
    assert rec.calibrate(files) == pytest.approx(len(files) * 1.8, rel=0.01)
    got = [list(p.scores["cnn"].probabilities.values()) for p in rec.predict_many(files)]
    expected = model.predict(x[select(manifest, (1,))], verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4)

    # a long recording: its windows' statistics, as if each window were a clip of its own
    import soundfile as sf

    from tests.conftest import voice

    long = np.concatenate(
        [voice(seconds=1.0, pad=0.0, f0=f, seed=i) for i, f in enumerate((120, 240, 180, 300, 150))]
    )
    sf.write(tmp_path / "long.wav", long, 16_000)
    pieces = []
    for i in range(5):
        pieces.append(tmp_path / f"piece{i}.wav")
        sf.write(pieces[-1], long[i * 16_000 : (i + 1) * 16_000], 16_000)
    assert rec.calibrate([tmp_path / "long.wav"], window=1.0, hop=1.0) == pytest.approx(5.0)
    from_long = rec.speaker
    assert rec.calibrate(pieces) == pytest.approx(5.0)
    np.testing.assert_allclose(from_long, rec.speaker, rtol=1e-6)

    infer = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--format", "json"]
    alone = subprocess.run([*infer, "--run", str(run), *files], capture_output=True, text=True)
    assert alone.returncode == 2 and "--speaker" in alone.stderr
    together = subprocess.run(
        [*infer, "--run", str(run), "--speaker", *files], capture_output=True, text=True
    )
    assert together.returncode == 0, together.stderr
    assert "speaker statistics from 8 recording(s)" in together.stderr
    records = json.loads(together.stdout)
    np.testing.assert_allclose(
        [list(r["cnn"]["probabilities"].values()) for r in records], expected, atol=1e-4
    )
    shipped = subprocess.run([*infer, "--speaker", files[0]], capture_output=True, text=True)
    assert shipped.returncode == 2 and "not" in shipped.stderr


def test_an_ensemble_of_run_folders_averages_their_probabilities(caches, tmp_path):
    from ser_cnn.errors import DataError
    from ser_cnn.inference import load_recognizer

    def train(name, **changes):
        config = TrainConfig(epochs=1, precision="float32", **changes)
        return train_cnn(caches / "logmel", tmp_path / name, TINY_SPLIT, config, verbose=0).run_dir

    runs = [train("seed0", seed=0), train("seed1", seed=1)]
    files = sorted((caches / "ravdess" / "Actor_01").glob("*.wav"))

    def probabilities(rec):
        return np.array(
            [list(p.scores["cnn"].probabilities.values()) for p in rec.predict_many(files)]
        )

    alone = [probabilities(load_recognizer(r)) for r in runs]
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # two different members
    together = load_recognizer(runs)
    assert together.members["cnn"] == runs
    np.testing.assert_allclose(probabilities(together), np.mean(alone, axis=0), atol=1e-6)

    infer = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--format", "json"]
    result = subprocess.run(
        [*infer, "--run", str(runs[0]), "--run", str(runs[1]), *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    cli = [list(r["cnn"]["probabilities"].values()) for r in json.loads(result.stdout)]
    np.testing.assert_allclose(cli, np.mean(alone, axis=0), atol=1e-5)

    # members must take the same input: plain and speaker-normalised log-mels do not mix
    with pytest.raises(DataError, match="speaker normalisation"):
        load_recognizer([runs[0], train("speaker", speaker_norm=True)])
