"""ser_cnn/corpora: each corpus module on a tiny synthetic copy of its layout, the manifest's
validation and CSV form, detect() on every kind of input, users' tables and emotion folders,
and (marked ``dataset``) the real corpora from RAVDESS_DIR, URDU_DIR, ASED_DIR and NEMO_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import ser_cnn
from ser_cnn import corpora
from ser_cnn.corpora import ased, manifest, nemo, ravdess, urdu
from ser_cnn.errors import DataError, NameFormatError, ParameterError
from tests.conftest import make_ravdess_tree

SR = 16_000


def write_audio(path: Path, *, seconds: float = 0.2, f0: float = 220.0) -> Path:
    """A short tone, WAV or FLAC by the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR)
    return path


URDU_NAMES = {
    "Angry": ["SM1_F01_A01.flac", "SM1_F02_A02.flac", "SM4_F1_A03.wav"],
    "Happy": ["SF1_F01_H01.flac", "SM3_F01_H02.flac"],
    "Neutral": ["SM5_F01_N011.flac"],
    "Sad": ["SF10_F2_S02.flac"],
}
ASED_NAMES = {
    "01Neutral": ["n1-01-01-01-01.flac", "n1-01-02-02-02.flac"],
    "02Fearful": ["f2-01-01-01-01.flac"],
    "03Happy": ["h3-02-01-02-03.wav"],
    "04Sad": ["S4-04-02-01-29.flac", "s4-01-01-01-29.flac"],  # one upper-case letter in ASED
    "05Angry": ["a5-03-01-02-50.flac"],
}
NEMO_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage"
NEMO_ROWS = [  # file, label, text, speaker, gender
    ("EB0_anger_1.wav", "anger", "Lubię czytać przed snem.", "EB0", "female"),
    ("EB0_neutral_13.wav", "neutral", "Interesuje mnie historia Polski.", "EB0", "female"),
    ("WR0_surprised_64.wav", "surprised", "Ucho wykrywa dźwięki.", "WR0", "male"),
    ("KS0_fear_2.wav", "fear", "Kupiłem nową szafę.", "KS0", "male"),
    ("KS0_happiness_3.wav", "happiness", "Pada deszcz.", "KS0", "male"),
    ("KS0_sadness_4.wav", "sadness", "Jutro, o ile zdążę.", "KS0", "male"),
]


def make_tree(root: Path, names: dict[str, list[str]]) -> list[Path]:
    return [write_audio(root / folder / name) for folder, files in names.items() for name in files]


def make_nemo(root: Path, rows=NEMO_ROWS, *, extra_lines: tuple[str, ...] = ()) -> Path:
    """A nEMO folder: samples/ and data.tsv, speaker ids with nEMO's leading spaces."""
    lines = [NEMO_HEADER]
    for i, (file_id, label, text, speaker, gender) in enumerate(rows):
        write_audio(root / "samples" / file_id, f0=150 + 20 * i)
        lines.append(f"{file_id}\t{label}\t{text}\t{text.lower()}\t        {speaker}\t{gender}\t23")
    (root / "data.tsv").write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def urdu_dir(tmp_path) -> Path:
    make_tree(tmp_path / "urdu", URDU_NAMES)
    return tmp_path / "urdu"


@pytest.fixture
def ased_dir(tmp_path) -> Path:
    make_tree(tmp_path / "ased", ASED_NAMES)
    return tmp_path / "ased"


@pytest.fixture
def nemo_dir(tmp_path) -> Path:
    return make_nemo(tmp_path / "nemo")


@pytest.fixture
def ravdess_dir_small(tmp_path) -> Path:
    make_ravdess_tree(tmp_path / "ravdess", actors=(1, 2), emotions=(1, 5), statements=(1, 2))
    return tmp_path / "ravdess"


# -- the registry and the label maps ---------------------------------------------------------


