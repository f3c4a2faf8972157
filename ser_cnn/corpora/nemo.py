"""nEMO (Christop 2024): acted emotional speech in Polish, 9 speakers, 4,481 clips.

The published layout (github.com/amu-cai/nEMO, unpacked by ``scripts/download_nemo.py``):
``samples/{speaker}_{emotion}_{n}.wav`` and ``data.tsv``, one line per clip with the columns
``file_id emotion raw_text normalized_text speaker_id gender age`` (``speaker_id`` is written
with leading spaces). This module owns that layout: the rows come from ``data.tsv`` (speaker
stripped of its spaces, gender, text = ``raw_text``, label = its ``emotion``), checked against
the file name; audio in ``samples/`` that ``data.tsv`` does not list is a problem, as is a row
whose file name disagrees with it. Rows are sorted by path, like the other corpora.
Licence CC BY-NC-SA 4.0: cite Christop I. (2024), "nEMO: Dataset of Emotional Speech in
Polish", LREC-COLING 2024, https://aclanthology.org/2024.lrec-main.1059/.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pandas as pd

from ser_cnn.corpora.files import CORPUS_SUFFIXES, absolute, refuse_or_list
from ser_cnn.corpora.manifest import make_manifest, read_utf8
from ser_cnn.errors import DataError, NameFormatError
from ser_cnn.ravdess import find_audio

NAME = "nemo"
ENV = "NEMO_DIR"
DEFAULT_DATA_DIR = Path("data/nemo")
TABLE = "data.tsv"
SAMPLES = "samples"
TABLE_COLUMNS = ("file_id", "emotion", "raw_text", "speaker_id", "gender")  # the ones read
# The corpus's labels (data.tsv's emotion column) -> project emotions.
LABELS: dict[str, str | None] = {
    "anger": "angry",
    "fear": "fearful",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprised",
}
PATTERN = re.compile(r"([A-Za-z0-9]+)_([a-z]+)_(\d+)")
EXAMPLE = "EB0_anger_1.wav"


def parse_name(path: str | os.PathLike) -> dict:
    """The manifest row a nEMO file name such as ``EB0_anger_1.wav`` describes: speaker and
    label from the name; gender and text are only in data.tsv (``None`` here).

    Raises
    ------
    NameFormatError
        The name is not ``{speaker}_{emotion}_{number}``.
    """
    path = Path(path)
    m = PATTERN.fullmatch(path.stem)
    if not m:
        raise NameFormatError(f"{path.name}: not a file name of the {NAME} corpus ({EXAMPLE})")
    speaker, label = m.groups()[:2]
    return {
        "path": str(path),
        "emotion": LABELS.get(label),
        "label": label,
        "speaker": speaker,
        "corpus": NAME,
        "gender": None,
        "text": None,
    }


def looks_like(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds ``samples/`` and a ``data.tsv`` whose header names nEMO's columns."""
    root = Path(root)
    table = root / TABLE
    if not (root / SAMPLES).is_dir() or not table.is_file():
        return False
    try:
        with table.open(encoding="utf-8-sig", errors="replace") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except OSError:
        return False
    return all(c in header for c in TABLE_COLUMNS)


def scan(root: str | os.PathLike, *, problems: list[str] | None = None) -> pd.DataFrame:
    """The manifest of the nEMO clips listed in ``root/data.tsv``, sorted by path.

    Whether each file exists is not checked here (:func:`ser_cnn.corpora.load` does).

    Parameters
    ----------
    root : str or os.PathLike
        The unpacked nEMO folder, holding ``samples/`` and ``data.tsv``.
    problems : list of str, optional
        Where rows whose file name disagrees with data.tsv, and audio files that data.tsv does
        not list, are listed (and left out); without it they are refused.

    Raises
    ------
    DataError
        No ``data.tsv``, one that is not UTF-8 or lacks nEMO's columns, or (without
        ``problems``) rows that disagree with their file names or unlisted audio.
    """
    root = absolute(root)
    table = root / TABLE
    if not table.is_file():
        raise DataError(
            f"{root}: no {TABLE}; expected the nEMO folder with {SAMPLES}/ and {TABLE} "
            "(python scripts/download_nemo.py fetches it)"
        )
    reader = csv.DictReader(
        io.StringIO(read_utf8(table)), delimiter="\t", quoting=csv.QUOTE_NONE, strict=True
    )
    missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"{table}: lacks the column(s) {', '.join(missing)}; "
            f"expected nEMO's header with {', '.join(TABLE_COLUMNS)}"
        )
    rows, bad = [], []
    for line in reader:
        file_id = (line["file_id"] or "").strip()
        speaker, label = (line["speaker_id"] or "").strip(), (line["emotion"] or "").strip()
        try:
            if Path(file_id).name != file_id:
                raise NameFormatError(f"{file_id}: expected a file name in {SAMPLES}/, no folder")
            row = parse_name(root / SAMPLES / file_id)
        except NameFormatError as err:
            bad.append(f"{table} line {reader.line_num}: {err}")
            continue
        if (row["speaker"], row["label"]) != (speaker, label):
            bad.append(
                f"{table} line {reader.line_num}: {file_id} names speaker {row['speaker']}, "
                f"emotion {row['label']}, but the row says speaker {speaker}, emotion {label}"
            )
            continue
        gender, text = (line["gender"] or "").strip().lower(), (line["raw_text"] or "").strip()
        rows.append(row | {"gender": gender or None, "text": text or None})
    listed = {r["path"] for r in rows}
    for path in find_audio(root / SAMPLES, CORPUS_SUFFIXES) if (root / SAMPLES).is_dir() else []:
        if str(path) not in listed:
            bad.append(f"{path}: not listed in {table}")
    refuse_or_list(bad, problems, f"{root}: {len(bad)} clip(s) inconsistent", error=DataError)
    rows.sort(key=lambda r: Path(r["path"]))
    return make_manifest(rows)
