"""Evaluation shared by every model: the numbers of metrics.json and the two pictures."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

SCORES = ("accuracy", "uar", "macro_f1")  # the headline scores of every summary


def evaluate(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], *, present_only: bool = False
) -> dict:
    """Accuracy, UAR, macro-F1, per-class precision / recall / F1 and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : np.ndarray of int, shape (n,)
        Class indices into ``labels``.
    labels : sequence of str
    present_only : bool
        Average macro-F1 over the classes that occur in ``y_true``, as UAR always is, instead
        of over every label: for data without some of a model's classes, each of which would
        otherwise add an F1 of 0. The same when every class occurs.

    Returns
    -------
    dict
        JSON-ready. ``uar`` is the unweighted average recall (balanced accuracy) over the
        classes in ``y_true``; ``confusion_matrix[i][j]`` counts clips of class i predicted as
        class j.
    """
    idx = list(range(len(labels)))
    averaged = sorted({int(i) for i in y_true}) if present_only else idx
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=idx, zero_division=0
    )
    with warnings.catch_warnings():
        # a class the model answers but the clips lack (a data set's fold without an emotion):
        # UAR is over the classes present, as documented
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        uar = float(balanced_accuracy_score(y_true, y_pred))
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": uar,
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=averaged, average="macro", zero_division=0)
        ),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def summarize_folds(per_fold: dict[str, dict], labels: Sequence[str]) -> dict:
    """Mean and standard deviation over folds, and the confusion matrix pooled over all folds."""
    pooled = np.sum([np.array(m["confusion_matrix"]) for m in per_fold.values()], axis=0)
    per_class_f1 = {
        label: float(np.mean([m["per_class"][label]["f1"] for m in per_fold.values()]))
        for label in labels
    }
    return {
        "folds": per_fold,
        **mean_std(per_fold.values()),
        "per_class_f1_mean": per_class_f1,
        "labels": list(labels),
        "pooled_confusion_matrix": pooled.tolist(),
    }


def mean_std(runs: Iterable[dict]) -> dict:
    """``{"mean": {score: ...}, "std": {score: ...}}`` of the SCORES over runs (population std)."""
    runs = list(runs)
    return {
        "mean": {k: float(np.mean([r[k] for r in runs])) for k in SCORES},
        "std": {k: float(np.std([r[k] for r in runs])) for k in SCORES},
    }


def write_summary(summary: dict, path: str | Path, *, title: str) -> Path:
    """Write a cross-validation summary as JSON and its pooled confusion matrix as a PNG beside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    plot_confusion(
        summary["pooled_confusion_matrix"], summary["labels"], path.with_suffix(".png"), title=title
    )
    return path


def plot_confusion(matrix, labels: Sequence[str], path: Path, *, title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal), with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = draw_confusion(ax, matrix, labels, title=title)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_confusion(ax, matrix, labels: Sequence[str], *, title: str = ""):
    """Draw a row-normalised confusion matrix with counts on a matplotlib axis."""
    m = np.asarray(matrix, dtype=float)
    rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8, color=color)
    ax.set_title(title)
    return im


def plot_history(history: dict[str, list[float]], path: Path, *, title: str = "") -> None:
    """Loss and accuracy per epoch, training and validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                values = history[prefix + key]
                ax.plot(range(1, len(values) + 1), values, style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
