"""Cache the frozen encoder's hidden states of every clip, and of its degraded copies.

The encoder is frozen, so what it makes of a clip never changes: each clip (and each of its
degraded copies) is encoded once and every head, fold and seed reads the cache. Data flows one
way: manifest → audio → degraded copies (:func:`ser_cnn.audio.degrade.augment`) → Whisper log-mel →
encoder → cache. Layout::

    settings.json    feature settings, encoder source (package, version, sha256), copies, seed
                     (and ``babble``, where the copies' babble follows a data split; ``chain``,
                     where the copies' degradations are drawn otherwise than by default;
                     ``front_end``, where every version passed through a run's front end)
    manifest.csv     the manifest's rows, each with its ``key`` and frame count
    errors.csv       clips whose audio could not be analysed (left out; retried next time)
    pooled.copy<j>.npy        every clip's pooled states (:func:`load_pooled`), made on demand
    states/<key>.npy          float16 (n_layer + 1, frames, n_state): the clip as recorded
    states/<key>.copy<j>.npy  the same for degraded copy j (j = 1 .. copies)

Copy j of a clip is drawn from ``default_rng([seed, crc32(key), j])``, so adding clips to a
manifest changes no other clip's copies. Babble in a copy is made only of the clips
``babble_pool`` offers for it (for RAVDESS: the actors tested in the same fold, so a test actor's
voice never lies under a training clip; for any other data split by :mod:`ser_cnn.corpora.splits`:
:func:`data_fold_pool`, the same rule). Interrupted runs resume: every array is written under
a temporary name and renamed, and finished arrays are not redone; the manifest is written last,
so a cache without one is unfinished.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ser_cnn.errors import AudioError, DataError
from ser_cnn.features.cache import RAVDESS, atomic_save, atomic_write_text, cache_keys

if TYPE_CHECKING:
    from ser_cnn.audio.front_end import FrontEnd

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.csv"
ERRORS_FILE = "errors.csv"
STATES_DIR = "states"
CACHE_FORMAT = 1  # bump when the layout above changes
BATCH_SECONDS = 40.0  # s of audio per encoder call: bounded memory, few calls
BUCKET_FRAMES = 100  # log-mel frames (1 s): padded lengths come in steps of this, few shapes
# A noise gate's always-noisy copies (HeadTraining.noisy_copies): the chain as usual, but noise
# (white, pink or babble) in every one, at 0-20 dB SNR, below the usual chain's 8-30 dB.
NOISY_CHAIN = {"p": {"noise": 1.0}, "snr_range": [0.0, 20.0]}


def noisy_chain(copies: int, noisy_copies: int) -> dict | None:
    """The ``chain`` of :func:`build_cache` whose last ``noisy_copies`` of ``copies`` always
    carry noise (:data:`NOISY_CHAIN`), or None (every copy as usual)."""
    if not noisy_copies:
        return None
    return NOISY_CHAIN | {"from_copy": copies - noisy_copies + 1}


def noisy_cache_command(data: str, out: str, copies: int, noisy_copies: int) -> str:
    """The ``tools/encode_cache.py`` command of such a cache."""
    return (
        f"python tools/encode_cache.py --data {data} --out {out} --copies {copies} "
        f"--noisy {noisy_copies}"
    )


def clip_keys(manifest: pd.DataFrame) -> list[str]:
    """Each clip's name in the cache: its corpus and file stem (stable across machines), a hash
    of its path added where two clips would share one (:func:`ser_cnn.features.cache.cache_keys`,
    whose RAVDESS keys lack the corpus: it is added here, as these caches always named them)."""
    return [
        f"{RAVDESS}-{k}" if c == RAVDESS else k
        for k, c in zip(cache_keys(manifest), manifest["corpus"], strict=True)
    ]


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
    babble: str | None = None,
    chain: dict | None = None,
    front_end: FrontEnd | None = None,
    strict: bool = False,
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
    feature_config : ser_cnn.features.logmel.WhisperFeatureConfig
    copies, seed : int
        Degraded copies per clip and the seed of their draws.
    babble_pool : callable, optional
        ``babble_pool(manifest, i)`` gives the row numbers whose audio may be babble under clip
        ``i``; default: clips of other speakers of the same corpus.
    babble : str, optional
        What ``babble_pool`` offers, in words; stored in the settings (a cache whose copies
        follow one split is not completed for another).
    chain : dict, optional
        How the copies are degraded, if not as :func:`ser_cnn.audio.degrade.augment` does by
        default: ``p`` (probabilities of some kinds, the others as ``AUGMENT_P``) and
        ``snr_range`` (dB), for copies ``from_copy`` on (default 1: every copy; the copies
        before it are drawn as by default); stored in the settings.
    front_end : ser_cnn.audio.front_end.FrontEnd, optional
        What a run's front end would make of each version (as recorded and every copy), as it
        is served; stored in the settings. Default: the versions as they are (what serving's
        front end later hears then differs from what the head was fitted on).
    strict : bool
        Raise on a clip whose audio cannot be analysed; otherwise it is left out of the
        manifest, listed in ``errors.csv`` and tried again next time.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    DataError
        Two clips with one key, a cache of other settings in ``out_dir``, or (``strict``) a clip
        that cannot be analysed.
    """
    from ser_cnn.audio.io import load_audio

    out_dir = Path(out_dir)
    manifest = manifest.reset_index(drop=True).copy()
    manifest["key"] = clip_keys(manifest)
    if manifest["key"].duplicated().any():
        dup = manifest.loc[manifest["key"].duplicated(), "key"].tolist()[:5]
        raise DataError(f"two clips share a cache key (corpus and file stem): {dup}")
    settings = (
        {
            "format": CACHE_FORMAT,
            "features": {"kind": feature_config.kind, **feature_config.to_dict()},
            "encoder": encoder.source.to_dict(),
            "copies": copies,
            "seed": seed,
        }
        | ({"babble": babble} if babble is not None else {})
        | ({"chain": chain} if chain else {})
        | ({"front_end": front_end.to_dict()} if front_end is not None else {})
    )
    _prepare(out_dir, settings)
    sr = feature_config.sample_rate
    pool = babble_pool or _same_corpus_other_speakers
    audio: dict[int, np.ndarray] = {}
    failed: dict[int, str] = {}

    def samples(i: int) -> np.ndarray:
        if i not in audio:
            audio[i] = load_audio(manifest.at[i, "path"], target_sr=sr)
        return audio[i]

    def usable(i: int) -> bool:
        """Whether clip ``i``'s audio loads; a clip that does not is left out (or refused)."""
        if i in failed:
            return False
        try:
            samples(i)
        except AudioError as err:
            if strict:
                raise DataError(f"{manifest.at[i, 'path']}: {err}") from None
            failed[i] = str(err)
            return False
        return True

    todo = [
        (i, j)
        for i in range(len(manifest))
        for j in range(copies + 1)
        if not (out_dir / state_file(manifest.at[i, "key"], j)).exists()
    ]
    started, done = time.monotonic(), 0
    batch: list[tuple[int, int, np.ndarray]] = []

    def encode(versions: list[tuple[int, int, np.ndarray]]) -> None:
        nonlocal done
        states = encoder.encode([m for _, _, m in versions])
        for (i, j, _), s in zip(versions, states, strict=True):
            atomic_save(out_dir / state_file(manifest.at[i, "key"], j), s.astype(np.float16))
        done += len(versions)
        if progress:
            rate = done / (time.monotonic() - started)
            print(f"\rencoded {done}/{len(todo)} ({rate:.1f}/s)", end="", flush=True)

    def versions():
        """Each missing version's log-mel, in order; a clip that cannot be analysed is skipped."""
        for i, j in todo:
            if not usable(i):
                continue
            y = clip_version(
                manifest,
                i,
                j,
                sr=sr,
                seed=seed,
                pool=pool,
                samples=samples,
                usable=usable,
                chain=chain,
            )
            if front_end is not None:  # as served: each stage where its gate lets it in
                y = front_end(y, sr)
            try:
                log_mel = feature_config.compute(y, sr=sr)
            except AudioError as err:  # e.g. silent: no speech to trim to
                if strict:
                    raise DataError(f"{manifest.at[i, 'path']}: {err}") from None
                failed[i] = str(err)
                continue
            yield i, j, log_mel

    # The encoder (it lets go of the GIL) works on one batch in a second thread while this one
    # degrades and analyses the next: the same batches in the same order, so the same states.
    with ThreadPoolExecutor(max_workers=1) as encoding:
        running = None

        def hand_over() -> None:
            nonlocal running
            if running is not None:
                running.result()  # one batch at a time: memory stays bounded; errors raised
            running = encoding.submit(encode, batch.copy())
            batch.clear()

        for version in versions():
            batch.append(version)
            if (
                sum(m.shape[1] for _, _, m in batch) * feature_config.hop_length
                >= BATCH_SECONDS * sr
            ):
                hand_over()
        if batch:
            hand_over()
        if running is not None:
            running.result()
    if progress and todo:
        print()
    done_rows = [
        i
        for i, k in enumerate(manifest["key"])
        if i not in failed and all((out_dir / state_file(k, j)).exists() for j in range(copies + 1))
    ]
    table = manifest.loc[done_rows]
    frames = [int(np.load(out_dir / state_file(k), mmap_mode="r").shape[1]) for k in table["key"]]
    table = table.assign(frames=frames)
    errors = pd.DataFrame(
        {"path": [manifest.at[i, "path"] for i in failed], "error": list(failed.values())}
    )
    atomic_write_text(out_dir / ERRORS_FILE, errors.to_csv(index=False))
    text = table.to_csv(index=False)
    old = out_dir / MANIFEST_FILE
    if not old.exists() or old.read_text() != text:  # other clips: the pooled states are stale
        old.unlink(missing_ok=True)
        for stale in out_dir.glob("pooled.copy*.npy"):
            stale.unlink()
    atomic_write_text(out_dir / MANIFEST_FILE, text)
    return out_dir


