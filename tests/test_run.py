"""The run folder (ser_cnn/run.py): its schema, what load_run refuses, format-1 folders upgraded
in memory and migrated on disk, the MLP's skops file, and the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ser_cnn.config import STUDIO, TrainConfig, load_config
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.classic import classic_features
from ser_cnn.features.logmel import FeatureConfig
from ser_cnn.model import CNNConfig
from ser_cnn.ravdess import EMOTIONS, split
from ser_cnn.run import (
    MODEL_FILES,
    RUN_FORMAT,
    Normalization,
    Run,
    check_compatible,
    cv_folds,
    fresh_dir,
    is_cv_folder,
    load_pipeline,
    load_run,
    migrate,
    model_folders,
    save_pipeline,
)
from ser_cnn.serving.inference import DEFAULT_RUN
from ser_cnn.training.mlp import fit_mlp
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))
# The last commit whose shipped run folder was format 1 (joblib MLP, normalization.json).
FORMAT_1 = "1c56510"
# The same model migrated to format 2, the last commit before the robust recipe's run shipped.
FORMAT_2 = "da23fc9"


def git_show(path: str, dest, *, commit: str = FORMAT_1):
    """Write ``commit:checkpoints/ravdess_fold1/<path>`` to ``dest``, bytes as committed."""
    try:
        blob = subprocess.run(
            ["git", "show", f"{commit}:checkpoints/ravdess_fold1/{path}"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs the git history of the checkout (commit {commit})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(blob)
    return dest


def cnn_run(**changes) -> Run:
    """A CNN run as train_cnn describes one (tuples where train_cnn gives tuples)."""
    fields = {
        "model": "cnn",
        "labels": EMOTIONS,
        "features": FeatureConfig(n_mels=4, duration=1.0),
        "training": TrainConfig(seed=3, refit=True, architecture=CNNConfig(filters=(8, 16))),
        "split": {"kind": "actor-wise", **split(2).to_dict()},
        "clips": {"train": 1200, "val": 0, "test": 240},
        "normalization": Normalization(
            band_mean=(-50.0, -40.5, -45.25, -60.0),
            band_std=(10.0, 12.0, 11.0, 9.5),
            fitted_on="train and validation actors (refit)",
        ),
        "parameters": 1234,
        "cost": {"seconds_total": 12.5},
        "versions": {"numpy": np.__version__},
        "git_commit": "0" * 40,
    }
    return Run(**(fields | changes))


def mlp_run() -> Run:
    return Run.from_dict(json.loads((DEFAULT_RUN / "mlp" / "config.json").read_text()))


def encoder_run() -> Run:
    return Run.from_dict(json.loads((DEFAULT_RUN / "encoder" / "config.json").read_text()))


def shipped_cnn_dict() -> dict:
    return json.loads((DEFAULT_RUN / "cnn" / "config.json").read_text())


# -- the schema --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            cnn_run,
            id="cnn",
        ),
        pytest.param(mlp_run, id="mlp"),
        pytest.param(encoder_run, id="encoder"),
    ],
)
def test_save_then_load_gives_the_same_run(make, tmp_path):
    run = make()
    run.save(tmp_path)
    (tmp_path / MODEL_FILES[run.model]).mkdir()  # load_run wants the model file beside it
    loaded = load_run(tmp_path)
    assert loaded.to_dict() == run.to_dict()
    assert loaded == run


def test_a_runs_properties_read_its_training_record():
    run = cnn_run()
    assert (run.seed, run.refit, run.speaker_normalized) == (3, True, False)
    assert run.architecture == CNNConfig(filters=(8, 16))
    assert run.test_actors == split(2).test
    mlp = mlp_run()
    assert (mlp.seed, mlp.refit, mlp.speaker_normalized, mlp.architecture) == (
        0,
        False,
        False,
        None,
    )
    with pytest.raises(DataError, match="model must be one of"):
        cnn_run(model="svm")
    encoder = encoder_run()
    assert (encoder.seed, encoder.refit, encoder.speaker_normalized) == (0, False, False)
    assert encoder.interface()["encoder"] == encoder.encoder.to_dict()  # one encoder per ensemble
    with pytest.raises(DataError, match="only an encoder run, names its frozen encoder"):
        cnn_run(encoder=encoder.encoder)


def test_load_run_refuses_a_folder_without_config_json(tmp_path):
    with pytest.raises(DataError, match=r"not a run folder: it has no config\.json"):
        load_run(tmp_path)


@pytest.mark.parametrize("fmt", [0, 3, None])
def test_load_run_refuses_an_unknown_format(tmp_path, fmt):
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(shipped_cnn_dict() | {"format": fmt}))
    with pytest.raises(DataError, match=f"run format {fmt!r} is not one this ser_cnn reads"):
        load_run(tmp_path)


def test_load_run_refuses_an_invalid_description(tmp_path):
    (tmp_path / "saved_model").mkdir()
    broken = shipped_cnn_dict()
    broken["training"]["lr"] = 0.1
    (tmp_path / "config.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"not a valid ser_cnn run description.*'lr'"):
        load_run(tmp_path)
    del broken["training"]["lr"], broken["labels"]
    (tmp_path / "config.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"not a valid ser_cnn run description.*labels"):
        load_run(tmp_path)


def test_load_run_refuses_a_config_json_that_is_not_an_object(tmp_path):
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "config.json").write_text("[1, 2]\n")
    with pytest.raises(DataError, match="not a valid ser_cnn run description"):
        load_run(tmp_path)


def test_model_folders_refuses_a_config_json_that_is_not_ours(tmp_path):
    (tmp_path / "config.json").write_text("window=3\n")  # some other program's settings
    with pytest.raises(DataError, match=r"config\.json"):
        model_folders(tmp_path)


@pytest.mark.parametrize("model", ["encoder", "cnn", "mlp"])
def test_load_run_refuses_a_folder_without_its_model_file(tmp_path, model):
    shutil.copy(DEFAULT_RUN / model / "config.json", tmp_path / "config.json")
    with pytest.raises(DataError, match=f"has no {MODEL_FILES[model]}"):
        load_run(tmp_path)


def test_fresh_dir_replaces_runs_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    fresh_dir(run)
    cnn_run().save(run)
    (run / "history.csv").write_text("epoch\n")
    fresh_dir(run)  # an earlier run: replaced
    assert run.is_dir() and not list(run.iterdir())
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ParameterError, match="not a ser_cnn run folder"):
        fresh_dir(precious)
    assert (precious / "holiday.jpg").exists()


def test_model_folders_and_cv_folds(tmp_path):
    assert model_folders(DEFAULT_RUN) == {
        "encoder": DEFAULT_RUN / "encoder",
        "cnn": DEFAULT_RUN / "cnn",
        "mlp": DEFAULT_RUN / "mlp",
    }
    assert model_folders(DEFAULT_RUN / "mlp") == {"mlp": DEFAULT_RUN / "mlp"}
    with pytest.raises(DataError, match="no such run folder"):
        model_folders(tmp_path / "none")
    for k in (2, 10, 1):
        (tmp_path / f"fold{k}").mkdir()
        cnn_run().save(tmp_path / f"fold{k}")
    (tmp_path / "fold3").mkdir()  # no config.json: not a fold run
    assert list(cv_folds(tmp_path)) == [1, 2, 10]
    with pytest.raises(DataError, match="no fold runs"):
        cv_folds(tmp_path / "fold3")


# -- ensembles: members must take the same input and give the same output -----------------------


def test_check_compatible_accepts_runs_that_differ_only_in_training():
    check_compatible({"a": cnn_run(), "b": cnn_run(training=TrainConfig(seed=9))})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"labels": tuple(reversed(EMOTIONS))}, "labels"),
        ({"features": FeatureConfig(n_mels=8, duration=1.0)}, "feature settings"),
        ({"training": STUDIO.replace(speaker_norm=True)}, "speaker normalisation"),
    ],
)
def test_check_compatible_refuses_other_inputs_or_outputs(changes, named):
    with pytest.raises(DataError, match=f"b and a differ in their {named}"):
        check_compatible({"a": cnn_run(), "b": cnn_run(**changes)})


# -- format 1 ----------------------------------------------------------------------------------


def test_a_format_1_cnn_folder_is_upgraded_in_memory(tmp_path):
    old = git_show("cnn/config.json", tmp_path / "cnn" / "config.json")
    (tmp_path / "cnn" / "saved_model").mkdir()
    d = json.loads(old.read_text())
    assert d["format"] == 1 and "filters" in d["training"]  # what format 1 looked like
    run = load_run(tmp_path / "cnn")
    assert run.format == RUN_FORMAT
    # the flat architecture keys, nested: the studio recipe's, as trained
    assert run.architecture == STUDIO.architecture
    assert run.architecture.filters == tuple(d["training"]["filters"])
    assert run.speaker_normalized is False and run.training.speaker_norm is False
    assert run.seed == d["seed"] and run.training.precision == d["training"]["precision"]
    assert run.normalization.fitted_on == d["normalization"]["from"] == "train actors"
    np.testing.assert_array_equal(run.normalization.band_mean, d["normalization"]["band_mean"])
    assert run.split["kind"] == "actor-wise"
    # the same model as its format-2 description, once migrated
    migrated = git_show("cnn/config.json", tmp_path / "v2" / "config.json", commit=FORMAT_2)
    (migrated.parent / "saved_model").mkdir()
    assert run.to_dict() == load_run(migrated.parent).to_dict()
    assert json.loads(old.read_text()) == d  # reading changed nothing on disk


def test_a_speaker_normalised_format_1_run_stays_speaker_normalised(tmp_path):
    d = json.loads(git_show("cnn/config.json", tmp_path / "config.json").read_text())
    d["input"]["speaker_normalized"] = True  # format 1 kept it here, training had no key
    assert "speaker_norm" not in d["training"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    (tmp_path / "saved_model").mkdir()
    assert load_run(tmp_path).speaker_normalized is True


def test_migrate_turns_a_joblib_mlp_into_skops_with_the_same_predictions(tmp_path):
    import joblib

    folder = tmp_path / "mlp"
    for name in ("config.json", "metrics.json", "model.joblib"):
        git_show(f"mlp/{name}", folder / name)
    assert json.loads((folder / "config.json").read_text())["format"] == 1
    with pytest.raises(DataError, match=r"has no model.skops \(an old joblib MLP"):
        load_run(folder)
    x = np.stack([classic_features(p) for p in EXAMPLES])
    # the pickle of our own history is trusted; loading it is what migrate is for
    expected = joblib.load(folder / "model.joblib")["pipeline"].predict_proba(x)

    assert migrate(folder) is True
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.skops",
    ]
    run = load_run(folder)
    assert run.format == json.loads((folder / "config.json").read_text())["format"] == RUN_FORMAT
    assert "best_epoch" not in run.training and run.seed == 0
    assert json.loads((folder / "metrics.json").read_text())["best_epoch"] == 72
    got = load_pipeline(folder / "model.skops").predict_proba(x)
    np.testing.assert_array_equal(got, expected)
    assert migrate(folder) is False  # once


def test_migrate_drops_a_format_1_cnn_normalization_json(tmp_path):
    folder = tmp_path / "cnn"
    for name in ("config.json", "metrics.json", "normalization.json"):
        git_show(f"cnn/{name}", folder / name)
    (folder / "saved_model").mkdir()
    assert migrate(folder) is True
    assert not (folder / "normalization.json").exists()
    on_disk = json.loads((folder / "config.json").read_text())
    assert on_disk["format"] == RUN_FORMAT and not {"input", "seed"} & set(on_disk)
    assert on_disk["normalization"]["fitted_on"] == "train actors"


# -- the MLP's file ----------------------------------------------------------------------------


def test_a_saved_pipeline_predicts_the_same_probabilities(tmp_path):
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
    save_pipeline(fit.pipeline, tmp_path / "m.skops")
    loaded = load_pipeline(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.predict_proba(x), fit.pipeline.predict_proba(x))


class Shout(BaseEstimator, TransformerMixin):
    """A transformer from outside scikit-learn: loading it would import and run our code."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x


