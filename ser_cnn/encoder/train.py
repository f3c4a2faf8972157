"""Train the head on the frozen encoder's cached states and write an encoder run folder.

The encoder never changes, so training reads its pooled states from the cache of
``tools/encode_cache.py`` (:func:`ser_cnn.encoder.cache.load_pooled`): the training actors'
clips and their degraded copies fit the head (:func:`ser_cnn.encoder.fit.fit_head`), the
validation actors select its epoch, the test actors are scored once. ``tools/encoder_cv.py``
(six folds, other corpora) uses the same pieces: :func:`load_pooled_set`, :func:`labelled`,
:func:`ravdess_parts` and :func:`fit_parts`.

The run folder (:mod:`ser_cnn.run`, model "encoder") holds the head twice, ``model.keras`` and
``head.npz`` (:mod:`ser_cnn.encoder.serve`), and names the encoder's weights without holding
them; ``ser-cnn infer --run`` and :func:`ser_cnn.load_recognizer` serve it like the CNN.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.encoder.cache import SETTINGS_FILE, cache_settings, load_pooled
from ser_cnn.encoder.fit import HeadTraining, fit_head, pooled_statistics
from ser_cnn.encoder.head import build_head, clip_normalize
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS, Split, load_folds, split

DEFAULT_CACHE = Path("data/encoder/ravdess")
CACHE_COMMAND = (
    "python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess --copies 2"
)


# -- the pooled states, as every head is trained on them -------------------------------------


def load_pooled_set(
    caches: Sequence[str | os.PathLike], copies: int, *, clip_norm: bool, corpus_norm: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifests of the caches one after another, and their pooled states side by side:
    (copies + 1, n_clips, n_layer + 1, 2 · n_state).

    ``corpus_norm``: standardise every corpus by the statistics of its own clips as recorded
    (the explicit option of issue 24: a clip's answer then depends on its corpus's other clips,
    so it is a separate result row, never the headline).
    """
    parts = [load_pooled(c, copies=copies) for c in caches]
    if corpus_norm:
        parts = [(m, (p - p[0].mean(axis=0)) / (p[0].std(axis=0) + 1e-6)) for m, p in parts]
    manifest = pd.concat([m for m, _ in parts], ignore_index=True)
    x = np.concatenate([p for _, p in parts], axis=1)
    return manifest, (clip_normalize(x) if clip_norm else x)