def clip_version(
    manifest: pd.DataFrame,
    i: int,
    j: int,
    *,
    sr: int,
    seed: int,
    pool: Callable[[pd.DataFrame, int], Sequence[int]],
    samples: Callable[[int], np.ndarray],
    usable: Callable[[int], bool],
    chain: dict | None = None,
) -> np.ndarray:
    """Version ``j`` of clip ``i`` of a cache's ``manifest`` (with its ``key``): the samples as
    recorded (``j`` = 0) or degraded copy ``j``, drawn as the cache draws it, so any other view
    of the cached clips can be computed from the very same audio.

    ``samples(k)`` gives clip ``k``'s samples at ``sr``; ``usable(k)`` whether it loads (a clip
    that does not is no babble talker); ``pool`` and ``chain`` as :func:`build_cache`'s
    ``babble_pool`` and ``chain``.
    """
    from ser_cnn.audio.degrade import AUGMENT_P, SNR_RANGE, augment

    y = samples(i)
    if j == 0:
        return y
    rng = np.random.default_rng([seed, zlib.crc32(manifest.at[i, "key"].encode()), j])
    talkers = [k for k in _draw(pool(manifest, i), rng) if usable(k)]
    chain = chain if chain and j >= chain.get("from_copy", 1) else {}
    return augment(
        y,
        sr,
        rng=rng,
        babble=[samples(k) for k in talkers],
        p=AUGMENT_P | chain.get("p", {}),
        snr_range=tuple(chain.get("snr_range", SNR_RANGE)),
    )


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
        if path.exists() and np.load(path, mmap_mode="r").shape[0] != len(manifest):
            path.unlink()  # made for other clips (a cache written before stale ones were removed)
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


