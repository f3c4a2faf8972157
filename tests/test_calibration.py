"""Calibrated probabilities: ECE and NLL and temperature scaling (ser_cnn/serving/calibration.py),
fitting the temperature of a run folder (ser_cnn/training/calibrate.py), inference applying it,
serving without the fitting code, tools/calibrate.py and its table."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ser_cnn.errors import DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS
from ser_cnn.run import Calibration, load_metrics, load_run
from ser_cnn.serving.calibration import (
    apply_temperature,
    ece_floor,
    expected_calibration_error,
    nll,
    reliability,
    scores,
)
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from ser_cnn.training.calibrate import (
    DIAGRAM,
    NOT_FITTED_REFIT,
    borrowed_calibration,
    calibrate_run,
    fit_temperature,
    plot_reliability,
    pooled_calibration,
)
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def draw(p: np.ndarray, rng) -> np.ndarray:
    """One class per row, drawn from that row's probabilities: a perfectly calibrated truth."""
    return (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1).clip(0, p.shape[1] - 1)


@pytest.fixture(scope="module")
def synthetic():
    """20,000 clips of 8 classes whose true classes are drawn from softmax(logits)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, size=(20_000, 8))
    p = softmax(logits)
    return logits, p, draw(p, rng)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"ser_cnn_tools_{name}", REPO / "tools" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the measures ------------------------------------------------------------------------------


def test_ece_and_nll_of_a_hand_made_example():
    # four clips at confidence 0.8 (one bin), two right: |0.5 - 0.8| = 0.3
    p = np.array([[0.8, 0.2]] * 4)
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.3)
    assert nll(p, y) == pytest.approx(-(2 * np.log(0.8) + 2 * np.log(0.2)) / 4)
    # two bins: 0.6 right (gap 0.4), 0.9 wrong twice (gap 0.9): (1 * 0.4 + 2 * 0.9) / 3
    p = np.array([[0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    y = np.array([0, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx((0.4 + 2 * 0.9) / 3)
    confidence, accuracy, count = reliability(p, y, bins=10)  # bins (0.5, 0.6], (0.8, 0.9]
    assert count.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 2, 0]
    assert accuracy[5] == 1.0 and accuracy[8] == 0.0 and np.isnan(accuracy[0])
    assert confidence[5] == pytest.approx(0.6) and confidence[8] == pytest.approx(0.9)
    assert scores(p, y)["accuracy"] == pytest.approx(1 / 3)


def test_perfectly_calibrated_probabilities_have_an_ece_near_zero(synthetic):
    _, p, y = synthetic
    ece = expected_calibration_error(p, y)
    assert ece < 0.015
    # what sampling alone gives on this many clips: the same order as the measured ECE
    assert ece_floor(p, draws=20) == pytest.approx(ece, abs=0.01)
    # on 240 clips the floor is several hundredths: a per-fold ECE cannot go far below it
    assert 0.02 < ece_floor(p[:240], draws=50) < 0.1


def test_a_fitted_temperature_recovers_the_true_one_and_calibrates(synthetic):
    logits, _, y = synthetic
    overconfident = softmax(3.0 * logits)  # a model three times too sure: true T = 3
    before = scores(overconfident, y)
    assert before["ece"] > 0.15
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(3.0, rel=0.03)  # 20,000 clips: within 3 %
    after = scores(apply_temperature(overconfident, t), y)
    assert after["ece"] < 0.015 and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]
    # an underconfident model gets T < 1
    assert fit_temperature(softmax(0.5 * logits), y) == pytest.approx(0.5, rel=0.03)


def test_a_left_out_corpus_is_calibrated_by_the_validation_temperature(synthetic):
    """tools/encoder_cv.py --loco: a corpus's restricted probabilities, raw and with the
    temperature fitted on validation clips (here of the same too-sure model: T = 3)."""
    encoder_cv = load_tool("encoder_cv.py")
    logits = synthetic[0]
    val, test = slice(0, 10_000), slice(10_000, None)
    emotions = ("neutral", "happy", "sad", "angry")  # URDU's: the other four dropped
    keep = np.isin(np.arange(8), [EMOTIONS.index(e) for e in emotions])
    z = np.where(keep, logits, -30.0)  # a model that never answers the others
    truth = draw(softmax(z), np.random.default_rng(1))  # calibrated at T = 1
    too_sure = softmax(3.0 * z)
    got = encoder_cv.left_out_calibration(
        too_sure[test], truth[test], emotions, too_sure[val], truth[val]
    )
    assert got["temperature"] == pytest.approx(3.0, rel=0.05)
    assert got["ece_raw"] > 0.15 and got["ece_calibrated"] < 0.03
    assert got["ece_floor"] < 0.03 and got["mean_confidence"] < 1
    # two corpora left out, both answered three times too sure, each run carrying T = 1.5:
    # each one's temperature, fitted on the other's answers, calibrates it, and so does the
    # factor of 2 on top of its run's 1.5
    record = {"labels": list(emotions), "calibration": {}}
    out = {"a": record, "b": {**record, "calibration": {}}}
    answers = {"a": (too_sure[val], truth[val], 1.5), "b": (too_sure[test], truth[test], 1.5)}
    factor = encoder_cv.unheard_temperatures(out, answers)
    assert factor == pytest.approx(2.0, rel=0.05)  # 20,000 clips: within 5 % as above
    for c in out:
        assert out[c]["calibration"]["temperature_unheard"] == pytest.approx(3.0, rel=0.05)
        assert out[c]["calibration"]["ece_unheard_temperature"] < 0.03
        assert out[c]["calibration"]["wide_temperature"] == pytest.approx(2.0, rel=0.05)
        assert out[c]["calibration"]["ece_wide_temperature"] < 0.03


def test_a_recipes_wide_temperature_is_the_one_fitted_on_corpora_left_out(tmp_path):
    """configs/encoder_logistic_gated_unheard.toml takes the factor that the shipped recipe's
    --loco run fitted on all three corpora left out; scored on one of them, a run takes the
    factor fitted without it (tools/encoder_cv.py --wide-temperature-from)."""
    import tomllib

    encoder_cv = load_tool("encoder_cv.py")
    loco = REPO / "results" / "loco_encoder_encoder_logistic_gated_home.json"
    recipe = tomllib.loads((REPO / "configs" / "encoder_logistic_gated_unheard.toml").read_text())
    assert recipe["wide_temperature"] == json.loads(loco.read_text())["wide_temperature"]["0"]
    fitted = {
        "runs": {
            "0": {
                c: {"calibration": {"wide_temperature": t}}
                for c, t in (("ased", 2.5), ("urdu", 1.5))
            }
        }
    }
    (tmp_path / "loco.json").write_text(json.dumps(fitted))
    assert encoder_cv.wide_temperatures(tmp_path / "loco.json") == {"ased": 2.5, "urdu": 1.5}
    assert encoder_cv.wide_temperatures(None) is None  # the config's own


def test_caches_of_one_recipe_are_runs_keyed_by_their_copies_seed(tmp_path):
    """tools/encoder_cv.py given several RAVDESS caches: one run per seed of the copies' draw;
    caches that share a seed, or differ in anything else, are refused."""
    encoder_cv = load_tool("encoder_cv.py")
    recipe = {"format": 1, "copies": 4, "chain": {"p": {"noise": 1.0}, "from_copy": 3}}

    def cache(name: str, **changed):
        (tmp_path / name).mkdir()
        (tmp_path / name / "settings.json").write_text(json.dumps(recipe | changed))
        return tmp_path / name

    a, b, c = cache("a", seed=0), cache("b", seed=2), cache("c", seed=1)
    assert encoder_cv.copy_seeds([a, b, c]) == {0: a, 2: b, 1: c}
    with pytest.raises(SystemExit, match="differ in their copies' seed"):
        encoder_cv.copy_seeds([a, cache("d", seed=0)])
    with pytest.raises(SystemExit, match="and only in it"):
        encoder_cv.copy_seeds([a, cache("e", seed=3, copies=2)])


def test_a_learning_curves_actors_are_balanced_where_the_fold_allows():
    """tools/encoder_cv.py --train-actors: as many women as men, unless the fold trains too few
    of one (fold 2 trains 7 women of its 18); the same draw for the same seed."""
    encoder_cv = load_tool("encoder_cv.py")
    women = [2, 4, 6, 8, 10, 12, 14]  # RAVDESS: even actors are women
    men = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21]
    for n, n_women in ((4, 2), (7, 3), (14, 7), (16, 7), (18, 7)):
        drawn = encoder_cv.fewer_actors(men + women, n, seed=2)
        assert len(set(drawn)) == n and set(drawn) <= set(men + women)
        assert sum(a in women for a in drawn) == n_women
        assert drawn == encoder_cv.fewer_actors(men + women, n, seed=2)
    with pytest.raises(SystemExit, match="must be 1 to 18"):
        encoder_cv.fewer_actors(men + women, 19, seed=2)


def test_apply_temperature_keeps_the_order_and_equals_scaled_logits(synthetic):
    logits, p, _ = synthetic
    for t in (0.3, 1.7, 8.0):
        q = apply_temperature(p, t)
        np.testing.assert_allclose(q, softmax(logits / t), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(q.sum(axis=1), 1.0)
        assert np.array_equal(q.argmax(axis=1), p.argmax(axis=1))
    assert apply_temperature(p, 1.0) is p  # raw output, untouched
    # a float32 softmax that rounded a probability to 0 stays finite, and stays the lowest
    q = apply_temperature(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), 4.0)
    assert np.all(np.isfinite(q)) and q.argmax() == 0 and q[0, 1] > 0
    assert np.isfinite(nll(np.array([[1.0, 0.0]]), np.array([1])))


@pytest.mark.parametrize(
    "call",
    [
        lambda: apply_temperature(np.full((2, 3), 1 / 3), 0.0),
        lambda: apply_temperature(np.full((2, 3), 1 / 3), float("nan")),
        lambda: expected_calibration_error(np.full((2, 3), 1 / 3), np.array([0, 3])),
        lambda: expected_calibration_error(np.full((2, 3), 1 / 3), np.array([0.0, 1.0])),
        lambda: expected_calibration_error(np.full((2, 3), 1 / 3), np.array([0])),
        lambda: expected_calibration_error(np.full((2, 3), 1 / 3), np.array([0, 1]), bins=0),
        lambda: nll(np.full(3, 1 / 3), np.array([0])),
        lambda: nll(np.array([[0.5, np.nan]]), np.array([0])),
        lambda: fit_temperature(np.full((2, 3), 1 / 3), np.array([0, 1]), bounds=(2.0, 3.0)),
        lambda: plot_reliability({}, "x.png"),
    ],
)
def test_bad_arguments_are_refused(call):
    with pytest.raises(ParameterError):
        call()


def test_reliability_diagram_is_drawn(synthetic, tmp_path):
    logits, p, y = synthetic
    path = plot_reliability(
        {"raw": (softmax(3 * logits), y), "calibrated": (p, y), "third": (p, y)},
        tmp_path / "r.png",
        title="synthetic",
    )
    assert path.stat().st_size > 10_000


def test_pooled_calibration_leaves_out_runs_that_validated_on_the_test_actors(synthetic):
    logits, _, y = synthetic
    validation = {
        "fold1": (softmax(2.0 * logits[:5000]), y[:5000], [4, 9]),
        "fold2": (softmax(2.0 * logits[5000:10000]), y[5000:10000], [8, 9]),
        "fold6": (softmax(0.5 * logits[10000:15000]), y[10000:15000], [1, 20]),
    }
    # fold 1's test actors (1, 11, 20, 21) are fold 6's validation actors: fold 6 is left out
    c = pooled_calibration(validation, excluding=(1, 11, 20, 21))
    assert c.temperature == pytest.approx(2.0, rel=0.05)
    assert c.fitted_on == "pooled over fold1, fold2: validation actors 4, 8, 9 (10000 clips)"
    with pytest.raises(DataError, match="validated on one of the test actors"):
        pooled_calibration({"fold6": validation["fold6"]}, excluding=(1, 11, 20, 21))


# -- the run folder ----------------------------------------------------------------------------


def test_a_calibration_round_trips_through_the_run_folder(tmp_path):
    folder = shutil.copytree(DEFAULT_RUN / "mlp", tmp_path / "mlp")
    old = dataclasses.replace(load_run(folder), calibration=None)  # as before calibration
    assert old.temperature == 1.0
    calibrated = dataclasses.replace(old, calibration=Calibration(2.5, "validation actors 4, 9"))
    calibrated.save(folder)
    loaded = load_run(folder)
    assert loaded == calibrated and loaded.temperature == 2.5
    assert loaded.calibration.fitted_on == "validation actors 4, 9"
    assert json.loads((folder / "config.json").read_text())["calibration"] == {
        "temperature": 2.5,
        "fitted_on": "validation actors 4, 9",
    }
    assert loaded.interface() == old.interface()  # ensembles may mix calibrated members


@pytest.mark.parametrize("temperature", [0, -1, "hot"])
def test_a_run_with_a_bad_temperature_is_refused(tmp_path, temperature):
    folder = shutil.copytree(DEFAULT_RUN / "mlp", tmp_path / "mlp")
    d = json.loads((folder / "config.json").read_text())
    d["calibration"] = {"temperature": temperature, "fitted_on": "x"}
    (folder / "config.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="not a valid ser_cnn run description"):
        load_run(folder)


def calibrated_copy(tmp_path, temperatures: dict[str, float]):
    """A copy of the shipped run folder whose runs store these temperatures."""
    folder = shutil.copytree(DEFAULT_RUN, tmp_path / "shipped")
    for m, t in temperatures.items():
        run = load_run(folder / m)
        dataclasses.replace(run, calibration=Calibration(t, "a test")).save(folder / m)
    return folder


def test_inference_applies_the_runs_temperature_and_keeps_the_raw_output(tmp_path):
    temperatures = {"encoder": 3.0, "cnn": 2.0, "mlp": 5.0}
    folder = calibrated_copy(tmp_path, temperatures)
    shipped = load_recognizer(calibrated=False)  # the models' own output
    calibrated, raw = load_recognizer(folder), load_recognizer(folder, calibrated=False)
    assert calibrated.temperatures == {m: (t,) for m, t in temperatures.items()}
    assert raw.temperatures == shipped.temperatures == {m: (1.0,) for m in temperatures}
    for want, got_raw, got in zip(
        shipped.predict_many(EXAMPLES),
        raw.predict_many(EXAMPLES),
        calibrated.predict_many(EXAMPLES),
        strict=True,
    ):
        for m, t in temperatures.items():
            p = np.array([[want.scores[m].probabilities[e] for e in EMOTIONS]])
            assert got_raw.scores[m].probabilities == want.scores[m].probabilities
            np.testing.assert_allclose(
                [got.scores[m].probabilities[e] for e in EMOTIONS],
                apply_temperature(p, t)[0],
                rtol=0,
                atol=1e-6,
            )
            assert got.scores[m].emotion == want.scores[m].emotion
            assert got.scores[m].probability < want.scores[m].probability  # T > 1 softens


def test_an_ensemble_scales_each_member_by_its_own_temperature(tmp_path):
    a = calibrated_copy(tmp_path / "a", {"mlp": 3.0})
    b = calibrated_copy(tmp_path / "b", {"mlp": 0.5})
    rec = load_recognizer([a, b], models=("mlp",))
    assert rec.temperatures == {"mlp": (3.0, 0.5)}
    shipped = load_recognizer(DEFAULT_RUN, models=("mlp",), calibrated=False)
    raw = shipped.predict(EXAMPLES[0]).scores["mlp"]
    p = np.array([[raw.probabilities[e] for e in EMOTIONS]])
    want = (apply_temperature(p, 3.0) + apply_temperature(p, 0.5)) / 2
    got = rec.predict(EXAMPLES[0]).scores["mlp"]
    np.testing.assert_allclose([got.probabilities[e] for e in EMOTIONS], want[0], atol=1e-9)


@pytest.mark.slow
def test_infer_raw_prints_the_uncalibrated_probabilities(tmp_path):
    folder = calibrated_copy(tmp_path, {"mlp": 5.0})
    infer = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--format", "json"]
    outputs = {}
    for flags in ((), ("--raw",)):
        result = subprocess.run(
            [*infer, "--model", "mlp", "--run", str(folder), *flags, str(EXAMPLES[0])],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        outputs[flags] = json.loads(result.stdout)[0]["mlp"]["probabilities"]
    raw = load_recognizer(models=("mlp",), calibrated=False)
    shipped = raw.predict(EXAMPLES[0]).scores["mlp"].probabilities
    assert outputs[("--raw",)] == pytest.approx(shipped, abs=1e-6)
    p = np.array([[shipped[e] for e in EMOTIONS]])
    assert list(outputs[()].values()) == pytest.approx(apply_temperature(p, 5.0)[0], abs=1e-6)


# -- the results table -------------------------------------------------------------------------


def fold_entry(t: float, actors, *, refit: bool = False) -> dict:
    def s(acc, ece, nll):
        return {"n": 240, "accuracy": acc, "ece": ece, "ece_floor": 0.06, "nll": nll}

    test = {"before": s(0.6, 0.15, 1.4), "after": s(0.6, 0.05 * t, 1.1)}
    val = None if refit else {"before": s(0.5, 0.2, 2.0), "after": s(0.5, 0.07, 1.5)}
    return {
        "run": "x",
        "test_actors": list(actors),
        "temperature": t,
        "fitted_on": NOT_FITTED_REFIT if refit else "validation actors 4, 9 (120 clips)",
        "bins": 15,
        "test": test,
        "validation": val,
    }


def test_the_calibration_table_of_a_synthetic_summary(tmp_path, monkeypatch):
    calibrate, report = load_tool("calibrate.py"), load_tool("report.py")
    folds = {"1": fold_entry(2.0, (1, 11, 20, 21)), "2": fold_entry(1.0, (4, 10), refit=True)}
    pooled = {"test": {w: v | {"n": 480} for w, v in folds["1"]["test"].items()}}
    summary = {"runs": {"checkpoints/cv": {"model": "cnn", "folds": folds}}}
    summary["runs"]["checkpoints/cv"] |= calibrate.summarise(folds, pooled)
    mean = summary["runs"]["checkpoints/cv"]["mean"]
    assert mean["temperature"] == 1.5 and mean["test"]["after"]["ece"] == pytest.approx(0.075)
    assert mean["validation"]["after"]["ece"] == 0.07  # the refit fold has no validation
    table = report.calibration_table(summary)
    lines = table.splitlines()
    assert lines[0].startswith("**CNN**, `checkpoints/cv`; T of the first fold: validation")
    assert "| 1 | 1, 11, 20, 21 | 2.00 | 0.600 | 0.150 | 0.100 | 0.060 | 1.400 | 1.100 " in table
    assert "| 2 | 4, 10 | 1.00 | 0.600 | 0.150 | 0.050 | 0.060 | 1.400 | 1.100 | – |" in table
    assert "| mean ± std | | 1.50 ± 0.50 | 0.600 ± 0.000 | 0.150 ± 0.000 | 0.075 ± 0.025 " in table
    assert "| all 480 test clips | | | 0.600 | 0.150 | 0.100 |" in table
    # the section: a note until results/calibration.json exists, then the table and its link
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert "not measured yet" in report.calibration("../")
    (tmp_path / "calibration.json").write_text(json.dumps(summary))
    section = report.calibration("../")
    assert table in section and "(../results/calibration.json)" in section
    assert "results/calibration_encoder.json`)_" in section  # the encoder's: not written here


# -- calibrating real (tiny) runs --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, logmel_cache, classic_cache, tiny_split):
    """A tiny CNN run, a refit one and an MLP run of the tiny training set (read only: the tests
    calibrate copies)."""
    from ser_cnn.config import STUDIO
    from ser_cnn.training.mlp import train_mlp
    from ser_cnn.training.train import train_cnn

    root = tmp_path_factory.mktemp("calibration")
    for name, config in (
        ("cnn", STUDIO.replace(epochs=3, precision="float32")),
        ("refit", STUDIO.replace(epochs=1, precision="float32", refit=True)),
    ):
        train_cnn(logmel_cache, root / name, tiny_split, config, verbose=0)
    train_mlp(classic_cache, root / "mlp", tiny_split, seed=0)
    return root


def fingerprint(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ("model" in p.name or "saved_model" in str(p))
    }


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_calibrate_run_fits_on_validation_actors_and_stores_it(
    tiny_runs, logmel_cache, classic_cache, tiny_tree, model, tmp_path
):
    from ser_cnn.training.cv import run_probabilities

    cache = logmel_cache if model == "cnn" else classic_cache
    folder = shutil.copytree(tiny_runs / model, tmp_path / model)
    models = fingerprint(folder)
    result = calibrate_run(folder, cache)

    # fitted on the validation actors' raw probabilities, and on nothing else
    raw = run_probabilities(folder, cache)
    assert result.calibration.temperature == pytest.approx(fit_temperature(*raw["val"]))
    assert result.calibration.fitted_on == "validation actors 3, 4 (16 clips)"
    run = load_run(folder)
    assert run.calibration == result.calibration

    entry = load_metrics(folder)["calibration"]
    assert entry == json.loads(json.dumps(result.scores))
    assert entry["temperature"] == run.temperature and entry["bins"] == 15
    for part in ("test", "validation"):
        before, after = entry[part]["before"], entry[part]["after"]
        assert before["n"] == after["n"] == 16
        assert before["accuracy"] == after["accuracy"]  # the order of emotions never changes
    val = entry["validation"]
    assert val["after"]["nll"] <= val["before"]["nll"] + 1e-9  # T minimises it there
    p, y = raw["test"]
    assert entry["test"]["before"]["ece"] == pytest.approx(expected_calibration_error(p, y))
    calibrated = apply_temperature(p, run.temperature)
    assert entry["test"]["after"]["nll"] == pytest.approx(nll(calibrated, y))
    assert (folder / DIAGRAM).stat().st_size > 10_000
    assert fingerprint(folder) == models  # the model files are not touched

    # inference reports the calibrated probabilities, or the raw ones
    clip = sorted((tiny_tree / "Actor_01").glob("*.wav"))[0]  # a test actor's
    got = load_recognizer(folder).predict(clip).scores[model]
    want = load_recognizer(folder, calibrated=False).predict(clip).scores[model]
    q = np.array([[want.probabilities[e] for e in EMOTIONS]])
    np.testing.assert_allclose(
        [got.probabilities[e] for e in EMOTIONS],
        apply_temperature(q, run.temperature)[0],
        atol=1e-6,
    )


@pytest.mark.slow
def test_a_refit_run_keeps_temperature_one_or_borrows_one(tiny_runs, logmel_cache, tmp_path):
    validated = shutil.copytree(tiny_runs / "cnn", tmp_path / "cnn")
    refit = shutil.copytree(tiny_runs / "refit", tmp_path / "refit")
    with pytest.raises(DataError, match="no temperature fitted on validation actors"):
        borrowed_calibration([validated])  # not calibrated yet

    result = calibrate_run(refit, logmel_cache)
    assert result.calibration == Calibration(1.0, NOT_FITTED_REFIT)
    entry = load_metrics(refit)["calibration"]
    assert entry["validation"] is None and entry["temperature"] == 1.0
    assert entry["test"]["before"] == entry["test"]["after"]
    with pytest.raises(DataError, match="no temperature fitted on validation actors"):
        borrowed_calibration([refit])

    fitted = calibrate_run(validated, logmel_cache).calibration
    borrowed = borrowed_calibration([validated])
    assert borrowed.temperature == fitted.temperature
    assert borrowed.fitted_on.startswith("borrowed: mean temperature of 1 validated runs")
    calibrate_run(refit, logmel_cache, calibration=borrowed)
    assert load_run(refit).calibration == borrowed
    assert load_metrics(refit)["calibration"]["temperature"] == fitted.temperature


@pytest.mark.slow
def test_calibrate_tool_on_a_cv_folder(tiny_runs, logmel_cache, classic_cache, tmp_path, capsys):
    calibrate, report = load_tool("calibrate.py"), load_tool("report.py")
    cv = tmp_path / "cv"
    shutil.copytree(tiny_runs / "cnn", cv / "fold1")
    shutil.copytree(tiny_runs / "refit", cv / "fold2")
    mlp = shutil.copytree(tiny_runs / "mlp", tmp_path / "mlp")
    summary_path = tmp_path / "calibration.json"
    caches = ["--cache", str(logmel_cache), "--cache", str(classic_cache)]
    assert calibrate.main([str(cv), str(mlp), *caches, "--summary", str(summary_path)]) == 0
    out = capsys.readouterr().out
    assert f"{cv} 1: T " in out and f"{cv} mean of 2" in out and f"{mlp} mlp: T" in out
    summary = json.loads(summary_path.read_text())
    assert list(summary["runs"]) == [str(cv), str(mlp)]
    folds = summary["runs"][str(cv)]["folds"]
    assert folds["1"]["temperature"] == load_run(cv / "fold1").temperature
    assert folds["2"]["temperature"] == 1.0 and folds["2"]["validation"] is None
    pooled = summary["runs"][str(cv)]["pooled"]["test"]
    assert pooled["before"]["n"] == 32
    assert pooled["before"]["accuracy"] == pooled["after"]["accuracy"]
    assert summary_path.with_suffix(".png").stat().st_size > 10_000
    assert "| all 32 test clips |" in report.calibration_table(summary)

    # --pool: fold 1's T from the validation clips of every validated fold (here: itself)
    assert calibrate.main([str(cv / "fold1"), *caches, "--pool"]) == 0
    assert load_run(cv / "fold1").calibration.fitted_on.startswith("pooled over fold1:")
    # a cache of other settings is named, not used
    assert calibrate.main([str(mlp), "--cache", str(logmel_cache)]) == 2
    assert "none of the caches" in capsys.readouterr().err
