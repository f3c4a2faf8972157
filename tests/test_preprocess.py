"""scripts/preprocess.py end to end on a tiny synthetic RAVDESS tree; user data (tables, two
inputs) through `ser-cnn preprocess --data`; the cache's keys and older caches."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import ser_cnn.features.cache as pp
from ser_cnn.cli import preprocess as preprocess_cli
from ser_cnn.errors import DataError
from ser_cnn.features.cache import RAVDESS_COLUMNS, cache_keys, load_cache, preprocess
from ser_cnn.features.logmel import FeatureConfig, log_mel
from tests.conftest import REPO, make_ravdess_tree


def run_script(*args, env=None):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "preprocess.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_script_end_to_end_then_no_op(ravdess_tree, tmp_path):
    out = tmp_path / "cache"
    first = run_script("--data-dir", ravdess_tree, "--out", out, "--jobs", 2)
    assert first.returncode == 0, first.stderr
    assert "32 clips usable" in first.stdout and "computed 32" in first.stdout

    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 32
    expected_columns = {
        "stem",
        "path",
        "modality",
        "vocal_channel",
        "emotion",
        "emotion_code",
        "intensity",
        "statement",
        "repetition",
        "actor",
        "gender",
        "duration",
        "cache",
    }
    assert expected_columns <= set(manifest.columns)
    assert manifest["duration"].between(1.7, 1.9).all()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["features"] == FeatureConfig().to_dict()
    assert settings["versions"]["numpy"] == np.__version__
    arrays = [np.load(out / rel) for rel in manifest["cache"]]
    assert {a.shape for a in arrays} == {(64, 301)} and {a.dtype for a in arrays} == {
        np.dtype(np.float32)
    }
    # The cache holds what the shared feature function computes, but not bit for bit: the
    # script's workers run with one BLAS thread each and this process with several, so the mel
    # filterbank product sums in another order. The values are float32 dB in [-100, 0], where
    # one float32 step is up to 2**-17 = 7.6e-6 dB (|x| in [64, 128)): the largest difference
    # seen (AMD EPYC). 1e-4 dB allows a dozen such steps and is far below any real change of
    # the features (another setting moves them by whole dB).
    row = manifest.iloc[5]
    np.testing.assert_allclose(arrays[5], log_mel(row["path"]), rtol=0, atol=1e-4)

    second = run_script("--data-dir", ravdess_tree, "--out", out)
    assert second.returncode == 0
    assert "nothing to do" in second.stdout


def test_new_clips_are_added_and_removed_ones_dropped(ravdess_tree, tmp_path):
    out = tmp_path / "cache"
    preprocess(ravdess_tree, out, jobs=1, progress=False)
    make_ravdess_tree(ravdess_tree, actors=(5,), emotions=(3, 4))
    gone = next((ravdess_tree / "Actor_01").glob("*.wav"))
    gone.unlink()
    summary = preprocess(ravdess_tree, out, jobs=1, progress=False)
    assert (summary.computed, summary.reused, summary.total) == (2, 31, 33)
    assert not (out / "features" / f"{gone.stem}.npy").exists()


def test_changed_settings_are_refused_then_rebuilt_with_force(ravdess_tree, tmp_path):
    out = tmp_path / "cache"
    preprocess(ravdess_tree, out, jobs=1, progress=False)
    other = FeatureConfig(n_mels=32)
    with pytest.raises(DataError, match="--force"):
        preprocess(ravdess_tree, out, config=other, jobs=1, progress=False)
    summary = preprocess(ravdess_tree, out, config=other, jobs=1, progress=False, force=True)
    assert summary.computed == 32
    _, features, config = load_cache(out)
    assert config == other and features.shape == (32, 32, 301)


def test_script_names_force_when_settings_differ(ravdess_tree, tmp_path):
    out = tmp_path / "cache"
    preprocess(ravdess_tree, out, config=FeatureConfig(n_mels=32), jobs=1, progress=False)
    result = run_script("--data-dir", ravdess_tree, "--out", out)
    assert (
        result.returncode == 1 and "--force" in result.stderr and "Traceback" not in result.stderr
    )


def test_interrupted_run_leaves_no_partial_files_and_resumes(ravdess_tree, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    calls = {"n": 0}
    real = FeatureConfig.compute

    def flaky(self, path, **kw):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt  # what Ctrl-C does halfway through
        return real(self, path, **kw)

    monkeypatch.setattr(FeatureConfig, "compute", flaky)
    monkeypatch.setattr(pp, "CHECKPOINT_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        preprocess(ravdess_tree, out, jobs=1, progress=False)
    assert len(pd.read_csv(out / "manifest.csv")) == 10  # the finished clips are recorded
    assert not list((out / "features").glob("*.tmp"))
    # a half-written array, as a hard kill mid-write leaves it, must never be read back
    (out / "features" / "03-01-01-01-01-01-04.npy.999.tmp").write_bytes(b"\x93NUMPY partial")

    monkeypatch.setattr(FeatureConfig, "compute", real)
    summary = preprocess(ravdess_tree, out, jobs=1, progress=False)
    assert (summary.reused, summary.computed, summary.total) == (10, 22, 32)
    assert not list((out / "features").glob("*.tmp"))


@pytest.mark.slow
def test_corrupt_silent_and_misnamed_files_are_skipped_and_listed(ravdess_tree, tmp_path):
    actor = ravdess_tree / "Actor_02"
    corrupt = actor / "03-01-05-02-01-02-02.wav"
    corrupt.write_text("not audio")
    silent = actor / "03-01-05-02-02-02-02.wav"
    sf.write(silent, np.zeros(16_000, dtype=np.float32), 16_000)
    (actor / "take 3.wav").write_bytes(b"RIFF")
    out = tmp_path / "cache"
    result = run_script("--data-dir", ravdess_tree, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "skipped 3 files" in result.stdout
    errors = pd.read_csv(out / "errors.csv")
    reasons = dict(
        zip(errors["path"].map(lambda p: p.rsplit("/", 1)[-1]), errors["error"], strict=True)
    )
    assert "not an audio file" in reasons[corrupt.name]
    assert "digital silence" in reasons[silent.name]
    assert "not a RAVDESS file name" in reasons["take 3.wav"]
    assert len(pd.read_csv(out / "manifest.csv")) == 32
    # known failures are not retried while the file is unchanged
    again = preprocess(ravdess_tree, out, jobs=1, progress=False)
    assert again.computed == 0 and len(again.errors) == 3


def test_duplicate_clip_in_wav_and_flac_is_used_once(ravdess_tree, tmp_path):
    wav = next((ravdess_tree / "Actor_03").glob("*.wav"))
    y, sr = sf.read(wav)
    sf.write(wav.with_suffix(".flac"), y, sr)
    summary = preprocess(ravdess_tree, tmp_path / "cache", jobs=1, progress=False)
    assert summary.total == 32
    assert any("duplicate" in why for _, why in summary.errors)


def test_nothing_usable_is_a_failure(tmp_path):
    root = tmp_path / "ravdess" / "Actor_01"
    root.mkdir(parents=True)
    (root / "03-01-01-01-01-01-01.wav").write_text("junk")
    result = run_script("--data-dir", root.parent, "--out", tmp_path / "cache")
    assert result.returncode == 1
    assert "no usable clips" in result.stderr and "not an audio file" in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything is written


def test_missing_data_folder_explains_where_ravdess_comes_from(tmp_path):
    result = run_script("--data-dir", tmp_path / "missing", "--out", tmp_path / "cache")
    assert result.returncode == 1
    assert "Zenodo record 1188976" in result.stderr
    assert "Audio_Speech_Actors_01-24.zip" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ravdess_dir_variable_is_the_default(ravdess_tree, tmp_path):
    import os

    env = {**os.environ, "RAVDESS_DIR": str(ravdess_tree)}
    result = run_script("--out", tmp_path / "cache", "--quiet", env=env)
    assert result.returncode == 0 and "32 clips usable" in result.stdout


def test_load_cache_without_a_cache_names_the_command(tmp_path):
    with pytest.raises(DataError, match=r"`ser-cnn preprocess --data-dir DIR --out "):
        load_cache(tmp_path)


# -- your own data: --data ---------------------------------------------------------------------


@pytest.fixture
def user_table(ravdess_tree, tmp_path) -> Path:
    """A user's table ``mine.csv`` of four clips (paths relative to it), two of them with the
    same file name in different folders, one speaker "007" and a label of the user's own."""
    sources = sorted(ravdess_tree.rglob("*.wav"))[:4]
    names = ["a.wav", "b.wav", "x/take.wav", "y/take.wav"]
    emotions = ["happy", "sad", "frustrated", "happy"]
    folder = tmp_path / "user"
    lines = ["path,emotion,speaker"]
    for source, name, emotion in zip(sources, names, emotions, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / name)
        lines.append(f"{name},{emotion},007")
    table = folder / "mine.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


