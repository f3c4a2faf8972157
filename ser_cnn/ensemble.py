"""Score an ensemble of six-fold CNN runs: average the members' probabilities fold by fold.

Each member is a cross-validation folder written by ``scripts/train.py --cv`` (``fold1/`` ...
``fold6/`` run folders). In every fold the members must share the split, so the ensemble is
tested on actors none of its members has heard, and the feature settings, so one cache feeds
them all. Averaging the probabilities of models trained with other seeds or settings is the
cheapest accuracy lever that needs no change to training; its price is one training run and
one forward pass per member.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_cnn.data import EMOTIONS
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.metrics import SCORES, evaluate, mean_std, summarize_folds, write_summary
from ser_cnn.preprocess import load_cache
from ser_cnn.speaker import normalize_by_speaker
from ser_cnn.train import CV_PROTOCOL, labels_of, select
from ser_cnn.versions import git_commit, library_versions


def member_folds(cv_dirs: Sequence[str | os.PathLike]) -> tuple[int, ...]:
    """The folds every member has a run of, in order; raises unless there is at least one."""
    if len(cv_dirs) < 2:
        raise ParameterError(f"an ensemble needs at least two members, got {len(cv_dirs)}")
    folds = None
    for d in map(Path, cv_dirs):
        have = {
            int(p.name[4:])
            for p in d.glob("fold*")
            if p.name[4:].isdigit() and (p / "config.json").is_file()
        }
        if not have:
            raise DataError(f"{d} holds no fold runs (fold1/config.json ...): is it a --cv folder?")
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
    import keras  # TensorFlow loads here, not at import time of ser_cnn

    folds = member_folds(cv_dirs)
    manifest, features, feature_config = load_cache(cache_dir)
    y = labels_of(manifest)
    per_fold, members = {}, []
    for k in folds:
        configs = [json.loads((Path(d) / f"fold{k}" / "config.json").read_text()) for d in cv_dirs]
        first = configs[0]
        for d, c in zip(cv_dirs, configs, strict=True):
            if c.get("model") != "cnn":
                raise DataError(f"{d}/fold{k} is not a CNN run")
            if c["split"] != first["split"]:
                raise DataError(f"{d}/fold{k} was split differently from {cv_dirs[0]}/fold{k}")
            if c["features"] != feature_config.to_dict():
                raise DataError(
                    f"{d}/fold{k} was trained on other feature settings than the cache {cache_dir}"
                )
        if k == folds[0]:
            members = [
                {"dir": str(d), "training": c["training"]}
                for d, c in zip(cv_dirs, configs, strict=True)
            ]
            # a refit member has trained on the validation actors: they can no longer judge it
            refit = any(m["training"].get("refit") for m in members)
            speaker_norm = {bool(m["training"].get("speaker_norm")) for m in members}
            if len(speaker_norm) > 1:
                raise DataError(
                    "some members were trained on speaker-normalised log-mels and some not: "
                    "their inputs differ, so they cannot be averaged"
                )
            if speaker_norm.pop():  # as in training: each actor by their own statistics
                features = normalize_by_speaker(features, manifest["actor"].to_numpy())
        models = [
            keras.saving.load_model(Path(d) / f"fold{k}" / "model.keras", compile=False)
            for d in cv_dirs
        ]
        scores = {"val": None}
        for part in ("test",) if refit else ("test", "val"):
            mask = select(manifest, tuple(first["split"][part]))
            probabilities = np.mean(
                [m.predict(features[mask], batch_size=128, verbose=0) for m in models], axis=0
            )
            scores[part] = evaluate(y[mask], probabilities.argmax(axis=1), EMOTIONS)
        per_fold[str(k)] = scores["test"] | {
            "part": "test",
            "test_actors": list(first["split"]["test"]),
            "validation": scores["val"] and {m: scores["val"][m] for m in SCORES},
        }

    # each member alone, from its own metrics.json: what one model scores, and how much that
    # moves from seed to seed, beside what the ensemble scores
    for d, member in zip(cv_dirs, members, strict=True):
        member["folds"] = {}
        for k in folds:
            m = json.loads((Path(d) / f"fold{k}" / "metrics.json").read_text())
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
