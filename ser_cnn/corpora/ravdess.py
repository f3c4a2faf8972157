"""RAVDESS as a corpus of the corpus layer: its clips as a manifest.

The naming scheme and folder scan stay in :mod:`ser_cnn.ravdess` (the training pipeline's
RAVDESS module); this module only turns its :class:`~ser_cnn.ravdess.Clip` records into
manifest rows: speaker = actor number (``"1"`` … ``"24"``), gender from the actor number, text
= the statement, label = the two-digit emotion code of the file name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ser_cnn import ravdess as _ravdess
from ser_cnn.corpora.files import absolute, mostly_named, refuse_or_list
from ser_cnn.corpora.manifest import make_manifest

NAME = "ravdess"
ENV = "RAVDESS_DIR"
# The corpus's own labels (the emotion code of a file name) -> project emotions: the same list.
LABELS: dict[str, str | None] = {
    f"{code:02d}": emotion for code, emotion in enumerate(_ravdess.EMOTIONS, start=1)
}


def row(clip: _ravdess.Clip) -> dict:
    """The manifest row of one parsed RAVDESS clip."""
    label = f"{clip.emotion_code:02d}"
    return {
        "path": str(clip.path),
        "emotion": LABELS[label],
        "label": label,
        "speaker": str(clip.actor),
        "corpus": NAME,
        "gender": clip.gender,
        "text": _ravdess.STATEMENTS[clip.statement],
    }


def parse_name(path: str | os.PathLike) -> dict:
    """The manifest row a RAVDESS file name describes (raises NameFormatError otherwise)."""
    return row(_ravdess.parse_name(path))


def looks_like(root: str | os.PathLike) -> bool:
    """Whether most audio files under ``root`` have RAVDESS names."""
    return mostly_named(root, parse_name)


def scan(root: str | os.PathLike, *, problems: list[str] | None = None) -> pd.DataFrame:
    """The manifest of every RAVDESS clip under ``root`` (any layout), sorted by path.

    Parameters
    ----------
    root : str or os.PathLike
        An unpacked RAVDESS folder (``Actor_01/`` …) or any folder of RAVDESS-named files.
    problems : list of str, optional
        Where audio files without RAVDESS names are listed (and left out); without it they
        are refused.

    Raises
    ------
    DataError
        ``root`` does not exist (the message says where to get RAVDESS).
    NameFormatError
        Misnamed audio files, when ``problems`` is not given.
    """
    clips, rejected = _ravdess.scan(absolute(Path(root)))
    refuse_or_list(
        [f"{path}: {why}" for path, why in rejected],
        problems,
        f"{root}: {len(rejected)} audio file(s) without RAVDESS names",
    )
    return make_manifest([row(clip) for clip in clips])
