"""tools/ensemble.py: averaged probabilities of cross-validation runs, and what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ser_cnn.config import STUDIO
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.cache import load_cache
from ser_cnn.features.logmel import FeatureConfig
from ser_cnn.ravdess import labels_of, select, split
from ser_cnn.training.cv import member_folds, score_ensemble
from ser_cnn.training.metrics import evaluate
from ser_cnn.training.train import train_cnn
from tests.conftest import REPO, build_cache

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def members(tmp_path_factory, logmel_cache, tiny_split):
    """Five one-fold "--cv" folders on the tiny cache: seeds 0 and 1, one refit on the
    validation actors, one on speaker-normalised log-mels, and one split otherwise."""
    root = tmp_path_factory.mktemp("ensemble")
    runs = {
        "seed0": (tiny_split, STUDIO.replace(epochs=2, seed=0, precision="float32")),
        "seed1": (tiny_split, STUDIO.replace(epochs=2, seed=1, precision="float32")),
        "refit": (tiny_split, STUDIO.replace(epochs=1, precision="float32", refit=True)),
        "speaker": (tiny_split, STUDIO.replace(epochs=2, precision="float32", speaker_norm=True)),
        "other_split": (
            split(test_actors=[5, 6], val_actors=[3, 4]),
            STUDIO.replace(epochs=1, precision="float32"),
        ),
    }
    for name, (part, config) in runs.items():
        train_cnn(logmel_cache, root / name / "fold1", part, config, verbose=0)
    return root


def _saved_model_probabilities(run_dir, x):
    """Probabilities of a run's SavedModel, through TensorFlow alone (not the Keras file)."""
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))  # keep it: .serve needs it alive
    return loaded.serve(tf.constant(x)).numpy()


def test_ensemble_scores_the_mean_of_the_members_probabilities(
    members, logmel_cache, tiny_split, tmp_path
):
    summary_path = tmp_path / "ensemble.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "ensemble.py"),
            str(members / "seed0"),
            str(members / "seed1"),
            "--cache",
            str(logmel_cache),
            "--summary",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble: accuracy" in result.stdout
    summary = json.loads(summary_path.read_text())
    assert summary_path.with_suffix(".png").stat().st_size > 0
    assert [m["training"]["seed"] for m in summary["members"]] == [0, 1]

    manifest, features, _ = load_cache(logmel_cache)
    mask = select(manifest, tiny_split.test)
    x, y = features[mask], labels_of(manifest)[mask]
    mean = np.mean(
        [_saved_model_probabilities(members / s / "fold1", x) for s in ("seed0", "seed1")], axis=0
    )
    expected = evaluate(y, mean.argmax(axis=1), summary["labels"])
    fold = summary["folds"]["1"]
    assert fold["test_actors"] == [1, 2]
    assert fold["confusion_matrix"] == expected["confusion_matrix"]
    assert fold["accuracy"] == pytest.approx(expected["accuracy"])
    assert summary["mean"]["accuracy"] == pytest.approx(expected["accuracy"])
    alone = [
        json.loads((members / s / "fold1" / "metrics.json").read_text())["accuracy"]
        for s in ("seed0", "seed1")
    ]
    assert summary["members_alone"]["runs"] == 2
    assert summary["members_alone"]["mean"]["accuracy"] == pytest.approx(np.mean(alone))
    assert summary["members_alone"]["std"]["accuracy"] == pytest.approx(np.std(alone))


@pytest.mark.parametrize("member", ["seed0", "speaker"])
def test_a_member_twice_scores_like_the_member(members, logmel_cache, member, tmp_path):
    # "speaker": scored on speaker-normalised log-mels, as it was trained and tested
    twin = tmp_path / member  # the same run under another name
    twin.symlink_to(members / member, target_is_directory=True)
    summary = score_ensemble([members / member, twin], logmel_cache)
    alone = json.loads((members / member / "fold1" / "metrics.json").read_text())
    assert summary["folds"]["1"]["confusion_matrix"] == alone["confusion_matrix"]
    assert summary["folds"]["1"]["validation"]["accuracy"] == pytest.approx(
        alone["validation"]["accuracy"]
    )


def test_one_member_path_given_twice_scores_like_the_member(members, logmel_cache):
    summary = score_ensemble([members / "seed0"] * 2, logmel_cache)
    alone = json.loads((members / "seed0" / "fold1" / "metrics.json").read_text())
    assert summary["folds"]["1"]["confusion_matrix"] == alone["confusion_matrix"]


def test_members_split_differently_are_refused(members, logmel_cache):
    with pytest.raises(DataError, match="split differently"):
        score_ensemble([members / "seed0", members / "other_split"], logmel_cache)


def test_one_member_or_no_folds_are_refused(members, tmp_path):
    with pytest.raises(ParameterError, match="at least two"):
        member_folds([members / "seed0"])
    with pytest.raises(DataError, match="no fold runs"):
        member_folds([members / "seed0", tmp_path])


def test_a_cache_with_other_settings_is_refused(members, tiny_tree, tmp_path):
    other = build_cache(tiny_tree, tmp_path / "other", FeatureConfig(n_mels=24, duration=1.0))
    with pytest.raises(DataError, match="other feature settings"):
        score_ensemble([members / "seed0", members / "seed1"], other)


def test_a_refit_member_leaves_the_ensemble_without_validation_scores(members, logmel_cache):
    plain = score_ensemble([members / "seed0", members / "seed1"], logmel_cache)
    assert plain["folds"]["1"]["validation"] is not None
    summary = score_ensemble([members / "seed0", members / "refit"], logmel_cache)
    # the refit member trained on the validation actors: they cannot judge the ensemble
    assert summary["folds"]["1"]["validation"] is None
    assert "refit" in summary["protocol"]
    assert summary["members"][1]["training"]["refit"] is True


def test_speaker_normalised_and_plain_members_are_refused(members, logmel_cache):
    with pytest.raises(DataError, match="speaker normalisation"):
        score_ensemble([members / "seed0", members / "speaker"], logmel_cache)
