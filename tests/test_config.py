"""Training settings: config files, what they refuse, round trips, and their description."""

from __future__ import annotations

import json

import pytest

from ser_cnn.config import PLAIN, TrainConfig, changes, describe, load_config
from ser_cnn.errors import ParameterError
from ser_cnn.model import CNNConfig


def write(path, text: str):
    path.write_text(text)
    return path


def test_toml_and_json_files_give_the_same_config(tmp_path):
    toml = write(
        tmp_path / "speed.toml",
        'speed = 0.1\nrefit = true\nprecision = "float32"\n'
        "[architecture]\nutterance_norm = true\nfilters = [16, 32]\n",
    )
    from_json = {
        "speed": 0.1,
        "refit": True,
        "precision": "float32",
        "architecture": {"utterance_norm": True, "filters": [16, 32]},
    }
    config = load_config(toml)
    assert config == load_config(write(tmp_path / "speed.json", json.dumps(from_json)))
    assert config.speed == 0.1 and config.refit is True and config.precision == "float32"
    assert config.architecture == CNNConfig(utterance_norm=True, filters=(16, 32))
    assert config.epochs == TrainConfig().epochs  # what the file leaves out keeps its default


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path / "c.toml", "seed = 3\nepochs = 40\nspeaker_norm = true\n")
    config = load_config(path, seed=5, epochs=2)
    assert (config.seed, config.epochs, config.speaker_norm) == (5, 2, True)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("refti = true\n", "refti"),  # a typo must not silently train the default
        ("[architecture]\nfilter = [8]\n", "filter"),
    ],
)
def test_unknown_keys_are_refused_by_name(tmp_path, text, named):
    with pytest.raises(ParameterError, match=rf"unknown .*'{named}'"):
        load_config(write(tmp_path / "c.toml", text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('precision = "float16"\n', "precision must be one of"),
        ("epochs = 0\n", "at least 1"),
        ("ema = 1.0\n", "ema must be in"),
        ("speed = 1.5\n", "speed must be in"),
        ("[architecture]\ndropout = 1.0\n", "dropout"),
        ("refit = \n", "not valid TOML"),
        pytest.param(
            '[architecture]\nfilters = ["a"]\n',
            "filters",
        ),
        pytest.param(
            "architecture = 3\n",
            "architecture",
        ),
        ('degradations = "noise"\n', "must be a list of kinds"),
        ('degradations = ["noise", "thunder"]\n', r"unknown degradations \['thunder'\]"),
        ("[degradation_p]\nthunder = 0.5\n", "degradation_p must map kinds"),
        ("[degradation_p]\nnoise = 1.5\n", "degradation_p must map kinds"),
        ("snr_range = [30, 5]\n", "snr_range must be"),
    ],
)
def test_bad_values_are_refused(tmp_path, text, message):
    with pytest.raises(ParameterError, match=message):
        load_config(write(tmp_path / "c.toml", text))


def test_bad_json_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="not valid JSON"):
        load_config(write(tmp_path / "c.json", "{refit: true}"))
    with pytest.raises(ParameterError, match="must hold a table"):
        load_config(write(tmp_path / "list.json", "[1, 2]"))
    with pytest.raises(ParameterError, match="cannot read the config file"):
        load_config(tmp_path / "none.toml")


def test_to_dict_from_dict_round_trip():
    config = TrainConfig(
        seed=4,
        refit=True,
        speaker_norm=True,
        degraded_copies=2,
        degradations=["noise", "reverb"],
        architecture=CNNConfig(filters=(16, 32), dropout=0.1),
    )
    stored = json.loads(json.dumps(config.to_dict()))  # as a run's config.json holds it
    assert stored["architecture"]["filters"] == [16, 32]
    assert TrainConfig.from_dict(stored) == config
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_replace_validates_like_from_dict():
    config = TrainConfig().replace(precision="float32", seed=9)
    assert (config.precision, config.seed) == ("float32", 9)
    with pytest.raises(ParameterError, match="unknown training settings"):
        TrainConfig().replace(utterance_norm=True)  # an architecture setting, not a training one
    with pytest.raises(ParameterError, match="precision"):
        TrainConfig(precision="float16")


def test_describe_names_the_recipe():
    assert describe(PLAIN.to_dict()) == "no augmentation"
    assert changes(PLAIN.to_dict()) == {}
    both = describe(PLAIN.replace(refit=True, speaker_norm=True).to_dict())
    assert "refit" in both and "speaker-normalised" in both
    assert describe(TrainConfig().to_dict()) == "weight averaging (EMA 0.99)"
    # seed, epochs and precision are not recipe choices
    assert describe(PLAIN.replace(seed=3, epochs=7, precision="float32").to_dict()) == (
        "no augmentation"
    )
    # the flat records of older result files read the same as nested ones
    flat = {k: v for k, v in PLAIN.to_dict().items() if k != "architecture"}
    assert describe(flat | {"utterance_norm": True}) == "utterance normalisation"
    nested = PLAIN.replace(architecture={"utterance_norm": True}).to_dict()
    assert describe(nested) == "utterance normalisation"
    noisier = PLAIN.replace(degradation_p={"noise": 0.6}, snr_range=[5, 30]).to_dict()
    assert describe(noisier) == "noise in 60% of copies, noise at 5-30 dB SNR"
    assert TrainConfig.from_dict(noisier).snr_range == (5, 30)  # saved as a list, read back


def test_the_default_architecture_is_the_trained_recipe():
    from ser_cnn.model import build_cnn

    model = build_cnn((64, 301), 8, CNNConfig())
    assert model.count_params() == 373_544  # checkpoints/ravdess_fold1/cnn: "parameters"
    assert TrainConfig().architecture == CNNConfig()