@pytest.mark.parametrize(
    ("step", "named"),
    [(FunctionTransformer(os.system), "posix.system"), (Shout(), "test_run.Shout")],
)
def test_load_pipeline_refuses_untrusted_types(tmp_path, step, named):
    save_pipeline(make_pipeline(step, StandardScaler()), tmp_path / "evil.skops")
    with pytest.raises(DataError, match=rf"types ser_cnn does not load: \[.*{named}"):
        load_pipeline(tmp_path / "evil.skops")


# -- the shipped model -------------------------------------------------------------------------


def test_the_shipped_model_is_current_and_loads():
    runs = {m: load_run(DEFAULT_RUN / m) for m in ("encoder", "cnn", "mlp")}
    for m, run in runs.items():
        on_disk = json.loads((DEFAULT_RUN / m / "config.json").read_text())
        assert on_disk["format"] == run.format == RUN_FORMAT
        assert not {"input", "seed"} & set(on_disk)
        assert run.model == m and run.labels == EMOTIONS
        assert run.split["test"] == [1, 11, 20, 21]
    assert not (DEFAULT_RUN / "cnn" / "normalization.json").exists()
    assert not (DEFAULT_RUN / "mlp" / "model.joblib").exists()
    robust = load_config(REPO / "configs" / "robust_dropout.toml")  # the shipped recipe
    assert runs["cnn"].architecture == robust.architecture
    assert runs["cnn"].training.degraded_copies == robust.degraded_copies
    assert runs["cnn"].parameters == 373_544 and runs["cnn"].features.level_db is not None
    assert runs["cnn"].normalization.fitted_on == "train actors"
    pipeline = load_pipeline(DEFAULT_RUN / "mlp" / "model.skops")
    assert pipeline.predict_proba(np.zeros((1, 180))).shape == (1, len(EMOTIONS))


def test_migrate_leaves_a_current_folder_alone(tmp_path):
    folder = shutil.copytree(DEFAULT_RUN / "mlp", tmp_path / "mlp")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert migrate(folder) is False
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_cv_folder_is_told_apart_from_run_folders_in_one_place(tmp_path):
    cv = tmp_path / "cv"
    for k in (1, 2):
        (cv / f"fold{k}").mkdir(parents=True)
        (cv / f"fold{k}" / "config.json").write_text("{}")
    (cv / "foldx").mkdir()  # not a fold run
    assert is_cv_folder(cv) and list(cv_folds(cv)) == [1, 2]
    assert not is_cv_folder(cv / "fold1")  # a run folder
    assert not is_cv_folder(DEFAULT_RUN)  # a folder of run folders (cnn/, mlp/)
    assert not is_cv_folder(tmp_path / "none")