def preprocess_main(*args, capsys) -> tuple[int, str, str]:
    status = preprocess_cli.main([*map(str, args), "--jobs", "1", "--quiet"])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_user_table_into_a_cache(user_table, tmp_path, capsys):
    out = tmp_path / "cache"
    status, stdout, err = preprocess_main("--data", user_table, "--out", out, capsys=capsys)
    assert status == 0, err
    assert "4 clips usable" in stdout
    assert "mine: 4 clips, 1 speaker (4 clips each); happy 2, sad 1, frustrated 1" in stdout
    manifest, features, _ = load_cache(out)
    keys = manifest["stem"].tolist()
    assert keys[:2] == ["mine-a", "mine-b"]
    assert [k[: len("mine-take-")] for k in keys[2:]] == ["mine-take-"] * 2  # a hash apart
    assert len(set(keys)) == 4
    assert set(manifest["corpus"]) == {"mine"} and set(manifest["speaker"]) == {"007"}
    assert manifest["emotion"].tolist() == manifest["label"].tolist()
    for column in set(RAVDESS_COLUMNS) - {"emotion", "gender"}:
        assert manifest[column].isna().all(), column
    for i, path in enumerate(manifest["path"]):
        np.testing.assert_allclose(features[i], log_mel(path), rtol=0, atol=1e-4)
    status, stdout, _ = preprocess_main("--data", user_table, "--out", out, capsys=capsys)
    assert status == 0 and "nothing to do: all 4 clips" in stdout


