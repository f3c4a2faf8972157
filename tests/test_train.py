"""Training on the tiny synthetic cache: the CNN's and the MLP's run folders, refit, speaker
normalisation and weight averaging, through the API and through scripts/train.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf

from ser_cnn.config import STUDIO, TrainConfig
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.cache import load_cache
from ser_cnn.features.speaker import band_statistics, normalize_by_speaker
from ser_cnn.model import utterance_normalize
from ser_cnn.ravdess import EMOTIONS, labels_of, select
from ser_cnn.run import load_pipeline, load_run
from ser_cnn.serving.inference import load_recognizer
from ser_cnn.training.mlp import train_mlp
from ser_cnn.training.train import build_model, fold_copies, train_cnn
from tests.conftest import REPO, TINY_ACTORS, make_table, voice

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, str(REPO / "scripts" / "train.py")]
INFER = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--format", "json"]
TINY_ACTOR_ARGS = ["--test-actors", "1,2", "--val-actors", "3,4"]


def run_script(command, *args, cwd=None):
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_train_script_writes_a_complete_run_folder(logmel_cache, tiny_features, tmp_path):
    run = tmp_path / "run"
    result = run_script(
        TRAIN, "--cache", logmel_cache, *TINY_ACTOR_ARGS, "--epochs", 2, "--out", run
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 2/2" in result.stdout and "test: accuracy" in result.stdout
    for name in (
        "saved_model/saved_model.pb",
        "model.keras",
        "model.tflite",  # the light runtime's copy (ser_cnn.serving.runtime), checked when written
        "config.json",
        "history.csv",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert (run / name).exists(), name
    assert not (run / "normalization.json").exists()  # config.json holds the statistics
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == 2 and config["model"] == "cnn"
    assert not {"input", "seed"} & set(config)  # format 1's duplicates are gone
    assert config["labels"] == list(EMOTIONS)
    assert config["features"] == tiny_features.to_dict()
    assert config["split"] == {
        "kind": "actor-wise",
        "fold": None,
        "train": [5, 6, *range(7, 25)],
        "val": [3, 4],
        "test": [1, 2],
    }
    assert config["training"]["epochs"] == 2 and config["training"]["seed"] == 0
    assert config["training"]["architecture"]["filters"] == [32, 64, 128, 128]
    assert config["versions"]["tensorflow"] == tf.__version__
    assert {"git_commit", "parameters", "clips", "cost"} <= set(config)
    assert load_run(run).to_dict() == config  # what was written is what the reader gives back
    assert len(pd.read_csv(run / "history.csv")) == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "uar", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert np.sum(metrics["confusion_matrix"]) == 16  # 2 test actors × 8 emotions


def test_normalisation_and_split_never_see_test_actors(logmel_cache, tiny_split, tmp_path):
    result = train_cnn(
        logmel_cache, tmp_path / "run", tiny_split, STUDIO.replace(epochs=1), verbose=0
    )
    run = load_run(result.run_dir)
    train, val, test = (set(run.split[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert run.architecture.utterance_norm is False
    manifest, features, _ = load_cache(logmel_cache)
    mean, std = band_statistics(features[select(manifest, tuple(train))])
    np.testing.assert_allclose(run.normalization.band_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(run.normalization.band_std, std, rtol=1e-6)
    assert run.normalization.fitted_on == "train actors"
    assert not np.allclose(run.normalization.band_mean, band_statistics(features)[0])
    assert run.clips == {"train": 16, "val": 16, "test": 16}


def test_same_seed_same_split_and_close_numbers(logmel_cache, tiny_split, tmp_path):
    cfg = STUDIO.replace(epochs=2, seed=7)
    a = train_cnn(logmel_cache, tmp_path / "a", tiny_split, cfg, verbose=0)
    b = train_cnn(logmel_cache, tmp_path / "b", tiny_split, cfg, verbose=0)
    ha, hb = pd.read_csv(a.run_dir / "history.csv"), pd.read_csv(b.run_dir / "history.csv")
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-3)


def test_bfloat16_training_saves_and_scores_a_float32_model(logmel_cache, tiny_split, tmp_path):
    augmented = STUDIO.replace(
        epochs=1, precision="bfloat16", speed=0.1, time_shift=5, freq_masks=1, time_masks=1
    )
    result = train_cnn(logmel_cache, tmp_path / "run", tiny_split, augmented, verbose=0)
    run = load_run(result.run_dir)
    assert run.training.precision == "bfloat16" and run.training.speed == 0.1
    model = keras.saving.load_model(result.run_dir / "model.keras")
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    manifest, features, _ = load_cache(logmel_cache)
    test = select(manifest, tiny_split.test)
    predicted = model.predict(features[test], verbose=0).argmax(axis=1)
    assert result.metrics["accuracy"] == pytest.approx(
        np.mean(predicted == labels_of(manifest)[test])
    )


def test_mlp_run_folder_and_reload(classic_cache, tiny_split, tmp_path):
    result = train_mlp(classic_cache, tmp_path / "mlp", tiny_split, seed=0)
    folder = result.run_dir
    for name in (
        "model.skops",
        "model.npz",  # the light runtime's copy (ser_cnn.serving.runtime), checked when written
        "config.json",
        "metrics.json",
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert (folder / name).exists(), name
    assert not (folder / "model.joblib").exists()
    run = load_run(folder)
    assert run.model == "mlp" and run.labels == EMOTIONS and run.seed == 0
    assert run.versions["scikit-learn"]
    manifest, features, _ = load_cache(classic_cache)
    test = select(manifest, tiny_split.test)
    probs = load_pipeline(folder / "model.skops").predict_proba(features[test])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(
        np.mean(probs.argmax(1) == labels_of(manifest)[test])
    )
    assert metrics["best_epoch"] == result.best_epoch


def test_mlp_emotion_subset_and_random_split(classic_cache, tmp_path):
    subset = ("calm", "happy", "fearful", "disgust")
    result = train_mlp(classic_cache, tmp_path / "r", None, random_split=True, emotions=subset)
    run = load_run(result.run_dir)
    assert run.labels == subset
    assert "LEAKS SPEAKERS" in run.split["kind"]
    assert sum(run.clips.values()) == len(TINY_ACTORS) * 4


def test_weight_averaging_saves_the_averaged_weights(
    logmel_cache, tiny_features, tiny_split, tmp_path
):
    # training loss as the monitor: both runs keep their last epoch
    raw_config = STUDIO.replace(
        epochs=6, learning_rate=0.01, precision="float32", monitor="loss", ema=0.0
    )
    avg_config = raw_config.replace(ema=0.999)  # an average that barely moves
    runs = {}
    for name, config in (("raw", raw_config), ("avg", avg_config)):
        result = train_cnn(logmel_cache, tmp_path / name, tiny_split, config, verbose=0)
        model = keras.saving.load_model(result.run_dir / "model.keras")
        runs[name] = model.get_layer("conv1_0").get_weights()[0]
    init = _initial_conv1(tiny_features, raw_config)
    moved = {name: float(np.abs(w - init).mean()) for name, w in runs.items()}
    # the saved averaged weights stay near where training started, the raw ones moved on
    assert moved["avg"] < 0.5 * moved["raw"], moved


def _initial_conv1(feature_config, config: TrainConfig) -> np.ndarray:
    """conv1_0's weights as train_cnn initialises them (same seed, same builder)."""
    keras.utils.set_random_seed(config.seed)
    n_mels = feature_config.n_mels
    fresh = build_model(
        feature_config, config, np.zeros(n_mels), np.ones(n_mels), compute_dtype="float32"
    )
    return fresh.get_layer("conv1_0").get_weights()[0]


