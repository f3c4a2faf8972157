"""The MLP baseline: StandardScaler + MLPClassifier on the classic 180-number features.

Same splits, same metrics and the same run-folder layout as the CNN (``model.skops`` instead of
the SavedModel); the same classes (:func:`ser_cnn.corpora.splits.labels_in`). Hidden sizes, alpha
and the number of epochs are chosen on the validation actors' UAR. It is not fine-tuned from other
runs: it trains from scratch in seconds.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_cnn.corpora.splits import DataSplit, labels_in
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS, Split
from ser_cnn.run import MODEL_FILES, Run, RunResult, fresh_dir, save_pipeline, write_run
from ser_cnn.serving.runtime import export_after_training
from ser_cnn.training.metrics import SCORES, evaluate
from ser_cnn.versions import git_commit, library_versions

HIDDEN_GRID = ((256,), (512,), (256, 128))
ALPHA_GRID = (1e-4, 1e-3, 1e-2)
MAX_EPOCHS = 200
PATIENCE = 20  # epochs without a better validation UAR before stopping


@dataclass
class MlpFit:
    pipeline: object  # sklearn Pipeline(StandardScaler, MLPClassifier)
    hidden: tuple[int, ...]
    alpha: float
    best_epoch: int
    history: list[dict]  # per epoch of the chosen setting: loss, val UAR, val accuracy
    search: list[dict]  # every setting tried with its best validation UAR


def fit_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int = 0,
    hidden_grid=HIDDEN_GRID,
    alpha_grid=ALPHA_GRID,
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
) -> MlpFit:
    """Grid-search hidden sizes and alpha, early-stopping each on the validation clips' UAR.

    scikit-learn's own ``early_stopping`` would hold out random training clips, i.e. the same
    speakers; here each epoch is scored on the validation actors instead, and the best epoch of
    the best setting is kept.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)  # training clips only
    xt, xv = scaler.transform(x_train), scaler.transform(x_val)
    best: dict | None = None
    search = []
    for hidden in hidden_grid:
        for alpha in alpha_grid:
            mlp = MLPClassifier(
                hidden_layer_sizes=hidden,
                alpha=alpha,
                batch_size=min(64, len(xt)),
                learning_rate_init=1e-3,
                max_iter=1,
                warm_start=True,
                random_state=seed,
            )
            history, top, top_epoch, top_model = [], -1.0, 0, None
            for epoch in range(1, max_epochs + 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch per call
                    mlp.fit(xt, y_train)  # warm_start: one more epoch from where it stopped
                pred = mlp.predict(xv)
                with warnings.catch_warnings():
                    # early epochs may predict a class the few validation clips lack
                    warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
                    uar = balanced_accuracy_score(y_val, pred)
                history.append(
                    {
                        "epoch": epoch,
                        "loss": float(mlp.loss_),
                        "val_uar": float(uar),
                        "val_accuracy": float(np.mean(pred == y_val)),
                    }
                )
                if uar > top:
                    top, top_epoch, top_model = uar, epoch, copy.deepcopy(mlp)
                elif epoch - top_epoch >= patience:
                    break
            search.append(
                {"hidden": list(hidden), "alpha": alpha, "val_uar": top, "epoch": top_epoch}
            )
            if best is None or top > best["uar"]:
                best = {
                    "uar": top,
                    "hidden": hidden,
                    "alpha": alpha,
                    "epoch": top_epoch,
                    "model": top_model,
                    "history": history,
                }
    pipeline = Pipeline([("scale", scaler), ("mlp", best["model"])])
    return MlpFit(pipeline, best["hidden"], best["alpha"], best["epoch"], best["history"], search)


def write_history(history: list[dict], path: Path) -> None:
    import pandas as pd

    pd.DataFrame(history).to_csv(path, index=False)


def train_mlp(
    cache_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    split: Split | DataSplit | None,
    *,
    seed: int = 0,
    emotions: tuple[str, ...] | None = None,
    random_split: bool = False,
    data: dict | None = None,
) -> RunResult:
    """Train the StandardScaler + MLPClassifier baseline on the classic 180-number features.

    Parameters
    ----------
    cache_dir : path
        A cache of ``ser-cnn preprocess --features classic``.
    run_dir : path
        Output folder: ``model.skops`` instead of the SavedModel, otherwise as for the CNN.
    split : Split, DataSplit or None
        RAVDESS's actor-wise split, or a fold of any data
        (:func:`ser_cnn.corpora.splits.data_split`); must be None with ``random_split``.
    emotions : tuple of str, optional
        Keep only these emotions (e.g. the seed project's calm, happy, fearful, disgust);
        default every emotion of the cache (:func:`ser_cnn.corpora.splits.labels_in`).
    random_split : bool
        Split clips at random (75 % train of which a tenth validates, 25 % test), as the seed
        projects did. Speakers then occur in both training and test data: the result is
        labelled as leaking speakers and is not comparable with actor-wise figures.
    """
    from ser_cnn.features.cache import load_cache

    if random_split == (split is not None):
        raise ParameterError("give an actor-wise split, or random_split=True, not both")
    started = time.perf_counter()
    manifest, features, feature_config = load_cache(cache_dir)
    if getattr(feature_config, "kind", "") != "classic":
        raise DataError(
            f"{cache_dir} holds {feature_config.kind} features; the MLP needs the classic ones: "
            "`ser-cnn preprocess --features classic`"
        )
    labels = tuple(emotions) if emotions else labels_in(manifest)
    unknown = set(labels) - set(EMOTIONS)
    if emotions and unknown:
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
        parts = split.masks(manifest)
        split_info = split.record()
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
    # UAR and macro-F1 over the classes the test part has (all of them, in RAVDESS)
    metrics = evaluate(y[parts["test"]], pred, labels, present_only=True)
    val_pred = fit.pipeline.predict(features[parts["val"]])
    val_metrics = evaluate(y[parts["val"]], val_pred, labels, present_only=True)
    metrics.update(
        {
            "part": "test",
            "split": split_info["kind"],
            "best_epoch": fit.best_epoch,
            "validation": {k: val_metrics[k] for k in SCORES},
        }
    )
    if isinstance(split, DataSplit):
        metrics["test_speakers"] = list(split.test)
        if split.note:
            metrics["notes"] = [split.note]
    run_dir = Path(run_dir)
    fresh_dir(run_dir)
    save_pipeline(fit.pipeline, run_dir / MODEL_FILES["mlp"])
    write_history(fit.history, run_dir / "history.csv")
    run = Run(
        model="mlp",
        labels=labels,
        features=feature_config,
        training={
            "hidden_layer_sizes": list(fit.hidden),
            "alpha": fit.alpha,
            "selection": "grid over hidden sizes and alpha, early stopping on validation UAR",
            "search": fit.search,
            "seed": seed,
        },
        split=split_info,
        clips={name: int(mask.sum()) for name, mask in parts.items()},
        cost={"seconds_total": round(time.perf_counter() - started, 1)},
        versions=library_versions(),
        git_commit=git_commit(),
        data=data,
    )
    curves = {
        "loss": [h["loss"] for h in fit.history],
        "val_accuracy": [h["val_accuracy"] for h in fit.history],
    }
    if random_split:
        where = "random clips"
    elif isinstance(split, DataSplit):
        where = f"fold {split.fold} of {split.folds}"
    else:
        where = f"test actors {', '.join(map(str, split.test))}"
    write_run(run_dir, run, metrics, curves, title=f"MLP, {where}")
    export_after_training(run_dir)  # model.npz, for the light runtime
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
