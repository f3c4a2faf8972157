"""Turn labelled speech into a cache of fixed-size feature tensors: RAVDESS by default, or any
data the corpus layer reads (:mod:`ser_cnn.corpora`: a known corpus, a CSV/TSV table, a folder
of emotion folders, or a manifest).

Layout of a cache folder::

    settings.json    feature settings, library versions (a cache is only reused with equal settings)
    manifest.csv     one row per clip (:data:`CACHE_COLUMNS`): its key, the RAVDESS name fields
                     for RAVDESS clips, source path, size, time, duration, cache path, and the
                     corpus manifest's label, speaker, corpus and text
    errors.csv       files that could not be used, and why
    features/*.npy   one float32 array per clip (e.g. shape (n_mels, n_frames)), named by its key
    copies/<hash>.npy   log-mels of the degraded copies of one split's training clips, float32
                     (n_clips, copies, n_mels, n_frames) (:func:`training_copies`)
    copies/<hash>.json  what they hold: feature and copy settings, the clips' keys and speakers

A clip's key (the ``stem`` column) is its file name without suffix for RAVDESS, as caches have
always named them, and ``<corpus>-<stem>`` for any other corpus, with a hash of the path added
where two clips would share one (:func:`cache_keys`). The run is idempotent (a clip whose source
is unchanged and whose array exists is not redone), atomic (every file is written under a
temporary name and renamed), and resumable (the manifest is checkpointed while the run goes, so
an interrupted run loses at most a few seconds of work).

The degraded copies a training recipe asks for (``degraded_copies``) are a stage of the same
cache: made from the clips' source audio once per split, recipe seed and settings, and read by
every later training, so data flows one way: manifest → audio → degraded copies → log-mels →
cache → training.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ser_cnn import corpora
from ser_cnn.audio.io import audio_info
from ser_cnn.errors import DataError, NameFormatError, SerError
from ser_cnn.features.logmel import DEFAULT_CONFIG, FeatureConfig
from ser_cnn.ravdess import ZENODO_HELP, parse_name, resolve_data_dir
from ser_cnn.versions import library_versions

DEFAULT_OUT_DIR = Path("data/processed")
DEFAULT_CLASSIC_DIR = Path("data/processed_classic")  # the MLP baseline's 180-number vectors
SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.csv"
ERRORS_FILE = "errors.csv"
FEATURES_DIR = "features"
COPIES_DIR = "copies"
CACHE_FORMAT = 1  # bump when the layout above changes (new columns keep old caches readable)
CHECKPOINT_SECONDS = 5.0  # how much work an interrupted run may lose at most
SHOWN_ERRORS = 20  # files listed by Summary.describe; errors.csv has them all

RAVDESS = "ravdess"  # the corpus whose clips carry the RAVDESS name fields
# The RAVDESS name fields, in the order caches have always had them (train.py, cv.py and the
# tools read ``actor``, ``emotion_code``...); ``emotion`` and ``gender`` are every clip's.
RAVDESS_COLUMNS = (
    "modality",
    "vocal_channel",
    "emotion",
    "emotion_code",
    "intensity",
    "statement",
    "repetition",
    "actor",
    "gender",
)
SOURCE_COLUMNS = (
    "duration",
    "source_sample_rate",
    "source_channels",
    "source_size",
    "source_mtime_ns",
)
CORPUS_COLUMNS = ("label", "speaker", "corpus", "text")  # the rest of the corpus manifest's
CACHE_COLUMNS = ("stem", "path", *RAVDESS_COLUMNS, *SOURCE_COLUMNS, "cache", *CORPUS_COLUMNS)
ERROR_COLUMNS = ("path", "error", "source_size", "source_mtime_ns")
TEXT_COLUMNS = ("stem", "path", "emotion", "label", "speaker", "corpus", "gender", "text")
KEY_HASH = 10  # hex digits of a path's SHA-1 that tell clips of the same name apart
COPIES_HASH = 16  # hex digits of the SHA-1 of a copies entry's description: its file name
BABBLE_POOL = 12  # clips of other speakers offered to each babble of a degraded copy
MAX_KEY = 150  # characters of a key before its hash (file names have a limit)

Data = str | os.PathLike | Sequence[str | os.PathLike] | pd.DataFrame | None


@dataclass
class Summary:
    """What one preprocessing run did."""

    out_dir: Path
    total: int = 0  # usable clips in the cache after the run
    computed: int = 0  # clips computed by this run
    reused: int = 0  # clips taken from an earlier run
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    by_corpus: dict[str, dict] = field(default_factory=dict)  # corpus -> corpora.summary()
    notes: list[str] = field(default_factory=list)  # e.g. labels without a project emotion

    def describe(self) -> str:
        lines = [f"cache {self.out_dir}: {self.total} clips usable"]
        if self.computed == 0 and self.reused:
            lines.append(f"nothing to do: all {self.reused} clips were already cached")
        else:
            lines.append(f"computed {self.computed}, reused {self.reused} in {self.seconds:.1f} s")
        lines += [_describe_corpus(name, counts) for name, counts in self.by_corpus.items()]
        if self.errors:
            lines.append(f"skipped {len(self.errors)} files (listed in {ERRORS_FILE}):")
            lines += [f"  {path}: {why}" for path, why in self.errors[:SHOWN_ERRORS]]
            if len(self.errors) > SHOWN_ERRORS:
                lines.append(f"  ... and {len(self.errors) - SHOWN_ERRORS} more")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def preprocess(
    data: Data = None,
    out_dir: str | os.PathLike = DEFAULT_OUT_DIR,
    *,
    config: FeatureConfig = DEFAULT_CONFIG,
    jobs: int | None = None,
    force: bool = False,
    progress: bool = True,
    strict: bool = False,
) -> Summary:
    """Compute (or reuse) the features of every clip of ``data``.

    Parameters
    ----------
    data : path, sequence of paths, manifest or None
        What to preprocess: None, the RAVDESS folder (``$RAVDESS_DIR``, else ``data/ravdess``);
        a data path or several (each a corpus folder, a CSV/TSV table or a folder of emotion
        folders, read by :func:`ser_cnn.corpora.load_many`); or a manifest DataFrame
        (:mod:`ser_cnn.corpora.manifest`).
    out_dir : path
        Cache folder, created if needed. It mirrors ``data``: clips no longer in it are dropped.
    config : FeatureConfig
        Feature settings (or ``ClassicConfig``). A cache made with other settings is refused
        unless ``force``.
    jobs : int, optional
        Worker processes; default all cores.
    force : bool
        Delete a cache made with other settings and rebuild it; drop the clips of corpora that
        ``data`` no longer has (refused otherwise, so one data set cannot replace another's
        cache by mistake).
    progress : bool
        Show a progress bar.
    strict : bool
        Refuse ``data`` as a whole (nothing is written) when any of its files is missing,
        unreadable or misnamed; otherwise those are listed in ``errors.csv`` and the rest go on.

    Raises
    ------
    DataError
        Missing data, a table or manifest the corpus layer refuses, no usable clip, ``strict``
        and files left out, or a cache with other settings or other corpora and no ``force``.
        Nothing is written then.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    manifest, problems = read_inputs(data, strict=strict)
    errors: dict[str, dict] = {}
    notes = []
    for line in problems:  # "<absolute path>: <why>" for files, corpus notes otherwise
        path, sep, why = line.partition(": ")
        if sep and Path(path).is_absolute():
            errors[path] = {"path": path, "error": why}
        else:
            notes.append(line)
    clips = _usable(manifest, errors)
    keys = cache_keys(pd.DataFrame(clips, columns=list(corpora.COLUMNS)))
    _prepare_out_dir(out_dir, config, force)
    features_dir = out_dir / FEATURES_DIR

    old_rows = _read_table(out_dir / MANIFEST_FILE, "stem")
    old_errors = _read_table(out_dir / ERRORS_FILE, "path")
    _check_corpora(out_dir, old_rows, {c["corpus"] for c in clips}, force)
    rows: dict[str, dict] = {}
    todo: dict[str, tuple[dict, os.stat_result]] = {}
    for clip, key in zip(clips, keys, strict=True):
        try:
            stat = Path(clip["path"]).stat()
        except OSError as err:
            errors[clip["path"]] = {"path": clip["path"], "error": err.strerror or str(err)}
            continue
        source = _source_key(clip["path"], stat)
        old = old_rows.get(key)
        if (
            old is not None
            and _source_key_of(old) == source
            and old.get("cache") == _cache_path(key)
            and (out_dir / old["cache"]).exists()
        ):
            rows[key] = _cache_row(key, clip, old)  # what the name and manifest say: afresh
        elif (err := old_errors.get(clip["path"])) is not None and _source_key_of(err) == source:
            errors[clip["path"]] = err  # failed before and unchanged since: do not retry
        else:
            todo[key] = (clip, stat)
    reused = len(rows)

    # arrays of clips no longer in the data would otherwise linger in the cache
    for key, old in old_rows.items():
        if key not in rows and key not in todo and old.get("cache"):
            (out_dir / old["cache"]).unlink(missing_ok=True)

    computed = 0
    last_checkpoint = time.monotonic()
    tasks = [(key, clip["path"], features_dir, config) for key, (clip, _) in todo.items()]
    try:
        for key, result in _run(tasks, jobs, progress):
            clip, stat = todo[key]
            if isinstance(result, str):
                errors[clip["path"]] = {
                    "path": clip["path"],
                    "error": result,
                    **_source_key_dict(stat),
                }
            else:
                rows[key] = _cache_row(key, clip, {**result, **_source_key_dict(stat)})
                computed += 1
            if time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
                _write_tables(out_dir, rows, errors)
                last_checkpoint = time.monotonic()
    finally:
        _write_tables(out_dir, rows, errors)

    cached = [c for c, k in zip(clips, keys, strict=True) if k in rows]
    cached = corpora.make_manifest(cached) if cached else corpora.empty_manifest()
    return Summary(
        out_dir=out_dir,
        total=len(rows),
        computed=computed,
        reused=reused,
        errors=sorted((e["path"], e["error"]) for e in errors.values()),
        seconds=time.perf_counter() - started,
        by_corpus={name: _counts(part) for name, part in cached.groupby("corpus", sort=False)},
        notes=notes,
    )


