"""URDU (Latif et al. 2018): natural emotional speech cut from Urdu television talk shows.

400 clips in ``Angry/ Happy/ Neutral/ Sad/``, named ``SGX_FXX_EYY``: ``S``, the speaker's
gender (``M``/``F``) and number, the speaker's file number, the emotion letter and its number;
``SM1_F01_A12`` is male speaker 1's first file, the 12th angry clip. This module owns that
scheme: speaker = gender letter and number (``"M1"``; ``SM1`` and ``SF1`` are two people),
label = the emotion's published name (``"Angry"``), no text.
Source: github.com/siddiquelatif/URDU-Dataset; research use only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ser_cnn.corpora.files import mostly_named, scan_names
from ser_cnn.errors import NameFormatError

NAME = "urdu"
ENV = "URDU_DIR"
# The corpus's labels (its folder names) -> project emotions, in the corpus's own order.
LABELS: dict[str, str | None] = {
    "Angry": "angry",
    "Happy": "happy",
    "Neutral": "neutral",
    "Sad": "sad",
}
LETTERS = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad"}  # file name letter -> label
GENDERS = {"M": "male", "F": "female"}
PATTERN = re.compile(r"S([MF])(\d+)_F\d+_([AHNS])\d+")
EXAMPLE = "SM1_F01_A12"


def parse_name(path: str | os.PathLike) -> dict:
    """The manifest row an URDU file name describes.

    Raises
    ------
    NameFormatError
        The name is not like ``SM1_F01_A12``.
    """
    path = Path(path)
    m = PATTERN.fullmatch(path.stem)
    if not m:
        raise NameFormatError(f"{path.name}: not a file name of the {NAME} corpus ({EXAMPLE})")
    gender, number, letter = m.groups()
    label = LETTERS[letter]
    return {
        "path": str(path),
        "emotion": LABELS[label],
        "label": label,
        "speaker": f"{gender}{int(number)}",
        "corpus": NAME,
        "gender": GENDERS[gender],
        "text": None,
    }


def looks_like(root: str | os.PathLike) -> bool:
    """Whether most audio files under ``root`` have URDU names."""
    return mostly_named(root, parse_name)


def scan(root: str | os.PathLike, *, problems: list[str] | None = None) -> pd.DataFrame:
    """The manifest of every URDU clip under ``root``, sorted by path.

    Parameters
    ----------
    root : str or os.PathLike
        The URDU folder (``Angry/`` …), WAV or FLAC.
    problems : list of str, optional
        Where misnamed audio files are listed (and left out); without it they are refused.

    Raises
    ------
    DataError
        ``root`` does not exist.
    NameFormatError
        Misnamed audio files, when ``problems`` is not given.
    """
    return scan_names(root, parse_name, corpus=NAME, problems=problems)
