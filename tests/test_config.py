"""Training settings: config files, what they refuse, round trips, and their description."""

from __future__ import annotations

import json
import tomllib

import pytest

from ser_cnn.config import (
    DEFAULT_RUN_NAME,
    PLAIN,
    STUDIO,
    TrainConfig,
    changes,
    describe,
    load_config,
    recipe_name,
)
from ser_cnn.errors import ParameterError
from ser_cnn.model import CNNConfig
from tests.conftest import REPO

CONFIGS = REPO / "configs"
RESULTS = REPO / "results"


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
    path = write(tmp_path / "c.toml", "seed = 3\nepochs = 40\nrefit = true\n")
    config = load_config(path, seed=5, epochs=2)
    assert (config.seed, config.epochs, config.refit) == (5, 2, True)


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
    assert describe(STUDIO.to_dict()) == "weight averaging (EMA 0.99)"
    assert describe(TrainConfig().to_dict()) == (
        "2 degraded copies per clip, utterance normalisation, weight averaging (EMA 0.99), "
        "dropout 0.1"
    )
    # seed, epochs and precision are not recipe choices
    assert describe(PLAIN.replace(seed=3, epochs=7, precision="float32").to_dict()) == (
        "no augmentation"
    )
    # the flat records of older result files read the same as nested ones
    flat = {k: v for k, v in PLAIN.to_dict().items() if k != "architecture"}
    assert describe(flat | {"utterance_norm": True}) == "utterance normalisation"
    nested = PLAIN.replace(architecture={"utterance_norm": True}).to_dict()
    assert describe(nested) == "utterance normalisation"  # the other architecture keys kept
    noisier = PLAIN.replace(degradation_p={"noise": 0.6}, snr_range=[5, 30]).to_dict()
    assert describe(noisier) == "noise in 60% of copies, noise at 5-30 dB SNR"
    assert TrainConfig.from_dict(noisier).snr_range == (5, 30)  # saved as a list, read back


def test_the_default_architecture_is_the_trained_recipe():
    from ser_cnn.model import build_cnn

    model = build_cnn((64, 301), 8, CNNConfig())
    assert model.count_params() == 373_544  # checkpoints/ravdess_fold1/cnn: "parameters"
    assert TrainConfig().architecture == CNNConfig()


def _recipe(training: dict) -> TrainConfig:
    """A saved record as a recipe: seed, epochs and precision are not recipe choices."""
    return TrainConfig.from_record(training).replace(seed=0, epochs=50, precision="auto")


def test_the_defaults_are_the_shipped_recipe():
    shipped = json.loads((REPO / "checkpoints/ravdess_fold1/cnn/config.json").read_text())
    assert _recipe(shipped["training"]) == TrainConfig()
    assert load_config(CONFIGS / "robust_dropout.toml") == TrainConfig()
    # the studio recipe, the defaults before, is a file of its own and a constant
    assert load_config(CONFIGS / "studio.toml") == STUDIO
    assert (STUDIO.degraded_copies, STUDIO.architecture) == (
        0,
        CNNConfig(dropout=0.3, utterance_norm=False),
    )
    assert STUDIO.replace(ema=0.0) == PLAIN


CNN_RECIPES = sorted(p for p in CONFIGS.glob("*.toml") if not p.name.startswith("encoder"))
ENCODER_RECIPES = sorted(CONFIGS.glob("encoder*.toml"))  # HeadTraining files, not TrainConfig


@pytest.mark.parametrize("path", CNN_RECIPES, ids=lambda p: p.name)
def test_every_recipe_file_trains_what_its_published_results_were_trained_with(path):
    """A recipe's result file is results/cv_<recipe_name>.json; the file must still give the
    settings it records (configs/studio.toml: results/cv_cnn.json), whatever the defaults."""
    name = recipe_name(path)
    result = RESULTS / f"cv_{name}.json"
    if not result.exists():
        pytest.skip(f"{path.name} has no published six-fold result ({result.name})")
    assert _recipe(json.loads(result.read_text())["training"]) == load_config(path)


@pytest.mark.parametrize("path", ENCODER_RECIPES, ids=lambda p: p.name)
def test_every_encoder_recipe_gives_the_settings_its_six_fold_result_records(path):
    """configs/encoder*.toml are the head's settings (tools/encoder_cv.py writes
    results/cv_encoder_<stem>.json with them, or only loco_encoder_<stem>.json for a front end
    that changes no RAVDESS clip); each file must still read as recorded."""
    from ser_cnn.encoder.fit import HeadTraining

    found = [
        f for kind in ("cv", "loco") if (f := RESULTS / f"{kind}_encoder_{path.stem}.json").exists()
    ]
    if not found:
        pytest.skip(f"{path.name} has no published result (cv_ or loco_encoder_{path.stem}.json)")
    recorded = json.loads(found[0].read_text())["training"]
    if recorded.get("denoise"):  # recorded before steady_db existed
        recorded["denoise"] = {"steady_db": None} | recorded["denoise"]
    if recorded.get("dereverb"):  # recorded before shift existed: every 8 ms
        recorded["dereverb"] = {"shift": 0.008} | recorded["dereverb"]
    settings = HeadTraining.from_dict(tomllib.loads(path.read_text()))
    # results written before a setting existed: they selected epochs and fitted by gradient
    before = {
        "select": True,
        "fit": "gradient",
        "logistic_c": 0.01,
        "corpus_share": {},
        "nuisance": "",
        "noisy_copies": 0,
        "gate_against": "recorded",
        "home_corpus": "",
        "wide_temperature": 1.0,
        "denoise": None,
        "dereverb": None,
    }
    head = {"speaker_norm": False, "noise_gate": False, "home_gate": False} | recorded[
        "head"
    ]  # heads recorded before it existed
    assert settings.to_dict() == before | recorded | {"seed": settings.seed, "head": head}


def test_recipes_are_named_after_their_file_or_run_name(tmp_path):
    assert recipe_name(CONFIGS / "refit.toml") == "cnn_refit"
    assert recipe_name(CONFIGS / "studio.toml") == "cnn"  # its published names
    # no file: the defaults, named like the file they equal
    assert recipe_name(None) == DEFAULT_RUN_NAME == recipe_name(CONFIGS / "robust_dropout.toml")
    assert recipe_name(None, "mlp") == "mlp"
    bad = write(tmp_path / "bad.toml", 'run_name = "../cnn"\nrefit = true\n')
    for read in (recipe_name, load_config):
        with pytest.raises(ParameterError, match="run_name must be a plain file name"):
            read(bad)


def test_a_saved_record_reads_as_trained_not_as_todays_defaults():
    # a record written before degraded copies, utterance normalisation and EMA existed (flat,
    # as format-1 runs and the first result files): it trained without them
    old = {"epochs": 50, "seed": 1, "filters": [32, 64, 128, 128], "dropout": 0.3}
    config = TrainConfig.from_record(old)
    assert config == PLAIN.replace(seed=1, precision="float32")
    assert config.degraded_copies == 0 and config.ema == 0.0
    assert config.architecture.utterance_norm is False
    # a complete record reads back exactly, either way
    for recipe in (STUDIO, TrainConfig(), TrainConfig(seed=4, degraded_copies=4)):
        assert TrainConfig.from_record(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert TrainConfig.from_dict({"seed": 1}).degraded_copies == 2  # from_dict: the defaults


def test_speaker_norm_needs_degraded_copies_off():
    with pytest.raises(ParameterError, match="set degraded_copies = 0"):
        TrainConfig(speaker_norm=True)
    assert STUDIO.replace(speaker_norm=True).speaker_norm is True
