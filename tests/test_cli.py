"""The ser-cnn command and scripts/*.py: subcommands, what train refuses before any work, and
the run names a config file gives. Training itself is tested in test_train.py."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ser_cnn import cli
from ser_cnn.cli import train as train_cli
from ser_cnn.config import STUDIO, TrainConfig
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
        # your own data: options that need it, or that are for the RAVDESS cache only
        ["--folds", "3"],
        ["--strict"],
        ["--data", "x.csv", "--folds", "1"],
        ["--model", "mlp", "--from", "checkpoints/ravdess_fold1"],
        ["--model", "mlp", "--data", "x.csv", "--split", "random"],
        ["--model", "mlp", "--data", "x.csv", "--emotions", "calm,happy"],
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
    assert "`ser-cnn preprocess" in err and "Traceback" not in err


def test_runs_and_result_files_are_named_after_the_config_file(tmp_path):
    recipe = tmp_path / "x" / "speaker_refit.toml"
    recipe.parent.mkdir()
    recipe.write_text("refit = true\nspeaker_norm = true\ndegraded_copies = 0\nseed = 1\n")
    args = train_cli.parse_args(["--cv", "--config", str(recipe), "--seed", "4"])
    assert args.name == "cnn_speaker_refit"
    assert args.summary == "results/cv_cnn_speaker_refit.json"
    config = train_cli.training_config(args)
    assert (config.refit, config.speaker_norm, config.seed) == (True, True, 4)  # --seed wins
    plain = train_cli.parse_args(["--model", "mlp", "--cv"])
    assert (plain.name, plain.summary) == ("mlp", "results/cv_mlp.json")
    assert train_cli.training_config(plain) == TrainConfig()


def test_no_config_trains_the_shipped_recipe_and_studio_keeps_its_published_names():
    default = train_cli.parse_args(["--cv"])
    shipped = train_cli.parse_args(["--cv", "--config", str(REPO / "configs/robust_dropout.toml")])
    assert train_cli.training_config(default) == train_cli.training_config(shipped)
    assert default.name == shipped.name == "cnn_robust_dropout"
    assert default.summary == shipped.summary == "results/cv_cnn_robust_dropout.json"
    studio = train_cli.parse_args(["--cv", "--config", str(REPO / "configs/studio.toml")])
    assert train_cli.training_config(studio) == STUDIO
    # the names its published results have: checkpoints/cv_cnn_seed0, results/cv_cnn.json
    assert (studio.name, studio.summary) == ("cnn", "results/cv_cnn.json")


def test_data_and_fine_tuning_name_their_runs_and_result_files():
    args = train_cli.parse_args(["--data", "x/mine.csv", "--data", "urdu", "--cv"])
    assert args.label == "cnn_robust_dropout_mine+urdu" and args.cache is None
    assert args.summary == "results/cv_cnn_robust_dropout_mine+urdu.json"
    tuned = train_cli.parse_args(["--data", "x/mine.csv", "--from", "checkpoints/ravdess_fold1"])
    assert tuned.label == "cnn_robust_dropout_mine_finetuned"
    plain = train_cli.parse_args(["--fold", "2"])  # RAVDESS's cache: named as always
    assert plain.label == plain.name == "cnn_robust_dropout" and plain.cache == "data/processed"


def _table(folder: Path, rows: list[tuple[str, str]]) -> Path:
    """A table of (emotion, speaker) rows, each with a short synthetic clip."""
    import soundfile as sf

    from tests.conftest import voice

    folder.mkdir()
    lines = ["path,emotion,speaker"]
    for i, (emotion, speaker) in enumerate(rows):
        sf.write(folder / f"{i}.wav", voice(seconds=0.3, pad=0.05, seed=i), 16_000)
        lines.append(f"{i}.wav,{emotion},{speaker}")
    (folder / "mine.csv").write_text("\n".join(lines) + "\n")
    return folder / "mine.csv"


@pytest.mark.parametrize(
    ("rows", "argv", "message"),
    [
        ([("sad", "ann"), ("angry", "ann")] * 3, [], "are of one speaker"),
        (
            [("sad", s) for s in "abcd"] + [("angry", "a"), ("angry", "b")],
            ["--folds", "3"],
            "'angry' has 2 clip\\(s\\): 3 folds need at least 3",
        ),
        ([("sad", s) for s in "abc"] + [("angry", s) for s in "abc"], [], "--folds 3"),
        ([("sad", s) for s in "abc"] * 2, ["--fold", "4", "--folds", "3"], "--fold must be 1..3"),
        ([("sad", s) for s in "abc"] * 2, ["--test-actors", "1,2"], "name RAVDESS actors"),
    ],
)
def test_data_that_cannot_be_split_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys, rows, argv, message
):
    table = _table(tmp_path / "mine", rows)
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(["--data", str(table), *argv]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no cache, no run


# -- the options that messages, help and documents name ---------------------------------------

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# `ser-cnn COMMAND ...` up to the end of the inline code, the line or a shell comment
COMMAND_LINE = re.compile(r"ser-cnn (?!commands?\b|COMMAND\b)(\w+)([^`\n#]*)")


def command_options() -> dict[str, set[str]]:
    """Every ``ser-cnn`` command's options, read from its argparse parser's help."""
    options = {}
    for name in cli.COMMANDS:
        module = importlib.import_module(f"ser_cnn.cli.{name}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            module.main(["--help"], prog=f"ser-cnn {name}")
        # the invocations of the options list ("  -k K, --top-k K"), not the help beside them
        invocations = re.findall(r"^  (-\S.*?)(?: {2,}|$)", out.getvalue(), flags=re.MULTILINE)
        options[name] = {o for line in invocations for o in OPTION.findall(line)}
    return options


def string_constants(path: Path) -> list[str]:
    """The string literals of a Python file (docstrings, messages, help; f-strings' text)."""
    tree = ast.parse(path.read_text())
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def misnamed(text: str, options: dict[str, set[str]], own: str | None) -> list[str]:
    """The ``ser-cnn`` commands and options ``text`` names that do not exist: options after
    ``ser-cnn COMMAND`` belong to that command, any others to ``own`` (when given)."""
    wrong, claimed = [], []
    for m in COMMAND_LINE.finditer(text):
        command = m.group(1)
        claimed.append(m.span(2))
        if command not in options:
            wrong.append(f"ser-cnn {command}")
            continue
        wrong += [f"ser-cnn {command} {o}" for o in OPTION.findall(m.group(2))]
        wrong = [w for w in wrong if w.rsplit(" ", 1)[-1] not in options[command]]
    if own is not None:
        for m in OPTION.finditer(text):
            inside = any(a <= m.start() < b for a, b in claimed)
            if not inside and m.group() not in options[own] | {"--help"}:
                wrong.append(f"ser-cnn {own} {m.group()}")
    return wrong


def test_messages_and_help_of_the_cli_name_options_that_exist():
    """Every --option in the strings of ser_cnn/cli/COMMAND.py is one of COMMAND's (or of the
    command named before it); retired flags such as --speaker-norm are settings of a --config
    file now, and a message must say so."""
    options = command_options()
    assert "--speaker" in options["infer"] and "--config" in options["train"]
    wrong = {}
    for name in cli.COMMANDS:
        path = REPO / "ser_cnn" / "cli" / f"{name}.py"
        for text in string_constants(path):
            wrong |= {w: path.name for w in misnamed(text, options, name)}
    assert not wrong, wrong


def test_ser_cnn_commands_named_anywhere_exist():
    """`ser-cnn COMMAND --option` in the package's strings and in the documents names a command
    and options that exist."""
    options = command_options()
    wrong = {}
    for path in sorted((REPO / "ser_cnn").rglob("*.py")):
        for text in string_constants(path):
            wrong |= {w: str(path.relative_to(REPO)) for w in misnamed(text, options, None)}
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        wrong |= {w: path.name for w in misnamed(path.read_text(), options, None)}
    assert not wrong, wrong
