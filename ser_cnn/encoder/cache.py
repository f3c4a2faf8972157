"""Cache the frozen encoder's hidden states of every clip, and of its degraded copies.

The encoder is frozen, so what it makes of a clip never changes: each clip (and each of its
degraded copies) is encoded once and every head, fold and seed reads the cache. Data flows one
way: manifest → audio → degraded copies (:func:`ser_cnn.degrade.augment`) → Whisper log-mel →
encoder → cache. Layout::

    settings.json    feature settings, encoder source (package, version, sha256), copies, seed
    manifest.csv     the manifest's rows, each with its ``key`` and frame count
    states/<key>.npy          float16 (n_layer + 1, frames, n_state): the clip as recorded
    states/<key>.copy<j>.npy  the same for degraded copy j (j = 1 .. copies)

Copy j of a clip is drawn from ``default_rng([seed, crc32(key), j])``, so adding clips to a
manifest changes no other clip's copies. Babble in a copy is made only of the clips
``babble_pool`` offers for it (for RAVDESS: the actors tested in the same fold, so a test actor's
voice never lies under a training clip). Interrupted runs resume: every array is written under
a temporary name and renamed, and finished arrays are not redone.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.errors import DataError
from ser_cnn.preprocess import atomic_save, atomic_write_text

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.csv"
STATES_DIR = "states"
CACHE_FORMAT = 1  # bump when the layout above changes
BATCH_SECONDS = 40.0  # s of audio per encoder call: bounded memory, few calls
BUCKET_FRAMES = 100  # log-mel frames (1 s): padded lengths come in steps of this, few shapes


def clip_key(row: dict) -> str:
    """A clip's name in the cache: its corpus and file stem (stable across machines)."""
    return f"{row['corpus']}-{Path(row['path']).stem}"


def state_file(key: str, copy: int = 0) -> str:
    """Relative path of a clip's states (copy 0: as recorded)."""
    return f"{STATES_DIR}/{key}.npy" if copy == 0 else f"{STATES_DIR}/{key}.copy{copy}.npy"


def build_cache(
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    encoder,
    feature_config,
    copies: int = 0,
    seed: int = 0,
    babble_pool: Callable[[pd.DataFrame, int], Sequence[int]] | None = None,
    progress: bool = True,
) -> Path:
    """Encode every clip of ``manifest`` (and ``copies`` degraded copies of each) into a cache.

    Parameters
    ----------
    manifest : pd.DataFrame
        Rows with at least ``path``, ``corpus`` and ``speaker``.
    out_dir : path
        The cache folder; an existing cache must have been made with the same settings.
    encoder : ser_cnn.encoder.whisper.Encoder
        The frozen encoder (its source is recorded).
    feature_config : ser_cnn.features.WhisperFeatureConfig
    copies, seed : int
        Degraded copies per clip and the seed of their draws.
    babble_pool : callable, optional
        ``babble_pool(manifest, i)`` gives the row numbers whose audio may be babble under clip
        ``i``; default: clips of other speakers of the same corpus.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from ser_cnn.audio import load_audio
    from ser_cnn.degrade import augment

    out_dir = Path(out_dir)
    manifest = manifest.reset_index(drop=True).copy()
    manifest["key"] = [clip_key(r) for r in manifest.to_dict("records")]
    if manifest["key"].duplicated().any():
        dup = manifest.loc[manifest["key"].duplicated(), "key"].tolist()[:5]
        raise DataError(f"two clips share a cache key (corpus and file stem): {dup}")
    settings = {
        "format": CACHE_FORMAT,
        "features": {"kind": feature_config.kind, **feature_config.to_dict()},
        "encoder": encoder.source.to_dict(),
        "copies": copies,
        "seed": seed,
    }
    _prepare(out_dir, settings)
    sr = feature_config.sample_rate
    pool = babble_pool or _same_corpus_other_speakers
    audio: dict[int, np.ndarray] = {}

    def samples(i: int) -> np.ndarray:
        if i not in audio:
            audio[i] = load_audio(manifest.at[i, "path"], target_sr=sr)
        return audio[i]

    todo = [
        (i, j)
        for i in range(len(manifest))
        for j in range(copies + 1)
        if not (out_dir / state_file(manifest.at[i, "key"], j)).exists()
    ]
    started, done = time.monotonic(), 0
    batch: list[tuple[int, int, np.ndarray]] = []

    def flush() -> None:
        nonlocal done
        states = encoder.encode([m for _, _, m in batch])
        for (i, j, _), s in zip(batch, states, strict=True):
            atomic_save(out_dir / state_file(manifest.at[i, "key"], j), s.astype(np.float16))
        done += len(batch)
        batch.clear()
        if progress:
            rate = done / (time.monotonic() - started)
            print(f"\rencoded {done}/{len(todo)} ({rate:.1f}/s)", end="", flush=True)

    for i, j in todo:
        y = samples(i)
        if j > 0:
            rng = np.random.default_rng([seed, zlib.crc32(manifest.at[i, "key"].encode()), j])
            babble = [samples(k) for k in _draw(pool(manifest, i), rng)]
            y = augment(y, sr, rng=rng, babble=babble)
        batch.append((i, j, feature_config.compute(y, sr=sr)))
        if sum(m.shape[1] for _, _, m in batch) * feature_config.hop_length >= BATCH_SECONDS * sr:
            flush()
    if batch:
        flush()
    if progress and todo:
        print()
    frames = [
        int(np.load(out_dir / state_file(k), mmap_mode="r").shape[1]) for k in manifest["key"]
    ]
    table = manifest.assign(frames=frames)
    atomic_write_text(out_dir / MANIFEST_FILE, table.to_csv(index=False))
    return out_dir


def load_states(
    cache_dir: str | os.PathLike, *, copies: Sequence[int] = (0,)
) -> tuple[pd.DataFrame, list[list[np.ndarray]]]:
    """The cached manifest and, for each requested copy, every clip's states.

    Returns
    -------
    manifest : pd.DataFrame
    states : list (one per copy) of list (one per clip) of np.ndarray, float16,
        shape (n_layer + 1, frames, n_state)
    """
    manifest = load_manifest(cache_dir)
    return manifest, [
        [np.load(Path(cache_dir) / state_file(k, j)) for k in manifest["key"]] for j in copies
    ]


def load_pooled(
    cache_dir: str | os.PathLike, *, copies: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cached manifest and every clip's pooled states (:func:`ser_cnn.encoder.head.pool`),
    computed once per copy and kept in the cache as ``pooled.copy<j>.npy``.

    Returns
    -------
    manifest : pd.DataFrame
    pooled : np.ndarray, shape (copies + 1, n_clips, n_layer + 1, 2 * n_state), float32
    """
    from ser_cnn.encoder.head import pool

    cache_dir = Path(cache_dir)
    manifest = load_manifest(cache_dir)
    out = []
    for j in range(copies + 1):
        path = cache_dir / f"pooled.copy{j}.npy"
        if not path.exists():
            arrays = [pool(np.load(cache_dir / state_file(k, j))) for k in manifest["key"]]
            atomic_save(path, np.stack(arrays))
        out.append(np.load(path))
    return manifest, np.stack(out)


