"""Shared fixtures: synthetic speech-like audio, a tiny RAVDESS-style folder tree, and the tiny
caches and split that the training, ensemble and CLI tests train on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.features.logmel import FeatureConfig
from ser_cnn.ravdess import Split, split

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
WAV_SAMPLES = SHARED_DATA / "ravdess-wav-samples"


def voice(
    *, sr: int = 16_000, seconds: float = 1.0, f0: float = 180.0, pad: float = 0.3, seed: int = 0
) -> np.ndarray:
    """A voiced, harmonic tone with a syllable-like envelope between quiet noise at both ends.

    Returns float32 samples in [-1, 1], shape (round((seconds + 2 * pad) * sr),).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))  # vibrato so frames differ
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * np.hanning(len(t))
    speech = 0.3 * envelope * tone / 2.3
    quiet = lambda n: 1e-4 * rng.standard_normal(n)  # noqa: E731
    n_pad = round(pad * sr)
    return np.concatenate([quiet(n_pad), speech + quiet(len(t)), quiet(n_pad)]).astype(np.float32)


def ravdess_name(
    emotion: int, actor: int, *, intensity: int = 1, statement: int = 1, repetition: int = 1
) -> str:
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


def make_ravdess_tree(
    root: Path,
    *,
    actors: tuple[int, ...] = (1, 2, 3, 4),
    emotions: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8),
    statements: tuple[int, ...] = (1,),
    sr: int = 16_000,
    suffix: str = ".wav",
) -> list[Path]:
    """Write a RAVDESS-style tree (Actor_XX/03-01-EE-...-XX.wav) of synthetic clips.

    Each emotion gets its own pitch, so a model can tell them apart; each actor a small offset.
    """
    paths = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion in emotions:
            for statement in statements:
                f0 = 110.0 * 2 ** ((emotion - 1) / 4) * (1 + 0.01 * actor)
                y = voice(sr=sr, seconds=1.2, f0=f0, seed=actor * 100 + emotion * 10 + statement)
                path = folder / (ravdess_name(emotion, actor, statement=statement) + suffix)
                sf.write(path, y, sr)
                paths.append(path)
    return paths


SPEAKERS = (("anna", "female"), ("ben", "male"), ("cleo", "female"))
PITCH = {"neutral": 120.0, "happy": 250.0, "sad": 100.0, "angry": 300.0, "frustrated": 200.0}


def make_table(root: Path, emotions, *, clips: int = 2, speakers=SPEAKERS) -> Path:
    """A user's table ``root/mine.csv`` (path,emotion,speaker,gender) and its audio:
    ``clips`` synthetic clips of every speaker and emotion, each emotion at its own pitch."""
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = ["path,emotion,speaker,gender"]
    for s, (speaker, gender) in enumerate(speakers):
        for emotion in emotions:
            for k in range(clips):
                name = f"{speaker}_{emotion}_{k}.wav"
                f0 = PITCH.get(emotion, 150.0) * (1 + 0.02 * s)
                sf.write(audio / name, voice(seconds=1.2, f0=f0, seed=10 * s + k), 16_000)
                rows.append(f"audio/{name},{emotion},{speaker},{gender}")
    table = root / "mine.csv"
    table.write_text("\n".join(rows) + "\n")
    return table


@pytest.fixture
def ravdess_tree(tmp_path: Path) -> Path:
    """A tiny RAVDESS tree: 4 actors × 8 emotions, 16 kHz mono WAV."""
    root = tmp_path / "ravdess"
    make_ravdess_tree(root)
    return root


@pytest.fixture
def ravdess_dir() -> Path:
    """The full RAVDESS speech set from $RAVDESS_DIR; the test is skipped without it."""
    value = os.environ.get("RAVDESS_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("RAVDESS_DIR is not set to the full RAVDESS speech folder")
    return Path(value)


# -- the tiny training set ----------------------------------------------------------------------
# Six synthetic actors, one clip per emotion each; a 1 s window of 32 mel bands keeps a tiny CNN
# fast, everything else is as in a real run. Built once per session: preprocessing is the slow
# part, and no test writes into these folders (each trains into its own tmp_path).
TINY_ACTORS = (1, 2, 3, 4, 5, 6)


@pytest.fixture(scope="session")
def tiny_features() -> FeatureConfig:
    """The tiny log-mel settings: 32 bands × 101 frames."""
    return FeatureConfig(n_mels=32, duration=1.0)


@pytest.fixture(scope="session")
def tiny_split() -> Split:
    """Test actors 1, 2; validation actors 3, 4; training actors 5, 6 (the others are absent)."""
    return split(test_actors=[1, 2], val_actors=[3, 4])


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    """The RAVDESS-style tree of the tiny training set (read only)."""
    root = tmp_path_factory.mktemp("tiny") / "ravdess"
    make_ravdess_tree(root, actors=TINY_ACTORS)
    return root


@pytest.fixture(scope="session")
def logmel_cache(tiny_tree, tiny_features) -> Path:
    """The CNN's cache of the tiny training set (read only)."""
    return build_cache(tiny_tree, tiny_tree.parent / "logmel", tiny_features)


@pytest.fixture(scope="session")
def classic_cache(tiny_tree) -> Path:
    """The MLP's cache of the tiny training set (read only)."""
    from ser_cnn.features.classic import DEFAULT_CLASSIC

    return build_cache(tiny_tree, tiny_tree.parent / "classic", DEFAULT_CLASSIC)


def build_cache(tree: Path, out: Path, config) -> Path:
    """Preprocess ``tree`` into ``out`` with ``config``, in this process."""
    from ser_cnn.features.cache import preprocess

    preprocess(tree, out, config=config, jobs=1, progress=False)
    return out
