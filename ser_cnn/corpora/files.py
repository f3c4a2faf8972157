"""What the corpus readers share: walking a folder of audio whose file names say what each clip
is, listing or refusing the files that do not fit, and the cheap check that a file is audio.

Each corpus module supplies only its ``parse_name``; the walk, the order of the rows (that of
:func:`ser_cnn.ravdess.find_audio`: sorted by path), and what happens to misnamed files are
decided here, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ser_cnn.audio.io import audio_info
from ser_cnn.corpora.manifest import SHOWN, make_manifest
from ser_cnn.errors import AudioError, DataError, NameFormatError
from ser_cnn.ravdess import find_audio

CORPUS_SUFFIXES = (".wav", ".flac")  # the corpora as published (WAV) or as lossless copies
LOOKS_LIKE_SHARE = 0.5  # a folder is a corpus when more than this share of its audio fits

Parse = Callable[[Path], dict]


def absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute without resolving symbolic links (a user's link stays a link)."""
    return Path(os.path.abspath(path))  # noqa: PTH100 (resolve() would follow links)


def scan_names(
    root: str | os.PathLike,
    parse_name: Parse,
    *,
    corpus: str,
    problems: list[str] | None = None,
    suffixes: tuple[str, ...] = CORPUS_SUFFIXES,
) -> pd.DataFrame:
    """A manifest of every audio file under ``root`` whose name ``parse_name`` understands.

    Parameters
    ----------
    root : str or os.PathLike
        The corpus folder; files are found recursively, whatever the sub-folders.
    parse_name : callable
        Path -> manifest row (a dict); raises :class:`NameFormatError` for a name that is not
        the corpus's.
    corpus : str
        The corpus's name, for messages.
    problems : list of str, optional
        Where misnamed files are listed (and left out). Without it they are refused.
    suffixes : tuple of str
        Audio file suffixes to look at.

    Raises
    ------
    DataError
        ``root`` is not a folder.
    NameFormatError
        Some audio file is misnamed and ``problems`` was not given.
    """
    root = absolute(root)
    if not root.is_dir():
        raise DataError(f"{corpus} folder {root} does not exist")
    rows, misnamed = [], []
    for path in find_audio(root, suffixes):
        try:
            rows.append(parse_name(path))
        except NameFormatError as err:
            misnamed.append(f"{path}: {err}")
    refuse_or_list(
        misnamed, problems, f"{root}: {len(misnamed)} audio file(s) misnamed for {corpus}"
    )
    return make_manifest(rows)


def mostly_named(root: str | os.PathLike, parse_name: Parse) -> bool:
    """Whether more than :data:`LOOKS_LIKE_SHARE` of the audio files under ``root`` (at least
    one) have names that ``parse_name`` understands."""
    root = Path(root)
    found = find_audio(root, CORPUS_SUFFIXES) if root.is_dir() else []
    ok = 0
    for path in found:
        try:
            parse_name(path)
            ok += 1
        except NameFormatError:
            pass
    return bool(found) and ok / len(found) > LOOKS_LIKE_SHARE


def refuse_or_list(
    found: list[str], problems: list[str] | None, summary: str, *, error: type = NameFormatError
) -> None:
    """Append ``found`` to ``problems``, or, without a list, raise ``error`` quoting them."""
    if not found:
        return
    if problems is not None:
        problems.extend(found)
        return
    more = f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else ""
    raise error(f"{summary}: {'; '.join(found[:SHOWN])}{more}")


def unreadable(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not an audio file libsndfile can open (missing, empty, a folder, not
    audio), or ``None`` when it is. Reads the header only."""
    try:
        audio_info(path)
    except AudioError as err:
        return str(err)
    return None


def check_files(manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop the rows whose file is missing or unreadable.

    Returns
    -------
    manifest : pandas.DataFrame
        The rows whose file passed :func:`unreadable`, in their order, reindexed.
    problems : list of str
        One line per dropped row, naming the file and the problem.
    """
    problems, keep = [], []
    for path in manifest["path"]:
        why = unreadable(path)
        keep.append(why is None)
        if why is not None:
            problems.append(why if why.startswith(str(path)) else f"{path}: {why}")
    return manifest[keep].reset_index(drop=True), problems