def test_registry_names_every_corpus_module_with_the_same_interface():
    assert {"ravdess": ravdess, "urdu": urdu, "ased": ased, "nemo": nemo} == corpora.CORPORA
    for name, module in corpora.CORPORA.items():
        assert name == module.NAME
        assert f"{name.upper()}_DIR" == module.ENV
        for function in ("looks_like", "scan", "parse_name"):
            assert callable(getattr(module, function))
        unknown = {e for e in module.LABELS.values() if e is not None} - set(corpora.EMOTIONS)
        assert not unknown, f"{name} maps to names that are not project emotions: {unknown}"


def test_the_project_emotions_are_defined_once():
    assert corpora.EMOTIONS is ser_cnn.EMOTIONS is ser_cnn.ravdess.EMOTIONS


def test_label_maps_are_explicit():
    assert {f"{i:02d}": e for i, e in enumerate(corpora.EMOTIONS, 1)} == ravdess.LABELS
    assert urdu.LABELS == {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"}
    assert ased.LABELS == {
        "Neutral": "neutral",
        "Fearful": "fearful",
        "Happy": "happy",
        "Sad": "sad",
        "Angry": "angry",
    }
    assert nemo.LABELS == {
        "anger": "angry",
        "fear": "fearful",
        "happiness": "happy",
        "neutral": "neutral",
        "sadness": "sad",
        "surprised": "surprised",
    }
    # the corpus's own order, as the cross-corpus benchmark scores them
    assert corpora.emotions_of("urdu") == ("angry", "happy", "neutral", "sad")
    assert corpora.emotions_of("ased") == ("neutral", "fearful", "happy", "sad", "angry")
    with pytest.raises(ParameterError, match="known: ravdess, urdu, ased, nemo"):
        corpora.emotions_of("iemocap")


# -- one module per corpus ---------------------------------------------------------------------


def check_manifest(m: pd.DataFrame) -> None:
    """What every manifest promises."""
    assert tuple(m.columns) == manifest.COLUMNS
    assert all(m[c].dtype == object for c in m.columns)
    assert all(Path(p).is_absolute() for p in m["path"])
    assert not m["path"].duplicated().any()
    for column in manifest.COLUMNS:
        assert all(v is None or isinstance(v, str) for v in m[column]), column


def test_ravdess_module_wraps_the_ravdess_scan(ravdess_dir_small):
    m = ravdess.scan(ravdess_dir_small)
    check_manifest(m)
    assert len(m) == 8
    assert m["path"].tolist() == sorted(m["path"])
    first = m.iloc[0].to_dict()
    assert first == {
        "path": str(ravdess_dir_small / "Actor_01" / "03-01-01-01-01-01-01.wav"),
        "emotion": "neutral",
        "label": "01",
        "speaker": "1",
        "corpus": "ravdess",
        "gender": "male",
        "text": "Kids are talking by the door",
    }
    assert set(m["speaker"]) == {"1", "2"}
    assert set(m.loc[m["speaker"] == "2", "gender"]) == {"female"}
    assert set(m["text"]) == {"Kids are talking by the door", "Dogs are sitting by the door"}
    assert set(m["label"]) == {"01", "05"} and set(m["emotion"]) == {"neutral", "angry"}


def test_misnamed_files_are_refused_or_listed(ravdess_dir_small, urdu_dir):
    for root, module in ((ravdess_dir_small, ravdess), (urdu_dir, urdu)):
        stray = write_audio(root / "notes" / "my-voice.wav")
        with pytest.raises(NameFormatError, match=r"my-voice\.wav"):
            module.scan(root)
        problems = []
        m = module.scan(root, problems=problems)
        assert str(stray) not in set(m["path"])
        assert len(problems) == 1 and problems[0].startswith(str(stray))


def test_a_missing_corpus_folder_is_a_data_error(tmp_path):
    for module in corpora.CORPORA.values():
        with pytest.raises(DataError):
            module.scan(tmp_path / "absent")


def test_urdu_names_give_speaker_gender_and_emotion(urdu_dir):
    m = urdu.scan(urdu_dir)
    check_manifest(m)
    assert len(m) == 7
    row = m.set_index("path").loc[str(urdu_dir / "Sad" / "SF10_F2_S02.flac")]
    assert row.to_dict() == {
        "emotion": "sad",
        "label": "Sad",
        "speaker": "F10",
        "corpus": "urdu",
        "gender": "female",
        "text": None,
    }
    assert set(m["speaker"]) == {"M1", "M4", "F1", "M3", "M5", "F10"}  # SM1 and SF1 differ
    by_label = m.groupby("label")["emotion"].first().to_dict()
    assert by_label == urdu.LABELS
    for bad in ("SM1_F01_X12.wav", "a5-03-01-02-50.flac", "sm1_F01_A12.wav"):
        with pytest.raises(NameFormatError, match=urdu.EXAMPLE):
            urdu.parse_name(bad)


def test_ased_names_give_speaker_gender_and_emotion(ased_dir):
    m = ased.scan(ased_dir)
    check_manifest(m)
    assert len(m) == 7
    rows = m.set_index("path")
    assert rows.loc[str(ased_dir / "05Angry" / "a5-03-01-02-50.flac")].to_dict() == {
        "emotion": "angry",
        "label": "Angry",
        "speaker": "50",
        "corpus": "ased",
        "gender": "male",
        "text": None,
    }
    assert rows.loc[str(ased_dir / "04Sad" / "S4-04-02-01-29.flac"), "emotion"] == "sad"
    assert rows.loc[str(ased_dir / "01Neutral" / "n1-01-01-01-01.flac"), "gender"] == "female"
    assert set(m["speaker"]) == {"1", "2", "3", "29", "50"}
    assert set(m["emotion"]) == set(ased.LABELS.values())
    for bad in ("a4-01-01-01-01.flac", "03-01-05-01-01-01-01.flac", "x5-03-01-02-50.flac"):
        with pytest.raises(NameFormatError, match=ased.EXAMPLE):
            ased.parse_name(bad)  # a4: letter and folder number disagree


def test_nemo_rows_come_from_data_tsv(nemo_dir):
    m = nemo.scan(nemo_dir)
    check_manifest(m)
    assert len(m) == len(NEMO_ROWS)
    assert m["path"].tolist() == sorted(m["path"])
    row = m.set_index("path").loc[str(nemo_dir / "samples" / "EB0_anger_1.wav")]
    assert row.to_dict() == {
        "emotion": "angry",
        "label": "anger",
        "speaker": "EB0",  # data.tsv writes "        EB0"
        "corpus": "nemo",
        "gender": "female",
        "text": "Lubię czytać przed snem.",
    }
    assert set(m["emotion"]) == set(nemo.LABELS.values())  # every nEMO emotion is mapped


def test_nemo_rows_that_disagree_with_their_files_are_refused_or_listed(nemo_dir):
    table = nemo_dir / "data.tsv"
    lines = table.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("\tanger\t", "\tfear\t")  # EB0_anger_1.wav now says fear
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_audio(nemo_dir / "samples" / "MK0_fear_9.wav")  # a clip data.tsv does not list
    with pytest.raises(DataError, match=r"EB0_anger_1\.wav names speaker EB0, emotion anger"):
        nemo.scan(nemo_dir)
    problems = []
    m = nemo.scan(nemo_dir, problems=problems)
    assert len(m) == len(NEMO_ROWS) - 1
    assert any("line 2" in p for p in problems)
    assert any(p.endswith("MK0_fear_9.wav: not listed in " + str(table)) for p in problems)


def test_nemo_needs_its_table(tmp_path):
    write_audio(tmp_path / "samples" / "EB0_anger_1.wav")
    assert not nemo.looks_like(tmp_path)
    with pytest.raises(DataError, match=r"no data\.tsv.*download_nemo"):
        nemo.scan(tmp_path)
    (tmp_path / "data.tsv").write_text("file_id\temotion\n", encoding="utf-8")
    assert not nemo.looks_like(tmp_path)
    with pytest.raises(DataError, match="lacks the column"):
        nemo.scan(tmp_path)


# -- the manifest --------------------------------------------------------------------------


def test_make_manifest_fills_and_orders_the_columns(tmp_path):
    m = manifest.make_manifest(
        [
            {"corpus": "mine", "emotion": "angry", "path": tmp_path / "a.wav", "speaker": ""},
            {"path": str(tmp_path / "b.wav"), "emotion": None, "label": "bored", "corpus": "mine"},
        ]
    )
    check_manifest(m)
    assert m.to_dict("records") == [
        {
            "path": str(tmp_path / "a.wav"),
            "emotion": "angry",
            "label": "angry",  # filled from emotion
            "speaker": None,  # empty means unknown
            "corpus": "mine",
            "gender": None,
            "text": None,
        },
        {
            "path": str(tmp_path / "b.wav"),
            "emotion": None,
            "label": "bored",
            "speaker": None,
            "corpus": "mine",
            "gender": None,
            "text": None,
        },
    ]
    assert manifest.make_manifest([]).columns.tolist() == list(manifest.COLUMNS)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"path": "/a.wav", "corpus": "x"}], r"lacks the column\(s\) emotion"),
        ([{"path": "/a.wav", "emotion": "sad", "corpus": "x", "mood": "?"}], r"\['mood'\]"),
        ([{"path": "a.wav", "emotion": "sad", "corpus": "x"}], "must be absolute; got a.wav"),
        ([{"path": "/a.wav", "emotion": "sad", "corpus": ""}], "have no corpus"),
        ([{"path": "/a.wav", "emotion": "sad", "corpus": "x", "speaker": 3}], "speaker is 3"),
        (
            [{"path": f"/{n}.wav", "emotion": "sad", "corpus": "x"} for n in "abab"],
            r"2 path\(s\) are listed more than once: /a\.wav, /b\.wav",
        ),
    ],
)
def test_make_manifest_refuses_what_is_not_a_manifest(rows, message):
    with pytest.raises(DataError, match=message):
        manifest.make_manifest(rows)


