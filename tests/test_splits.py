"""Splits of any labelled data (ser_cnn.corpora.splits): the labels a model learns, speaker-grouped
folds, clip-wise folds without speakers and their warning, and what is refused; the data's cache
folder; the run record's new keys."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ser_cnn.corpora.splits import (
    OPTIMISTIC,
    DataSplit,
    data_folds,
    data_split,
    groups_of,
    label_indices,
    labels_in,
)
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.cache import data_cache, data_name
from ser_cnn.features.classic import DEFAULT_CLASSIC
from ser_cnn.features.logmel import DEFAULT_CONFIG, FeatureConfig
from ser_cnn.ravdess import EMOTIONS
from ser_cnn.run import Run


def table(speakers, emotions, *, clips=2, corpus="mine", genders=None) -> pd.DataFrame:
    """A cache manifest's columns: ``clips`` clips of every speaker and emotion."""
    rows = []
    for i, speaker in enumerate(speakers):
        for emotion in emotions:
            for k in range(clips):
                rows.append(
                    {
                        "stem": f"{corpus}-{speaker}_{emotion}_{k}",
                        "emotion": emotion,
                        "speaker": speaker,
                        "corpus": corpus,
                        "gender": genders[i] if genders else None,
                    }
                )
    return pd.DataFrame(rows)


SPEAKERS = [f"s{i:02d}" for i in range(12)]
GENDERS = ["female", "male"] * 6


def test_labels_are_the_data_s_own_project_emotions_first():
    frame = table(["a", "b"], ["sad", "frustrated", "angry", "bored", "neutral"])
    assert labels_in(frame) == ("neutral", "sad", "angry", "bored", "frustrated")
    ravdess = table(["1"], ["sad", "angry"], corpus="ravdess")
    assert labels_in(ravdess) == EMOTIONS  # RAVDESS alone: the eight, as always
    y = label_indices(frame, labels_in(frame))
    assert [labels_in(frame)[i] for i in y] == list(frame["emotion"])


def test_clips_without_an_emotion_are_refused():
    frame = table(["a", "b"], ["sad", "angry"]).assign(label="??")
    frame.loc[0, "emotion"] = None
    with pytest.raises(DataError, match=r"1 clip\(s\) have no emotion.*mine '\?\?'"):
        labels_in(frame)


def test_speaker_folds_test_every_speaker_once_and_validate_on_training_speakers():
    frame = table(SPEAKERS, ["neutral", "happy", "sad"], genders=GENDERS)
    folds = data_folds(frame, 4)
    assert [f.fold for f in folds] == [1, 2, 3, 4] and {f.folds for f in folds} == {4}
    tested = [g for f in folds for g in f.test]
    assert sorted(tested) == sorted(f"mine/{s}" for s in SPEAKERS)  # each exactly once
    for f in folds:
        assert f.kind == "speaker-wise" and f.note is None
        assert not (set(f.train) & set(f.val) or set(f.train) & set(f.test))
        assert len(f.test) == 3 and len(f.val) == 1 and len(f.train) == 8  # 9 left: one in ten
        masks = f.masks(frame)
        assert (masks["train"] | masks["val"] | masks["test"]).all()
        assert set(frame.loc[masks["test"], "emotion"]) == {"neutral", "happy", "sad"}
    # the same data in another order gives the same folds: no seed, no row order
    again = data_folds(frame.sample(frac=1.0, random_state=3), 4)
    assert again == folds
    assert data_split(frame, 2, 4) == folds[1]
    with pytest.raises(ParameterError, match=r"1\.\.4"):
        data_split(frame, 5, 4)


def test_validation_speakers_are_shared_over_the_genders():
    speakers = [f"s{i:02d}" for i in range(30)]
    frame = table(speakers, ["neutral", "sad"], genders=["female", "male"] * 15)
    for f in data_folds(frame, 5):
        genders = {
            g: frame.loc[frame["speaker"] == g.split("/")[1], "gender"].iloc[0] for g in f.val
        }
        assert len(f.val) == 2 and sorted(genders.values()) == ["female", "male"]


def test_validation_prefers_speakers_that_bring_emotions_it_lacks():
    # as in URDU: most speakers have one emotion each
    rows = [table([f"a{i}"], ["angry"]) for i in range(5)]
    rows += [table([f"n{i}"], ["neutral"]) for i in range(5)]
    rows += [table(["both"], ["angry", "neutral"])]
    frame = pd.concat(rows, ignore_index=True)
    for f in data_folds(frame, 5):
        val = set(frame.loc[f.masks(frame)["val"], "emotion"])
        assert len(f.val) == 1
        if "mine/both" not in f.test:
            assert f.val == ("mine/both",) and val == {"angry", "neutral"}