def data_fold_pool(folds: Sequence) -> Callable[[pd.DataFrame, int], Sequence[int]]:
    """Babble for data split by :func:`ser_cnn.corpora.splits.data_folds`: the other speakers (or,
    where speakers are unknown, clips) tested in the same fold, so that no fold's training or
    validation clip has a test speaker's voice under it (as :func:`fold_group_pool` for RAVDESS).
    """
    from ser_cnn.corpora.splits import groups_of

    fold_of = {g: s.fold for s in folds for g in s.test}
    memo: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pool(manifest: pd.DataFrame, i: int) -> Sequence[int]:
        if id(manifest) not in memo:  # one manifest per build: its groups and folds once
            memo.clear()
            groups = groups_of(manifest.assign(stem=manifest["key"]))
            memo[id(manifest)] = groups, np.array([fold_of.get(g, 0) for g in groups])
        groups, fold = memo[id(manifest)]
        if not fold[i]:  # a clip no fold tests (not in the split): no babble
            return []
        return np.flatnonzero((fold == fold[i]) & (groups != groups[i]))

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
        if _more_copies(old, settings):  # copy j never depends on how many there are
            (out_dir / MANIFEST_FILE).unlink(missing_ok=True)  # unfinished until they are made
            atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
            return
        if old != settings:
            raise DataError(
                f"{out_dir} holds an encoder cache made with other settings; "
                "choose another folder or delete it"
            )
        return
    (out_dir / STATES_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def _more_copies(old: dict, new: dict) -> bool:
    """Whether ``new`` settings are ``old`` ones with more degraded copies."""
    rest = {k: v for k, v in new.items() if k != "copies"}
    return rest == {k: v for k, v in old.items() if k != "copies"} and new.get(
        "copies", 0
    ) > old.get("copies", 0)
