"""Your own data end to end: `ser-cnn train --data` on a labelled table (its own labels, a cache
of its own, speaker-grouped folds), inference and the app with those labels, fine-tuning from
the shipped model (`--from`), and what fine-tuning refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.errors import DataError
from ser_cnn.run import load_run
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from tests.conftest import PITCH, REPO, make_table, voice

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, str(REPO / "scripts" / "train.py"), "--quiet"]
INFER = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--format", "json"]


def run_script(command, *args, cwd):
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_train_on_a_table_then_infer_and_the_app_give_its_own_labels(tmp_path):
    table = make_table(tmp_path / "mine", ("angry", "neutral", "frustrated"))
    result = run_script(TRAIN, "--data", table, "--folds", 3, "--epochs", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cache data/processed/mine-logmel-" in result.stdout
    assert "fold 1 of 3, speakers: train 1, validation 1" in result.stdout
    run_dir = tmp_path / "checkpoints" / "cnn_robust_dropout_mine_fold1_seed0"
    run = load_run(run_dir)
    labels = ("neutral", "angry", "frustrated")  # the project's first, then the others
    assert run.labels == labels
    assert run.split["kind"] == "speaker-wise" and run.split["folds"] == 3
    assert run.split["test"] == ["mine/anna"] and len(run.split["val"]) == 1
    assert run.clips == {"train": 6, "val": 6, "test": 6}
    assert run.data["inputs"] == [str(table)] and run.source is None
    assert run.data["corpora"]["mine"]["speakers"] == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["labels"] == list(labels) and metrics["test_speakers"] == ["mine/anna"]
    assert np.sum(metrics["confusion_matrix"]) == 6

    # inference: a CNN-only run folder, its own three labels
    files = sorted((tmp_path / "mine" / "audio").glob("anna_*.wav"))
    infer = run_script(INFER, "--run", run_dir, "--all", *files, cwd=tmp_path)
    assert infer.returncode == 0, infer.stderr[-2000:]
    records = json.loads(infer.stdout)
    assert [list(r["cnn"]["probabilities"]) for r in records] == [list(labels)] * len(files)
    assert all("mlp" not in r for r in records)
    rec = load_recognizer(run_dir)
    assert rec.models == ("cnn",) and rec.labels == labels
    p = rec.predict(files[0])
    assert p.emotion in labels and set(p.probabilities) == set(labels)

    from ser_cnn.serving.app import analyse, learnt_from, probability_html, verdict_text

    analysis = analyse(rec, files[0])
    assert verdict_text(analysis.prediction).startswith("### The CNN hears")
    bars = probability_html(analysis.prediction, rec.labels)
    assert re.findall(r'data-emotion="(\w+)"', bars) == list(labels)  # a bar per own label
    assert learnt_from(rec) == "learnt from mine"

    # the MLP: the same data, its own cache, all three folds
    mlp = run_script(TRAIN, "--model", "mlp", "--data", table, "--folds", 3, "--cv", cwd=tmp_path)
    assert mlp.returncode == 0, mlp.stderr[-2000:]
    assert "3 folds: accuracy" in mlp.stdout
    summary = json.loads((tmp_path / "results" / "cv_mlp_mine.json").read_text())
    assert summary["labels"] == list(labels) and set(summary["folds"]) == {"1", "2", "3"}
    assert "speaker-independent 3-fold" in summary["protocol"]
    assert load_run(tmp_path / "checkpoints" / "cv_mlp_mine_seed0" / "fold2").labels == labels
    assert sorted(p.name for p in (tmp_path / "data" / "processed").iterdir()) == [
        next(p.name for p in (tmp_path / "data" / "processed").glob("mine-classic-*")),
        next(p.name for p in (tmp_path / "data" / "processed").glob("mine-logmel-*")),
    ]


def test_fine_tune_the_shipped_model_on_four_emotions(tmp_path):
    table = make_table(tmp_path / "mine", ("sad", "angry", "happy", "neutral"))
    out = tmp_path / "tuned"
    result = run_script(
        TRAIN,
        "--data",
        table,
        "--from",
        DEFAULT_RUN,
        "--folds",
        3,
        "--fold",
        2,
        "--epochs",
        1,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run, shipped = load_run(out), load_run(DEFAULT_RUN / "cnn")
    assert run.labels == ("neutral", "happy", "sad", "angry")
    assert run.source["path"] == str(DEFAULT_RUN / "cnn")
    assert run.source["labels"] == list(shipped.labels)
    assert run.source["git_commit"] == shipped.git_commit
    assert run.source["kept"]["output"] == "new"
    assert run.source["kept"]["output_rows_kept"] == list(run.labels)
    assert {"conv0_0", "bn3_0", "hidden"} <= set(run.source["kept"]["layers"])
    assert run.architecture == shipped.architecture and run.features == shipped.features
    assert run.normalization.band_mean == shipped.normalization.band_mean
    assert "kept" in run.normalization.fitted_on
    assert run.training.finetune_learning_rate > 0 and run.split["fold"] == 2
    records = json.loads(run_script(INFER, "--run", out, table.parent, cwd=tmp_path).stdout)
    assert len(records) == 24 and {r["cnn"]["emotion"] for r in records} <= set(run.labels)


def test_the_output_layer_is_kept_whole_or_row_by_row(tiny_features):
    import keras

    from ser_cnn.config import TrainConfig
    from ser_cnn.training.finetune import load_source
    from ser_cnn.training.train import build_model

    source = load_source(DEFAULT_RUN)
    config = source.config_for(TrainConfig())
    x = np.random.default_rng(0).normal(-40, 15, (4, *source.run.features.shape))
    shipped = keras.saving.load_model(source.run_dir / "model.keras")
    expected = shipped.predict(x, verbose=0)

    def transferred(labels):
        model = build_model(
            source.run.features,
            config,
            *source.band_statistics(),
            compute_dtype="float32",
            n=len(labels),
        )
        return model, source.transfer(model, labels)

    same, kept = transferred(source.order(tuple(reversed(source.run.labels))))
    assert kept["output"] == "kept"
    np.testing.assert_allclose(same.predict(x, verbose=0), expected, atol=1e-5)

    two, kept = transferred(("angry", "frustrated"))
    assert kept["output_rows_kept"] == ["angry"] and kept["output_rows_new"] == ["frustrated"]
    old_kernel, old_bias = shipped.get_layer("probabilities").get_weights()
    kernel, bias = two.get_layer("probabilities").get_weights()
    angry = source.run.labels.index("angry")
    np.testing.assert_array_equal(kernel[:, 0], old_kernel[:, angry])
    assert bias[0] == old_bias[angry] and not np.allclose(kernel[:, 1], old_kernel[:, angry])
    for name in ("conv0_0", "bn2_0", "hidden"):
        for a, b in zip(
            two.get_layer(name).get_weights(), shipped.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_fine_tuning_refuses_other_features_and_runs_without_a_cnn(
    logmel_cache, tiny_split, tmp_path
):
    from ser_cnn.training.train import train_cnn

    with pytest.raises(DataError, match="other feature settings"):
        train_cnn(logmel_cache, tmp_path / "run", tiny_split, source=DEFAULT_RUN, verbose=0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(DataError, match="only mlp"):
        train_cnn(logmel_cache, tmp_path / "run", tiny_split, source=DEFAULT_RUN / "mlp")
    with pytest.raises(DataError, match="no such run folder"):
        train_cnn(logmel_cache, tmp_path / "run", tiny_split, source=tmp_path / "none")


def test_without_speakers_the_split_is_by_clips_and_called_optimistic(tmp_path):
    folders = tmp_path / "byemotion"
    for emotion in ("calm", "frustrated"):
        (folders / emotion).mkdir(parents=True)
        for k in range(6):
            y = voice(seconds=1.0, f0=PITCH.get(emotion, 150.0) * (1 + 0.03 * k), seed=k)
            sf.write(folders / emotion / f"{k}.wav", y, 16_000)
    result = run_script(
        TRAIN, "--model", "mlp", "--data", folders, "--folds", 3, "--fold", 3, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("warning: speakers unknown") == 2  # at the split and the end
    run_dir = tmp_path / "checkpoints" / "mlp_byemotion_fold3_seed0"
    run = load_run(run_dir)
    assert run.labels == ("calm", "frustrated") and run.split["kind"] == "clip-wise"
    assert "optimistic" in run.split["note"]
    assert "optimistic" in json.loads((run_dir / "metrics.json").read_text())["notes"][0]
