"""`ser-cnn evaluate`: the shipped model scored on the bundled example clips given as a table,
checked against what `ser-cnn infer --format csv` answers for the same files; labels the run
lacks, restricted scoring, bad input and the output folder; (marked ``dataset``) a URDU subset."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from ser_cnn.cli import evaluate as evaluate_cli
from ser_cnn.cli import infer as infer_cli
from ser_cnn.ravdess import EMOTIONS, parse_name
from ser_cnn.training.evaluation import MERGED, evaluate_run
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))  # five RAVDESS clips, five emotions
SCORES = ("accuracy", "uar", "macro_f1")


def write_table(path: Path, rows: list[dict], *, columns=("path", "emotion")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    """The example clips copied beside the tables, so the tables can name them relatively."""
    folder = tmp_path / "clips"
    folder.mkdir()
    return [Path(shutil.copy(p, folder)) for p in EXAMPLES]


@pytest.fixture
def table(tmp_path, clips) -> Path:
    """The five examples with the emotions their names say, paths relative to the table."""
    rows = [{"path": f"clips/{p.name}", "emotion": parse_name(p).emotion} for p in clips]
    return write_table(tmp_path / "examples.csv", rows)


def run(module, argv: list[str], capsys) -> tuple[int, str, str]:
    status = module.main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def infer_csv(paths: list[Path], capsys, *extra) -> dict[str, dict]:
    """`ser-cnn infer --format csv` for ``paths``: its rows, by file name."""
    status, out, err = run(infer_cli, ["--format", "csv", "--quiet", *extra, *paths], capsys)
    assert status == 0, err
    return {Path(r["file"]).name: r for r in csv.DictReader(io.StringIO(out))}


def read_predictions(out: Path) -> dict[str, dict]:
    with (out / "predictions.csv").open(encoding="utf-8") as f:
        return {Path(r["file"]).name: r for r in csv.DictReader(f)}


def expected_scores(truth: list[str], answers: list[str]) -> dict[str, float]:
    """Accuracy, UAR and macro-F1 (over the emotions the data has) of plain answers."""
    present = sorted(set(truth))
    return {
        "accuracy": float(np.mean([t == a for t, a in zip(truth, answers, strict=True)])),
        "uar": float(recall_score(truth, answers, labels=present, average="macro")),
        "macro_f1": float(
            f1_score(truth, answers, labels=present, average="macro", zero_division=0)
        ),
    }


def test_scores_are_those_of_infers_answers(tmp_path, clips, table, capsys):
    out = tmp_path / "eval"
    status, stdout, err = run(evaluate_cli, ["--data", table, "--out", out, "--quiet"], capsys)
    assert status == 0, err
    assert (out / "confusion.png").stat().st_size > 0 and (out / "confusion_mlp.png").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "uar", "macro_f1", "per_class", "n", "labels", "confusion_matrix"} <= set(
        metrics
    )
    # every model of the shipped run, as infer answers: the encoder first
    assert metrics["model"] == "encoder" and list(metrics["models"]) == ["encoder", "cnn", "mlp"]
    assert metrics["clips"] == {"given": 5, "scored": 5, "left_out": 0}
    assert metrics["restricted"] is None and metrics["labels"] == list(EMOTIONS)

    answers = infer_csv(clips, capsys)
    predictions = read_predictions(out)
    truth = [parse_name(p).emotion for p in clips]
    for model in ("encoder", "cnn", "mlp"):
        said = [answers[p.name][f"{model}_emotion"] for p in clips]
        assert [predictions[p.name][f"{model}_emotion"] for p in clips] == said
        for p in clips:
            assert float(predictions[p.name][f"{model}_probability"]) == pytest.approx(
                float(answers[p.name][f"{model}_probability"]), abs=2e-6
            )
        scores = metrics["models"][model]
        for key, value in expected_scores(truth, said).items():
            assert scores[key] == pytest.approx(value, abs=1e-12), (model, key)
        assert scores["n"] == 5
        for emotion in set(truth):
            right = sum(t == a == emotion for t, a in zip(truth, said, strict=True))
            assert scores["per_class"][emotion]["recall"] == right / truth.count(emotion)
        matrix = np.array(scores["confusion_matrix"])
        assert matrix.sum() == 5 and np.trace(matrix) == sum(
            t == a for t, a in zip(truth, said, strict=True)
        )
    for key in SCORES:  # the headline: the first model's
        assert metrics[key] == metrics["models"]["encoder"][key]
    assert "CNN: accuracy" in stdout and "MLP: accuracy" in stdout and "confusion" in stdout
    assert "ENCODER: accuracy" in stdout


def test_a_label_the_run_lacks_is_reported_not_dropped(tmp_path, clips, capsys):
    rows = [{"path": str(p), "emotion": parse_name(p).emotion} for p in clips]
    rows[4]["emotion"] = "frustrated"
    data = write_table(tmp_path / "moods.csv", rows)
    out = tmp_path / "eval"
    status, stdout, err = run(
        evaluate_cli, ["--data", data, "--out", out, "--model", "cnn", "--quiet"], capsys
    )
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["left_out"]["not_in_run"] == {"frustrated": 1}
    assert metrics["clips"] == {"given": 5, "scored": 4, "left_out": 1}
    assert metrics["n"] == 4 and list(metrics["models"]) == ["cnn"]
    assert "'frustrated' 1" in stdout and "not an emotion of the run" in stdout
    # --strict refuses it, and writes nothing
    status, _, err = run(
        evaluate_cli, ["--data", data, "--out", tmp_path / "strict", "--strict"], capsys
    )
    assert status == 2 and "frustrated" in err and not (tmp_path / "strict").exists()


def test_restricted_scoring_on_four_emotions(tmp_path, clips, capsys):
    # URDU's four emotions; the calm clip is labelled calm and must be scored as neutral
    rows = [{"path": str(p), "emotion": parse_name(p).emotion} for p in clips]
    assert {r["emotion"] for r in rows} == {"neutral", "calm", "happy", "sad", "angry"}
    data = write_table(tmp_path / "four.csv", rows)
    out = tmp_path / "eval"
    status, stdout, err = run(
        evaluate_cli, ["--data", data, "--out", out, "--restricted", "--quiet"], capsys
    )
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    classes = ["neutral", "happy", "sad", "angry"]
    assert metrics["labels"] == classes and metrics["restricted"]["classes"] == classes
    assert metrics["restricted"]["merged"] == MERGED
    assert "calm counted as neutral" in metrics["restricted"]["description"]
    assert "restricted scoring:" in stdout and "renormalised" in stdout

    answers = infer_csv(clips, capsys)
    truth = [MERGED.get(r["emotion"], r["emotion"]) for r in rows]
    for model in ("cnn", "mlp"):
        restricted = []
        for p in clips:  # infer's probabilities, calm added to neutral, the four renormalised
            prob = {e: float(answers[p.name][f"{model}_p_{e}"]) for e in EMOTIONS}
            prob["neutral"] += prob["calm"]
            kept = np.array([prob[c] for c in classes])
            restricted.append(classes[int(np.argmax(kept / kept.sum()))])
        predictions = read_predictions(out)
        assert [predictions[p.name][f"{model}_restricted"] for p in clips] == restricted
        for key, value in expected_scores(truth, restricted).items():
            assert metrics["models"][model][key] == pytest.approx(value, abs=1e-12)


BAD_TABLES = {
    "unknown column": ("path,emotion,mood\nclips/{0},angry,loud\n", "unknown 'mood'"),
    "duplicate path": (
        "path,emotion\nclips/{0},angry\n./clips/{0},angry\n",
        "listed more than once",
    ),
    "not UTF-8": ("path,emotion\nclips/{0},col\xe8re\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables_are_refused_and_nothing_is_written(tmp_path, clips, capsys, case):
    text, message = BAD_TABLES[case]
    data = tmp_path / "bad.csv"
    data.write_bytes(text.format(clips[0].name).encode("latin-1"))
    out = tmp_path / "eval"
    status, _, err = run(evaluate_cli, ["--data", data, "--out", out], capsys)
    assert status == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_missing_file_is_listed_and_the_rest_scored(tmp_path, clips, capsys):
    rows = [{"path": str(p), "emotion": parse_name(p).emotion} for p in clips]
    rows.append({"path": "clips/gone.wav", "emotion": "sad"})
    data = write_table(tmp_path / "some_missing.csv", rows)
    out = tmp_path / "eval"
    status, stdout, _ = run(evaluate_cli, ["--data", data, "--out", out, "--quiet"], capsys)
    assert status == 1  # like infer: some file could not be used, the others were
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 5 and metrics["clips"]["left_out"] == 1
    (unusable,) = metrics["left_out"]["unusable"]
    assert "gone.wav" in unusable and "no such file" in unusable
    assert "gone.wav" in stdout
    status, _, err = run(
        evaluate_cli, ["--data", data, "--out", tmp_path / "strict", "--strict"], capsys
    )
    assert status == 2 and "gone.wav" in err and not (tmp_path / "strict").exists()


def test_out_folder_must_be_new_empty_or_evaluates(tmp_path, table, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    status, _, err = run(evaluate_cli, ["--data", table, "--out", foreign], capsys)
    assert status == 2 and "notes.txt" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    out = tmp_path / "eval"
    assert run(evaluate_cli, ["--data", table, "--out", out, "--quiet"], capsys)[0] == 0
    assert (out / "confusion_mlp.png").exists()
    # written by evaluate: it may write there again; the MLP's picture of before goes
    status, _, err = run(
        evaluate_cli, ["--data", table, "--out", out, "--model", "cnn", "--quiet"], capsys
    )
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion.png",
        "metrics.json",
        "predictions.csv",
    ]
    assert list(json.loads((out / "metrics.json").read_text())["models"]) == ["cnn"]


@pytest.mark.parametrize(
    "argv",
    [[], ["--data"], ["--data", "x.csv", "--batch", "0"], ["--data", "x.csv", "--model", "svm"]],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate_cli.main(argv)
    assert exit_.value.code == 2


def test_evaluation_imports_no_training_code():
    """Serving side: importing the command and its module loads no training module."""
    from tests.test_inference import TRAINING

    code = (
        "import sys\n"
        "import ser_cnn.cli.evaluate, ser_cnn.training.evaluation\n"
        "print(sorted(m for m in sys.modules if m.startswith('ser_cnn')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert not loaded & set(TRAINING), sorted(loaded & set(TRAINING))


@pytest.mark.dataset
def test_urdu_subset_restricted():
    """40 URDU clips (drawn with a fixed seed), restricted to URDU's four emotions."""
    root = os.environ.get("URDU_DIR")
    if not root or not Path(root).is_dir():
        pytest.skip("URDU_DIR is not set to the URDU corpus folder")
    from ser_cnn import corpora

    manifest, _ = corpora.load(root, strict=True)
    keep = np.random.default_rng(0).choice(len(manifest), size=40, replace=False)
    subset = manifest.iloc[sorted(keep)].reset_index(drop=True)
    result = evaluate_run(None, subset, restricted=True)
    assert result.clips == {"given": 40, "scored": 40, "left_out": 0}
    classes = ["neutral", "happy", "sad", "angry"]
    for scores in result.models.values():
        assert scores["labels"] == classes and scores["n"] == 40
        assert np.array(scores["confusion_matrix"]).sum() == 40
        assert 0 <= scores["uar"] <= 1
    # no RAVDESS actor, but the shipped encoder's head trained on every URDU clip: said so
    assert result.notes == [
        "40 of the scored clips are of urdu, which the run trained on (every clip of it): their "
        "scores are optimistic; a corpus left out of training is the estimate "
        "(tools/encoder_cv.py --loco)"
    ]
    cnn = evaluate_run(REPO / "checkpoints" / "ravdess_fold1" / "cnn", subset, restricted=True)
    assert not cnn.notes  # trained on RAVDESS alone: nothing of URDU heard