def read_inputs(data: Data = None, *, strict: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The manifest of what :func:`preprocess` is given, and the problems found reading it.

    ``data`` as for :func:`preprocess`. Folders are resolved first (symbolic links followed,
    as caches have always recorded their sources), so the same data gives the same cache
    whichever way it was named; a table's own paths are taken as it writes them.

    Raises
    ------
    DataError
        See :func:`ser_cnn.corpora.load_many`; a missing RAVDESS folder (the message says where
        RAVDESS comes from).
    """
    if isinstance(data, pd.DataFrame):
        return corpora.make_manifest(data), []
    if data is None:
        data = [ravdess_dir()]
    elif isinstance(data, (str, os.PathLike)):
        data = [data]
    paths = [Path(p).resolve() if Path(p).is_dir() else p for p in data]
    return corpora.load_many(paths, strict=strict)


def data_cache(
    data: Sequence[str | os.PathLike],
    config: FeatureConfig,
    root: str | os.PathLike = DEFAULT_OUT_DIR,
) -> Path:
    """Where ``ser-cnn train --data`` caches ``data`` with ``config``:
    ``root/<name>-<kind>-<hash>``, ``<name>`` the inputs' names (:func:`data_name`), ``<kind>``
    the features' (``logmel``, ``classic``), ``<hash>`` the first 10 hex digits of the SHA-1 of
    the inputs (resolved, in order) and the feature settings: the same data and settings give
    the same folder, so a second run reuses it; other data or settings never share one."""
    key = {
        "inputs": [str(Path(p).resolve()) for p in data],
        "kind": config.kind,
        "features": config.to_dict(),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode(), usedforsecurity=False)
    return Path(root) / f"{data_name(data)}-{config.kind}-{digest.hexdigest()[:KEY_HASH]}"


def data_name(data: Sequence[str | os.PathLike]) -> str:
    """A short name of data inputs for folder names: each input's folder name or table's stem,
    joined with ``+`` (``urdu``, ``mine+urdu``), other characters than letters, digits, ``._-``
    as ``_``, at most 40 characters."""
    paths = [Path(p).resolve() for p in data]
    names = [p.stem if p.suffix.lower() in (".csv", ".tsv") else p.name for p in paths]
    name = "+".join(n for n in names if n) or "data"
    name = "".join(c if c.isalnum() or c in "._+-" else "_" for c in name)
    return name[:40]


def ravdess_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The RAVDESS folder: ``data_dir``, else ``$RAVDESS_DIR``, else ``data/ravdess``.

    Raises
    ------
    DataError
        It does not exist; the message says where RAVDESS comes from.
    """
    path = resolve_data_dir(data_dir)
    if not path.is_dir():
        raise DataError(f"RAVDESS folder {path} does not exist. {ZENODO_HELP}")
    return path


def cache_keys(manifest: pd.DataFrame) -> list[str]:
    """Each clip's name in a cache (its ``stem`` and ``features/<key>.npy``), unique and stable.

    A RAVDESS clip's key is its file name without suffix, as caches have always named it (two
    files of one RAVDESS name are the same clip: :func:`preprocess` keeps the first). Any other
    clip's is ``<corpus>-<file stem>``; where two clips would share one (case ignored, as some
    file systems do), or it would be too long for a file name, the first :data:`KEY_HASH` hex
    digits of the SHA-1 of the clip's path are added. The same clips give the same keys on any
    run and any machine with the same paths.
    """
    plain = [
        Path(p).stem if c == RAVDESS else f"{c}-{Path(p).stem}"
        for p, c in zip(manifest["path"], manifest["corpus"], strict=True)
    ]
    ravdess = {k.casefold() for k, c in zip(plain, manifest["corpus"], strict=True) if c == RAVDESS}
    others = Counter(
        k.casefold() for k, c in zip(plain, manifest["corpus"], strict=True) if c != RAVDESS
    )
    keys = []
    for key, path, corpus in zip(plain, manifest["path"], manifest["corpus"], strict=True):
        folded = key.casefold()
        if corpus != RAVDESS and (others[folded] > 1 or folded in ravdess or len(key) > MAX_KEY):
            digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()
            key = f"{key[:MAX_KEY]}-{digest[:KEY_HASH]}"
        keys.append(key)
    return keys


def ravdess_fields(path: str | os.PathLike) -> dict:
    """The RAVDESS name fields of a cache row (:data:`RAVDESS_COLUMNS`), from the file name:
    the one place they are derived. Raises NameFormatError for a name that is not RAVDESS's."""
    fields = parse_name(path).to_dict()
    return {c: fields[c] for c in RAVDESS_COLUMNS}


def load_cache(
    out_dir: str | os.PathLike = DEFAULT_OUT_DIR,
) -> tuple[pd.DataFrame, np.ndarray, FeatureConfig]:
    """Read a cache made by :func:`preprocess`.

    Returns
    -------
    manifest : pandas.DataFrame
        One row per clip (:data:`CACHE_COLUMNS`), sorted by key; text columns as written
        (a speaker ``"007"`` stays so), empty fields NaN. A cache of an older version, without
        the corpus columns, gets them from its RAVDESS names.
    features : np.ndarray, shape (n_clips, *config.shape), float32
        Row ``i`` belongs to ``manifest.iloc[i]``.
    config : FeatureConfig
        The settings the cache was made with.
    """
    out_dir = Path(out_dir)
    config = cache_config(out_dir)
    manifest = _read_manifest(out_dir / MANIFEST_FILE).sort_values("stem", ignore_index=True)
    if manifest.empty:
        raise DataError(f"the cache in {out_dir} holds no clips; run `ser-cnn preprocess` again")
    features = np.empty((len(manifest), *config.shape), dtype=np.float32)
    for i, rel in enumerate(manifest["cache"]):
        features[i] = np.load(out_dir / rel)
    return manifest, features, config


def training_copies(
    cache_dir: str | os.PathLike,
    rows: pd.DataFrame,
    speakers: np.ndarray,
    feature_config: FeatureConfig,
    *,
    copies: int,
    seed: int,
    kinds: tuple[str, ...] | None = None,
    p: dict[str, float] | None = None,
    snr_range: tuple[float, float] | None = None,
    jobs: int | None = None,
) -> np.ndarray:
    """The log-mels of degraded copies of a split's training clips, made once and cached.

    Stored as ``cache_dir/copies/<hash>.npy`` with ``<hash>.json`` beside it (written last,
    both atomically), ``<hash>`` the SHA-1 of that JSON's description: the feature settings,
    the copy settings (defaults resolved) and the clips' keys, sources and speakers. The same
    clips and settings read the stored array back; any other setting makes another entry.

    Parameters
    ----------
    cache_dir : path
        The cache the rows come from (:func:`preprocess`).
    rows : pandas.DataFrame
        The training clips' rows of its manifest (``stem``, ``path``, source size and time),
        in training order: training actors only, never validation or test ones.
    speakers : np.ndarray, shape (n_clips,)
        Each clip's speaker: babble for a clip is built only from the other speakers' clips.
    feature_config : FeatureConfig
        The cache's log-mel settings.
    copies, seed, kinds, p, snr_range, jobs
        As for :func:`degraded_copies`.

    Returns
    -------
    np.ndarray, shape (n_clips, copies, n_mels, n_frames), float32

    Raises
    ------
    DataError
        A training clip's source audio is gone (and its copies are not cached yet).
    """
    from ser_cnn.audio.degradations import CHAIN_KINDS
    from ser_cnn.audio.degrade import AUGMENT_P, SNR_RANGE

    speakers = np.asarray(speakers)
    settings = {
        "copies": copies,
        "seed": seed,
        "kinds": list(kinds or CHAIN_KINDS),
        "p": AUGMENT_P | (p or {}),
        "snr_range": list(snr_range or SNR_RANGE),
        "babble_pool": BABBLE_POOL,
    }
    description = {
        "features": feature_config.to_dict(),
        "copies": settings,
        "clips": rows["stem"].astype(str).tolist(),
        "sources": [  # a changed file gets new copies, as it gets new features
            [_text(size), _text(mtime)]
            for size, mtime in zip(rows["source_size"], rows["source_mtime_ns"], strict=True)
        ],
        "speakers": [str(s) for s in speakers],
    }
    text = json.dumps(description, sort_keys=True)
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:COPIES_HASH]
    folder = Path(cache_dir) / COPIES_DIR
    array_path, info_path = folder / f"{digest}.npy", folder / f"{digest}.json"
    if info_path.exists() and array_path.exists():  # the JSON is written last: a whole entry
        info = json.loads(info_path.read_text())
        if info.get("description") == json.loads(text):  # not a hash collision
            return np.load(array_path)
    missing = [path for path in rows["path"] if not Path(path).is_file()]
    if missing:
        raise DataError(
            f"degraded copies need the cache's source audio; {len(missing)} files are gone, "
            f"e.g. {missing[0]}"
        )
    from ser_cnn.audio.io import load_audio

    audio = [load_audio(path, target_sr=feature_config.sample_rate) for path in rows["path"]]
    made = degraded_copies(
        audio,
        speakers,
        feature_config,
        copies=copies,
        seed=seed,
        kinds=kinds,
        p=p,
        snr_range=snr_range,
        jobs=jobs,
    )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(array_path, made)
    info = {"shape": list(made.shape), "versions": library_versions(), "description": description}
    atomic_write_text(info_path, json.dumps(info, indent=1) + "\n")
    return made


