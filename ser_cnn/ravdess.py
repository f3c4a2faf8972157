"""RAVDESS: the naming scheme, folder scanning and speaker-independent (actor-wise) splits.

This is the only module that knows how RAVDESS names its files. A name such as
``03-01-06-01-02-01-12.wav`` holds seven two-digit fields:
modality-vocal channel-emotion-intensity-statement-repetition-actor.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ser_cnn.errors import DataError, NameFormatError, ParameterError

if TYPE_CHECKING:  # pandas is imported by the callers that have a manifest
    import pandas as pd

# The eight emotions in RAVDESS code order (code 01 is "neutral"). Models output in this order.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
ACTORS = tuple(range(1, 25))
SUFFIXES = (".wav", ".flac")  # the official zip has WAV; a lossless FLAC copy works the same
EXAMPLE_NAME = "03-01-06-01-02-01-12.wav"
FOLDS_FILE = Path(__file__).with_name("ravdess_folds.json")  # package data

DEFAULT_DATA_DIR = Path("data/ravdess")
ZENODO_HELP = (
    "RAVDESS speech audio comes from Zenodo record 1188976 "
    "(https://zenodo.org/records/1188976, file Audio_Speech_Actors_01-24.zip, 208 MB, "
    "CC BY-NC-SA 4.0). Fetch and unpack it with `python scripts/download_ravdess.py`, "
    "or point ser_cnn at an unpacked copy with --data-dir DIR or the RAVDESS_DIR variable."
)


def gender_of(actor: int) -> str:
    """RAVDESS actors with odd numbers are male, even numbers female."""
    return "male" if actor % 2 else "female"


@dataclass(frozen=True)
class Clip:
    """One RAVDESS recording, as its file name describes it."""

    path: Path
    modality: str
    vocal_channel: str
    emotion: str
    emotion_code: int  # 1..8; EMOTIONS[emotion_code - 1] == emotion
    intensity: str
    statement: int
    repetition: int
    actor: int
    gender: str

    @property
    def stem(self) -> str:
        return self.path.stem

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def parse_name(path: str | os.PathLike) -> Clip:
    """Read the seven fields of a RAVDESS file name.

    Parameters
    ----------
    path : str or os.PathLike
        A path whose file name is like ``03-01-06-01-02-01-12.wav`` (or ``.flac``).

    Raises
    ------
    NameFormatError
        When the name does not have seven two-digit fields with valid codes.
    """
    path = Path(path)
    expected = f"expected a RAVDESS name like {EXAMPLE_NAME}"
    fields = path.stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isdigit() for f in fields):
        raise NameFormatError(f"{path.name}: not a RAVDESS file name; {expected}")
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, fields)
    checks = [
        ("modality", modality, MODALITIES),
        ("vocal channel", channel, VOCAL_CHANNELS),
        ("emotion", emotion, range(1, len(EMOTIONS) + 1)),
        ("intensity", intensity, INTENSITIES),
        ("statement", statement, STATEMENTS),
        ("repetition", repetition, (1, 2)),
        ("actor", actor, ACTORS),
    ]
    for field, value, valid in checks:
        if value not in valid:
            raise NameFormatError(
                f"{path.name}: {field} code {value:02d} is not one of "
                f"{', '.join(f'{v:02d}' for v in valid)}; {expected}"
            )
    if emotion == 1 and intensity == 2:
        raise NameFormatError(
            f"{path.name}: neutral has no strong intensity in RAVDESS; {expected}"
        )
    return Clip(
        path=path,
        modality=MODALITIES[modality],
        vocal_channel=VOCAL_CHANNELS[channel],
        emotion=EMOTIONS[emotion - 1],
        emotion_code=emotion,
        intensity=INTENSITIES[intensity],
        statement=statement,
        repetition=repetition,
        actor=actor,
        gender=gender_of(actor),
    )


def find_audio(root: str | os.PathLike, suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """All files under ``root`` (recursively) whose suffix is one of ``suffixes``, sorted."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(
            Path(dirpath, f)
            for f in filenames
            if Path(f).suffix.lower() in suffixes and not f.startswith(".")
        )
    return sorted(found)


