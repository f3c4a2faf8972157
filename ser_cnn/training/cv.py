"""Six-fold cross-validation, and scoring seed ensembles of cross-validated runs.

:func:`cross_validate` trains one model per published fold (``ser_cnn/ravdess_folds.json``),
or per fold of any data (``splits``: :func:`ser_cnn.corpora.splits.data_folds`), and writes per-fold
and mean ± std scores to one result file. :func:`score_ensemble` averages
the probabilities of several such runs fold by fold: in every fold the members must share the
split, so the ensemble is tested on actors none of its members has heard, and the feature
settings, so one cache feeds them all. Averaging models trained with other seeds is the
cheapest accuracy lever that needs no change to training; its price is one training run and
one forward pass per member. :func:`run_probabilities` scores one run from a cache the same
way (:mod:`ser_cnn.training.calibrate` fits its temperature on them).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig
from ser_cnn.corpora.splits import DataSplit
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.speaker import normalize_by_speaker
from ser_cnn.ravdess import EMOTIONS, labels_of, select, split
from ser_cnn.run import Run, check_compatible, cv_folds, load_metrics, load_run
from ser_cnn.serving.runtime import load_model
from ser_cnn.training.metrics import SCORES, evaluate, mean_std, summarize_folds, write_summary
from ser_cnn.versions import git_commit, library_versions

CV_PROTOCOL = (
    "RAVDESS speech, 8 emotions, speaker-independent 6-fold "
    "(EmoBox folds, ser_cnn/ravdess_folds.json)"
)


def cross_validate(
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    model: str = "cnn",
    folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
    summary_path: str | os.PathLike | None = None,
    verbose: int = 2,
    splits: Sequence[DataSplit] | None = None,
    source: str | os.PathLike | None = None,
    data: dict | None = None,
    fold_map: Callable[[list[Callable[[], tuple]]], Iterable[tuple]] | None = None,
) -> dict:
    """Train one model ('cnn' or 'mlp') per fold; write per-fold and mean ± std scores to one
    file.

    ``fold_map`` runs the folds' training jobs (argument-free callables) and yields their
    results in order; default: one after another in this process. The folds are independent,
    so :func:`ser_cnn.scale.fold_map` runs them as parallel Ray tasks instead, into the same
    run folders.

    ``folds`` are RAVDESS's published ones; ``splits`` (the folds of
    :func:`ser_cnn.corpora.splits.data_folds`) replace them for any other data. ``source``
    fine-tunes every fold's CNN from that run, ``data`` is recorded in every run (see
    :func:`ser_cnn.training.train.train_cnn`). Returns the summary written to ``summary_path``
    (default ``out_dir/cv_summary.json``), with a pooled confusion matrix picture beside it.
    """
    if model not in ("cnn", "mlp"):
        raise ParameterError(f"model must be 'cnn' or 'mlp', got {model!r}")
    if source is not None and model != "cnn":
        raise ParameterError("only the CNN is fine-tuned (source); the MLP trains from scratch")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    per_fold, cost = {}, {}
    parts = {k: split(k) for k in folds} if splits is None else {s.fold: s for s in splits}
    folds = tuple(parts)
    jobs = [
        functools.partial(
            train_fold, model, cache_dir, out_dir / f"fold{k}", part, config, verbose, source, data
        )
        for k, part in parts.items()
    ]
    done = (fold_map or one_after_another)(jobs)
    for k, (metrics, fold_cost) in zip(parts, done, strict=True):
        per_fold[str(k)], cost[str(k)] = metrics, fold_cost
        print(
            f"fold {k}: "
            + "  ".join(f"{s} {metrics[s]:.3f}" for s in SCORES)
            + f"  ({fold_cost['seconds']:.0f} s)",
            flush=True,
        )
    runs = {k: load_run(out_dir / f"fold{k}") for k in folds}
    first = runs[folds[0]]
    summary = summarize_folds(per_fold, first.labels)
    if model == "cnn" and config.refit:
        selection = (
            f"no selection: trained on the training and validation actors together for "
            f"{config.epochs} epochs, last weights kept (refit)"
        )
    else:
        selection = "best epoch chosen on validation " + ("accuracy" if model == "cnn" else "UAR")
    if splits is None:
        protocol = f"{CV_PROTOCOL}; validation actors from the training actors of each fold"
    else:
        protocol = data_protocol(splits[0], first.labels, data)
    if source is not None:
        protocol += f"; fine-tuned from {first.source['path']}"
    summary.update(
        {
            "model": model,
            "protocol": f"{protocol}; {selection}",
            "training": first.training.to_dict()  # as trained: "auto" precision resolved
            if model == "cnn"
            else {str(k): r.training | {"search": None} for k, r in runs.items()},
            "parameters": first.parameters,
            "features": first.features.to_dict(),
            "cost": {
                "wall_seconds": round(time.perf_counter() - started, 1),
                "per_fold": cost,
                "cpu_cores": os.cpu_count(),
            },
            "versions": library_versions(),
            "git_commit": git_commit(),
        }
    )
    if splits is not None:
        summary["data"] = data
        summary["notes"] = [splits[0].note] if splits[0].note else []
        summary["from"] = first.source
    write_summary(
        summary,
        summary_path or out_dir / "cv_summary.json",
        title=f"{model.upper()}, {len(folds)} folds pooled, "
        f"mean accuracy {summary['mean']['accuracy']:.3f}",
    )
    return summary


def train_fold(model, cache_dir, fold_dir, part, config, verbose, source, data) -> tuple:
    """Train one fold of :func:`cross_validate` into ``fold_dir``; its test metrics and cost."""
    if model == "cnn":
        from ser_cnn.training.train import train_cnn

        result = train_cnn(
            cache_dir, fold_dir, part, config, verbose=verbose, source=source, data=data
        )
    else:
        from ser_cnn.training.mlp import train_mlp

        result = train_mlp(cache_dir, fold_dir, part, seed=config.seed, data=data)
    cost = {
        "seconds": round(result.seconds, 1),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
    }
    return result.metrics, cost


def one_after_another(jobs):
    """The default ``fold_map``: each fold's job in turn, in this process."""
    for job in jobs:
        yield job()