def labelled(
    manifest: pd.DataFrame, x: np.ndarray, labels: tuple[str, ...] = EMOTIONS
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The clips with one of ``labels``, and their class indices."""
    known = manifest["emotion"].isin(labels)
    manifest, x = manifest[known].reset_index(drop=True), x[:, known.to_numpy()]
    return manifest, x, manifest["emotion"].map(labels.index).to_numpy()


def ravdess_parts(manifest: pd.DataFrame, parts: Split) -> tuple[np.ndarray, ...]:
    """Masks (train, val, test) of a RAVDESS split; clips of other corpora train (they never
    hold a RAVDESS actor)."""
    ravdess = (manifest["corpus"] == "ravdess").to_numpy()
    actors = np.where(ravdess, pd.to_numeric(manifest["speaker"], errors="coerce"), -1)
    tr = np.isin(actors, parts.train) | ~ravdess  # other corpora: training data only
    return tr, np.isin(actors, parts.val), np.isin(actors, parts.test)


def fit_parts(x, y, tr, va, config: HeadTraining, n_classes: int = len(EMOTIONS)):
    """Fit a head on ``tr`` (every version: as recorded and degraded) and select it on ``va``
    (as recorded): :func:`ser_cnn.encoder.fit.fit_head`'s model and history."""
    return fit_head(x[:, tr], y[tr], x[0, va], y[va], n_classes, config)


# -- a run folder ------------------------------------------------------------------------------


def check_cache(cache_dir: str | os.PathLike, copies: int = 0) -> dict:
    """An encoder cache's settings, refused with the command that makes it when it is missing,
    unfinished or has fewer degraded copies than ``copies``."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / SETTINGS_FILE).is_file() or not (cache_dir / "manifest.csv").is_file():
        raise DataError(
            f"{cache_dir} is not a finished encoder cache; make it (RAVDESS speech, 1,440 clips, "
            f"two degraded copies each) with `{CACHE_COMMAND}`"
        )
    settings = cache_settings(cache_dir)
    if settings.get("copies", 0) < copies:
        raise DataError(
            f"{cache_dir} holds {settings.get('copies', 0)} degraded copies of each clip, the "
            f"recipe draws from {copies}: make a cache with --copies {copies}"
        )
    return settings


def train_encoder(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split,
    config: HeadTraining,
    *,
    extra: Sequence[str | os.PathLike] = (),
    verbose: bool = True,
):
    """Train a head on a RAVDESS split of an encoder cache and write its run folder.

    Parameters
    ----------
    cache_dir : path
        A cache of ``tools/encode_cache.py`` holding RAVDESS (and at least ``config.copies``
        degraded copies of each clip).
    run_dir : path
        Output folder; created, or replaced if it holds an earlier run.
    split : Split
        RAVDESS's actor-wise split (:func:`ser_cnn.ravdess.split`). The cache's degraded copies
        take their babble from the actors tested in the same published fold, so a published
        fold's training never hears a test actor's voice.
    config : HeadTraining
    extra : sequence of path
        Encoder caches of other corpora (URDU, ASED, nEMO): every clip of them trains (they
        never hold a RAVDESS actor); validation and test stay RAVDESS's.
    verbose : bool
        Print a line when done.

    Returns
    -------
    ser_cnn.run.RunResult
    """
    import keras

    from ser_cnn.encoder.serve import export_head
    from ser_cnn.features import WhisperFeatureConfig
    from ser_cnn.metrics import SCORES, evaluate
    from ser_cnn.run import FrozenEncoder, Run, RunResult, fresh_dir, write_run
    from ser_cnn.versions import git_commit, library_versions

    started = time.perf_counter()
    settings = check_cache(cache_dir, config.copies)
    features = dict(settings["features"])
    if features.pop("kind", None) != WhisperFeatureConfig.kind:
        raise DataError(f"{cache_dir} does not hold Whisper log-mel encoder states")
    feature_config = WhisperFeatureConfig.from_dict(features)
    for other in extra:
        if check_cache(other, config.copies)["features"] != settings["features"]:
            raise DataError(f"{other} was encoded with other feature settings than {cache_dir}")
    caches = [cache_dir, *extra]
    manifest, x = load_pooled_set(caches, config.copies, clip_norm=config.head.clip_norm)
    manifest, x, y = labelled(manifest, x)
    tr, va, te = ravdess_parts(manifest, split)
    for name, mask, actors in (("train", tr, split.train), ("test", te, split.test)):
        if not mask.any():
            raise DataError(f"the cache holds no clips of the {name} actors {list(actors)}")
    if not va.any():
        raise ParameterError("training the head needs validation actors to select its epoch")

    model, history = fit_parts(x, y, tr, va, config)
    # Saved: the head without its optimizer state, the same weights and statistics
    mean, std = pooled_statistics(x[:, tr])
    plain = build_head(*x.shape[2:], len(EMOTIONS), config.head, mean=mean, std=std)
    plain.set_weights(model.get_weights())

    def probabilities(mask):
        return np.asarray(keras.ops.convert_to_numpy(plain(x[0, mask], training=False)))

    metrics = evaluate(y[te], probabilities(te).argmax(1), EMOTIONS, present_only=True)
    val = evaluate(y[va], probabilities(va).argmax(1), EMOTIONS, present_only=True)
    val_acc = [h["val_accuracy"] for h in history]
    best_epoch = int(np.argmax(val_acc)) + 1 if config.select else len(history)
    metrics.update(
        {
            "part": "test",
            "test_actors": list(split.test),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "validation": {k: val[k] for k in SCORES},
        }
    )

    run_dir = Path(run_dir)
    fresh_dir(run_dir)
    _write_history(run_dir / "history.csv", history)
    plain.save(run_dir / "model.keras")
    run = Run(
        model="encoder",
        labels=EMOTIONS,
        features=feature_config,
        training=config,
        split=split.record(),
        clips={"train": int(tr.sum()), "val": int(va.sum()), "test": int(te.sum())},
        parameters=int(plain.count_params()),
        cost={
            "seconds_total": round(time.perf_counter() - started, 1),
            "cpu_cores": os.cpu_count(),
            "note": "the head alone, on cached encoder states",
        },
        versions=library_versions(),
        git_commit=git_commit(),
        data={
            "caches": [str(c) for c in caches],
            "clips per corpus": manifest.loc[tr | va | te, "corpus"].value_counts().to_dict(),
        }
        if extra
        else None,
        encoder=FrozenEncoder(
            source=settings["encoder"], dimensions=_dimensions(settings["encoder"], x)
        ),
    )
    curves = {k: [h[k] for h in history] for k in ("loss", "accuracy", "val_accuracy")}
    title = f"Whisper encoder head, test actors {', '.join(map(str, split.test))}"
    write_run(run_dir, run, metrics, curves, title=title)
    export_head(run_dir)  # head.npz, checked against model.keras
    seconds = time.perf_counter() - started
    if verbose:
        print(
            f"{run_dir}: test accuracy {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f} "
            f"(validation {val['accuracy']:.3f}; epoch {best_epoch} of {len(history)}, "
            f"{seconds:.0f} s)"
        )
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        seconds=seconds,
        epochs_run=len(history),
        best_epoch=best_epoch,
        seconds_per_epoch=seconds / len(history),
    )


def cross_validate_encoder(
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: HeadTraining,
    *,
    extra: Sequence[str | os.PathLike] = (),
    verbose: bool = True,
) -> dict[int, dict]:
    """A run folder per published fold (``out_dir/fold1`` ... ``fold6``); each fold's test
    metrics. The summary over seeds and the figures are ``tools/encoder_cv.py``'s."""
    out_dir = Path(out_dir)
    return {
        fold: train_encoder(
            cache_dir, out_dir / f"fold{fold}", split(fold), config, extra=extra, verbose=verbose
        ).metrics
        for fold in sorted(load_folds())
    }


def encoder_probabilities(
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    parts: Sequence[str] = ("val", "test"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An encoder run's raw probabilities on its actors of ``parts``, from an encoder cache
    made with its feature settings and encoder (as :func:`ser_cnn.cv.run_probabilities` for
    the CNN and the MLP; ``tools/calibrate.py`` fits temperatures with it). Its head.npz scores
    the clips as recorded."""
    from ser_cnn.encoder.serve import NumpyHead
    from ser_cnn.run import LIGHT_FILES, load_run

    run = load_run(run_dir)
    settings = check_cache(cache_dir)
    if not _same_cache(run, settings):
        raise DataError(
            f"{run_dir} was trained on other feature settings or another encoder than the "
            f"cache {cache_dir}"
        )
    if run.split.get("kind") != "actor-wise":
        raise DataError(f"{run_dir} was split by {run.split.get('kind')!r}, not by actors")
    manifest, x = load_pooled_set([cache_dir], 0, clip_norm=run.training.head.clip_norm)
    manifest, x, y = labelled(manifest, x, run.labels)
    masks = dict(
        zip(("train", "val", "test"), ravdess_parts(manifest, Split(**_split(run))), strict=True)
    )
    head = NumpyHead(Path(run_dir) / LIGHT_FILES["encoder"])
    out = {}
    for part in parts:
        if not masks[part].any():
            raise DataError(f"{run_dir}: the cache {cache_dir} holds no clips of its {part} actors")
        out[part] = (head.predict_proba(x[0, masks[part]]).astype(np.float64), y[masks[part]])
    return out


def is_encoder_cache(cache_dir: str | os.PathLike) -> bool:
    """Whether ``cache_dir`` is an encoder cache (of ``tools/encode_cache.py``)."""
    path = Path(cache_dir) / SETTINGS_FILE
    try:
        return "encoder" in cache_settings(cache_dir) if path.is_file() else False
    except ValueError:
        return False


def cache_fits(run, cache_dir: str | os.PathLike) -> bool:
    """Whether an encoder cache holds the states an encoder ``run`` was trained on."""
    return is_encoder_cache(cache_dir) and _same_cache(run, cache_settings(cache_dir))


def _same_cache(run, settings: dict) -> bool:
    """Whether a cache's settings are those an encoder run was trained with."""
    from ser_cnn.run import _features_to_dict

    return (
        settings.get("features") == _features_to_dict("encoder", run.features)
        and settings.get("encoder") == run.encoder.source
    )


def _split(run) -> dict:
    return {k: tuple(run.split.get(k) or ()) for k in ("train", "val", "test")} | {
        "fold": run.split.get("fold")
    }


def _dimensions(source: dict, x: np.ndarray):
    """The dimensions of the encoder whose states the cache holds: tiny.en's for the pinned
    weights, else read off the installed weights (which must be the cache's)."""
    from ser_cnn.encoder.ct2 import read_ct2
    from ser_cnn.encoder.whisper import (
        PINNED,
        WhisperDimensions,
        check_source,
        dimensions_from_tensors,
    )

    if source == PINNED:
        dims = WhisperDimensions()  # tests/test_encoder.py checks it against the file
    else:
        dims = dimensions_from_tensors(read_ct2(check_source(source).path, prefix="encoder/"))
    if (dims.n_audio_layer + 1, 2 * dims.n_audio_state) != tuple(x.shape[2:]):
        raise DataError(f"the cache's pooled states {x.shape[2:]} do not fit the encoder {dims}")
    return dims


def _write_history(path: Path, history: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "accuracy", "loss", "val_accuracy"])
        for i, h in enumerate(history):
            writer.writerow([i, h["accuracy"], h["loss"], h["val_accuracy"]])