def test_two_inputs_then_other_data_is_refused_without_force(
    ravdess_tree, user_table, tmp_path, capsys
):
    out = tmp_path / "cache"
    status, stdout, err = preprocess_main(
        "--data", ravdess_tree, "--data", user_table, "--out", out, capsys=capsys
    )
    assert status == 0, err
    assert "36 clips usable" in stdout
    assert "ravdess: 32 clips, 4 speakers (8 clips each)" in stdout and "mine: 4 clips" in stdout
    manifest, _, _ = load_cache(out)
    assert manifest["corpus"].value_counts().to_dict() == {"ravdess": 32, "mine": 4}
    ravdess = manifest[manifest["corpus"] == "ravdess"]
    assert (ravdess["speaker"] == ravdess["actor"].astype(int).astype(str)).all()

    # the table alone would drop every RAVDESS clip: refused, the cache untouched
    status, _, err = preprocess_main("--data", user_table, "--out", out, capsys=capsys)
    assert status == 1 and "ravdess (32 clips)" in err and "--force" in err
    assert len(load_cache(out)[0]) == 36
    status, stdout, _ = preprocess_main(
        "--data", user_table, "--out", out, "--force", capsys=capsys
    )
    assert status == 0 and "nothing to do: all 4 clips" in stdout
    assert len(list((out / "features").glob("*.npy"))) == 4


def test_missing_rows_are_listed_or_refused_with_strict(user_table, tmp_path, capsys):
    with user_table.open("a", encoding="utf-8") as f:
        f.write("gone.wav,sad,007\n")
    strict = tmp_path / "strict"
    status, _, err = preprocess_main(
        "--data", user_table, "--out", strict, "--strict", capsys=capsys
    )
    assert status == 1 and "gone.wav" in err and "no such file" in err
    assert not strict.exists()  # refused before anything was written
    out = tmp_path / "cache"
    status, stdout, _ = preprocess_main("--data", user_table, "--out", out, capsys=capsys)
    assert status == 0 and "4 clips usable" in stdout and "skipped 1 files" in stdout
    errors = pd.read_csv(out / "errors.csv")
    assert errors["path"].str.endswith("gone.wav").tolist() == [True]


def test_data_and_data_dir_together_is_a_usage_error(user_table, ravdess_tree):
    with pytest.raises(SystemExit) as exit_:
        preprocess_cli.main(["--data", str(user_table), "--data-dir", str(ravdess_tree)])
    assert exit_.value.code == 2