def test_manifest_csv_round_trip_keeps_every_value(tmp_path, nemo_dir, ravdess_dir_small):
    m = pd.concat([nemo.scan(nemo_dir), ravdess.scan(ravdess_dir_small)], ignore_index=True)
    m.loc[0, "text"] = 'He said "stop", then\nleft'
    m.loc[1, "emotion"] = None
    path = manifest.write_manifest(m, tmp_path / "out" / "manifest.csv")
    back = manifest.read_manifest(path)
    pd.testing.assert_frame_equal(back, manifest.make_manifest(m))
    assert back.loc[1, "emotion"] is None and back.loc[0, "speaker"] == "EB0"


def test_read_manifest_refuses_latin1(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes("path,emotion,corpus\n/caf\xe9.wav,sad,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xe9 on line 2\)"):
        manifest.read_manifest(path)


def test_summary_counts_speakers_per_corpus_and_unmapped_labels(tmp_path):
    rows = [
        {"path": f"/{c}{s}{i}.wav", "emotion": e, "label": lab, "speaker": s, "corpus": c}
        for i, (c, s, e, lab) in enumerate(
            [
                ("a", "1", "sad", "S"),
                ("a", "2", "angry", "A"),
                ("b", "1", "sad", "sadness"),
                ("b", None, None, "boredom"),
            ]
        )
    ]
    m = manifest.make_manifest(rows)
    assert manifest.summary(m) == {
        "clips": 4,
        "speakers": 3,  # a/1, a/2, b/1
        "unknown_speaker": 1,
        "emotions": {"sad": 2, "angry": 1},
        "unmapped": {"boredom": 1},
        "corpora": {"a": 2, "b": 2},
    }
    assert manifest.speaker_keys(m).tolist() == ["a/1", "a/2", "b/1", None]


# -- detect() ----------------------------------------------------------------------------------


def test_detect_knows_each_kind_of_input(tmp_path, ravdess_dir_small, urdu_dir, ased_dir, nemo_dir):
    for root, name in (
        (ravdess_dir_small, "ravdess"),
        (urdu_dir, "urdu"),
        (ased_dir, "ased"),
        (nemo_dir, "nemo"),
    ):
        assert corpora.detect(root) == corpora.Input(root, "corpus", name)
        others = [m for n, m in corpora.CORPORA.items() if n != name]
        assert not any(m.looks_like(root) for m in others)
    folders = tmp_path / "mine"
    write_audio(folders / "angry" / "one.wav")
    assert corpora.detect(folders).kind == "emotion-folders"
    for suffix in (".csv", ".tsv", ".CSV"):
        table = tmp_path / f"labels{suffix}"
        table.write_text("path,emotion\n", encoding="utf-8")
        assert corpora.detect(table) == corpora.Input(table, "table")


def test_detect_refuses_what_it_cannot_read(tmp_path, urdu_dir, ased_dir):
    with pytest.raises(DataError, match="does not exist; expected a corpus folder"):
        corpora.detect(tmp_path / "absent")
    clip = write_audio(tmp_path / "flat" / "a.wav")
    write_audio(tmp_path / "flat" / "b.wav")
    with pytest.raises(DataError, match=r"not a folder or a \.csv/\.tsv table"):
        corpora.detect(clip)
    with pytest.raises(DataError, match="no corpus, emotion folders or table found"):
        corpora.detect(tmp_path / "flat")  # audio, but no emotion labels
    with pytest.raises(DataError, match=r"sub-folders are corpora \(ased/ \(ased\), urdu/"):
        corpora.detect(tmp_path)  # the folder above several corpora


def test_a_corpus_with_a_few_stray_files_is_still_that_corpus(urdu_dir):
    write_audio(urdu_dir / "extra" / "interview.wav")
    assert corpora.detect(urdu_dir).corpus == "urdu"
    m, problems = corpora.load(urdu_dir)
    assert len(m) == 7 and len(problems) == 1 and "interview.wav" in problems[0]
    with pytest.raises(DataError, match=r"1 clip\(s\) unusable.*interview\.wav"):
        corpora.load(urdu_dir, strict=True)


# -- users' tables -----------------------------------------------------------------------------


@pytest.fixture
def user_clips(tmp_path) -> list[Path]:
    return [write_audio(tmp_path / "clips" / f"{n}.flac") for n in ("a", "b", "c")]


def test_a_csv_table_with_relative_paths(tmp_path, user_clips):
    table = tmp_path / "lists" / "labels.csv"
    table.parent.mkdir()
    table.write_text(
        "\ufeffpath, emotion ,speaker,text\n"  # a byte-order mark and spaces are fine
        '../clips/a.flac,joy,anna,"Hello, world"\n'
        f"{user_clips[1]},angry,bert,\n"  # absolute stays absolute
        "\n"
        "../clips/c.flac , calm , ,\n",
        encoding="utf-8",
    )
    m, problems = corpora.load(table)
    check_manifest(m)
    assert problems == []
    assert m["path"].tolist() == [str(p) for p in user_clips]
    assert m["emotion"].tolist() == ["joy", "angry", "calm"]  # the user's labels, as written
    assert m["label"].tolist() == m["emotion"].tolist()
    assert m["speaker"].tolist() == ["anna", "bert", None]
    assert m["text"].tolist() == ["Hello, world", None, None]
    assert set(m["corpus"]) == {"labels"} and m["gender"].isna().all()


def test_a_tsv_table(tmp_path, user_clips):
    table = tmp_path / "set.tsv"
    table.write_text("emotion\tpath\tgender\nsad\tclips/b.flac\tfemale\n", encoding="utf-8")
    m, _ = corpora.load(table)
    assert m[["path", "emotion", "gender"]].values.tolist() == [
        [str(user_clips[1]), "sad", "female"]
    ]


def test_a_table_that_is_not_utf8_is_refused(tmp_path, user_clips):
    table = tmp_path / "labels.csv"
    table.write_bytes("path,emotion\nclips/a.flac,f\xe2ch\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"labels\.csv: not UTF-8 \(byte 0xe2 on line 2\).*UTF-8"):
        corpora.load(table)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,emotion,mood\nclips/a.flac,sad,low\n", "unknown 'mood'"),
        ("path,Emotion\nclips/a.flac,sad\n", "unknown 'Emotion'; missing 'emotion'"),
        ("file,emotion\nclips/a.flac,sad\n", "unknown 'file'; missing 'path'"),
        ("path,emotion,path\nclips/a.flac,sad,x\n", "repeated 'path'"),
        ("path,emotion\n", "a header but no rows"),
        ("", "empty"),
        ("path,emotion\nclips/a.flac,\n", "line 2 has no emotion"),
        ("path,emotion\nclips/a.flac,sad,extra\n", "line 2 has 3 fields, the header 2"),
        (
            "path,emotion\nclips/a.flac,sad\n./clips/a.flac,angry\n",
            r"1 path\(s\) are listed more than once: .*clips/a\.flac",
        ),
    ],
)
def test_bad_tables_are_refused_with_what_was_expected(tmp_path, user_clips, text, message):
    table = tmp_path / "labels.csv"
    table.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        corpora.load(table)
    if "unknown" in message or "missing" in message:
        assert "path and emotion, and may have speaker, gender, text" in str(err.value)