def test_refit_trains_on_validation_actors_and_never_on_test_actors(
    logmel_cache, tiny_split, tmp_path
):
    config = STUDIO.replace(epochs=3, refit=True, precision="float32")
    result = train_cnn(logmel_cache, tmp_path / "run", tiny_split, config, verbose=0)
    run = load_run(result.run_dir)
    assert run.refit is True
    assert run.split["val"] == [3, 4] and run.split["test"] == [1, 2]
    assert run.clips == {"train": 32, "val": 0, "test": 16}
    manifest, features, _ = load_cache(logmel_cache)
    fitted_on = tuple(run.split["train"] + run.split["val"])
    mean, std = band_statistics(features[select(manifest, fitted_on)])
    np.testing.assert_allclose(run.normalization.band_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(run.normalization.band_std, std, rtol=1e-6)
    assert "refit" in run.normalization.fitted_on
    assert not np.allclose(mean, band_statistics(features)[0])  # test actors left out
    # nothing was selected: every planned epoch ran and the last one is kept
    assert result.epochs_run == result.best_epoch == 3
    assert result.metrics["validation"] is None
    assert len(pd.read_csv(result.run_dir / "history.csv")) == 3


def test_refit_keeps_the_averaged_weights(logmel_cache, tiny_features, tiny_split, tmp_path):
    raw = STUDIO.replace(epochs=6, learning_rate=0.01, precision="float32", refit=True, ema=0.0)
    moved = {}
    for name, config in (("raw", raw), ("avg", raw.replace(ema=0.999))):
        result = train_cnn(logmel_cache, tmp_path / name, tiny_split, config, verbose=0)
        trained = keras.saving.load_model(result.run_dir / "model.keras")
        after = trained.get_layer("conv1_0").get_weights()[0]
        moved[name] = float(np.abs(after - _initial_conv1(tiny_features, config)).mean())
    # without validation no callback swaps the average in: fit() must end with it in place
    assert moved["avg"] < 0.5 * moved["raw"], moved


def test_a_config_file_names_the_default_run_folder(logmel_cache, tmp_path):
    # run from an empty folder: the default run folder is relative to where train.py is called
    (tmp_path / "refit.toml").write_text(
        'refit = true\nepochs = 5\nprecision = "float32"\ndegraded_copies = 0\n'
    )
    result = run_script(
        TRAIN,
        "--cache",
        logmel_cache,
        *TINY_ACTOR_ARGS,
        "--config",
        "refit.toml",
        "--epochs",
        1,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "checkpoints" / "cnn_refit_test1-2_seed0"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [run.name]
    saved = load_run(run)
    assert saved.refit is True and saved.training.epochs == 1  # --epochs beats the file


def test_speaker_normalised_run_from_training_to_inference(logmel_cache, tiny_tree, tmp_path):
    (tmp_path / "speaker.toml").write_text(  # on the studio recipe, as configs/speaker_refit.toml
        "speaker_norm = true\ndegraded_copies = 0\n[architecture]\nutterance_norm = false\n"
    )
    result = run_script(
        TRAIN,
        "--cache",
        logmel_cache,
        *TINY_ACTOR_ARGS,
        "--config",
        "speaker.toml",
        "--epochs",
        2,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "checkpoints" / "cnn_speaker_test1-2_seed0"  # its own default folder
    saved = load_run(run)
    assert saved.speaker_normalized is True and saved.training.speaker_norm is True

    # training and testing saw every actor standardised by that actor's own statistics
    manifest, features, _ = load_cache(logmel_cache)
    x = normalize_by_speaker(features, manifest["actor"].to_numpy())
    train = select(manifest, tuple(saved.split["train"]))
    np.testing.assert_allclose(
        saved.normalization.band_mean, band_statistics(x[train])[0], atol=1e-5
    )
    model = keras.saving.load_model(run / "model.keras")
    test = select(manifest, (1, 2))
    predicted = model.predict(x[test], verbose=0).argmax(axis=1)
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=int)
    np.add.at(confusion, (labels_of(manifest)[test], predicted), 1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == confusion.tolist()

    # inference: the speaker's statistics come from their recordings, as in training
    files = sorted((tiny_tree / "Actor_01").glob("*.wav"))
    rec = load_recognizer(run)
    with pytest.raises(ParameterError, match="speaker-normalised"):
        rec.predict(files[0])
    assert rec.calibrate(files) == pytest.approx(len(files) * 1.8, rel=0.01)
    got = [list(p.scores["cnn"].probabilities.values()) for p in rec.predict_many(files)]
    expected = model.predict(x[select(manifest, (1,))], verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4)

    # a long recording: its windows' statistics, as if each window were a clip of its own
    long = np.concatenate(
        [voice(seconds=1.0, pad=0.0, f0=f, seed=i) for i, f in enumerate((120, 240, 180, 300, 150))]
    )
    sf.write(tmp_path / "long.wav", long, 16_000)
    pieces = []
    for i in range(5):
        pieces.append(tmp_path / f"piece{i}.wav")
        sf.write(pieces[-1], long[i * 16_000 : (i + 1) * 16_000], 16_000)
    assert rec.calibrate([tmp_path / "long.wav"], window=1.0, hop=1.0) == pytest.approx(5.0)
    from_long = rec.speaker["cnn"]
    assert rec.calibrate(pieces) == pytest.approx(5.0)
    np.testing.assert_allclose(from_long, rec.speaker["cnn"], rtol=1e-6)

    alone = run_script(INFER, "--run", run, *files)
    assert alone.returncode == 2 and "--speaker" in alone.stderr
    together = run_script(INFER, "--run", run, "--speaker", *files)
    assert together.returncode == 0, together.stderr
    assert "speaker statistics from 8 recording(s)" in together.stderr
    records = json.loads(together.stdout)
    np.testing.assert_allclose(
        [list(r["cnn"]["probabilities"].values()) for r in records], expected, atol=1e-4
    )
    shipped = run_script(INFER, "--speaker", files[0])
    assert shipped.returncode == 2 and "not" in shipped.stderr
    # ser-cnn evaluate: the speaker's clips judged with their statistics, as --speaker does
    from ser_cnn.training.evaluation import evaluate_run

    report = evaluate_run(run, [str(tiny_tree / "Actor_01")], calibrated=False)
    answers = {Path(r["file"]).name: r["cnn_emotion"] for r in report.predictions}
    assert answers == {Path(r["file"]).name: r["cnn"]["emotion"] for r in records}


def test_an_ensemble_of_run_folders_averages_their_probabilities(
    logmel_cache, tiny_tree, tiny_split, tmp_path
):
    def train(name, **changes):
        config = STUDIO.replace(epochs=1, precision="float32", **changes)
        return train_cnn(logmel_cache, tmp_path / name, tiny_split, config, verbose=0).run_dir

    runs = [train("seed0", seed=0), train("seed1", seed=1)]
    files = sorted((tiny_tree / "Actor_01").glob("*.wav"))

    def probabilities(rec):
        return np.array(
            [list(p.scores["cnn"].probabilities.values()) for p in rec.predict_many(files)]
        )

    alone = [probabilities(load_recognizer(r)) for r in runs]
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # two different members
    together = load_recognizer(runs)
    assert together.members["cnn"] == runs
    np.testing.assert_allclose(probabilities(together), np.mean(alone, axis=0), atol=1e-6)

    result = run_script(INFER, "--run", runs[0], "--run", runs[1], *files)
    assert result.returncode == 0, result.stderr
    cli = [list(r["cnn"]["probabilities"].values()) for r in json.loads(result.stdout)]
    np.testing.assert_allclose(cli, np.mean(alone, axis=0), atol=1e-5)

    # members must take the same input: plain and speaker-normalised log-mels do not mix
    with pytest.raises(DataError, match="speaker normalisation"):
        load_recognizer([runs[0], train("speaker", speaker_norm=True)])


def test_a_speaker_grouped_fold_of_a_table_with_its_own_labels(
    tiny_features, tmp_path, monkeypatch
):
    from ser_cnn.corpora.splits import data_split, groups_of
    from ser_cnn.features.cache import preprocess

    table = make_table(tmp_path / "mine", ("frustrated", "sad", "angry"), clips=3)
    cache = tmp_path / "cache"
    preprocess(table, cache, config=tiny_features, jobs=1, progress=False)
    manifest, features, _ = load_cache(cache)
    fold = data_split(manifest, 3, 3)
    # the shipped recipe: degraded copies whose babble is of the other training speakers
    config = TrainConfig(epochs=1, precision="float32", degraded_copies=1)
    result = train_cnn(cache, tmp_path / "run", fold, config, verbose=0)
    run = load_run(result.run_dir)
    assert run.labels == ("sad", "angry", "frustrated") and run.split == fold.record()
    assert run.training.degraded_copies == 1
    train = np.isin(groups_of(manifest), fold.train)
    # the copies it trained on are the cache's copies stage, made once for this fold and recipe
    stored = list((cache / "copies").glob("*.npy"))
    assert len(stored) == 1

    def no_audio(*args, **kwargs):
        raise AssertionError("the copies were made again from the audio")

    monkeypatch.setattr("ser_cnn.audio.io.load_audio", no_audio)
    again = fold_copies(cache, fold, config)
    assert again.shape == (train.sum(), 1, *tiny_features.shape)
    np.testing.assert_array_equal(again, np.load(stored[0]))
    mean, _ = band_statistics(utterance_normalize(features[train]))
    np.testing.assert_allclose(run.normalization.band_mean, mean, rtol=1e-6)
    assert run.normalization.fitted_on == "train speakers"
    assert result.metrics["test_speakers"] == list(fold.test) == ["mine/cleo"]
    model = keras.saving.load_model(result.run_dir / "model.keras")
    test = fold.masks(manifest)["test"]
    predicted = model.predict(features[test], verbose=0).argmax(axis=1)
    truth = manifest.loc[test, "emotion"].map({e: i for i, e in enumerate(run.labels)})
    assert result.metrics["accuracy"] == pytest.approx(np.mean(predicted == truth.to_numpy()))
