"""The manifest: the one table of clips that every corpus reader produces and everything
downstream consumes.

A manifest is a :class:`pandas.DataFrame` with exactly the columns of :data:`COLUMNS`, in that
order, one row per audio file, every value a ``str`` or ``None`` (object dtype):

========  ========  ===============================================================================
column    required  meaning
========  ========  ===============================================================================
path      yes       absolute path of the audio file; no path twice
emotion   no value  the project's emotion name (one of ``ser_cnn.ravdess.EMOTIONS``) for a known
                    corpus, the user's own label for user data; ``None`` where the corpus's label
                    has no project emotion (see ``unmapped`` in :func:`ser_cnn.corpora.load`)
label     no value  the corpus's own label as written (``"05"``, ``"Angry"``, ``"anger"``); for
                    user data the same as ``emotion``; filled from ``emotion`` when missing
speaker   no value  speaker id as the corpus writes it, unique within a corpus only (use
                    :func:`speaker_keys` across corpora); ``None`` when unknown
corpus    yes       the corpus's registry name (``"ravdess"``), or the name of a user's folder
                    or table
gender    no value  ``"female"`` / ``"male"`` for the corpora, free text for user data, or ``None``
text      no value  what is said, where known (RAVDESS statements, nEMO transcripts), or ``None``
========  ========  ===============================================================================

"required" means the column must be given with a value in every row; the other columns may be
left out (they are filled with ``None``). An empty string means the same as ``None``, so a
manifest survives :func:`write_manifest` / :func:`read_manifest` (CSV, UTF-8) unchanged. This
module owns the schema, its validation (:func:`make_manifest`), the CSV form and the summary
counts; the corpus modules beside it own how each corpus is read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ser_cnn.errors import DataError
from ser_cnn.ravdess import EMOTIONS

COLUMNS = ("path", "emotion", "label", "speaker", "corpus", "gender", "text")
REQUIRED = ("path", "corpus")  # a value in every row
MUST_HAVE = ("path", "emotion", "corpus")  # columns that must be given (emotion may be None)
UNMAPPED = "(unmapped)"  # how summary() counts rows whose label maps to no project emotion
SHOWN = 5  # at most this many offending values are quoted in an error message

__all__ = [
    "COLUMNS",
    "EMOTIONS",
    "empty_manifest",
    "make_manifest",
    "read_manifest",
    "speaker_keys",
    "summary",
    "write_manifest",
]


def make_manifest(rows: pd.DataFrame | Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Validate ``rows`` and return them as a manifest (a new DataFrame; the input is not changed).

    Parameters
    ----------
    rows : pandas.DataFrame or iterable of mappings
        One row per clip with the columns ``path``, ``emotion`` and ``corpus``, and any of
        ``label``, ``speaker``, ``gender``, ``text``. Paths may be ``os.PathLike``; they are
        stored as ``str``. Empty strings and NaN become ``None``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` in that order, object dtype, a fresh ``RangeIndex``; ``label``
        filled from ``emotion`` where it is missing. Row order is kept.

    Raises
    ------
    DataError
        A missing or unknown column, a value that is not text, a relative or empty path, a row
        without a corpus, or a path listed twice (the duplicates are named).
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty and not len(frame.columns):
        return empty_manifest()
    unknown = [c for c in frame.columns if c not in COLUMNS]
    if unknown:
        raise DataError(
            f"manifest columns {unknown} are not allowed; expected {', '.join(COLUMNS)}"
        )
    missing = [c for c in MUST_HAVE if c not in frame.columns]
    if missing:
        raise DataError(
            f"manifest lacks the column(s) {', '.join(missing)}; required: {', '.join(MUST_HAVE)}"
        )
    out = {}
    for column in COLUMNS:
        values = frame[column].tolist() if column in frame.columns else [None] * len(frame)
        out[column] = [_text(v, column, i) for i, v in enumerate(values)]
    out["label"] = [
        e if lab is None else lab for lab, e in zip(out["label"], out["emotion"], strict=True)
    ]
    for column in REQUIRED:
        empty = [i for i, v in enumerate(out[column]) if v is None]
        if empty:
            raise DataError(f"manifest rows {_some(empty)} have no {column}")
    relative = [p for p in out["path"] if not Path(p).is_absolute()]
    if relative:
        raise DataError(f"manifest paths must be absolute; got {_some(relative)}")
    manifest = pd.DataFrame(out, columns=list(COLUMNS), dtype=object)
    duplicated = manifest["path"][manifest["path"].duplicated()].unique().tolist()
    if duplicated:
        raise DataError(
            f"{len(duplicated)} path(s) are listed more than once: {_some(duplicated)}; "
            "each clip may appear only once"
        )
    return manifest


def empty_manifest() -> pd.DataFrame:
    """A manifest with no rows."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (CSV, UTF-8, a header of column names).

    Raises
    ------
    DataError
        The file is missing, not UTF-8, or not a valid manifest (see :func:`make_manifest`).
    """
    path = Path(path)
    text = read_utf8(path)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: not a manifest CSV ({err})") from None
    try:
        return make_manifest(frame)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None


def write_manifest(manifest: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``manifest`` (validated first) as CSV, UTF-8, ``None`` as an empty field.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    manifest = make_manifest(manifest)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def speaker_keys(manifest: pd.DataFrame) -> pd.Series:
    """Speakers as ``corpus/speaker`` (unique across corpora), ``None`` where unknown (None,
    NaN, or empty as a cache's CSV keeps it)."""
    return pd.Series(
        [
            None if pd.isna(s) or s == "" else f"{c}/{s}"
            for c, s in zip(manifest["corpus"], manifest["speaker"], strict=True)
        ],
        index=manifest.index,
        dtype=object,
    )


def summary(manifest: pd.DataFrame) -> dict:
    """Counts of a manifest: clips, speakers, and clips per emotion and per unmapped label.

    Returns
    -------
    dict
        ``{"clips": n, "speakers": n, "unknown_speaker": n, "emotions": {emotion: n},
        "unmapped": {label: n}, "corpora": {corpus: n}}``; project emotions come first in
        ``EMOTIONS`` order, then the other (user) labels sorted.
    """
    emotions = manifest["emotion"].dropna().value_counts().to_dict()
    order = [e for e in EMOTIONS if e in emotions] + sorted(set(emotions) - set(EMOTIONS))
    unmapped = manifest.loc[manifest["emotion"].isna(), "label"].fillna(UNMAPPED)
    return {
        "clips": len(manifest),
        "speakers": int(speaker_keys(manifest).dropna().nunique()),
        "unknown_speaker": int(manifest["speaker"].isna().sum()),
        "emotions": {e: int(emotions[e]) for e in order},
        "unmapped": {k: int(v) for k, v in sorted(unmapped.value_counts().items())},
        "corpora": {k: int(v) for k, v in manifest["corpus"].value_counts().sort_index().items()},
    }


def read_utf8(path: Path) -> str:
    """The text of ``path``, which must be UTF-8 (a byte-order mark is allowed and dropped).

    Raises
    ------
    DataError
        The file is missing or not UTF-8; the message says where the first bad byte is.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 (byte 0x{data[err.start]:02x} on line {line}); "
            "save the file as UTF-8 and try again"
        ) from None


def _text(value: object, column: str, row: int) -> str | None:
    """``value`` as ``str``, or ``None`` for a missing value."""
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return None
    if column == "path" and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise DataError(
            f"manifest row {row}: {column} is {value!r} ({type(value).__name__}); expected text"
        )
    return value or None


def _some(values: list) -> str:
    """The first :data:`SHOWN` of ``values``, and how many more there are."""
    shown = ", ".join(str(v) for v in values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")