def test_missing_and_unreadable_files_are_listed_or_refused(tmp_path, user_clips):
    (tmp_path / "clips" / "empty.wav").write_bytes(b"")
    (tmp_path / "clips" / "notes.wav").write_text("not audio")
    table = tmp_path / "labels.csv"
    table.write_text(
        "path,emotion\nclips/a.flac,sad\nclips/gone.wav,sad\nclips/empty.wav,sad\n"
        "clips/notes.wav,sad\n",
        encoding="utf-8",
    )
    m, problems = corpora.load(table)
    assert m["path"].tolist() == [str(user_clips[0])]
    assert len(problems) == 3
    assert "gone.wav: no such file" in problems[0]
    assert "empty.wav: is empty" in problems[1]
    assert "notes.wav: not an audio file" in problems[2]
    with pytest.raises(DataError, match=r"3 clip\(s\) unusable.*gone\.wav: no such file"):
        corpora.load(table, strict=True)
    table.write_text("path,emotion\nclips/gone.wav,sad\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable clips"):
        corpora.load(table)


# -- emotion folders ---------------------------------------------------------------------------


def test_emotion_folders_give_the_folder_names_as_labels(tmp_path):
    root = tmp_path / "recordings"
    clips = [
        write_audio(root / "Angry" / "day2" / "take2.flac"),  # found in sub-folders too
        write_audio(root / "Angry" / "take1.wav"),
        write_audio(root / "sad" / "x.ogg"),
    ]
    (root / "empty").mkdir()
    write_audio(root / ".hidden" / "y.wav")
    (root / "README.txt").write_text("my recordings")
    m, problems = corpora.load(root)
    check_manifest(m)
    assert problems == []
    assert m["path"].tolist() == [str(p) for p in clips]
    assert m["emotion"].tolist() == ["Angry", "Angry", "sad"]  # as written: never guessed
    assert m["speaker"].isna().all() and set(m["corpus"]) == {"recordings"}


