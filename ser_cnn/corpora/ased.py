"""ASED v1 (Retta et al. 2022): the Amharic Speech Emotional Dataset, acted, 65 speakers.

Folders ``01Neutral/ 02Fearful/ 03Happy/ 04Sad/ 05Angry/``; file names ``xn-ss-rr-gg-pp``:
the emotion letter and its folder number, sentence, repetition, gender (``01`` female, ``02``
male) and speaker (``01``–``65``); ``a5-03-01-02-50`` is angry, sentence 3, 1st repetition,
male speaker 50. One published name has an upper-case letter (``S4-…``); a letter whose folder
number disagrees is refused. This module owns that scheme: speaker = the speaker number
(``"50"``), gender as the name says (five speakers have one clip whose gender field differs
from their others: kept as written), label = the emotion's published name, no text.
Source: github.com/wgwangang/ASED_V1; no licence stated, research use only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ser_cnn.corpora.files import mostly_named, scan_names
from ser_cnn.errors import NameFormatError

NAME = "ased"
ENV = "ASED_DIR"
# The corpus's labels (its folder names without the number) -> project emotions, in folder order.
LABELS: dict[str, str | None] = {
    "Neutral": "neutral",
    "Fearful": "fearful",
    "Happy": "happy",
    "Sad": "sad",
    "Angry": "angry",
}
LETTERS = {"n": "Neutral", "f": "Fearful", "h": "Happy", "s": "Sad", "a": "Angry"}
GENDERS = {"01": "female", "02": "male"}
PATTERN = re.compile(r"([nfhsa])(\d)-\d\d-\d\d-(\d\d)-(\d\d)", re.IGNORECASE)
EXAMPLE = "a5-03-01-02-50"


def parse_name(path: str | os.PathLike) -> dict:
    """The manifest row an ASED file name describes.

    Raises
    ------
    NameFormatError
        The name is not like ``a5-03-01-02-50``, or its letter and folder number disagree.
    """
    path = Path(path)
    m = PATTERN.fullmatch(path.stem)
    letter, code = (m.group(1).lower(), int(m.group(2))) if m else (None, None)
    if not m or code != list(LETTERS).index(letter) + 1:
        raise NameFormatError(f"{path.name}: not a file name of the {NAME} corpus ({EXAMPLE})")
    label = LETTERS[letter]
    return {
        "path": str(path),
        "emotion": LABELS[label],
        "label": label,
        "speaker": str(int(m.group(4))),
        "corpus": NAME,
        "gender": GENDERS.get(m.group(3)),
        "text": None,
    }


def looks_like(root: str | os.PathLike) -> bool:
    """Whether most audio files under ``root`` have ASED names."""
    return mostly_named(root, parse_name)


def scan(root: str | os.PathLike, *, problems: list[str] | None = None) -> pd.DataFrame:
    """The manifest of every ASED clip under ``root``, sorted by path.

    Parameters
    ----------
    root : str or os.PathLike
        The ASED folder (``01Neutral/`` …), WAV or FLAC.
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