def degraded_copies(
    audio: list[np.ndarray],
    speakers: np.ndarray,
    feature_config: FeatureConfig,
    *,
    copies: int,
    seed: int,
    kinds: tuple[str, ...] | None = None,
    p: dict[str, float] | None = None,
    snr_range: tuple[float, float] | None = None,
    jobs: int | None = None,
) -> np.ndarray:
    """Log-mels of ``copies`` degraded versions of every training clip (ser_cnn/audio/degrade.py).

    Parameters
    ----------
    audio : list of np.ndarray, shape (n_samples_i,)
        The training clips at ``feature_config.sample_rate``, training actors only.
    speakers : np.ndarray, shape (n_clips,)
        Each clip's speaker: babble for a clip is built only from the other speakers' clips.
    copies, seed : int
        Copies per clip; clip ``i``'s copy ``j`` is drawn from ``default_rng([seed, i, j])``.
    kinds : tuple of str, optional
        Which degradations may be applied (default all ``degradations.CHAIN_KINDS``).
    p, snr_range : optional
        Probabilities replacing ``degrade.AUGMENT_P``'s for the kinds they name, and the SNR
        range of added noise in dB (default ``degrade.SNR_RANGE``).
    jobs : int, optional
        Worker processes (default: every core).

    Returns
    -------
    np.ndarray, shape (n_clips, copies, n_mels, n_frames), float32
    """
    global _WORK
    _WORK = (audio, np.asarray(speakers), feature_config, copies, seed, kinds, p, snr_range)
    tasks = range(len(audio))
    workers = jobs or os.cpu_count() or 1
    if workers == 1:
        return np.stack([_degrade_clip(i) for i in tasks])
    with multiprocessing.get_context("fork").Pool(workers) as pool:  # workers share _WORK
        return np.stack(pool.map(_degrade_clip, tasks, chunksize=16))


