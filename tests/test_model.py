"""The CNN builder, one training step, and the SavedModel round trip in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from ser_cnn.errors import ParameterError
from ser_cnn.model import INPUT_NAME, OUTPUT_NAME, CNNConfig, build_cnn, utterance_normalize

SHAPE = (64, 101)


def test_builder_shapes_and_names():
    model = build_cnn(SHAPE, 8)
    assert model.input.name == INPUT_NAME or model.inputs[0].name == INPUT_NAME
    assert tuple(model.input.shape) == (None, *SHAPE)
    assert tuple(model.output.shape) == (None, 8)
    assert model.layers[-1].name == OUTPUT_NAME
    probs = model.predict(np.random.default_rng(0).normal(size=(3, *SHAPE)), verbose=0)
    assert probs.shape == (3, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not model.compiled  # uncompiled: the caller chooses how to train


def test_builder_is_pure(tmp_path, monkeypatch):
    """The same seed gives the same weights, and building touches nothing outside the model:
    not Keras' global dtype policy (bfloat16 is set per layer), not the file system."""
    monkeypatch.chdir(tmp_path)
    policy = keras.mixed_precision.global_policy().name
    built = []
    for _ in range(2):
        keras.utils.set_random_seed(11)
        built.append(build_cnn(SHAPE, 4, compute_dtype="bfloat16"))
    assert keras.mixed_precision.global_policy().name == policy
    assert not list(tmp_path.iterdir())
    a, b = (m.get_weights() for m in built)
    assert len(a) == len(b) > 0
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    keras.utils.set_random_seed(12)
    other = build_cnn(SHAPE, 4, compute_dtype="bfloat16").get_layer("conv0_0").get_weights()[0]
    assert not np.array_equal(other, built[0].get_layer("conv0_0").get_weights()[0])


def test_a_stored_architecture_rebuilds_the_same_network():
    config = CNNConfig(
        filters=(8, 16, 16), convs_per_block=2, time_pool=3, dense=24, utterance_norm=True
    )
    stored = json.loads(json.dumps(config.to_dict()))  # as a run's config.json holds it
    assert CNNConfig.from_dict(stored) == config
    a, b = build_cnn(SHAPE, 5, config), build_cnn(SHAPE, 5, CNNConfig.from_dict(stored))

    def layout(model):
        return [(layer.name, tuple(w.shape for w in layer.weights)) for layer in model.layers]

    assert layout(a) == layout(b)
    assert a.count_params() == b.count_params()
    names = {layer.name for layer in a.layers}
    assert {"utterance_norm", "conv2_1", "time_pool"} <= names and "conv3_0" not in names
    assert a.get_layer("hidden").units == 24


def test_band_statistics_are_applied_inside_the_model():
    rng = np.random.default_rng(1)
    x = rng.normal(loc=-40, scale=7, size=(4, *SHAPE)).astype(np.float32)
    mean, std = np.full(SHAPE[0], -40.0), np.full(SHAPE[0], 7.0)
    # the band normalisation alone: without the utterance normalisation before it (the default)
    plain = CNNConfig(utterance_norm=False)
    model = build_cnn(SHAPE, 8, plain, band_mean=mean, band_std=std)
    normalised = keras.Model(model.input, model.get_layer("band_norm").output)(x)
    np.testing.assert_allclose(np.asarray(normalised), (x + 40) / 7, atol=1e-4)


def test_utterance_norm_matches_its_numpy_twin():
    rng = np.random.default_rng(2)
    x = rng.normal(loc=-50, scale=9, size=(3, *SHAPE)).astype(np.float32)
    model = build_cnn(SHAPE, 8, CNNConfig(utterance_norm=True))
    layer = keras.Model(model.input, model.get_layer("utterance_norm").output)
    np.testing.assert_allclose(np.asarray(layer(x)), utterance_normalize(x), atol=1e-4)
    # a clip's overall gain (a dB offset) no longer matters
    np.testing.assert_allclose(np.asarray(layer(x + 12.0)), np.asarray(layer(x)), atol=1e-4)


def test_bfloat16_body_shares_weights_with_float32():
    rng = np.random.default_rng(4)
    x = rng.normal(loc=-40, scale=7, size=(4, *SHAPE)).astype(np.float32)
    stats = {"band_mean": np.full(SHAPE[0], -40.0), "band_std": np.full(SHAPE[0], 7.0)}
    mixed = build_cnn(SHAPE, 8, compute_dtype="bfloat16", **stats)
    exact = build_cnn(SHAPE, 8, **stats)
    assert mixed.get_layer("conv1_0").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)  # mixed precision: float32 weights
    assert mixed.output.dtype == "float32"
    exact.set_weights(mixed.get_weights())
    # the same function up to bfloat16 rounding (8-bit mantissa)
    np.testing.assert_allclose(exact.predict(x, verbose=0), mixed.predict(x, verbose=0), atol=0.05)
    with pytest.raises(ParameterError, match="compute_dtype"):
        build_cnn(SHAPE, 8, compute_dtype="float16")


def test_bad_band_statistics_shape():
    with pytest.raises(ParameterError, match="band statistics"):
        build_cnn(SHAPE, 8, band_mean=np.zeros(3))


@pytest.mark.parametrize(
    "changes",
    [{"filters": ()}, {"filters": (8, 0)}, {"dense": 0}, {"dropout": 1.0}, {"time_pool": 0}],
)
def test_bad_architectures_are_refused(changes):
    with pytest.raises(ParameterError):
        CNNConfig(**changes)


def test_one_training_step_lowers_the_loss():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *SHAPE)).astype(np.float32)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 16)]
    model = build_cnn(SHAPE, 8, CNNConfig(dropout=0.0))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")

    def loss():  # in training mode: batch statistics, as the step itself sees the batch
        return float(np.mean(keras.losses.categorical_crossentropy(y, model(x, training=True))))

    before = loss()
    model.train_on_batch(x, y)
    assert loss() < before


def test_saved_model_round_trip_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(3)
    model = build_cnn(
        SHAPE,
        8,
        CNNConfig(utterance_norm=True),
        band_mean=rng.normal(size=64),
        band_std=np.full(64, 2.0),
    )
    x = rng.normal(loc=-30, scale=10, size=(5, *SHAPE)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.export(str(tmp_path / "saved_model"), format="tf_saved_model", verbose=False)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(tmp_path / 'saved_model')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "print(json.dumps(m.serve(tf.constant(x)).numpy().tolist()))\n"
        "print('keras' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, expected, atol=1e-5)