# -- load(), load_many() -----------------------------------------------------------------------


def test_load_reads_each_corpus_and_checks_its_files(nemo_dir, ased_dir):
    m, problems = corpora.load(nemo_dir)
    assert len(m) == len(NEMO_ROWS) and problems == []
    (nemo_dir / "samples" / "KS0_fear_2.wav").unlink()  # listed in data.tsv, gone from disk
    m, problems = corpora.load(nemo_dir)
    assert len(m) == len(NEMO_ROWS) - 1
    assert problems == [f"{nemo_dir / 'samples' / 'KS0_fear_2.wav'}: no such file"]
    m, problems = corpora.load(ased_dir, strict=True)
    assert len(m) == 7 and problems == []


def test_labels_without_a_project_emotion_are_kept_or_dropped(tmp_path):
    rows = [*NEMO_ROWS, ("MP0_boredom_5.wav", "boredom", "Nuda.", "MP0", "male")]
    root = make_nemo(tmp_path / "nemo", rows)
    m, problems = corpora.load(root)
    assert len(m) == len(rows)
    assert m.loc[m["label"] == "boredom", "emotion"].tolist() == [None]
    assert problems == [
        "nemo: 1 clip(s) labelled 'boredom' have no project emotion; kept with no emotion"
    ]
    assert manifest.summary(m)["unmapped"] == {"boredom": 1}
    m, problems = corpora.load(root, unmapped="drop")
    assert len(m) == len(NEMO_ROWS) and m["emotion"].notna().all()
    assert problems[0].endswith("left out")
    with pytest.raises(ParameterError, match="unmapped must be"):
        corpora.load(root, unmapped="guess")