def scan(root: str | os.PathLike) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """Find every RAVDESS clip under ``root`` (the layout of the official zip, or any other).

    Returns
    -------
    clips : list of Clip
        One per correctly named ``.wav`` or ``.flac`` file, sorted by path.
    rejected : list of (Path, str)
        Audio files whose names are not RAVDESS names, with the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"RAVDESS folder {root} does not exist. {ZENODO_HELP}")
    clips, rejected = [], []
    for path in find_audio(root):
        try:
            clips.append(parse_name(path))
        except NameFormatError as err:
            rejected.append((path, str(err)))
    return clips, rejected


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$RAVDESS_DIR``, else ``data/ravdess``."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("RAVDESS_DIR") or DEFAULT_DATA_DIR)


# ---------------------------------------------------------------------------------------------
# Speaker-independent splits


@dataclass(frozen=True)
class Split:
    """Actors of each part; no actor is in two parts."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    fold: int | None = None

    def __post_init__(self) -> None:
        parts = {"train": self.train, "val": self.val, "test": self.test}
        for name, actors in parts.items():
            bad = [a for a in actors if a not in ACTORS]
            if bad:
                raise ParameterError(f"{name} actors {bad} are not RAVDESS actors 1..24")
            if len(set(actors)) != len(actors):
                raise ParameterError(f"{name} actors {list(actors)} repeat an actor")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(parts[a]) & set(parts[b])
            if shared:
                raise ParameterError(f"actors {sorted(shared)} are in both {a} and {b}")
        if not self.train or not self.test:
            raise ParameterError("a split needs at least one training and one test actor")

    def to_dict(self) -> dict:
        return {
            "fold": self.fold,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    def record(self) -> dict:
        """What a run's ``config.json`` stores as its ``split``."""
        return {"kind": "actor-wise", **self.to_dict()}

    def masks(self, manifest: pd.DataFrame) -> dict[str, np.ndarray]:
        """Boolean masks of a cache manifest's rows of each part (train, val, test)."""
        return {name: select(manifest, getattr(self, name)) for name in ("train", "val", "test")}

    def speakers(self, manifest: pd.DataFrame) -> np.ndarray:
        """Each row's speaker: its actor number."""
        return manifest["actor"].to_numpy()

    def describe(self) -> str:
        return f"actors: train {list(self.train)}  val {list(self.val)}  test {list(self.test)}"


def load_folds() -> dict[int, tuple[int, ...]]:
    """The six published test-actor folds (EmoBox, Ma et al. 2024), shipped with the package."""
    text = FOLDS_FILE.read_text()
    return {int(k): tuple(v) for k, v in json.loads(text)["folds"].items()}


def split(
    fold: int | None = None,
    *,
    test_actors: list[int] | tuple[int, ...] | None = None,
    val_actors: list[int] | tuple[int, ...] | None = None,
) -> Split:
    """Actor-wise train / validation / test split.

    Parameters
    ----------
    fold : int, optional
        1..6: test actors of that published fold. Exclusive with ``test_actors``.
    test_actors, val_actors : list of int, optional
        Explicit actor numbers. Without ``val_actors``, one male and one female actor are taken
        from the remaining actors: the first of each met while walking through the test actors
        of the following folds (fold k+1, k+2, ...), so each fold validates on different voices
        and the choice never depends on a random seed.

    Returns
    -------
    Split
        Training actors are every actor in neither the test nor the validation part.
    """
    folds = load_folds()
    if (fold is None) == (test_actors is None):
        raise ParameterError("give either fold=1..6 or test_actors=[...], not both or neither")
    if fold is not None:
        if fold not in folds:
            raise ParameterError(f"fold must be one of {sorted(folds)}, got {fold}")
        test = folds[fold]
        order = [folds[(fold + i - 1) % len(folds) + 1] for i in range(1, len(folds))]
    else:
        test = tuple(test_actors)
        order = [folds[k] for k in sorted(folds)]
    if val_actors is None:
        chosen: dict[str, int] = {}
        for actor in (a for actors in order for a in actors):
            if actor not in test:
                chosen.setdefault(gender_of(actor), actor)
        val = tuple(sorted(chosen.values()))
    else:
        val = tuple(val_actors)
    train = tuple(a for a in ACTORS if a not in test and a not in val)
    return Split(train=train, val=val, test=tuple(sorted(test)), fold=fold)


# ---------------------------------------------------------------------------------------------
# Manifest helpers: rows of a preprocessed cache's manifest (one per clip)


def select(manifest: pd.DataFrame, actors: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the manifest rows whose actor is in ``actors``."""
    return manifest["actor"].isin(actors).to_numpy()


def labels_of(manifest: pd.DataFrame) -> np.ndarray:
    """Class indices (0..7, in EMOTIONS order) of the manifest rows."""
    return manifest["emotion_code"].to_numpy(dtype=np.int64) - 1