def data_protocol(first: DataSplit, labels: Sequence[str], data: dict | None) -> str:
    """A --cv summary's protocol for data split by :mod:`ser_cnn.corpora.splits`."""
    where = ", ".join((data or {}).get("corpora", {})) or "data"
    if first.kind == "speaker-wise":
        how = (
            f"speaker-independent {first.folds}-fold (speaker-grouped, ser_cnn.corpora.splits); "
            "validation speakers from the training speakers of each fold"
        )
    else:
        how = (
            f"{first.folds}-fold over clips (speakers unknown: OPTIMISTIC, speakers may be on "
            "both sides; ser_cnn.corpora.splits); validation clips from the training clips of "
            "each fold"
        )
    return f"{where}, {len(labels)} emotions ({', '.join(labels)}), {how}"


def member_folds(cv_dirs: Sequence[str | os.PathLike]) -> tuple[int, ...]:
    """The folds every member has a run of, in order; raises unless there is at least one."""
    if len(cv_dirs) < 2:
        raise ParameterError(f"an ensemble needs at least two members, got {len(cv_dirs)}")
    folds = None
    for d in cv_dirs:
        have = set(cv_folds(d))
        folds = have if folds is None else folds & have
    if not folds:
        raise DataError("the members share no fold: train them on the same folds")
    return tuple(sorted(folds))


def score_ensemble(
    cv_dirs: Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    *,
    summary_path: str | os.PathLike | None = None,
) -> dict:
    """Per-fold and mean ± std scores of the members' averaged probabilities.

    Parameters
    ----------
    cv_dirs : sequence of path
        Two or more ``--cv`` output folders (``<dir>/fold<K>/``).
    cache_dir : path
        The log-mel cache the members were trained on (same feature settings).
    summary_path : path, optional
        Where to write the summary (JSON, and a pooled confusion matrix PNG beside it).

    Returns
    -------
    dict
        Like a ``--cv`` summary: ``folds`` (test metrics with ``validation`` scores of the
        ensemble, None when a member was refit on the validation actors), ``mean``, ``std``,
        ``pooled_confusion_matrix``; ``members``, the training settings and per-fold scores of
        each member alone; and ``members_alone``, mean and std of those scores over every
        member's every fold.

    Raises
    ------
    ParameterError
        Fewer than two members.
    DataError
        Members that differ in split or feature settings, or a cache made with other settings.
    """
    from ser_cnn.features.cache import load_cache

    folds = member_folds(cv_dirs)
    manifest, features, feature_config = load_cache(cache_dir)
    y = labels_of(manifest)
    per_fold, members = {}, []
    for k in folds:
        # keyed by position: the same folder may be given twice
        runs = {
            f"member {i + 1} ({d}/fold{k})": load_run(Path(d) / f"fold{k}")
            for i, d in enumerate(cv_dirs)
        }
        first = next(iter(runs.values()))
        for name, run in runs.items():
            if run.model != "cnn":
                raise DataError(f"{name} is not a CNN run")
            if run.split != first.split:
                raise DataError(f"{name} was split differently from {cv_dirs[0]}/fold{k}")
            if run.features != feature_config:
                raise DataError(
                    f"{name} was trained on other feature settings than the cache {cache_dir}"
                )
        check_compatible(runs)  # the same labels and speaker normalisation
        if k == folds[0]:
            members = [
                {"dir": str(d), "training": run.training.to_dict()}
                for d, run in zip(cv_dirs, runs.values(), strict=True)
            ]
            # a refit member has trained on the validation actors: they can no longer judge it
            refit = any(run.refit for run in runs.values())
            features = model_inputs(manifest, features, first)
        models = [
            load_scorer(Path(d) / f"fold{k}", run)
            for d, run in zip(cv_dirs, runs.values(), strict=True)
        ]
        scores = {"val": None}
        for part in ("test",) if refit else ("test", "val"):
            mask = select(manifest, tuple(first.split[part]))
            probabilities = np.mean([score(features[mask]) for score in models], axis=0)
            scores[part] = evaluate(y[mask], probabilities.argmax(axis=1), EMOTIONS)
        per_fold[str(k)] = scores["test"] | {
            "part": "test",
            "test_actors": list(first.test_actors),
            "validation": scores["val"] and {m: scores["val"][m] for m in SCORES},
        }

    # each member alone, from its own metrics.json: what one model scores, and how much that
    # moves from seed to seed, beside what the ensemble scores
    for d, member in zip(cv_dirs, members, strict=True):
        member["folds"] = {}
        for k in folds:
            m = load_metrics(Path(d) / f"fold{k}")
            member["folds"][str(k)] = {key: m[key] for key in SCORES}
    alone = [f for member in members for f in member["folds"].values()]
    summary = summarize_folds(per_fold, EMOTIONS)
    summary.update(
        {
            "members_alone": {"runs": len(alone), **mean_std(alone)},
            "model": "cnn-ensemble",
            "protocol": f"{CV_PROTOCOL}; mean of the members' probabilities, "
            + (
                "members refit on the training and validation actors of each fold"
                if refit
                else "each member selected on the validation actors of its fold"
            ),
            "members": members,
            "features": feature_config.to_dict(),
            "versions": library_versions(),
            "git_commit": git_commit(),
        }
    )
    if summary_path is not None:
        write_summary(
            summary,
            summary_path,
            title=f"CNN ensemble of {len(cv_dirs)}, {len(folds)} folds pooled, "
            f"mean accuracy {summary['mean']['accuracy']:.3f}",
        )
    return summary