_WORK = None  # what degraded_copies' workers read (inherited through fork, never pickled)


def _degrade_clip(i: int) -> np.ndarray:
    from ser_cnn.audio.degradations import CHAIN_KINDS
    from ser_cnn.audio.degrade import AUGMENT_P, SNR_RANGE, augment
    from ser_cnn.features.logmel import clip_log_mel

    audio, speakers, config, copies, seed, kinds, p, snr_range = _WORK
    out = []
    for j in range(copies):
        rng = np.random.default_rng([seed, i, j])
        others = np.flatnonzero(speakers != speakers[i])
        babble = [audio[k] for k in rng.choice(others, min(BABBLE_POOL, len(others)), False)]
        y = augment(
            audio[i],
            config.sample_rate,
            rng=rng,
            babble=babble,
            kinds=kinds or CHAIN_KINDS,
            p=AUGMENT_P | (p or {}),
            snr_range=snr_range or SNR_RANGE,
        )
        out.append(clip_log_mel(y, config))
    return np.stack(out)


def _text(value) -> str | None:
    """A manifest number as text (``1234``, not ``1234.0``), None when empty."""
    return None if pd.isna(value) else str(int(value))


def cache_manifest(out_dir: str | os.PathLike) -> pd.DataFrame:
    """A cache's manifest alone, as :func:`load_cache` gives it (no features read)."""
    out_dir = Path(out_dir)
    check_cache(out_dir)
    return _read_manifest(out_dir / MANIFEST_FILE).sort_values("stem", ignore_index=True)


