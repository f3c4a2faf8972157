"""Train the CNN on a preprocessed cache, speaker-independently, and write its run folder.

Training actors fit the weights and the input normalisation, validation actors pick the best
epoch (or, with ``refit``, join training), test actors are scored once. RAVDESS is split by
its actor numbers (:func:`ser_cnn.ravdess.split`), any other data by speakers
(:func:`ser_cnn.corpora.splits.data_split`); the classes are the data's own
(:func:`ser_cnn.corpora.splits.labels_in`: RAVDESS's eight, as always). Training may start from a
trained run instead of random weights (``source``: fine-tuning, :mod:`ser_cnn.training.finetune`).
The folder's layout and schema are :mod:`ser_cnn.run`'s; the data pipeline and augmentation are
:mod:`ser_cnn.training.augment`'s. The degraded copies of the training clips are read from the cache
(:func:`ser_cnn.features.cache.training_copies`, made there first if missing): training never
reads audio.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig
from ser_cnn.corpora.splits import DataSplit, label_indices, labels_in
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.logmel import FeatureConfig
from ser_cnn.features.speaker import band_statistics, normalize_by_speaker
from ser_cnn.ravdess import Split
from ser_cnn.run import Normalization, Run, RunResult, fresh_dir, write_run
from ser_cnn.serving.runtime import export_after_training
from ser_cnn.training.augment import make_dataset
from ser_cnn.training.metrics import SCORES, evaluate
from ser_cnn.versions import git_commit, library_versions


def train_cnn(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split | DataSplit,
    config: TrainConfig = TrainConfig(),
    *,
    verbose: int = 2,
    labels: tuple[str, ...] | None = None,
    source: str | os.PathLike | None = None,
    data: dict | None = None,
) -> RunResult:
    """Train on the training actors, select on the validation actors, test on the test actors.

    Parameters
    ----------
    cache_dir : path
        A cache written by ``ser-cnn preprocess``.
    run_dir : path
        Output folder; created, or replaced if it holds an earlier run.
    split : Split or DataSplit
        RAVDESS's actor-wise split (:func:`ser_cnn.ravdess.split`), or a fold of any data
        (:func:`ser_cnn.corpora.splits.data_split`: speakers, or clips where speakers are unknown).
    config : TrainConfig
    verbose : int
        Keras verbosity: 2 prints one line per epoch, 0 nothing.
    labels : tuple of str, optional
        The classes, in output order; default the cache's (:func:`ser_cnn.corpora.splits.labels_in`:
        RAVDESS's eight in their order), in the source run's order when ``source`` has the
        same ones.
    source : path, optional
        Fine-tune: start from this CNN run (a run folder, or one with ``cnn/``) instead of
        random weights (:mod:`ser_cnn.training.finetune`); its architecture and input normalisation
        are kept, and the cache must have its feature settings.
    data : dict, optional
        What the cache was made from, stored in the run (``ser-cnn train --data``).

    Returns
    -------
    RunResult
    """
    import keras  # TensorFlow loads here, not at import time of ser_cnn

    from ser_cnn.features.cache import load_cache

    started = time.perf_counter()
    manifest, features, feature_config = load_cache(cache_dir)
    start = None
    if source is not None:
        from ser_cnn.training.finetune import load_source

        start = load_source(source)
        start.check(feature_config, config, cache_dir)
        config = start.config_for(config)
    if labels is None:
        labels = labels_in(manifest)
        if start is not None:
            labels = start.order(labels)
    labels = tuple(labels)
    ravdess = isinstance(split, Split)
    if config.speaker_norm:  # each actor by their own statistics: no actor sees another's
        if not ravdess and split.kind != "speaker-wise":
            raise ParameterError("speaker_norm needs every clip's speaker; some are unknown")
        features = normalize_by_speaker(features, split.speakers(manifest))
    parts = training_parts(manifest, split, config)
    who = "actors" if ravdess else "speakers"
    y = label_indices(manifest, labels)  # RAVDESS: labels_of's, its emotion codes - 1
    x_train, y_train = features[parts["train"]], y[parts["train"]]
    x_val, y_val = features[parts["val"]], y[parts["val"]]
    x_test, y_test = features[parts["test"]], y[parts["test"]]

    keras.utils.set_random_seed(config.seed)
    from ser_cnn.model import utterance_normalize

    if start is None:
        # training actors only (with refit, training + validation actors): never test
        utterance = config.architecture.utterance_norm
        mean, std = band_statistics(utterance_normalize(x_train) if utterance else x_train)
    else:  # the source run's, as its weights learned them
        mean, std = start.band_statistics()
    precision = resolve_precision(config.precision)
    n_classes = len(labels)
    model = build_model(feature_config, config, mean, std, compute_dtype=precision, n=n_classes)
    kept = start.transfer(model, labels) if start is not None else None
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    # Cosine decay over the planned epochs: a plateau rule driven by two validation actors'
    # noisy loss halved the rate every few epochs in trials and stalled learning.
    peak = config.learning_rate if start is None else config.finetune_learning_rate
    schedule = keras.optimizers.schedules.CosineDecay(peak, steps, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(
            schedule, use_ema=config.ema > 0, ema_momentum=config.ema or 0.99
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    copies = fold_copies(cache_dir, split, config, manifest=manifest, feature_config=feature_config)
    train_ds = make_dataset(
        x_train,
        y_train,
        n_classes,
        config,
        training=True,
        feature_config=feature_config,
        copies=copies,
    )
    val_ds = None if config.refit else make_dataset(x_val, y_val, n_classes, config, training=False)

    run_dir = Path(run_dir)
    fresh_dir(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        # with EMA on, the averaged weights are swapped in at each epoch's end, so validation,
        # the checkpoint and early stopping all see them
        swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema > 0 else []
        callbacks = [keras.callbacks.CSVLogger(str(run_dir / "history.csv"))]
        # with refit nothing is selected, and fit() itself ends by copying the averaged
        # weights into the model
        if not config.refit:
            callbacks = [
                *swap,
                keras.callbacks.ModelCheckpoint(
                    best, monitor=config.monitor, save_best_only=True, save_weights_only=True
                ),
                keras.callbacks.EarlyStopping(monitor=config.monitor, patience=config.patience),
                *callbacks,
            ]
        fit_started = time.perf_counter()
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            shuffle=False,  # the dataset shuffles itself, reproducibly
            class_weight=_class_weights(y_train, n_classes) if config.class_weights else None,
            callbacks=callbacks,
            verbose=verbose,
        ).history
        fit_seconds = time.perf_counter() - fit_started
        if not config.refit:
            model.load_weights(best)  # the epoch the validation actors liked best

    # The model that is saved and scored: float32 arithmetic whatever the training precision,
    # and no optimizer state (twice the weights again), so the run folder stays small.
    plain = build_model(feature_config, config, mean, std, compute_dtype="float32", n=n_classes)
    plain.set_weights(model.get_weights())
    probabilities = plain.predict(x_test, batch_size=128, verbose=0)
    # UAR and macro-F1 over the classes the test speakers have (RAVDESS's have all eight: the
    # same numbers); a data set's fold may lack an emotion (ser_cnn.corpora.splits)
    metrics = evaluate(y_test, probabilities.argmax(axis=1), labels, present_only=True)
    if config.refit:
        validation, epochs_run = None, len(history["loss"])
        best_epoch = epochs_run  # the last: nothing was selected
    else:
        val_metrics = evaluate(
            y_val, plain.predict(x_val, verbose=0).argmax(axis=1), labels, present_only=True
        )
        validation = {k: val_metrics[k] for k in SCORES}
        monitored = history[config.monitor]
        best_epoch = (
            int(np.argmin(monitored) if "loss" in config.monitor else np.argmax(monitored)) + 1
        )
        epochs_run = len(monitored)
    metrics.update(
        {
            "part": "test",
            f"test_{who}": list(split.test),
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "validation": validation,
        }
    )
    notes = [] if ravdess or not split.note else [split.note]
    if start is not None:
        notes += start.warnings(split)
    if notes:
        metrics["notes"] = notes

    plain.save(run_dir / "model.keras")
    plain.export(str(run_dir / "saved_model"), format="tf_saved_model", verbose=False)
    seconds = time.perf_counter() - started
    if start is not None:
        fitted_on = start.normalization_note()
    elif config.refit:
        fitted_on = f"train and validation {who} (refit)"
    else:
        fitted_on = f"train {who}"
    run = Run(
        model="cnn",
        labels=labels,
        features=feature_config,
        training=config.replace(precision=precision),  # as trained: "auto" resolved
        split=split.record(),
        clips={name: int(mask.sum()) for name, mask in parts.items()},
        normalization=Normalization(
            band_mean=tuple(np.asarray(mean).tolist()),
            band_std=tuple(np.asarray(std).tolist()),
            fitted_on=fitted_on,
        ),
        parameters=int(model.count_params()),
        cost={
            "seconds_total": round(seconds, 1),
            "seconds_fit": round(fit_seconds, 1),
            "seconds_per_epoch": round(fit_seconds / epochs_run, 2),
            "cpu_cores": os.cpu_count(),
        },
        versions=library_versions(),
        git_commit=git_commit(),
        data=data,
        source=start.record(kept) if start is not None else None,
    )
    if ravdess:
        title = f"CNN, test actors {', '.join(map(str, split.test))}"
    else:
        title = f"CNN{', fine-tuned' if start else ''}, fold {split.fold} of {split.folds}"
    write_run(run_dir, run, metrics, history, title=title)
    export_after_training(run_dir)  # model.tflite, for the light runtime
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        seconds=seconds,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        seconds_per_epoch=fit_seconds / epochs_run,
    )


def training_parts(manifest, split: Split | DataSplit, config: TrainConfig) -> dict:
    """Boolean masks ``train``, ``val``, ``test`` of the cache's rows that :func:`train_cnn`
    uses for ``split``: with ``config.refit`` the validation clips join training.

    Raises
    ------
    DataError
        The cache holds no clip of one of the parts.
    ParameterError
        No validation clips (training selects its best epoch on them).
    """
    parts = split.masks(manifest)
    who = "actors" if isinstance(split, Split) else "speakers"
    for name, mask in parts.items():
        if not mask.any() and (name != "val" or split.val):
            raise DataError(f"the cache holds no clips of the {name} {who} {getattr(split, name)}")
    if not parts["val"].any():
        raise ParameterError("training needs validation actors to select the best epoch")
    if config.refit:  # the validation actors join training; nothing is selected on them
        parts = {
            "train": parts["train"] | parts["val"],
            "val": np.zeros_like(parts["val"]),
            "test": parts["test"],
        }
    return parts


def fold_copies(
    cache_dir: str | os.PathLike,
    split: Split | DataSplit,
    config: TrainConfig,
    *,
    manifest=None,
    feature_config: FeatureConfig | None = None,
    jobs: int | None = None,
) -> np.ndarray | None:
    """The degraded copies :func:`train_cnn` trains on for ``split`` and ``config`` (None
    when the recipe has none): those of its training clips (with refit, validation ones too;
    never test ones), from the cache's copies stage
    (:func:`ser_cnn.features.cache.training_copies`), which makes them from the source audio the
    first time.

    ``manifest`` and ``feature_config`` (the cache's manifest and feature settings) are read from
    ``cache_dir`` when not given; ``jobs`` as for :func:`ser_cnn.features.cache.degraded_copies`.
    """
    from ser_cnn.features.cache import cache_config, cache_manifest, training_copies

    if not config.degraded_copies:
        return None
    if config.speaker_norm:
        raise ParameterError("degraded_copies cannot be combined with speaker_norm yet")
    manifest = cache_manifest(cache_dir) if manifest is None else manifest
    feature_config = feature_config or cache_config(cache_dir)
    train = training_parts(manifest, split, config)["train"]
    return training_copies(
        cache_dir,
        manifest[train],
        split.speakers(manifest)[train],
        feature_config,
        copies=config.degraded_copies,
        seed=config.seed,
        kinds=config.degradations,
        p=config.degradation_p,
        snr_range=config.snr_range,
        jobs=jobs,
    )


def resolve_precision(precision: str) -> str:
    """'float32' or 'bfloat16': "auto" is bfloat16 where the CPU has bfloat16 instructions."""
    if precision != "auto":
        return precision  # TrainConfig refuses anything but these three
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay exact
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def build_model(
    feature_config: FeatureConfig, config: TrainConfig, mean, std, *, compute_dtype, n: int = 8
):
    """The CNN of ``config``'s architecture for ``n`` classes (RAVDESS's eight by default)."""
    from ser_cnn.model import build_cnn

    return build_cnn(
        feature_config.shape,
        n,
        config.architecture,
        band_mean=mean,
        band_std=std,
        compute_dtype=compute_dtype,
    )


def _class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """'balanced' weights: n / (n_classes × count), so every emotion counts the same."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return {i: float(w) for i, w in enumerate(weights)}