def test_interrupted_user_data_resumes(user_table, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    calls = {"n": 0}
    real = FeatureConfig.compute

    def flaky(self, path, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, path, **kw)

    monkeypatch.setattr(FeatureConfig, "compute", flaky)
    monkeypatch.setattr(pp, "CHECKPOINT_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        preprocess(user_table, out, jobs=1, progress=False)
    assert len(pd.read_csv(out / "manifest.csv")) == 2
    monkeypatch.setattr(FeatureConfig, "compute", real)
    summary = preprocess(user_table, out, jobs=1, progress=False)
    assert (summary.reused, summary.computed, summary.total) == (2, 2, 4)


def test_cache_keys_are_unique_and_stable():
    manifest = pd.DataFrame(
        {
            "path": [
                "/r/Actor_01/03-01-01-01-01-01-01.wav",
                "/u/angry/01.wav",
                "/u/sad/01.wav",
                "/u/sad/Two.wav",
                "/u/happy/two.wav",
                "/u/happy/three.wav",
            ],
            "corpus": ["ravdess", "u", "u", "u", "u", "u"],
        }
    )
    keys = cache_keys(manifest)
    assert keys[0] == "03-01-01-01-01-01-01"  # RAVDESS: the name caches always had
    assert keys[5] == "u-three"
    assert len({k.casefold() for k in keys}) == 6  # "Two" and "two" too, for macOS
    assert keys[1].startswith("u-01-") and keys[3].startswith("u-Two-")
    assert cache_keys(manifest) == keys  # the same on every run


def test_a_cache_without_the_corpus_columns_is_completed(ravdess_tree, tmp_path):
    """Caches written before the corpus layer: load_cache fills the columns from the RAVDESS
    names, and preprocessing again adds them without computing anything."""
    out = tmp_path / "cache"
    preprocess(ravdess_tree, out, jobs=1, progress=False)
    new = (out / "manifest.csv").read_text()
    table = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    table.drop(columns=["label", "speaker", "corpus", "text"]).to_csv(
        out / "manifest.csv", index=False
    )
    manifest, _, _ = load_cache(out)
    assert set(manifest["corpus"]) == {"ravdess"}
    assert manifest["label"].str.fullmatch(r"0\d").all()
    assert (manifest["speaker"] == manifest["actor"].astype(str)).all()
    summary = preprocess(ravdess_tree, out, jobs=1, progress=False)
    assert (summary.computed, summary.reused) == (0, 32)
    assert (out / "manifest.csv").read_text() == new


def test_degraded_copies_are_a_cache_stage(logmel_cache, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(logmel_cache, cache)  # the session cache is read only
    manifest, features, config = load_cache(cache)
    train = manifest["actor"].isin([5, 6]).to_numpy()
    rows, speakers = manifest[train], manifest.loc[train, "actor"].to_numpy()

    def copies(**settings):
        return pp.training_copies(cache, rows, speakers, config, jobs=1, **settings)

    first = copies(copies=2, seed=3)
    assert first.shape == (len(rows), 2, *config.shape) and first.dtype == np.float32
    assert not np.array_equal(first[:, 0], first[:, 1])  # copy j has draws of its own
    assert not np.array_equal(first[:, 0], features[train])  # degraded, not the clean clip
    entries = sorted(p.name for p in (cache / pp.COPIES_DIR).iterdir())
    assert [Path(e).suffix for e in entries] == [".json", ".npy"]  # no temporary file left
    info = json.loads((cache / pp.COPIES_DIR / entries[0]).read_text())
    assert info["shape"] == list(first.shape)
    assert info["description"]["clips"] == rows["stem"].tolist()
    assert info["description"]["features"] == config.to_dict()
    assert info["description"]["copies"]["seed"] == 3

    def no_audio(*args, **kwargs):
        raise AssertionError("the cached copies were made again from the audio")

    # asked again, the stage reads the stored array: no audio, the same bytes
    monkeypatch.setattr("ser_cnn.audio.io.load_audio", no_audio)
    np.testing.assert_array_equal(copies(copies=2, seed=3), first)
    monkeypatch.undo()

    # another seed is another entry; the first stays as it was
    other = copies(copies=2, seed=4)
    assert not np.array_equal(other, first)
    assert len(list((cache / pp.COPIES_DIR).glob("*.npy"))) == 2
    np.testing.assert_array_equal(copies(copies=2, seed=3), first)

    # a run killed before the JSON is written leaves no entry: the next run makes it whole
    def killed(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(pp, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        copies(copies=1, seed=3)
    monkeypatch.undo()
    assert len(list((cache / pp.COPIES_DIR).glob("*.json"))) == 2
    one = copies(copies=1, seed=3)
    np.testing.assert_array_equal(one[:, 0], first[:, 0])  # copy j never depends on how many
    assert len(list((cache / pp.COPIES_DIR).glob("*.json"))) == 3
    assert not list((cache / pp.COPIES_DIR).glob("*.tmp"))


def test_config_makes_copies_of_ravdess_folds_only(user_table, ravdess_tree, capsys):
    recipe = REPO / "configs" / "robust_dropout.toml"
    for other in (["--data", user_table], ["--data-dir", ravdess_tree, "--features", "classic"]):
        with pytest.raises(SystemExit) as exit_:
            preprocess_cli.main([*map(str, other), "--config", str(recipe)])
        assert exit_.value.code == 2
        assert "--config makes the CNN's degraded copies" in capsys.readouterr().err
