"""Train the head on the frozen encoder's cached states and write an encoder run folder.

The encoder never changes, so training reads its pooled states from an encoder cache
(:func:`ser_cnn.encoder.cache.load_pooled`): the training speakers' clips and their degraded
copies fit the head (:func:`ser_cnn.encoder.fit.fit_head`), the validation speakers select its
epoch, the test speakers are scored once. Two kinds of split, as for the CNN:

* **RAVDESS's published folds** (:class:`ser_cnn.ravdess.Split`) on the cache of
  ``tools/encode_cache.py`` (``data/encoder/ravdess``), other corpora's caches training beside
  it (``extra``). ``tools/encoder_cv.py`` (six folds, other corpora) uses the same pieces:
  :func:`load_pooled_set`, :func:`labelled`, :func:`ravdess_parts` and :func:`fit_parts`.
* **Any labelled data** (``ser-cnn train --model encoder --data PATH``): the corpus layer's
  manifest, encoded into a cache of its own by :func:`prepare_data` (resumed when interrupted;
  the degraded copies' babble from speakers tested in the same fold), split by
  :func:`ser_cnn.corpora.splits.data_folds` (:class:`~ser_cnn.corpora.splits.DataSplit`:
  speaker-grouped folds, validation speakers out of the training ones), the data's own labels.
  ``source`` fine-tunes the head of a trained encoder run
  (:class:`ser_cnn.training.finetune.HeadSource`); :func:`cross_validate_data` trains every fold and
  writes a summary.

The run folder (:mod:`ser_cnn.run`, model "encoder") holds the head twice, ``model.keras`` and
``head.npz`` (:mod:`ser_cnn.encoder.serve`), and names the encoder's weights without holding
them; ``ser-cnn infer --run``, ``ser-cnn evaluate --run`` and :func:`ser_cnn.load_recognizer`
serve it like the CNN, with its own labels.
"""

from __future__ import annotations

import csv
import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.corpora.manifest import speaker_keys
from ser_cnn.corpora.splits import DEFAULT_FOLDS, DataSplit, label_indices, labels_in
from ser_cnn.encoder.cache import (
    ERRORS_FILE,
    MANIFEST_FILE,
    SETTINGS_FILE,
    cache_settings,
    clip_keys,
    load_manifest,
    load_pooled,
    noisy_cache_command,
    noisy_chain,
)
from ser_cnn.encoder.fit import HeadTraining, fit_head, head_statistics_of
from ser_cnn.encoder.head import build_head, clip_normalize, speaker_normalize
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS, Split, load_folds, split
from ser_cnn.training.cv import one_after_another

DEFAULT_CACHE = Path("data/encoder/ravdess")
NOISY_CACHE = Path("data/encoder/ravdess_noisy")  # with a noise gate's always-noisy copies too
DATA_ROOT = Path("data/encoder")  # --data's encoder caches: <name>-whisper_logmel-<hash>
TEXT_COLUMNS = ("emotion", "label", "speaker", "gender", "text")  # empty in the CSV: unknown
CACHE_COMMAND = (
    "python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess --copies 2"
)


# -- the pooled states, as every head is trained on them -------------------------------------