# -- a run's probabilities on a cache ----------------------------------------------------------


def load_scorer(run_dir: str | os.PathLike, run: Run) -> Callable[[np.ndarray], np.ndarray]:
    """A run folder's model as a function: cached features ``(n, ...)`` -> its raw
    probabilities ``(n, len(run.labels))``, before any calibration.

    The reference models that inference loads too (:func:`ser_cnn.serving.runtime.load_model`): the
    CNN's SavedModel, fed 128 clips at a time, and the MLP's skops pipeline.
    """
    model, _ = load_model(run_dir, run.model, "reference")
    if run.model == "mlp":
        return model.predict_proba
    return lambda x: np.concatenate(
        [np.asarray(model.serve(x[i : i + 128])) for i in range(0, len(x), 128)]
    )


def model_inputs(manifest, features: np.ndarray, run: Run) -> np.ndarray:
    """A cache's features as the run's model takes them: each actor standardised by their own
    statistics when it was trained speaker-normalised, as in training; else unchanged."""
    if run.speaker_normalized:
        return normalize_by_speaker(features, manifest["actor"].to_numpy())
    return features


def run_probabilities(
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    parts: Sequence[str] = ("val", "test"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A run's raw probabilities on the clips of the actors of some parts of its split.

    Parameters
    ----------
    run_dir : path
        A CNN or MLP run folder with an actor-wise split.
    cache_dir : path
        A cache made with the run's feature settings (log-mel for the CNN, classic for the
        MLP), holding every actor of those parts.
    parts : sequence of {'train', 'val', 'test'}

    Returns
    -------
    dict
        ``{part: (probabilities (n, len(labels)), true class indices into run.labels (n,))}``,
        rows in the cache's clip order; only clips of the run's emotions.

    Raises
    ------
    DataError
        A split that is not actor-wise, a cache made with other settings, or a part without
        actors or without clips in the cache.
    """
    from ser_cnn.features.cache import load_cache

    run = load_run(run_dir)
    if run.model == "encoder":  # its cache holds pooled encoder states (tools/encode_cache.py)
        from ser_cnn.encoder.train import encoder_probabilities

        return encoder_probabilities(run_dir, cache_dir, parts=parts)
    if run.split.get("kind") != "actor-wise":
        raise DataError(f"{run_dir} was split by {run.split.get('kind')!r}, not by actors")
    manifest, features, feature_config = load_cache(cache_dir)
    if feature_config != run.features:
        raise DataError(
            f"{run_dir} was trained on other feature settings than the cache {cache_dir}: "
            f"make one with ser_cnn.features.cache.preprocess(config=<the run's features>)"
        )
    x = model_inputs(manifest, features, run)  # every clip of an actor, as in training
    keep = manifest["emotion"].isin(run.labels).to_numpy()
    manifest, x = manifest[keep].reset_index(drop=True), x[keep]
    y = manifest["emotion"].map({e: i for i, e in enumerate(run.labels)}).to_numpy()
    score = load_scorer(run_dir, run)
    out = {}
    for part in parts:
        actors = tuple(run.split.get(part) or ())
        mask = select(manifest, actors)
        if not mask.any():
            raise DataError(f"{run_dir}: the cache {cache_dir} holds no clips of its {part} actors")
        out[part] = (np.asarray(score(x[mask]), dtype=np.float64), y[mask])
    return out
