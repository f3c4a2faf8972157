"""Train the CNN on a preprocessed cache, speaker-independently, and write a self-describing run.

A run folder (``checkpoints/<run>/``) holds everything needed to use and to judge the model::

    saved_model/          TensorFlow SavedModel (model.export): what inference loads
    model.keras           the Keras model, for further training or inspection
    config.json           labels in output order, feature settings, normalisation statistics,
                          training arguments, the actors of each part, seed, versions, git commit
    normalization.json    per-mel-band mean and std of the training actors (also inside the model)
    history.csv           loss and accuracy per epoch
    metrics.json          test accuracy, UAR, macro-F1, per-class scores, confusion matrix
    training_curves.png   confusion_matrix.png
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.data import EMOTIONS, Split
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features import FeatureConfig
from ser_cnn.metrics import (
    SCORES,
    evaluate,
    plot_confusion,
    plot_history,
    summarize_folds,
    write_summary,
)
from ser_cnn.preprocess import load_cache
from ser_cnn.speaker import band_statistics, normalize_by_speaker
from ser_cnn.versions import git_commit, library_versions

RUN_FORMAT = 1  # bump when the run-folder layout changes
CV_PROTOCOL = (
    "RAVDESS speech, 8 emotions, speaker-independent 6-fold "
    "(EmoBox folds, ser_cnn/ravdess_folds.json)"
)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings of the CNN; all of them are saved in the run's config.json."""

    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam; 3e-3 learned slower in 8-epoch trials on fold 1
    patience: int = 20  # epochs without a better validation accuracy before stopping
    # What picks the best epoch (validation actors only). Not the loss: without augmentation
    # the model grows overconfident, and on fold 1 the validation loss bottomed out at epoch 15
    # while validation accuracy kept rising to epoch 31.
    monitor: str = "val_accuracy"
    seed: int = 0
    filters: tuple[int, ...] = (32, 64, 128, 128)  # beat 16-32-64-128 on validation, fold 1
    convs_per_block: int = 1
    time_pool: int = 2  # 20 ms steps: halves the cost, so the wider filters fit the budget
    dense: int = 128
    dropout: float = 0.3
    # standardise each clip first; slower to learn in early trials, fold 1 plain training:
    # validation 0.542 -> 0.567 (results/ablation.json); off until six folds confirm it
    utterance_norm: bool = False
    bn_momentum: float = 0.9  # moving averages that keep up: 0.99 lagged, val collapsed
    class_weights: bool = True  # neutral has half as many clips as every other emotion
    # Augmentation is off by default: six folds with time shift + SpecAugment scored lower on
    # validation (0.561 against 0.617 without; results/cv_cnn_shift_specaugment.json): within
    # 50 epochs the augmented model underfits (training accuracy ~0.6).
    time_shift: int = 0  # frames: random circular shift of each training clip (30 = 0.3 s)
    freq_masks: int = 0  # SpecAugment: masks of up to freq_mask_width mel bands
    freq_mask_width: int = 8
    time_masks: int = 0  # SpecAugment: masks of up to time_mask_width frames
    time_mask_width: int = 25
    mixup_alpha: float = 0.0  # Beta(α, α) mixing of pairs of training clips; 0 = off
    noise_db: float = 0.0  # std of Gaussian noise added to the log-mel, in dB; 0 = off
    # Speed perturbation on the cached log-mel: factor drawn from 1 ± speed scales frequencies
    # by it (mel warp) and durations by its inverse (time stretch), like playing the clip
    # faster or slower; a cheap stand-in for other speakers' voices. 0 = off. Fold 1, plain
    # training: validation 0.542 -> 0.633 with ±10 % (results/ablation.json); off until six
    # folds confirm it, as time shift and SpecAugment, good on fold 1, did not hold there.
    speed: float = 0.0
    # Arithmetic of the CNN body: "bfloat16" (mixed precision, float32 weights) trains about
    # twice as fast on CPUs with bfloat16 instructions and emulates them slowly elsewhere;
    # "auto" picks it only where the CPU has them. The exported model always runs in float32.
    precision: str = "auto"
    # Polyak averaging: validate, select and save an exponential moving average of the weights
    # (momentum per step; 0.99 ≈ the last 100 steps, three epochs) instead of the raw ones,
    # which two validation actors see jumping from epoch to epoch. 0 = off. Six folds:
    # validation accuracy 0.617 -> 0.625, test 0.548 -> 0.577 for seed 0, but seeds 1 and 2
    # scored 0.614 / 0.610 and 0.550 / 0.534 (results/cv_cnn*.json): within seed noise.
    ema: float = 0.99
    # Refit: train on the training *and* validation actors for exactly `epochs` epochs and keep
    # the last (weight-averaged) weights: no early stopping, no epoch chosen on validation.
    # Speaker-independent SER is starved of speakers (18 training actors per fold); this gives
    # it 20, and no longer lets two validation voices pick the epoch. The epoch count comes
    # from the validated runs (best epochs 29-50 of 50 over three seeds, cosine decay to the
    # end). There are then no validation scores; the test actors stay unseen as always.
    # Six folds, seeds 0/1/2: test accuracy 0.580 / 0.588 / 0.586 against 0.577 / 0.550 / 0.534
    # without (results/cv_cnn_refit*.json). Off by default: the default selects on validation.
    refit: bool = False
    # Speaker normalisation: standardise every actor's log-mels with that actor's own per-band
    # statistics over all of their clips (ser_cnn/speaker.py), test actors included, from
    # their unlabelled clips only. Removes much of what separates one voice from another; the
    # model then needs several recordings of a speaker (or one long one) at inference.
    speaker_norm: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["filters"] = list(self.filters)
        return d


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    seconds: float
    epochs_run: int
    best_epoch: int
    seconds_per_epoch: float
    extra: dict = field(default_factory=dict)