def test_without_speakers_the_folds_are_of_clips_and_say_they_are_optimistic():
    frame = table(["x"], ["neutral", "angry", "frustrated"], clips=20).assign(speaker=None)
    folds = data_folds(frame, 5)
    for f in folds:
        assert f.kind == "clip-wise" and f.note == OPTIMISTIC
        masks = f.masks(frame)
        counts = frame.loc[masks["test"], "emotion"].value_counts().to_dict()
        assert counts == {"neutral": 4, "angry": 4, "frustrated": 4}  # stratified
        assert len(f.val) == 5  # one in ten of the other 48, every emotion
        assert set(frame.loc[masks["val"], "emotion"]) == {"angry", "frustrated", "neutral"}
    assert "optimistic" in f.record()["note"]
    # clips without a speaker among clips with one: grouped alone, with a warning too
    mixed = pd.concat([table(SPEAKERS[:4], ["sad", "happy"]), frame.iloc[:10]])
    mixed_fold = data_folds(mixed, 3)[0]
    assert mixed_fold.kind == "clip-wise" and "10 of 26 clips have no speaker" in mixed_fold.note


@pytest.mark.parametrize(
    ("frame", "folds", "message"),
    [
        (table(["only"], ["sad", "angry"], clips=5), 5, "all 10 clips are of one speaker"),
        (table(["a", "b", "c"], ["sad", "angry"]), 5, "3 speakers cannot make 5 folds.*--folds 3"),
        (table(["a", "b"], ["sad", "angry"]), 2, "2 speakers cannot make 2 folds"),
        (
            pd.concat([table(SPEAKERS[:6], ["sad"]), table(["a", "b"], ["angry"], clips=1)]),
            5,
            "'angry' has 2 clip\\(s\\): 5 folds need at least 5 clips.*--folds 2",
        ),
        (
            pd.concat([table(SPEAKERS[:6], ["sad"]), table(["a"], ["angry"], clips=6)]),
            3,
            "'angry': the clips of one speaker only",
        ),
        (table(SPEAKERS[:6], ["sad"]), 3, "every clip is labelled 'sad'"),
        (
            table(["x"], ["sad", "angry"], clips=1).assign(speaker=None),
            2,
            "2 speakers or clips without one cannot make 2 folds",
        ),
    ],
)
def test_what_cannot_be_split_is_refused(frame, folds, message):
    with pytest.raises(DataError, match=message):
        data_folds(frame, folds)


def test_an_emotion_with_fewer_speakers_than_folds_is_named_where_it_is_not_tested():
    frame = pd.concat([table(SPEAKERS[:10], ["sad"]), table(SPEAKERS[:3], ["angry"])])
    folds = data_folds(frame, 5)
    untested = [
        f.fold for f in folds if "angry" not in set(frame.loc[f.masks(frame)["test"], "emotion"])
    ]
    assert len(untested) == 2
    assert f"'angry' (3 speakers) is not tested in fold {', '.join(map(str, untested))}" in (
        folds[0].note
    )


def test_groups_are_speakers_of_a_corpus_or_else_clips():
    frame = pd.concat(
        [table(["1"], ["sad"], corpus="a"), table(["1"], ["sad"], corpus="b", clips=1)]
    ).assign(speaker=["1", "1", None])
    assert list(groups_of(frame)) == ["a/1", "a/1", "b-1_sad_0"]


def test_a_split_record_reads_back():
    split = DataSplit(("mine/a",), ("mine/b",), ("mine/c",), 1, 3)
    assert DataSplit.from_record(json.loads(json.dumps(split.record()))) == split
    with pytest.raises(ParameterError, match="both train and test"):
        DataSplit(("mine/a",), (), ("mine/a",))


def test_the_data_cache_is_named_after_the_data_and_its_feature_settings(tmp_path):
    table_path = tmp_path / "my data.csv"
    table_path.write_text("path,emotion\n")
    folder = tmp_path / "urdu"
    folder.mkdir()
    a = data_cache([table_path], DEFAULT_CONFIG)
    assert a.parent.as_posix() == "data/processed" and a.name.startswith("my_data-logmel-")
    assert data_cache([str(table_path)], DEFAULT_CONFIG) == a  # however it is named
    assert data_cache([table_path], FeatureConfig(n_mels=32)) != a
    assert data_cache([table_path], DEFAULT_CLASSIC).name.startswith("my_data-classic-")
    assert data_cache([table_path, folder], DEFAULT_CONFIG) != a
    assert data_name([table_path, folder]) == "my_data+urdu"


def test_runs_record_their_data_and_source_and_older_runs_lack_them(tmp_path):
    from ser_cnn.config import TrainConfig

    run = Run(
        model="cnn",
        labels=("neutral", "frustrated"),
        features=DEFAULT_CONFIG,
        training=TrainConfig(),
        split=DataSplit(("mine/a",), ("mine/b",), ("mine/c",), 1, 3).record(),
        clips={},
        data={"inputs": ["/x/mine.csv"], "corpora": {"mine": {"clips": 3}}},
        source={"path": "/runs/shipped", "labels": list(EMOTIONS)},
    )
    d = run.to_dict()
    assert d["from"] == {"path": "/runs/shipped", "labels": list(EMOTIONS)}
    assert Run.from_dict(json.loads(json.dumps(d))) == run
    old = {k: v for k, v in d.items() if k not in ("data", "from")}
    assert Run.from_dict(old).data is None and Run.from_dict(old).source is None
    assert np.array_equal(run.test_actors, ("mine/c",))
