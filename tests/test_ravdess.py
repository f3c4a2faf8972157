"""RAVDESS names, folder scanning and actor-wise splits."""

from __future__ import annotations

import json

import pytest

from ser_cnn.errors import DataError, NameFormatError, ParameterError
from ser_cnn.ravdess import ACTORS, EMOTIONS, gender_of, load_folds, parse_name, scan, split
from tests.conftest import SHARED_DATA


def test_parse_a_valid_name():
    clip = parse_name("Actor_12/03-01-06-01-02-01-12.wav")
    assert (clip.modality, clip.vocal_channel, clip.emotion, clip.emotion_code) == (
        "audio-only",
        "speech",
        "fearful",
        6,
    )
    assert (clip.intensity, clip.statement, clip.repetition, clip.actor, clip.gender) == (
        "normal",
        2,
        1,
        12,
        "female",
    )
    assert clip.stem == "03-01-06-01-02-01-12"


def test_flac_and_wav_names_parse_alike():
    assert parse_name("03-01-08-02-02-02-23.flac").to_dict() | {"path": ""} == parse_name(
        "03-01-08-02-02-02-23.wav"
    ).to_dict() | {"path": ""}


def test_emotion_codes_follow_the_label_list():
    for code, label in enumerate(EMOTIONS, start=1):
        intensity = 1 if code == 1 else 2
        assert parse_name(f"03-01-{code:02d}-{intensity:02d}-01-01-01.wav").emotion == label
    assert EMOTIONS == (
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hello.wav", "not a RAVDESS file name"),
        ("03-01-06-01-02-01.wav", "not a RAVDESS file name"),
        ("03-01-06-01-02-01-12-01.wav", "not a RAVDESS file name"),
        ("03-01-6-01-02-01-12.wav", "not a RAVDESS file name"),
        ("03-01-09-01-02-01-12.wav", "emotion code 09"),
        ("03-01-06-01-02-01-25.wav", "actor code 25"),
        ("03-01-06-03-02-01-12.wav", "intensity code 03"),
        ("03-03-06-01-02-01-12.wav", "vocal channel code 03"),
        ("03-01-01-02-01-01-01.wav", "neutral has no strong intensity"),
    ],
)
def test_malformed_names_show_the_expected_form(name, message):
    with pytest.raises(NameFormatError, match=message) as info:
        parse_name(name)
    assert "03-01-06-01-02-01-12.wav" in str(info.value)


def test_scan_finds_clips_recursively_and_lists_misnamed(ravdess_tree):
    (ravdess_tree / "Actor_01" / "my recording.wav").write_bytes(b"x")
    (ravdess_tree / "Actor_01" / "notes.txt").write_text("ignored: not audio")
    clips, rejected = scan(ravdess_tree)
    assert len(clips) == 32
    assert {c.actor for c in clips} == {1, 2, 3, 4}
    assert [p.name for p, _ in rejected] == ["my recording.wav"]


def test_scan_of_a_missing_folder_says_where_ravdess_comes_from(tmp_path):
    with pytest.raises(DataError, match="Zenodo record 1188976"):
        scan(tmp_path / "nowhere")


@pytest.mark.parametrize("fold", range(1, 7))
def test_fold_splits_are_disjoint_and_complete(fold):
    s = split(fold)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sum(map(len, parts)) == 24 and set().union(*parts) == set(ACTORS)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not parts[i] & parts[j]
    assert len(s.test) == 4 and len(s.train) == 18
    assert sorted(gender_of(a) for a in s.val) == ["female", "male"]
    assert split(fold) == s  # deterministic


def test_every_actor_is_tested_exactly_once_over_the_folds():
    tested = [a for k in range(1, 7) for a in split(k).test]
    assert sorted(tested) == list(ACTORS)


def test_validation_actors_differ_between_folds():
    assert len({split(k).val for k in range(1, 7)}) == 6


def test_packaged_folds_equal_the_published_file():
    published = SHARED_DATA / "ravdess_folds.json"
    if not published.exists():
        pytest.skip("../shared/data is not beside the checkout")
    folds = json.loads(published.read_text())["folds"]
    assert load_folds() == {int(k): tuple(v) for k, v in folds.items()}


def test_explicit_actor_lists():
    s = split(test_actors=[1, 2], val_actors=[3, 4])
    assert s.test == (1, 2) and s.val == (3, 4) and len(s.train) == 20 and s.fold is None
    auto = split(test_actors=[5, 6])
    assert sorted(gender_of(a) for a in auto.val) == ["female", "male"]
    assert not set(auto.val) & {5, 6}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fold": 7},
        {"fold": 1, "test_actors": [1]},
        {},
        {"test_actors": [1, 25]},
        {"test_actors": [1, 2], "val_actors": [2, 3]},
        {"test_actors": [1, 1]},
    ],
)
def test_bad_split_arguments(kwargs):
    with pytest.raises(ParameterError):
        split(**kwargs)