def load_manifest(cache_dir: str | os.PathLike) -> pd.DataFrame:
    """The manifest of a finished cache (strings stay strings: speaker "01" is not 1)."""
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.exists():
        raise DataError(f"{cache_dir} is not a finished encoder cache (no {MANIFEST_FILE})")
    return pd.read_csv(path, dtype={"speaker": str, "label": str}, keep_default_na=False)


def cache_settings(cache_dir: str | os.PathLike) -> dict:
    return json.loads((Path(cache_dir) / SETTINGS_FILE).read_text())


def fold_group_pool(test_groups: dict[int, Sequence[int]]):
    """Babble for RAVDESS: the other actors tested in the same fold (always on the same side)."""
    group_of = {int(a): g for g, actors in test_groups.items() for a in actors}

    def pool(manifest: pd.DataFrame, i: int) -> Sequence[int]:
        speaker = manifest.at[i, "speaker"]
        if manifest.at[i, "corpus"] != "ravdess":
            return _same_corpus_other_speakers(manifest, i)
        group = group_of[int(speaker)]
        mates = manifest["speaker"].map(lambda s: group_of.get(int(s)) == group)
        ravdess = manifest["corpus"] == "ravdess"
        return np.flatnonzero(ravdess & mates & (manifest["speaker"] != speaker))

    return pool


def _same_corpus_other_speakers(manifest: pd.DataFrame, i: int) -> Sequence[int]:
    same = manifest["corpus"] == manifest.at[i, "corpus"]
    return np.flatnonzero(same & (manifest["speaker"] != manifest.at[i, "speaker"]))


BABBLE_TALKERS = 12  # clips offered to each babble, as in the CNN's copies


def _draw(pool: Sequence[int], rng: np.random.Generator) -> Sequence[int]:
    pool = np.asarray(pool)
    return rng.choice(pool, min(BABBLE_TALKERS, len(pool)), replace=False) if len(pool) else []


def _prepare(out_dir: Path, settings: dict) -> None:
    path = out_dir / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            raise DataError(
                f"{out_dir} holds an encoder cache made with other settings; "
                "choose another folder or delete it"
            )
        return
    (out_dir / STATES_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