def cache_config(out_dir: str | os.PathLike):
    """The feature settings a cache was made with (:func:`config_from_settings`)."""
    check_cache(out_dir)
    return config_from_settings(json.loads((Path(out_dir) / SETTINGS_FILE).read_text()))


def check_cache(out_dir: str | os.PathLike) -> None:
    """Raise a DataError naming the command that makes it, unless ``out_dir`` holds a cache."""
    out_dir = Path(out_dir)
    if not (out_dir / SETTINGS_FILE).exists() or not (out_dir / MANIFEST_FILE).exists():
        raise DataError(
            f"no preprocessed cache in {out_dir}: make it with "
            f"`ser-cnn preprocess --data-dir DIR --out {out_dir}`"
        )


def config_from_settings(settings: dict):
    """The feature config a cache or model was made with, of its kind (log-mel or classic)."""
    kind = settings.get("kind", "logmel")
    if kind == "logmel":
        return FeatureConfig.from_dict(settings["features"])
    if kind == "classic":
        from ser_cnn.features.classic import ClassicConfig

        return ClassicConfig.from_dict(settings["features"])
    raise DataError(f"unknown feature kind {kind!r}; expected 'logmel' or 'classic'")


# ---------------------------------------------------------------------------------------------


def _counts(manifest: pd.DataFrame) -> dict:
    """:func:`ser_cnn.corpora.summary` of one corpus's clips, and the fewest and most clips of
    one speaker (``clips_per_speaker``, empty when no speaker is known)."""
    per = manifest["speaker"].dropna().value_counts()
    return {
        **corpora.summary(manifest),
        "clips_per_speaker": [int(per.min()), int(per.max())] if len(per) else [],
    }


