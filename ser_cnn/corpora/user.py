"""A user's own labelled recordings: a table of paths and emotions, or one folder per emotion.

* **Table**: a ``.csv`` (comma) or ``.tsv`` (tab) file, UTF-8, whose header names the columns
  ``path`` and ``emotion`` and, optionally, ``speaker``, ``gender``, ``text`` (any order; no
  other column is accepted, so a misspelt one cannot be silently ignored). Relative paths are
  relative to the table's folder. Surrounding spaces of names and values are dropped. Every row
  needs a path and an emotion.
* **Emotion folders**: a folder whose sub-folders are named after emotions, each holding audio
  (searched recursively); no audio directly in the folder itself. Speakers are unknown.

The labels are the user's, kept as written (``emotion`` = ``label``); the corpus name is the
table's file name without suffix, or the folder's name. Which kind a path is, is decided by
:func:`ser_cnn.corpora.detect`, not here.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from ser_cnn.audio.io import AUDIO_SUFFIXES
from ser_cnn.corpora.files import absolute
from ser_cnn.corpora.manifest import SHOWN, make_manifest, read_utf8
from ser_cnn.errors import DataError
from ser_cnn.ravdess import find_audio

DELIMITERS = {".csv": ",", ".tsv": "\t"}
TABLE_REQUIRED = ("path", "emotion")
TABLE_COLUMNS = (*TABLE_REQUIRED, "speaker", "gender", "text")
TABLE_HELP = (
    f"a table needs a header with the columns {' and '.join(TABLE_REQUIRED)}, and may have "
    f"{', '.join(TABLE_COLUMNS[len(TABLE_REQUIRED) :])}"
)


def is_table(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with a table's suffix (``.csv`` or ``.tsv``)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in DELIMITERS


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """The manifest of a user's CSV or TSV table (files are not opened here).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` or ``.tsv`` file, UTF-8, with the header described in this module.

    Raises
    ------
    DataError
        Not UTF-8, a missing, unknown or repeated column, a row with the wrong number of
        fields or without a path or emotion, no rows, or a path listed twice.
    """
    path = absolute(path)
    delimiter = DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        raise DataError(f"{path}: a table must end in {' or '.join(DELIMITERS)}")
    reader = csv.reader(io.StringIO(read_utf8(path)), delimiter=delimiter, strict=True)
    try:
        lines = [(reader.line_num, row) for row in reader if any(f.strip() for f in row)]
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({err})") from None
    if not lines:
        raise DataError(f"{path}: empty; {TABLE_HELP}")
    header = [name.strip() for name in lines[0][1]]
    unknown = [name for name in header if name not in TABLE_COLUMNS]
    missing = [name for name in TABLE_REQUIRED if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if unknown or missing or repeated:
        found = "; ".join(
            f"{what} {', '.join(repr(n) for n in names)}"
            for what, names in (("unknown", unknown), ("missing", missing), ("repeated", repeated))
            if names
        )
        raise DataError(f"{path}: column(s) {found}; {TABLE_HELP}")
    base, rows, bad = path.parent, [], []
    for number, fields in lines[1:]:
        if len(fields) != len(header):
            bad.append(f"line {number} has {len(fields)} fields, the header {len(header)}")
            continue
        row = dict(zip(header, (f.strip() for f in fields), strict=True))
        empty = [name for name in TABLE_REQUIRED if not row[name]]
        if empty:
            bad.append(f"line {number} has no {' and no '.join(empty)}")
            continue
        row["path"] = os.path.normpath(base / row["path"])
        rows.append(row | {"label": row["emotion"], "corpus": path.stem})
    if bad:
        more = f" (and {len(bad) - SHOWN} more)" if len(bad) > SHOWN else ""
        raise DataError(f"{path}: {'; '.join(bad[:SHOWN])}{more}")
    if not rows:
        raise DataError(f"{path}: a header but no rows; {TABLE_HELP}")
    try:
        return make_manifest(rows)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None


def emotion_folders(root: str | os.PathLike) -> list[Path]:
    """The sub-folders of ``root`` that hold audio (hidden ones skipped), sorted; empty when
    ``root`` holds audio directly, so it cannot be a folder of emotion folders."""
    root = Path(root)
    if not root.is_dir() or any(
        p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
        for p in root.iterdir()
    ):
        return []
    return [
        d
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and find_audio(d, AUDIO_SUFFIXES)
    ]


def read_emotion_folders(root: str | os.PathLike) -> pd.DataFrame:
    """The manifest of a folder with one sub-folder of audio per emotion (files not opened).

    Parameters
    ----------
    root : str or os.PathLike
        ``root/<emotion>/**/<audio>``; the sub-folder's name is the emotion, as written.

    Raises
    ------
    DataError
        ``root`` holds audio directly, or no sub-folder with audio.
    """
    root = absolute(root)
    folders = emotion_folders(root)
    if not folders:
        raise DataError(
            f"{root}: expected one sub-folder of audio per emotion (e.g. {root.name}/angry/*.wav) "
            "and no audio in the folder itself"
        )
    rows = [
        {"path": str(p), "emotion": d.name, "label": d.name, "corpus": root.name}
        for d in folders
        for p in find_audio(d, AUDIO_SUFFIXES)
    ]
    return make_manifest(rows)