def test_load_many_joins_inputs_and_refuses_a_clip_twice(tmp_path, urdu_dir, nemo_dir):
    m, problems = corpora.load_many([urdu_dir, nemo_dir])
    assert len(m) == 7 + len(NEMO_ROWS) and problems == []
    assert m["corpus"].tolist() == ["urdu"] * 7 + ["nemo"] * len(NEMO_ROWS)
    table = tmp_path / "again.csv"
    table.write_text("path,emotion\nurdu/Sad/SF10_F2_S02.flac,sad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"1 clip\(s\) are in two inputs: .*SF10_F2_S02\.flac"):
        corpora.load_many([urdu_dir, table])
    with pytest.raises(DataError, match="no data given"):
        corpora.load_many([])


# -- the real corpora (skipped without them) -----------------------------------------------


def corpus_root(env: str) -> Path:
    value = os.environ.get(env)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{env} is not set to the corpus folder")
    return Path(value)


@pytest.mark.dataset
@pytest.mark.parametrize(
    ("name", "clips", "speakers", "emotions"),
    [
        (
            "ravdess",
            1440,
            24,
            {e: 96 if e == "neutral" else 192 for e in ser_cnn.EMOTIONS},
        ),
        # 38 speakers are published (27 male, 11 female), but the file names tell only 29
        # apart: SF1-SF11 and SM1-SM7, SM17-SM27 (no SM8-SM16)
        ("urdu", 400, 29, {"angry": 100, "happy": 100, "neutral": 100, "sad": 100}),
        (
            "ased",
            2474,
            65,
            {"neutral": 522, "fearful": 510, "happy": 486, "sad": 470, "angry": 486},
        ),
        (
            "nemo",
            4481,
            9,
            {
                "neutral": 809,
                "happy": 749,
                "sad": 769,
                "angry": 749,
                "fearful": 736,
                "surprised": 669,
            },
        ),
    ],
)
def test_real_corpus_counts(name, clips, speakers, emotions):
    root = corpus_root(corpora.CORPORA[name].ENV)
    found = corpora.detect(root)
    assert (found.kind, found.corpus) == ("corpus", name)
    m, problems = corpora.load(root, strict=True)
    check_manifest(m)
    assert problems == []  # every file readable, every label mapped
    counts = manifest.summary(m)
    assert counts["clips"] == clips
    assert counts["speakers"] == speakers
    assert counts["emotions"] == emotions
    assert counts["unmapped"] == {} and counts["unknown_speaker"] == 0
    assert m["gender"].isin(["female", "male"]).all()