def _describe_corpus(name: str, counts: dict) -> str:
    """``ravdess: 1440 clips, 24 speakers (60 clips each); neutral 96, calm 192, ...``."""
    speakers = counts["speakers"]
    if not speakers:
        who = "speakers unknown"
    else:
        fewest, most = counts["clips_per_speaker"]
        each = f"{most}" if fewest == most else f"{fewest}–{most}"
        who = f"{speakers} speaker{'s' if speakers > 1 else ''} ({each} clips each)"
        if counts["unknown_speaker"]:
            who += f", {counts['unknown_speaker']} clips without one"
    emotions = ", ".join(
        f"{e} {n}" for e, n in {**counts["emotions"], **counts["unmapped"]}.items()
    )
    return f"  {name}: {counts['clips']} clips, {who}; {emotions}"


def _usable(manifest: pd.DataFrame, errors: dict[str, dict]) -> list[dict]:
    """The manifest's rows as dicts, less RAVDESS clips whose name is not RAVDESS's or names a
    clip already met (WAV beside FLAC: only the first is used); those go to ``errors``."""
    clips, seen = [], {}
    for clip in manifest.to_dict("records"):
        if clip["corpus"] == RAVDESS:
            path = Path(clip["path"])
            try:
                parse_name(path)
            except NameFormatError as err:
                errors[clip["path"]] = {"path": clip["path"], "error": str(err)}
                continue
            if path.stem in seen:
                errors[clip["path"]] = {
                    "path": clip["path"],
                    "error": f"duplicate of {seen[path.stem]} (same clip name); "
                    "only the first is used",
                }
                continue
            seen[path.stem] = clip["path"]
        clips.append(clip)
    return clips


