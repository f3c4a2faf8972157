"""The ser-cnn command and scripts/*.py: subcommands, what train refuses before any work, and
the run names a config file gives. Training itself is tested in test_train.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ser_cnn import cli
from ser_cnn.cli import train as train_cli
from ser_cnn.config import TrainConfig
from tests.conftest import REPO


def test_ser_cnn_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("preprocess", "train", "infer"):
        assert command in out


@pytest.mark.parametrize("argv", [[], ["fit"]])
def test_ser_cnn_without_a_known_subcommand_is_a_usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_the_console_command_is_installed():
    command = Path(sys.executable).parent / "ser-cnn"  # what pip installed beside python
    if not command.exists():
        pytest.skip("ser_cnn is not installed with its console script here")
    result = subprocess.run(
        [str(command), "train", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ser-cnn train") and "--config" in result.stdout


@pytest.mark.parametrize("script", ["preprocess", "train", "infer"])
def test_the_scripts_still_work(script):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: {script}.py" in result.stdout


def test_a_bad_config_file_fails_before_tensorflow_loads(tmp_path):
    (tmp_path / "bad.toml").write_text("refit = true\nlearning_rat = 0.01\n")
    code = (
        "import sys\n"
        "from ser_cnn.cli import main\n"
        f"status = main(['train', '--config', {str(tmp_path / 'bad.toml')!r}])\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout.split() == ["False", "False"]
    assert result.stderr.startswith("error: unknown training settings ['learning_rat']")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "mlp", "--split", "random", "--fold", "2"],
        ["--model", "mlp", "--split", "random", "--cv"],
        ["--model", "mlp", "--split", "random", "--test-actors", "1,2"],
        ["--split", "random"],
        ["--emotions", "calm,happy"],
        ["--model", "mlp", "--emotions", "calm,joy"],
        ["--model", "mlp", "--cv", "--emotions", "calm,happy"],
        ["--fold", "1", "--test-actors", "1,2"],
        ["--cv", "--val-actors", "3,4"],
        ["--test-actors", "1,x"],
        ["--epochs", "0"],
        ["--model", "mlp", "--config", "refit.toml"],
        # the flags of before the config files: now settings in a --config file
        ["--refit"],
        ["--speaker-norm"],
        ["--precision", "float32"],
        ["--lr", "0.01"],
        ["--no-class-weights"],
    ],
)
def test_contradictory_or_retired_options_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(argv, prog="ser-cnn train")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ser-cnn train") and "error:" in err


def test_missing_cache_names_the_command(tmp_path, capsys):
    assert train_cli.main(["--cache", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "scripts/preprocess.py" in err and "Traceback" not in err


def test_runs_and_result_files_are_named_after_the_config_file(tmp_path):
    recipe = tmp_path / "x" / "speaker_refit.toml"
    recipe.parent.mkdir()
    recipe.write_text("refit = true\nspeaker_norm = true\nseed = 1\n")
    args = train_cli.parse_args(["--cv", "--config", str(recipe), "--seed", "4"])
    assert args.name == "cnn_speaker_refit"
    assert args.summary == "results/cv_cnn_speaker_refit.json"
    config = train_cli.training_config(args)
    assert (config.refit, config.speaker_norm, config.seed) == (True, True, 4)  # --seed wins
    plain = train_cli.parse_args(["--model", "mlp", "--cv"])
    assert (plain.name, plain.summary) == ("mlp", "results/cv_mlp.json")
    assert train_cli.training_config(plain) == TrainConfig()
