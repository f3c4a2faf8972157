"""The corpus layer: every labelled speech collection ser_cnn reads, as one manifest.

This package owns the registry of known corpora (:data:`CORPORA`, name -> module), the one
decision of what kind of input a path is (:func:`detect`), and loading inputs into a manifest
(:func:`load`, :func:`load_many`); the manifest's schema is in
:mod:`ser_cnn.corpora.manifest`. A path given as data is one of:

* a **known corpus** folder: RAVDESS, URDU, ASED or nEMO (:data:`CORPORA`, tried in that order;
  each module's ``looks_like`` decides);
* a **table**: a ``.csv`` / ``.tsv`` file with the columns ``path``, ``emotion`` and optionally
  ``speaker``, ``gender``, ``text`` (:mod:`ser_cnn.corpora.user`);
* a folder of **emotion folders**: one sub-folder of audio per emotion, speakers unknown.

Each corpus module has ``NAME``, ``ENV`` (the environment variable that points at it),
``LABELS`` (the corpus's own labels -> project emotions of :data:`EMOTIONS`, ``None`` where
there is none: never guessed), ``looks_like(root)`` and ``scan(root, *, problems=None)``.
Adding a corpus is one module, one entry in :data:`CORPORA` and a test.

Rows whose label maps to no project emotion are **kept** with ``emotion`` ``None`` and
reported in the problems (``unmapped="drop"`` leaves them out instead). None of the four
corpora has such a label today.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import pandas as pd

from ser_cnn.corpora import ased, nemo, ravdess, urdu, user
from ser_cnn.corpora.files import absolute, check_files
from ser_cnn.corpora.manifest import (
    COLUMNS,
    EMOTIONS,
    SHOWN,
    empty_manifest,
    make_manifest,
    read_manifest,
    speaker_keys,
    summary,
    write_manifest,
)
from ser_cnn.errors import DataError, ParameterError

CORPORA: dict[str, ModuleType] = {m.NAME: m for m in (ravdess, urdu, ased, nemo)}
KINDS = ("corpus", "table", "emotion-folders")
Unmapped = Literal["keep", "drop"]
INPUT_HELP = (
    f"expected a corpus folder ({', '.join(CORPORA)}), a folder with one sub-folder of audio "
    f"per emotion, or a CSV/TSV table ({user.TABLE_HELP})"
)

__all__ = [
    "COLUMNS",
    "CORPORA",
    "EMOTIONS",
    "Input",
    "detect",
    "emotions_of",
    "empty_manifest",
    "load",
    "load_many",
    "make_manifest",
    "read_manifest",
    "speaker_keys",
    "summary",
    "write_manifest",
]


@dataclass(frozen=True)
class Input:
    """What a data path is: ``kind`` one of :data:`KINDS`; ``corpus`` the registry name of a
    known corpus, else ``None``."""

    path: Path
    kind: str
    corpus: str | None = None

    def describe(self) -> str:
        """``"/data/urdu: corpus urdu"`` and the like, for messages and logs."""
        return f"{self.path}: {self.kind}" + (f" {self.corpus}" if self.corpus else "")


def emotions_of(corpus: str) -> tuple[str, ...]:
    """The project emotions a known corpus has, in the order of its ``LABELS``.

    Raises
    ------
    ParameterError
        ``corpus`` is not in :data:`CORPORA`.
    """
    if corpus not in CORPORA:
        raise ParameterError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")
    return tuple(dict.fromkeys(e for e in CORPORA[corpus].LABELS.values() if e is not None))


def detect(path: str | os.PathLike) -> Input:
    """Decide what kind of data ``path`` is (see the module's docstring); nothing is read but
    folder listings and a table's suffix.

    Raises
    ------
    DataError
        ``path`` does not exist, is a file that is not a table, is a folder of several corpora,
        or is a folder of none of the kinds.
    """
    path = absolute(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; {INPUT_HELP}")
    if path.is_file():
        if user.is_table(path):
            return Input(path, "table")
        raise DataError(f"{path}: not a folder or a .csv/.tsv table; {INPUT_HELP}")
    for name, module in CORPORA.items():
        if module.looks_like(path):
            return Input(path, "corpus", name)
    folders = user.emotion_folders(path)
    nested = [
        f"{d.name}/ ({name})" for d in folders for name, m in CORPORA.items() if m.looks_like(d)
    ]
    if nested:
        raise DataError(
            f"{path}: its sub-folders are corpora ({', '.join(nested[:SHOWN])}), not emotions; "
            "give each corpus folder as its own input"
        )
    if folders:
        return Input(path, "emotion-folders")
    raise DataError(f"{path}: no corpus, emotion folders or table found; {INPUT_HELP}")


def load(
    path: str | os.PathLike, *, strict: bool = False, unmapped: Unmapped = "keep"
) -> tuple[pd.DataFrame, list[str]]:
    """Read one data input (kind decided by :func:`detect`) into a manifest.

    Every file is checked cheaply (it exists and libsndfile reads its header). Files that fail,
    misnamed files in a corpus folder, and files a corpus's own index disagrees with are listed
    in ``problems`` and left out.

    Parameters
    ----------
    path : str or os.PathLike
        A corpus folder, a CSV/TSV table, or a folder of emotion folders.
    strict : bool
        Refuse the whole input (DataError) when any clip would be left out.
    unmapped : {"keep", "drop"}
        Rows whose corpus label has no project emotion: kept with ``emotion`` ``None``, or left
        out; either way one line per label in ``problems`` says how many.

    Returns
    -------
    manifest : pandas.DataFrame
        The usable clips (see :mod:`ser_cnn.corpora.manifest`), in the input's order.
    problems : list of str
        One line per clip left out (file and reason), then the unmapped-label notes.

    Raises
    ------
    DataError
        See :func:`detect`; a table that is not UTF-8, lacks or adds columns, or lists a path
        twice; ``strict`` and clips left out; no usable clip at all.
    """
    if unmapped not in ("keep", "drop"):
        raise ParameterError(f"unmapped must be 'keep' or 'drop', got {unmapped!r}")
    found = detect(path)
    problems: list[str] = []
    if found.kind == "corpus":
        manifest = CORPORA[found.corpus].scan(found.path, problems=problems)
    elif found.kind == "table":
        manifest = user.read_table(found.path)
    else:
        manifest = user.read_emotion_folders(found.path)
    manifest, unreadable = check_files(manifest)
    problems += unreadable
    if strict and problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise DataError(
            f"{found.describe()}: {len(problems)} clip(s) unusable: "
            f"{'; '.join(problems[:SHOWN])}{more}"
        )
    manifest, notes = _unmapped(manifest, unmapped)
    if manifest.empty:
        raise DataError(f"{found.describe()}: no usable clips" + _first(problems))
    return manifest, problems + notes


def load_many(
    paths: Iterable[str | os.PathLike], *, strict: bool = False, unmapped: Unmapped = "keep"
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`load` each of ``paths`` and join the manifests in that order.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Data inputs, e.g. every ``--data`` of a command line.
    strict, unmapped
        As for :func:`load`, applied to each input.

    Returns
    -------
    manifest : pandas.DataFrame
        All inputs' clips, input by input.
    problems : list of str
        Every input's problems, in order.

    Raises
    ------
    DataError
        As for :func:`load`; no paths; a clip in two inputs (named, with both inputs).
    """
    paths = list(paths)
    if not paths:
        raise DataError(f"no data given; {INPUT_HELP}")
    parts, problems, seen, twice = [], [], {}, []
    for path in paths:
        manifest, found = load(path, strict=strict, unmapped=unmapped)
        for clip in manifest["path"]:
            if clip in seen:
                twice.append(f"{clip} (in {seen[clip]} and {path})")
            seen.setdefault(clip, path)
        parts.append(manifest)
        problems += found
    if twice:
        more = f" and {len(twice) - SHOWN} more" if len(twice) > SHOWN else ""
        raise DataError(
            f"{len(twice)} clip(s) are in two inputs: {'; '.join(twice[:SHOWN])}{more}; "
            "give each clip once"
        )
    return make_manifest(pd.concat(parts, ignore_index=True)), problems


def _unmapped(manifest: pd.DataFrame, unmapped: Unmapped) -> tuple[pd.DataFrame, list[str]]:
    """Keep or drop the rows without a project emotion; a note per label."""
    missing = manifest["emotion"].isna()
    notes = [
        f"{corpus}: {n} clip(s) labelled {label!r} have no project emotion; "
        + ("left out" if unmapped == "drop" else "kept with no emotion")
        for (corpus, label), n in manifest[missing].groupby(["corpus", "label"]).size().items()
    ]
    if unmapped == "drop":
        manifest = manifest[~missing].reset_index(drop=True)
    return manifest, notes


def _first(problems: list[str]) -> str:
    return f" (e.g. {problems[0]})" if problems else ""