def _check_corpora(out_dir: Path, old_rows: dict[str, dict], corpus_names: set, force: bool):
    """Refuse (without ``force``) to drop every clip of a corpus the cache holds: that is a
    cache of other data, not an update of this one."""
    held = Counter(str(r.get("corpus") or RAVDESS) for r in old_rows.values())  # old: RAVDESS
    gone = {c: n for c, n in held.items() if c not in corpus_names}
    if gone and not force:
        listed = ", ".join(f"{c} ({n} clips)" for c, n in sorted(gone.items()))
        raise DataError(
            f"the cache in {out_dir} holds other data ({listed}) that these inputs do not have; "
            "choose another --out, or pass --force to drop it"
        )


def _prepare_out_dir(out_dir: Path, config: FeatureConfig, force: bool) -> None:
    settings_path = out_dir / SETTINGS_FILE
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        same = (
            old.get("features") == config.to_dict()
            and old.get("kind", "logmel") == config.kind
            and old.get("format") == CACHE_FORMAT
        )
        if not same:
            if not force:
                raise DataError(
                    f"the cache in {out_dir} was made with other feature settings "
                    f"({old.get('features')}); pass --force to delete it and rebuild, "
                    "or choose another --out folder"
                )
            for name in (MANIFEST_FILE, ERRORS_FILE, SETTINGS_FILE):
                (out_dir / name).unlink(missing_ok=True)
            for npy in (out_dir / FEATURES_DIR).glob("*.npy"):
                npy.unlink()
    (out_dir / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
    for leftover in (out_dir / FEATURES_DIR).glob("*.tmp"):
        leftover.unlink()  # half-written arrays of an interrupted run
    if not settings_path.exists():
        settings = {
            "format": CACHE_FORMAT,
            "kind": config.kind,
            "features": config.to_dict(),
            "shape": list(config.shape),
            "versions": library_versions(),
        }
        atomic_write_text(settings_path, json.dumps(settings, indent=2) + "\n")


def _cache_path(key: str) -> str:
    return f"{FEATURES_DIR}/{key}.npy"


def _cache_row(key: str, clip: dict, source: dict) -> dict:
    """One row of the cache's manifest: the clip's key, its RAVDESS name fields (RAVDESS
    clips; else only emotion and gender, from the manifest), what ``source`` says of its file
    (:data:`SOURCE_COLUMNS`), its array, and the rest of its corpus manifest row."""
    row = {"stem": key, "path": clip["path"]}
    if clip["corpus"] == RAVDESS:
        row.update(ravdess_fields(clip["path"]))
    else:
        row.update({"emotion": clip["emotion"], "gender": clip["gender"]})
    row.update({c: source.get(c) for c in SOURCE_COLUMNS})
    row["cache"] = _cache_path(key)
    row.update({c: clip[c] for c in CORPUS_COLUMNS})
    return row


def _source_key(path: str, stat: os.stat_result) -> tuple[str, int, int]:
    return (str(path), int(stat.st_size), int(stat.st_mtime_ns))


def _source_key_dict(stat: os.stat_result) -> dict:
    return {"source_size": int(stat.st_size), "source_mtime_ns": int(stat.st_mtime_ns)}


def _source_key_of(row: dict) -> tuple[str, int, int] | None:
    try:
        return (str(row["path"]), int(row["source_size"]), int(row["source_mtime_ns"]))
    except (KeyError, TypeError, ValueError):
        return None


def _work(task: tuple[str, str, Path, FeatureConfig]):
    """Worker: compute and atomically save one clip; return info or an error message."""
    key, path, features_dir, config = task
    try:
        info = audio_info(path)
        features = config.compute(path)
        atomic_save(features_dir / f"{key}.npy", features)
    except SerError as err:
        return key, str(err).removeprefix(f"{path}: ")
    return key, {
        "duration": round(info.frames / info.samplerate, 4),
        "source_sample_rate": info.samplerate,
        "source_channels": info.channels,
    }


def _run(tasks: list, jobs: int | None, progress: bool):
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    bar = tqdm(total=len(tasks), desc="features", unit="clip", disable=not progress or not tasks)
    try:
        if jobs == 1:
            for task in tasks:
                yield _work(task)
                bar.update()
            return
        # fork: workers start in milliseconds with the parent's imports (no TensorFlow here)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(jobs, initializer=_one_thread) as pool:
            for result in pool.imap_unordered(_work, tasks, chunksize=8):
                yield result
                bar.update()
    finally:
        bar.close()


def _one_thread() -> None:
    # Each worker is one core's worth: BLAS threads inside every worker would fight over the
    # same cores (measured: 12.5 s instead of 4.4 s for the full set on 2 cores).
    threadpool_limits(limits=1)


def atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``path`` (.npy) under a temporary name, then rename: never half a file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.save(f, array)
    tmp.replace(path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name, then rename: never half a file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _read_manifest(path: Path) -> pd.DataFrame:
    """A cache's manifest.csv: text columns as written, only empty fields missing; the corpus
    columns filled from the RAVDESS names where an older cache lacks them."""
    table = pd.read_csv(
        path,
        dtype={c: str for c in TEXT_COLUMNS},
        keep_default_na=False,
        na_values=[""],
    )
    if "corpus" not in table.columns and not table.empty:
        rows = [corpora.CORPORA[RAVDESS].parse_name(p) for p in table["path"]]
        for c in CORPUS_COLUMNS:
            table[c] = [r[c] for r in rows]
    return table


def _read_table(path: Path, key: str) -> dict[str, dict]:
    """Rows of an earlier manifest (keyed by stem) or errors file (keyed by path), every
    value the text written (so a row written again is unchanged), empty fields ``None``."""
    if not path.exists():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {
        r[key]: {k: (v if v != "" else None) for k, v in r.items()}
        for r in table.to_dict("records")
    }


def _write_tables(out_dir: Path, rows: dict[str, dict], errors: dict[str, dict]) -> None:
    ordered = [rows[k] for k in sorted(rows)]
    manifest = pd.DataFrame(
        {c: [r.get(c) for r in ordered] for c in CACHE_COLUMNS}, columns=list(CACHE_COLUMNS)
    ).astype(object)
    atomic_write_text(out_dir / MANIFEST_FILE, manifest.to_csv(index=False))
    error_table = pd.DataFrame(
        sorted(errors.values(), key=lambda r: r["path"]), columns=list(ERROR_COLUMNS)
    )
    atomic_write_text(out_dir / ERRORS_FILE, error_table.to_csv(index=False))
