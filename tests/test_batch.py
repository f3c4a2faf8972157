"""ser_cnn.serving.batch: rows in, rows out, the one path behind `ser-cnn infer --format csv` and
the Ray engine; and the thread settings of batch inference."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.errors import ParameterError
from ser_cnn.ravdess import EMOTIONS
from ser_cnn.serving import batch
from ser_cnn.serving.inference import load_recognizer
from tests.conftest import REPO, voice

EXAMPLES = sorted(str(p) for p in (REPO / "examples").iterdir() if p.suffix in (".wav", ".flac"))
CSV = ["--format", "csv", "--quiet", "--runtime", "light"]
# float32 rounding between thread counts and batch compositions only: far below what the CSV's
# six decimals show
ATOL = 1e-6


@pytest.fixture(scope="module")
def rec():
    return load_recognizer(runtime="light")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    sf.write(d / "voice.wav", voice(sr=22_050, seconds=1.5), 22_050)
    (d / "text.wav").write_text("not audio")
    sf.write(d / "silence.wav", np.zeros(16_000, dtype=np.int16), 16_000)
    names = ["text.wav", "voice.wav", "missing.wav"]
    return [EXAMPLES[0], *(str(d / n) for n in names), EXAMPLES[1], str(d / "silence.wav")]


def test_one_row_per_file_in_order_with_errors_as_rows(rec, files):
    rows = batch.score_batch(rec, files, batch_size=2)
    assert [r["file"] for r in rows] == files
    assert [r["ok"] for r in rows] == [True, False, True, False, True, False]
    names = batch.columns(rec.labels, rec.models)
    assert all(list(r) == names for r in rows)
    for r in rows:
        if r["ok"]:
            assert r["error"] is None and r["windows"] == 0 and r["duration"] > 1
            for m in rec.models:
                p = [r[f"{m}_p_{e}"] for e in EMOTIONS]
                assert sum(p) == pytest.approx(1.0, abs=1e-5)  # float32 softmax
                assert r[f"{m}_emotion"] == EMOTIONS[int(np.argmax(p))]
                assert r[f"{m}_probability"] == max(p)
        else:
            assert r["error"].startswith(r["file"] + ": ")
            assert all(r[n] is None for n in names[3:])
    assert "not an audio file" in rows[1]["error"]
    assert "no such file" in rows[3]["error"]
    assert "digital silence" in rows[5]["error"]


def test_rows_do_not_depend_on_the_batch_size(rec, files):
    one = batch.score_batch(rec, files, batch_size=1)
    many = batch.score_batch(rec, files, batch_size=64)
    for a, b in zip(one, many, strict=True):
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, abs=ATOL), k
            else:
                assert b[k] == v, k


def test_the_cli_csv_is_these_rows(rec, files):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "infer.py"), *CSV, *files],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stderr  # some files are bad
    printed = list(csv.DictReader(io.StringIO(done.stdout)))
    ours = batch.score_batch(rec, files)
    text = batch.format_csv(ours, rec.labels, rec.models)
    assert next(csv.DictReader(io.StringIO(text))).keys() == printed[0].keys()
    for got, want in zip(csv.DictReader(io.StringIO(text)), printed, strict=True):
        for k, v in want.items():
            if "_p" in k and v:  # probabilities: 6 decimals, either side of a rounding edge
                assert float(got[k]) == pytest.approx(float(v), abs=ATOL + 5e-7), k
            else:
                assert got[k] == v, k
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {r['error']}" for r in ours if not r["ok"]]


def test_format_csv_writes_none_as_empty_and_six_decimals(rec):
    labels, models = rec.labels, ("cnn",)
    ok = dict.fromkeys(batch.columns(labels, models), 0.25)
    ok.update(file="a.wav", ok=True, error=None, duration=3.5, windows=0, cnn_emotion="sad")
    bad = batch.row("b.wav", "no such file", labels, models)
    lines = batch.format_csv([ok, bad], labels, models).splitlines()
    assert lines[0].split(",")[:5] == ["file", "ok", "error", "duration", "windows"]
    assert lines[1].startswith("a.wav,True,,3.5,0,sad,0.250000,0.250000")
    assert lines[2] == "b.wav,False,b.wav: no such file" + "," * (len(ok) - 3)
    assert batch.format_csv([ok], labels, models, header=False).startswith("a.wav,")


def test_score_batch_wants_a_sequence_of_paths(rec):
    with pytest.raises(ParameterError, match="sequence of paths"):
        batch.score_batch(rec, EXAMPLES[0])


def test_threads_reach_every_light_model_and_leave_the_answers(rec):
    one = load_recognizer(runtime="light", threads=1)
    assert one.threads == 1 and one._encoder[0].encoder.threads == 1
    a, b = one.predict_many(EXAMPLES), rec.predict_many(EXAMPLES)
    for p, q in zip(a, b, strict=True):
        for m in rec.models:
            got, want = p.scores[m].probabilities, q.scores[m].probabilities
            assert list(got.values()) == pytest.approx(list(want.values()), abs=ATOL), m
    with pytest.raises(ParameterError, match="threads"):
        load_recognizer(runtime="light", threads=0)


# -- the Ray engine's inputs and outputs, without a cluster (ser_cnn.scale) ---------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--out", "x.parquet", "a.wav"],  # --out, --append, --address: the Ray engine's
        ["--address", "127.0.0.1:6379", "a.wav"],
        ["--engine", "ray", "--format", "json", "a.wav"],
        ["--engine", "ray", "--speaker", "a.wav"],
        ["--engine", "ray", "--actors", "0", "a.wav"],
    ],
)
def test_ray_options_are_refused_where_they_do_not_apply(args, capsys):
    from ser_cnn.cli.infer import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_inputs_are_listed_from_folders_manifests_lists_and_uris(tmp_path):
    from ser_cnn.corpora import make_manifest, write_manifest
    from ser_cnn.scale import list_inputs

    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.wav", "sub/b.flac"):
        sf.write(folder / name, voice(seconds=0.5), 16_000)
    (folder / "notes.txt").write_text("not audio")
    manifest = write_manifest(
        make_manifest([{"path": EXAMPLES[0], "emotion": "angry", "corpus": "mine"}]),
        tmp_path / "manifest.csv",
    )
    listed = tmp_path / "list.txt"
    listed.write_text(f"s3://bucket/x.wav\n\n{EXAMPLES[1]}\n")
    got = list_inputs([folder, manifest, listed, "gone.wav", str(folder / "a.wav")])
    assert got == [
        str(folder / "a.wav"),
        str(folder / "sub" / "b.flac"),
        EXAMPLES[0],
        "s3://bucket/x.wav",
        EXAMPLES[1],
        "gone.wav",  # kept: it becomes an error row where it is tried
    ]  # each file once, in order
    pytest.importorskip("pyarrow")
    assert list_inputs([f"file://{folder}/"]) == [
        f"file://{folder}/a.wav",
        f"file://{folder}/sub/b.flac",
    ]


def test_an_existing_output_is_refused_unless_appending(tmp_path):
    from ser_cnn.errors import DataError
    from ser_cnn.scale import check_out

    out = tmp_path / "scores.parquet"
    assert check_out(out) == "parquet"
    out.write_bytes(b"")
    with pytest.raises(DataError, match="--append"):
        check_out(out)
    assert check_out(out, append=True) == "parquet"
    with pytest.raises(ParameterError, match=r"\.parquet, \.csv, \.jsonl"):
        check_out(tmp_path / "scores.xlsx")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_appending_keeps_the_rows_and_knows_the_files_done(rec, files, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    from ser_cnn.scale import Writer

    rows = batch.score_batch(rec, files[:3])
    out = tmp_path / f"scores{suffix}"
    first = Writer(out, rec.labels, rec.models)
    first.write(rows[:2])
    first.close()
    again = Writer(out, rec.labels, rec.models, append=True)
    assert again.done == set(files[:2])
    again.write(rows[2:])
    again.close()
    if suffix == ".csv":
        back = list(csv.DictReader(out.open(newline="")))
        assert out.read_text().startswith(",".join(batch.columns(rec.labels, rec.models)))
    elif suffix == ".jsonl":
        import json

        back = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        back = pq.read_table(out).to_pylist()
    assert [r["file"] for r in back] == files[:3]
    assert [str(r["ok"]) for r in back] == ["True", "False", "True"]
    from ser_cnn.errors import DataError

    with pytest.raises(DataError, match="columns"):
        Writer(out, rec.labels, ("cnn",), append=True)  # other models: other columns