def select(manifest: pd.DataFrame, actors: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the manifest rows whose actor is in ``actors``."""
    return manifest["actor"].isin(actors).to_numpy()


def labels_of(manifest: pd.DataFrame) -> np.ndarray:
    """Class indices (0..7, in EMOTIONS order) of the manifest rows."""
    return manifest["emotion_code"].to_numpy(dtype=np.int64) - 1


def train_cnn(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split,
    config: TrainConfig = TrainConfig(),
    *,
    verbose: int = 2,
) -> RunResult:
    """Train on the training actors, select on the validation actors, test on the test actors.

    Parameters
    ----------
    cache_dir : path
        A cache written by ``scripts/preprocess.py``.
    run_dir : path
        Output folder; created, or replaced if it holds an earlier run.
    split : Split
        Actor-wise split (see :func:`ser_cnn.data.split`).
    config : TrainConfig
    verbose : int
        Keras verbosity: 2 prints one line per epoch, 0 nothing.

    Returns
    -------
    RunResult
    """
    import keras  # TensorFlow loads here, not at import time of ser_cnn

    started = time.perf_counter()
    manifest, features, feature_config = load_cache(cache_dir)
    if config.speaker_norm:  # each actor by their own statistics: no actor sees another's
        features = normalize_by_speaker(features, manifest["actor"].to_numpy())
    parts = {name: select(manifest, getattr(split, name)) for name in ("train", "val", "test")}
    for name, mask in parts.items():
        if not mask.any() and (name != "val" or split.val):
            raise DataError(f"the cache holds no clips of the {name} actors {getattr(split, name)}")
    if not parts["val"].any():
        raise ParameterError("training needs validation actors to select the best epoch")
    if config.refit:  # the validation actors join training; nothing is selected on them
        parts = {
            "train": parts["train"] | parts["val"],
            "val": np.zeros_like(parts["val"]),
            "test": parts["test"],
        }
    y = labels_of(manifest)
    x_train, y_train = features[parts["train"]], y[parts["train"]]
    x_val, y_val = features[parts["val"]], y[parts["val"]]
    x_test, y_test = features[parts["test"]], y[parts["test"]]

    keras.utils.set_random_seed(config.seed)
    from ser_cnn.model import utterance_normalize

    # training actors only (with refit, training + validation actors): never test
    mean, std = band_statistics(utterance_normalize(x_train) if config.utterance_norm else x_train)
    precision = resolve_precision(config.precision)
    model = build_model(feature_config, config, mean, std, compute_dtype=precision)
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    # Cosine decay over the planned epochs: a plateau rule driven by two validation actors'
    # noisy loss halved the rate every few epochs in trials and stalled learning.
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(
            schedule, use_ema=config.ema > 0, ema_momentum=config.ema or 0.99
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    n_classes = len(EMOTIONS)
    train_ds = make_dataset(
        x_train, y_train, n_classes, config, training=True, feature_config=feature_config
    )
    val_ds = None if config.refit else make_dataset(x_val, y_val, n_classes, config, training=False)

    run_dir = Path(run_dir)
    _fresh_dir(run_dir)
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
    plain = build_model(feature_config, config, mean, std, compute_dtype="float32")
    plain.set_weights(model.get_weights())
    probabilities = plain.predict(x_test, batch_size=128, verbose=0)
    metrics = evaluate(y_test, probabilities.argmax(axis=1), EMOTIONS)
    if config.refit:
        validation, epochs_run = None, len(history["loss"])
        best_epoch = epochs_run  # the last: nothing was selected
    else:
        val_metrics = evaluate(y_val, plain.predict(x_val, verbose=0).argmax(axis=1), EMOTIONS)
        validation = {k: val_metrics[k] for k in SCORES}
        monitored = history[config.monitor]
        best_epoch = (
            int(np.argmin(monitored) if "loss" in config.monitor else np.argmax(monitored)) + 1
        )
        epochs_run = len(monitored)
    metrics.update(
        {
            "part": "test",
            "test_actors": list(split.test),
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "validation": validation,
        }
    )

    plain.save(run_dir / "model.keras")
    plain.export(str(run_dir / "saved_model"), format="tf_saved_model", verbose=False)
    normalization = {
        "band_mean": mean.tolist(),
        "band_std": std.tolist(),
        "from": "train and validation actors (refit)" if config.refit else "train actors",
    }
    (run_dir / "normalization.json").write_text(json.dumps(normalization, indent=1) + "\n")
    seconds = time.perf_counter() - started
    run_config = {
        "format": RUN_FORMAT,
        "model": "cnn",
        "labels": list(EMOTIONS),
        "input": {
            "name": "log_mel",
            "shape": list(feature_config.shape),
            "dtype": "float32",
            # True: the model expects log-mels standardised per speaker (ser_cnn/speaker.py)
            "speaker_normalized": config.speaker_norm,
        },
        "features": feature_config.to_dict(),
        "normalization": normalization,
        "split": split.to_dict(),
        "clips": {name: int(mask.sum()) for name, mask in parts.items()},
        "training": config.to_dict() | {"precision": precision},
        "seed": config.seed,
        "parameters": int(model.count_params()),
        "cost": {
            "seconds_total": round(seconds, 1),
            "seconds_fit": round(fit_seconds, 1),
            "seconds_per_epoch": round(fit_seconds / epochs_run, 2),
            "cpu_cores": os.cpu_count(),
        },
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    title = f"CNN, test actors {', '.join(map(str, split.test))}"
    _write_run(run_dir, run_config, metrics, history, title)
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        seconds=seconds,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        seconds_per_epoch=fit_seconds / epochs_run,
    )


def resolve_precision(precision: str) -> str:
    """'float32' or 'bfloat16': "auto" is bfloat16 where the CPU has bfloat16 instructions."""
    if precision in ("float32", "bfloat16"):
        return precision
    if precision != "auto":
        raise ParameterError(
            f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}"
        )
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay exact
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def build_model(
    feature_config: FeatureConfig, config: TrainConfig, mean, std, *, compute_dtype="float32"
):
    from ser_cnn.model import build_cnn

    return build_cnn(
        feature_config.shape,
        len(EMOTIONS),
        filters=config.filters,
        convs_per_block=config.convs_per_block,
        time_pool=config.time_pool,
        dense=config.dense,
        dropout=config.dropout,
        utterance_norm=config.utterance_norm,
        bn_momentum=config.bn_momentum,
        band_mean=mean,
        band_std=std,
        compute_dtype=compute_dtype,
    )


SPEED_STEPS = 21  # speed factors on a grid over 1 ± speed (one warp matrix each)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    *,
    training: bool,
    feature_config: FeatureConfig | None = None,
):
    """tf.data pipeline: one-hot labels; for training, shuffling and augmentation.

    Augmentations act on raw log-mel tensors (dB) of the training actors only: speed
    perturbation (mel warp + time stretch, ``feature_config`` gives the mel scale), random circular
    time shift, SpecAugment frequency and time masks (filled with the clip's mean), Gaussian
    noise, and mixup of pairs within a batch (labels mixed alike). Every random draw is a
    stateless op keyed by a seed stream derived from ``config.seed``, so the same seed gives
    the same augmentations, epoch by epoch, whatever the thread scheduling.
    """
    import tensorflow as tf

    onehot = np.eye(n_classes, dtype=np.float32)[y]
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), onehot))
    if not training:
        return ds.batch(config.batch_size)
    ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    n_mels, n_frames = x.shape[1:]
    if config.speed:
        from ser_cnn.features import DEFAULT_CONFIG, mel_warp_matrix

        factors = np.linspace(1 - config.speed, 1 + config.speed, SPEED_STEPS)
        mel_config = feature_config or DEFAULT_CONFIG
        if mel_config.n_mels != n_mels:
            raise ParameterError(f"feature_config has {mel_config.n_mels} bands, x has {n_mels}")
        warps = tf.constant(np.stack([mel_warp_matrix(f, config=mel_config) for f in factors]))
        lengths = tf.constant(np.round(n_frames / factors).astype(np.int32))

    def seeds(offset: int):
        # one int64 per element, different every epoch, the same in every run with this seed
        return tf.data.Dataset.random(seed=config.seed + offset, rerandomize_each_iteration=True)

    def augment(example, key):
        clip, label = example
        keys = tf.unstack(tf.random.split(tf.stack([key, key // 7]), 8))
        speed_key, keys = keys[-1], iter(keys[:-1])
        if config.speed:
            pick = tf.random.stateless_uniform([], speed_key, 0, SPEED_STEPS, tf.int32)
            clip = tf.linalg.matmul(tf.gather(warps, pick), clip)
            # stretch in time, then centre-crop or pad with the clip's floor back to n_frames
            floor = tf.reduce_min(clip)
            image = tf.image.resize((clip - floor)[..., None], [n_mels, tf.gather(lengths, pick)])
            clip = tf.image.resize_with_crop_or_pad(image, n_mels, n_frames)[..., 0] + floor
        if config.time_shift:
            shift = tf.random.stateless_uniform(
                [], next(keys), -config.time_shift, config.time_shift + 1, tf.int32
            )
            clip = tf.roll(clip, shift, axis=1)
        fill = tf.reduce_mean(clip)
        for _ in range(config.freq_masks):
            clip = _mask(clip, fill, n_mels, config.freq_mask_width, next(keys), axis=0)
        for _ in range(config.time_masks):
            clip = _mask(clip, fill, n_frames, config.time_mask_width, next(keys), axis=1)
        if config.noise_db:
            clip += tf.random.stateless_normal(tf.shape(clip), next(keys), stddev=config.noise_db)
        return clip, label

    ds = tf.data.Dataset.zip((ds, seeds(0)))
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(config.batch_size)
    if config.mixup_alpha > 0:
        ds = tf.data.Dataset.zip((ds, seeds(1)))
        ds = ds.map(lambda batch, key: _mixup(*batch, config.mixup_alpha, key))
    return ds.prefetch(tf.data.AUTOTUNE)


def _mask(clip, fill, size: int, max_width: int, key, *, axis: int):
    import tensorflow as tf

    if max_width <= 0:
        return clip
    k1, k2 = tf.unstack(tf.random.split(key, 2))
    width = tf.random.stateless_uniform([], k1, 0, max_width + 1, tf.int32)
    start = tf.random.stateless_uniform([], k2, 0, tf.maximum(size - width, 0) + 1, tf.int32)
    index = tf.range(size)
    hit = (index >= start) & (index < start + width)
    hit = tf.reshape(hit, [-1, 1] if axis == 0 else [1, -1])
    return tf.where(hit, fill, clip)


def _mixup(clips, labels, alpha: float, key):
    import tensorflow as tf

    k1, k2, k3 = tf.unstack(tf.random.split(tf.stack([key, key // 7]), 3))
    n = tf.shape(clips)[0]
    # Beta(α, α) from two Gamma draws; one λ per clip
    a = tf.random.stateless_gamma([n], k1, alpha)
    b = tf.random.stateless_gamma([n], k2, alpha)
    lam = a / (a + b)
    partner = tf.argsort(tf.random.stateless_uniform([n], k3))
    lam_x = tf.reshape(lam, [-1, 1, 1])
    lam_y = tf.reshape(lam, [-1, 1])
    clips = lam_x * clips + (1 - lam_x) * tf.gather(clips, partner)
    labels = lam_y * labels + (1 - lam_y) * tf.gather(labels, partner)
    return clips, labels


def _class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """'balanced' weights: n / (n_classes × count), so every emotion counts the same."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return {i: float(w) for i, w in enumerate(weights)}


def _write_run(run_dir: Path, config: dict, metrics: dict, curves: dict, title: str) -> None:
    """The parts of a run folder that every model writes alike."""
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_history(curves, run_dir / "training_curves.png", title=title)
    plot_confusion(
        metrics["confusion_matrix"], config["labels"], run_dir / "confusion_matrix.png", title=title
    )


def _fresh_dir(path: Path) -> None:
    if path.exists():
        ours = (path / "config.json").exists() or (path / "history.csv").exists()  # or interrupted
        if not ours and any(path.iterdir()):
            raise ParameterError(
                f"{path} exists and is not a ser_cnn run folder; choose another --out"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)


def cross_validate(
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    model: str = "cnn",
    folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
    summary_path: str | os.PathLike | None = None,
    verbose: int = 2,
) -> dict:
    """Train one model ('cnn' or 'mlp') per published fold; write per-fold and mean ± std scores
    to one file.

    Returns the summary written to ``summary_path`` (default ``out_dir/cv_summary.json``),
    with a pooled confusion matrix picture beside it.
    """
    from ser_cnn.data import split as make_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    per_fold, cost = {}, {}
    for k in folds:
        if model == "cnn":
            result = train_cnn(
                cache_dir, out_dir / f"fold{k}", make_split(k), config, verbose=verbose
            )
        elif model == "mlp":
            result = train_mlp(cache_dir, out_dir / f"fold{k}", make_split(k), seed=config.seed)
        else:
            raise ParameterError(f"model must be 'cnn' or 'mlp', got {model!r}")
        per_fold[str(k)] = result.metrics
        cost[str(k)] = {
            "seconds": round(result.seconds, 1),
            "seconds_per_epoch": round(result.seconds_per_epoch, 2),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
        }
        print(
            f"fold {k}: "
            + "  ".join(f"{s} {result.metrics[s]:.3f}" for s in SCORES)
            + f"  ({result.seconds:.0f} s)",
            flush=True,
        )
    summary = summarize_folds(per_fold, EMOTIONS)
    configs = {k: json.loads((out_dir / f"fold{k}" / "config.json").read_text()) for k in folds}
    first = configs[folds[0]]
    if model == "cnn" and config.refit:
        selection = (
            f"no selection: trained on the training and validation actors together for "
            f"{config.epochs} epochs, last weights kept (refit)"
        )
    else:
        selection = "best epoch chosen on validation " + ("accuracy" if model == "cnn" else "UAR")
    summary.update(
        {
            "model": model,
            "protocol": f"{CV_PROTOCOL}; validation actors from the training actors of each "
            f"fold; {selection}",
            "training": first["training"]  # as trained: "auto" precision resolved
            if model == "cnn"
            else {str(k): c["training"] | {"search": None} for k, c in configs.items()},
            "parameters": first.get("parameters"),
            "features": first["features"],
            "cost": {
                "wall_seconds": round(time.perf_counter() - started, 1),
                "per_fold": cost,
                "cpu_cores": os.cpu_count(),
            },
            "versions": library_versions(),
            "git_commit": git_commit(),
        }
    )
    write_summary(
        summary,
        summary_path or out_dir / "cv_summary.json",
        title=f"{model.upper()}, {len(folds)} folds pooled, "
        f"mean accuracy {summary['mean']['accuracy']:.3f}",
    )
    return summary


# ---------------------------------------------------------------------------------------------
# The MLP baseline: same splits, same metrics, same run-folder layout


def train_mlp(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split | None,
    *,
    seed: int = 0,
    emotions: tuple[str, ...] | None = None,
    random_split: bool = False,
) -> RunResult:
    """Train the StandardScaler + MLPClassifier baseline on the classic 180-number features.

    Parameters
    ----------
    cache_dir : path
        A cache of ``scripts/preprocess.py --features classic``.
    run_dir : path
        Output folder: ``model.joblib`` instead of the SavedModel, otherwise as for the CNN.
    split : Split or None
        Actor-wise split; must be None with ``random_split``.
    emotions : tuple of str, optional
        Keep only these emotions (e.g. the seed project's calm, happy, fearful, disgust).
    random_split : bool
        Split clips at random (75 % train of which a tenth validates, 25 % test), as the seed
        projects did. Speakers then occur in both training and test data: the result is
        labelled as leaking speakers and is not comparable with actor-wise figures.
    """
    from ser_cnn.baseline import fit_mlp, save_pipeline, write_history

    if random_split == (split is not None):
        raise ParameterError("give an actor-wise split, or random_split=True, not both")
    started = time.perf_counter()
    manifest, features, feature_config = load_cache(cache_dir)
    if getattr(feature_config, "kind", "") != "classic":
        raise DataError(
            f"{cache_dir} holds {feature_config.kind} features; the MLP needs the classic ones: "
            "`python scripts/preprocess.py --features classic`"
        )
    labels = tuple(emotions) if emotions else EMOTIONS
    unknown = set(labels) - set(EMOTIONS)
    if unknown:
        raise ParameterError(
            f"unknown emotions {sorted(unknown)}; choose from {', '.join(EMOTIONS)}"
        )
    keep = manifest["emotion"].isin(labels).to_numpy()
    manifest, features = manifest[keep].reset_index(drop=True), features[keep]
    y = manifest["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    if random_split:
        parts = _random_parts(len(manifest), seed)
        split_info = {"kind": "random clips (LEAKS SPEAKERS: the same actors train and test)"}
    else:
        parts = {name: select(manifest, getattr(split, name)) for name in ("train", "val", "test")}
        split_info = {"kind": "actor-wise", **split.to_dict()}
    for name, mask in parts.items():
        if not mask.any():
            raise DataError(f"no clips in the {name} part of this split")

    fit = fit_mlp(
        features[parts["train"]],
        y[parts["train"]],
        features[parts["val"]],
        y[parts["val"]],
        seed=seed,
    )
    pred = fit.pipeline.predict(features[parts["test"]])
    metrics = evaluate(y[parts["test"]], pred, labels)
    val_metrics = evaluate(y[parts["val"]], fit.pipeline.predict(features[parts["val"]]), labels)
    metrics.update(
        {
            "part": "test",
            "split": split_info["kind"],
            "best_epoch": fit.best_epoch,
            "validation": {k: val_metrics[k] for k in SCORES},
        }
    )
    run_dir = Path(run_dir)
    _fresh_dir(run_dir)
    save_pipeline(fit.pipeline, run_dir / "model.joblib")
    write_history(fit.history, run_dir / "history.csv")
    run_config = {
        "format": RUN_FORMAT,
        "model": "mlp",
        "labels": list(labels),
        "input": {"name": "classic", "shape": list(feature_config.shape), "dtype": "float32"},
        "feature_kind": "classic",
        "features": feature_config.to_dict(),
        "split": split_info,
        "clips": {name: int(mask.sum()) for name, mask in parts.items()},
        "training": {
            "hidden_layer_sizes": list(fit.hidden),
            "alpha": fit.alpha,
            "best_epoch": fit.best_epoch,
            "selection": "grid over hidden sizes and alpha, early stopping on validation UAR",
            "search": fit.search,
        },
        "seed": seed,
        "cost": {"seconds_total": round(time.perf_counter() - started, 1)},
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    curves = {
        "loss": [h["loss"] for h in fit.history],
        "val_accuracy": [h["val_accuracy"] for h in fit.history],
    }
    where = "random clips" if random_split else f"test actors {', '.join(map(str, split.test))}"
    _write_run(run_dir, run_config, metrics, curves, f"MLP, {where}")
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        epochs_run=len(fit.history),
        best_epoch=fit.best_epoch,
        seconds_per_epoch=0.0,
    )


def _random_parts(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = round(0.25 * n)
    n_val = round(0.1 * (n - n_test))
    parts = {}
    for name, idx in (
        ("test", order[:n_test]),
        ("val", order[n_test : n_test + n_val]),
        ("train", order[n_test + n_val :]),
    ):
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        parts[name] = mask
    return parts