def load_pooled_set(
    caches: Sequence[str | os.PathLike],
    copies: int,
    *,
    clip_norm: bool,
    corpus_norm: bool = False,
    speaker_norm: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifests of the caches one after another, and their pooled states side by side:
    (copies + 1, n_clips, n_layer + 1, 2 · n_state).

    ``corpus_norm``: standardise every corpus by the statistics of its own clips as recorded
    (the explicit option of issue 24: a clip's answer then depends on its corpus's other clips,
    so it is a separate result row, never the headline). ``speaker_norm``: every speaker by
    their own (:func:`ser_cnn.encoder.head.speaker_normalize`; likewise a row of its own).
    """
    parts = [load_pooled(c, copies=copies) for c in caches]
    if corpus_norm:
        parts = [(m, (p - p[0].mean(axis=0)) / (p[0].std(axis=0) + 1e-6)) for m, p in parts]
    manifest = pd.concat([m for m, _ in parts], ignore_index=True)
    x = np.concatenate([p for _, p in parts], axis=1)
    x = clip_normalize(x) if clip_norm else x
    return manifest, (
        speaker_normalize(x, speaker_keys(manifest).to_numpy()) if speaker_norm else x
    )


def pooled_norms(head) -> dict[str, bool]:
    """:func:`load_pooled_set`'s normalisations as a head (its :class:`HeadConfig`) takes them."""
    return {"clip_norm": head.clip_norm, "speaker_norm": head.speaker_norm}


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


def fit_parts(
    x,
    y,
    tr,
    va,
    config: HeadTraining,
    n_classes: int = len(EMOTIONS),
    corpora=None,
    speakers=None,
    **start,
):
    """Fit a head on ``tr`` (every version: as recorded and degraded) and select it on ``va``
    (as recorded): :func:`ser_cnn.encoder.fit.fit_head`'s model and history (``corpora``: every
    clip's corpus, for ``config.corpus_share``; ``speakers``: every clip's speaker, unique
    across corpora, for ``config.nuisance``; ``start``: its ``statistics`` and ``start`` for
    fine-tuning)."""
    corpora, speakers = (None if a is None else np.asarray(a)[tr] for a in (corpora, speakers))
    return fit_head(
        x[:, tr],
        y[tr],
        x[0, va],
        y[va],
        n_classes,
        config,
        corpora=corpora,
        speakers=speakers,
        **start,
    )


# -- any labelled data: its cache and its folds ------------------------------------------------


def data_manifest(cache_dir: str | os.PathLike) -> pd.DataFrame:
    """An encoder cache's manifest as :mod:`ser_cnn.corpora.splits` reads it: unknown fields (empty
    in the CSV) as None, each clip's cache key as its ``stem``."""
    manifest = load_manifest(cache_dir)
    for column in TEXT_COLUMNS:
        if column in manifest.columns:
            manifest[column] = manifest[column].astype(object).where(manifest[column] != "", None)
    return manifest.assign(stem=manifest["key"])


def data_cache_dir(data: Sequence[str | os.PathLike], root: str | os.PathLike = DATA_ROOT) -> Path:
    """Where ``ser-cnn train --model encoder --data`` encodes ``data`` (as
    :func:`ser_cnn.features.cache.data_cache` names a log-mel cache): the same data, the same
    folder."""
    from ser_cnn.features.cache import data_cache
    from ser_cnn.features.logmel import WhisperFeatureConfig

    return data_cache(data, WhisperFeatureConfig(), root)


def prepare_data(
    data: Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike | None = None,
    *,
    copies: int,
    noisy_copies: int = 0,
    folds: int | None = None,
    strict: bool = False,
    progress: bool = True,
) -> tuple[Path, list[DataSplit] | None, dict]:
    """Read labelled data, check its split, and encode it into its encoder cache unless there.

    Nothing is written when the data or its split is refused. A finished cache that holds
    every clip with at least ``copies`` degraded copies of each, from the same encoder and
    feature settings, is used as it is (``tools/encode_cache.py``'s too); otherwise the
    missing clips and copies are encoded (an interrupted run is resumed, not redone). The
    copies' babble comes from the speakers tested in the same fold
    (:func:`ser_cnn.encoder.cache.data_fold_pool`); RAVDESS alone keeps its published folds
    and their babble rule (:func:`ser_cnn.encoder.cache.fold_group_pool`).

    Parameters
    ----------
    data : sequence of path
        Corpus folders, CSV/TSV tables or folders of emotion folders.
    cache_dir : path, optional
        The encoder cache; default :func:`data_cache_dir` of ``data``.
    copies : int
        Degraded copies of each clip the recipe draws from.
    noisy_copies : int
        How many of them always carry noise (a noise gate's: :func:`noisy_chain`); their cache
        is its own folder by default (``-noisy<n>`` after the name).
    folds : int, optional
        Speaker-grouped folds (:data:`ser_cnn.corpora.splits.DEFAULT_FOLDS`); RAVDESS alone refuses
        any other count than its six.
    strict : bool
        Refuse the data when any file is missing or cannot be analysed.
    progress : bool

    Returns
    -------
    cache_dir : Path
    splits : list of DataSplit, or None for RAVDESS alone (its published folds)
        The folds of the clips the cache holds.
    data : dict
        What the runs record: the inputs, the cache, clips per corpus.

    Raises
    ------
    DataError, ParameterError
        See :func:`ser_cnn.corpora.load_many` and :func:`ser_cnn.corpora.splits.data_folds`.
    """
    from threadpoolctl import threadpool_limits

    from ser_cnn.corpora import summary
    from ser_cnn.corpora.splits import check_ravdess_fold, data_folds, is_ravdess
    from ser_cnn.encoder.cache import build_cache, data_fold_pool, fold_group_pool
    from ser_cnn.encoder.whisper import load_encoder
    from ser_cnn.features.cache import read_inputs
    from ser_cnn.features.logmel import WhisperFeatureConfig

    manifest, problems = read_inputs(data, strict=strict)
    for line in problems:
        print(f"left out: {line}")
    keys = clip_keys(manifest)
    ravdess = is_ravdess(manifest)
    if ravdess:
        check_ravdess_fold(None, folds)
        pool, babble = fold_group_pool(load_folds()), None  # as tools/encode_cache.py's
    else:
        k = folds or DEFAULT_FOLDS
        splits = data_folds(manifest.assign(stem=keys), k)  # refused before anything is written
        pool = data_fold_pool(splits)
        babble = f"speakers tested in the same one of {k} folds (ser_cnn.corpora.splits)"
    chain = noisy_chain(copies, noisy_copies)
    if cache_dir is None:
        cache_dir = data_cache_dir(data)
        if chain:  # beside the usual cache of the same data, never in it
            cache_dir = cache_dir.with_name(f"{cache_dir.name}-noisy{noisy_copies}")
    cache_dir = Path(cache_dir)
    old = _finished(cache_dir)
    if (
        old is not None
        and old.get("copies", 0) >= copies
        and old.get("chain") == chain
        and set(keys) == old["keys"]
    ):
        if babble != old.get("babble") and old.get("copies", 0):
            print(
                f"note: the cache {cache_dir} is used as it is; its degraded copies' babble "
                f"is from {old.get('babble') or 'other speakers of the same corpus'}"
            )
    else:
        print(f"encoder cache {cache_dir}: {len(manifest)} clips, {copies} degraded copies each")
        made = cache_settings(cache_dir) if (cache_dir / SETTINGS_FILE).is_file() else {}
        with threadpool_limits(limits=1):  # NumPy's BLAS would fight TensorFlow's threads
            build_cache(
                manifest,
                cache_dir,
                encoder=load_encoder(),
                feature_config=WhisperFeatureConfig(),
                copies=max(copies, made.get("copies", 0)),  # never fewer than it holds
                babble_pool=pool,
                babble=babble,
                chain=chain,
                strict=strict,
                progress=progress,
            )
    held = data_manifest(cache_dir)  # the clips that could be analysed
    if len(held) < len(manifest):
        print(
            f"left out: {len(manifest) - len(held)} clip(s) that could not be analysed "
            f"(listed in {cache_dir / ERRORS_FILE})"
        )
    record = {
        "inputs": [str(Path(p).resolve()) for p in data],
        "cache": str(cache_dir.resolve()),
        "corpora": {name: summary(part) for name, part in held.groupby("corpus", sort=False)},
    }
    return cache_dir, (None if ravdess else data_folds(held, folds or DEFAULT_FOLDS)), record


def _finished(cache_dir: Path) -> dict | None:
    """A finished encoder cache's settings and clip keys (``keys``), or None."""
    if not (cache_dir / MANIFEST_FILE).is_file() or not is_encoder_cache(cache_dir):
        return None
    return cache_settings(cache_dir) | {"keys": set(load_manifest(cache_dir)["key"])}


# -- a run folder ------------------------------------------------------------------------------


def default_cache(config: HeadTraining) -> Path:
    """The RAVDESS encoder cache a recipe trains from by default: :data:`NOISY_CACHE` for a
    noise gate's (``config.noisy_copies``), else :data:`DEFAULT_CACHE`."""
    return NOISY_CACHE if config.noisy_copies else DEFAULT_CACHE


def check_cache(cache_dir: str | os.PathLike, copies: int = 0, noisy_copies: int = 0) -> dict:
    """An encoder cache's settings, refused with the command that makes it when it is missing,
    unfinished, has fewer degraded copies than ``copies``, or where its last ``noisy_copies``
    copies do not always carry noise (``HeadTraining.noisy_copies``, a noise gate's)."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / SETTINGS_FILE).is_file() or not (cache_dir / "manifest.csv").is_file():
        if noisy_copies:
            what = f"{copies} degraded copies each, the last {noisy_copies} always noisy"
            command = noisy_cache_command("$RAVDESS_DIR", str(cache_dir), copies, noisy_copies)
        else:
            what, command = "two degraded copies each", CACHE_COMMAND
        raise DataError(
            f"{cache_dir} is not a finished encoder cache; make it (RAVDESS speech, 1,440 clips, "
            f"{what}) with `{command}`"
        )
    settings = cache_settings(cache_dir)
    if settings.get("copies", 0) < copies:
        raise DataError(
            f"{cache_dir} holds {settings.get('copies', 0)} degraded copies of each clip, the "
            f"recipe draws from {copies}: make a cache with --copies {copies}"
        )
    chain = noisy_chain(copies, noisy_copies)
    if chain and settings.get("chain") != chain:
        command = noisy_cache_command("$RAVDESS_DIR", str(NOISY_CACHE), copies, noisy_copies)
        raise DataError(
            f"{cache_dir}: the recipe's noise gate needs copies {chain['from_copy']} to {copies} "
            f"always noisy; make a cache with `{command}`"
        )
    return settings


def train_encoder(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split | DataSplit,
    config: HeadTraining,
    *,
    extra: Sequence[str | os.PathLike] = (),
    source: str | os.PathLike | None = None,
    data: dict | None = None,
    verbose: bool = True,
):
    """Train a head on a split of an encoder cache and write its run folder.

    Parameters
    ----------
    cache_dir : path
        An encoder cache holding at least ``config.copies`` degraded copies of each clip:
        ``tools/encode_cache.py``'s (RAVDESS), or :func:`prepare_data`'s (any data).
    run_dir : path
        Output folder; created, or replaced if it holds an earlier run.
    split : Split or DataSplit
        RAVDESS's actor-wise split (:func:`ser_cnn.ravdess.split`): the cache's degraded copies
        take their babble from the actors tested in the same published fold, so a published
        fold's training never hears a test actor's voice. Or a fold of any data
        (:func:`ser_cnn.corpora.splits.data_folds` of :func:`data_manifest`): the classes are then
        the data's own (:func:`ser_cnn.corpora.splits.labels_in`; in the source run's order when it
        has the same ones).
    config : HeadTraining
    extra : sequence of path
        Encoder caches of other corpora (URDU, ASED, nEMO) whose every clip trains beside
        RAVDESS (they never hold a RAVDESS actor); validation and test stay RAVDESS's.
    source : path, optional
        Fine-tune: start from this encoder run's head (a run folder, or one with
        ``encoder/``) instead of random weights (:class:`ser_cnn.training.finetune.HeadSource`): its
        architecture, weights and input statistics; the cache must hold the same encoder's
        states with its feature settings.
    data : dict, optional
        What the cache was made from, stored in the run (``ser-cnn train --data``).
    verbose : bool
        Print a line when done.

    Returns
    -------
    ser_cnn.run.RunResult
    """
    import keras

    from ser_cnn.encoder.serve import export_head
    from ser_cnn.features.logmel import WhisperFeatureConfig
    from ser_cnn.run import FrozenEncoder, Run, RunResult, fresh_dir, write_run
    from ser_cnn.training.metrics import SCORES, evaluate
    from ser_cnn.versions import git_commit, library_versions

    started = time.perf_counter()
    ravdess = isinstance(split, Split)
    if extra and not ravdess:
        raise ParameterError("extra caches train beside RAVDESS's published folds only")
    settings = check_cache(cache_dir, config.copies, config.noisy_copies)
    features = dict(settings["features"])
    if features.pop("kind", None) != WhisperFeatureConfig.kind:
        raise DataError(f"{cache_dir} does not hold Whisper log-mel encoder states")
    feature_config = WhisperFeatureConfig.from_dict(features)
    start = None
    if source is not None:
        from ser_cnn.training.finetune import load_source

        start = load_source(source, "encoder")
        start.check(settings, config, cache_dir)
        config = start.config_for(config)
    for other in extra:
        if (
            check_cache(other, config.copies, config.noisy_copies)["features"]
            != settings["features"]
        ):
            raise DataError(f"{other} was encoded with other feature settings than {cache_dir}")
    caches = [cache_dir, *extra]
    if ravdess:
        manifest, x = load_pooled_set(caches, config.copies, **pooled_norms(config.head))
        manifest, x, y = labelled(manifest, x)
        labels = EMOTIONS
        tr, va, te = ravdess_parts(manifest, split)
    else:
        _, x = load_pooled_set(caches, config.copies, **pooled_norms(config.head))
        manifest = data_manifest(cache_dir)
        labels = labels_in(manifest)
        labels = start.order(labels) if start is not None else labels
        y = label_indices(manifest, labels)
        tr, va, te = (split.masks(manifest)[part] for part in ("train", "val", "test"))
    who = "actors" if ravdess else "speakers"
    for name, mask in (("train", tr), ("test", te)):
        if not mask.any():
            listed = list(getattr(split, name))
            raise DataError(f"the cache holds no clips of the {name} {who} {listed}")
    if not va.any():
        raise ParameterError(f"training the head needs validation {who} to select its epoch")

    kept = {}
    fine_tune = {}
    if start is not None:
        fine_tune = {
            "statistics": start.statistics(),
            "start": lambda model: kept.update(start.transfer(model, labels)),
        }
    corpora, speakers = manifest["corpus"].to_numpy(), speaker_keys(manifest).to_numpy()
    if config.nuisance and any(s is None for s in speakers[tr]):
        raise DataError(f"nuisance = {config.nuisance!r} needs every training clip's speaker")
    model, history = fit_parts(x, y, tr, va, config, len(labels), corpora, speakers, **fine_tune)
    # Saved: the head without its optimizer state, the same weights and statistics
    mean, std = fine_tune.get("statistics") or head_statistics_of(x[:, tr], config, corpora[tr])
    plain = build_head(*x.shape[2:], len(labels), config.head, mean=mean, std=std)
    plain.set_weights(model.get_weights())

    def probabilities(mask):
        return np.asarray(keras.ops.convert_to_numpy(plain(x[0, mask], training=False)))

    metrics = evaluate(y[te], probabilities(te).argmax(1), labels, present_only=True)
    val = evaluate(y[va], probabilities(va).argmax(1), labels, present_only=True)
    val_acc = [h["val_accuracy"] for h in history]
    best_epoch = int(np.argmax(val_acc)) + 1 if config.select else len(history)
    metrics.update(
        {
            "part": "test",
            f"test_{who}": list(split.test),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "validation": {k: val[k] for k in SCORES},
        }
    )
    notes = [] if ravdess or not split.note else [split.note]
    notes += start.warnings(split) if start is not None else []
    if notes:
        metrics["notes"] = notes
    if data is None and extra:
        data = {
            "caches": [str(c) for c in caches],
            "clips per corpus": manifest.loc[tr | va | te, "corpus"].value_counts().to_dict(),
        }

    run_dir = Path(run_dir)
    fresh_dir(run_dir)
    _write_history(run_dir / "history.csv", history)
    plain.save(run_dir / "model.keras")
    run = Run(
        model="encoder",
        labels=labels,
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
        data=data,
        source=start.record(kept) if start is not None else None,
        encoder=FrozenEncoder(
            source=settings["encoder"], dimensions=_dimensions(settings["encoder"], x)
        ),
    )
    curves = {k: [h[k] for h in history] for k in ("loss", "accuracy", "val_accuracy")}
    if ravdess:
        title = f"Whisper encoder head, test actors {', '.join(map(str, split.test))}"
    else:
        tuned = ", fine-tuned" if start is not None else ""
        title = f"Whisper encoder head{tuned}, fold {split.fold} of {split.folds}"
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
    fold_map: Callable[[list[Callable]], Iterable] | None = None,
) -> dict[int, dict]:
    """A run folder per published fold (``out_dir/fold1`` ... ``fold6``); each fold's test
    metrics. The summary over seeds and the figures are ``tools/encoder_cv.py``'s.
    ``fold_map`` runs the folds' jobs, as for :func:`ser_cnn.training.cv.cross_validate`
    (default: one after another here; :func:`ser_cnn.scale.fold_map`: as Ray tasks)."""
    out_dir = Path(out_dir)
    folds = sorted(load_folds())
    jobs = [
        functools.partial(
            train_encoder,
            cache_dir,
            out_dir / f"fold{fold}",
            split(fold),
            config,
            extra=extra,
            verbose=verbose,
        )
        for fold in folds
    ]
    results = (fold_map or one_after_another)(jobs)
    return {fold: r.metrics for fold, r in zip(folds, results, strict=True)}


def cross_validate_data(
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: HeadTraining,
    splits: Sequence[DataSplit],
    *,
    source: str | os.PathLike | None = None,
    data: dict | None = None,
    summary_path: str | os.PathLike | None = None,
    verbose: bool = True,
    fold_map: Callable[[list[Callable]], Iterable] | None = None,
) -> dict:
    """A run folder per fold of any data (``out_dir/fold1`` ...), and a summary written to
    ``summary_path`` (default ``out_dir/cv_summary.json``) in the shape of
    :func:`ser_cnn.training.cv.cross_validate`'s: per-fold and mean ± std scores, cost per fold, the
    training settings, the protocol; a pooled confusion matrix picture beside it."""
    from ser_cnn.run import load_run
    from ser_cnn.training.cv import data_protocol
    from ser_cnn.training.metrics import SCORES, summarize_folds, write_summary
    from ser_cnn.versions import git_commit, library_versions

    out_dir = Path(out_dir)
    started = time.perf_counter()
    per_fold, cost = {}, {}
    jobs = [
        functools.partial(
            train_encoder,
            cache_dir,
            out_dir / f"fold{part.fold}",
            part,
            config,
            source=source,
            data=data,
            verbose=False,
        )
        for part in splits
    ]
    for part, result in zip(splits, (fold_map or one_after_another)(jobs), strict=True):
        per_fold[str(part.fold)] = result.metrics
        cost[str(part.fold)] = {
            "seconds": round(result.seconds, 1),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
        }
        if verbose:
            print(
                f"fold {part.fold}: "
                + "  ".join(f"{s} {result.metrics[s]:.3f}" for s in SCORES)
                + f"  ({result.seconds:.0f} s)",
                flush=True,
            )
    first = load_run(out_dir / f"fold{splits[0].fold}")
    summary = summarize_folds(per_fold, first.labels)
    protocol = data_protocol(splits[0], first.labels, data)
    if first.source is not None:
        protocol += f"; fine-tuned from {first.source['path']}"
    summary.update(
        {
            "model": "encoder",
            "protocol": f"{protocol}; best epoch chosen on validation accuracy",
            "training": first.training.to_dict(),
            "parameters": first.parameters,
            "features": {"kind": first.features.kind, **first.features.to_dict()},
            "encoder": first.encoder.to_dict(),
            "cost": {
                "wall_seconds": round(time.perf_counter() - started, 1),
                "per_fold": cost,
                "cpu_cores": os.cpu_count(),
                "note": "the head alone, on cached encoder states",
            },
            "versions": library_versions(),
            "git_commit": git_commit(),
            "data": data,
            "notes": [splits[0].note] if splits[0].note else [],
            "from": first.source,
        }
    )
    write_summary(
        summary,
        summary_path or out_dir / "cv_summary.json",
        title=f"Whisper encoder head, {len(splits)} folds pooled, "
        f"mean accuracy {summary['mean']['accuracy']:.3f}",
    )
    return summary


def encoder_probabilities(
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    parts: Sequence[str] = ("val", "test"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An encoder run's raw probabilities on its actors of ``parts``, from an encoder cache
    made with its feature settings and encoder (as :func:`ser_cnn.training.cv.run_probabilities` for
    the CNN and the MLP; ``tools/calibrate.py`` fits temperatures with it). Its head.npz scores
    the clips as recorded."""
    from ser_cnn.encoder.serve import NumpyHead
    from ser_cnn.run import LIGHT_FILES, load_run

    run = load_run(run_dir)
    settings = check_cache(cache_dir)
    if not same_cache(run, settings):
        raise DataError(
            f"{run_dir} was trained on other feature settings or another encoder than the "
            f"cache {cache_dir}"
        )
    if run.split.get("kind") != "actor-wise":
        raise DataError(f"{run_dir} was split by {run.split.get('kind')!r}, not by actors")
    manifest, x = load_pooled_set([cache_dir], 0, **pooled_norms(run.training.head))
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
    return is_encoder_cache(cache_dir) and same_cache(run, cache_settings(cache_dir))


def same_cache(run, settings: dict) -> bool:
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
