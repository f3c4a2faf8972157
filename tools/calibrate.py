"""Calibrate run folders: a temperature fitted on validation actors, ECE and NLL before and after.

    python tools/calibrate.py checkpoints/cv_cnn_seed0 checkpoints/cv_mlp_seed0 \\
        --summary results/calibration.json
    python tools/calibrate.py checkpoints/cv_cnn_seed0 --pool     # folds share validation clips
    python tools/calibrate.py checkpoints/cv_cnn_refit_seed0 --borrow checkpoints/cv_cnn_seed0
    python tools/calibrate.py RUN --cache /tmp/old_logmel          # a run of older settings

Each argument is a ``--cv`` folder (``fold1/`` ... ``fold6/``), a run folder, or a folder with
``cnn/`` and ``mlp/`` (``checkpoints/ravdess_fold1``). Every run folder is calibrated in place
(:func:`ser_cnn.training.calibrate.calibrate_run`: ``config.json`` gets the temperature,
``metrics.json`` a "calibration" entry, and a ``reliability_diagram.png``); the model files are
not touched. Each run is scored from the ``--cache`` made with its feature settings. With
``--summary``, the per-fold and mean ± std accuracy, ECE and NLL before and after, on the test
actors (and on the validation actors), go to one result file, with the reliability diagrams of
all test clips pooled beside it (PNG); ``tools/report.py`` turns it into a table.

Refit runs trained on their validation actors: they keep temperature 1 unless ``--borrow``
names calibrated validated runs of the same recipe, whose mean temperature they then take.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ser_cnn.encoder.train import CACHE_COMMAND as ENCODER_CACHE_COMMAND
from ser_cnn.encoder.train import DEFAULT_CACHE as ENCODER_CACHE
from ser_cnn.encoder.train import cache_fits, is_encoder_cache
from ser_cnn.errors import DataError, SerError
from ser_cnn.features.cache import DEFAULT_CLASSIC_DIR, DEFAULT_OUT_DIR, SETTINGS_FILE
from ser_cnn.run import cv_folds, is_cv_folder, load_run, model_folders
from ser_cnn.serving.calibration import BINS, apply_temperature, scores
from ser_cnn.training.calibrate import (
    borrowed_calibration,
    calibrate_run,
    plot_reliability,
    pooled_calibration,
)

PARTS = ("test", "validation")
MEASURES = ("accuracy", "ece", "ece_floor", "nll")
PROTOCOL = (
    "Temperature scaling (softmax(log p / T)), T minimising the NLL of each fold run's "
    "validation actors (with --pool: the validation clips of the folds that did not validate on "
    "its test actors; refit runs: 1, or with --borrow the mean T of validated runs); scored on "
    "the fold's test actors. ECE: 15 equal-width confidence bins; ece_floor: the ECE a perfectly "
    "calibrated model with the same probabilities would show on as many clips (labels drawn "
    "from them, mean of 200 draws). Mean and population std over folds; 'pooled': all folds' "
    "test clips together, each with its own fold's T."
)


def run_groups(path: Path) -> dict[str, dict[str, Path]]:
    """``{source: {fold: run folder}}`` of an argument: a --cv folder's fold runs, or each model
    of a run folder (keyed by its fold, or its folder name)."""
    if is_cv_folder(path):
        return {str(path): {str(k): folder for k, folder in cv_folds(path).items()}}
    groups = {}
    for folder in model_folders(path).values():
        fold = load_run(folder).split.get("fold")
        groups[str(folder)] = {str(fold) if fold else folder.name: folder}
    if not groups:
        raise DataError(f"{path}: neither a run folder nor a --cv folder")
    return groups


def cache_for(run_dir: Path, caches: list[Path]) -> Path:
    """The cache made with the run's feature settings (an encoder run: with its encoder too)."""
    from ser_cnn.features.cache import config_from_settings

    run = load_run(run_dir)
    features = run.features
    if run.model == "encoder":
        for cache in caches:
            if cache_fits(run, cache):
                return cache
        raise DataError(
            f"{run_dir}: none of the caches {', '.join(map(str, caches))} holds the states of its "
            f"encoder and feature settings; make one with `{ENCODER_CACHE_COMMAND}` and give it "
            "with --cache"
        )
    for cache in caches:
        if is_encoder_cache(cache):
            continue
        settings = cache / SETTINGS_FILE
        if (
            settings.is_file()
            and config_from_settings(json.loads(settings.read_text())) == features
        ):
            return cache
    raise DataError(
        f"{run_dir}: none of the caches {', '.join(map(str, caches))} was made with its feature "
        f"settings {features.to_dict()}; make one with "
        "ser_cnn.features.cache.preprocess(config=...) "
        "and give it with --cache"
    )


def summarise(folds: dict[str, dict], pooled: dict) -> dict:
    """Mean and population std over folds of T and every measure, and the pooled scores."""

    def stat(f) -> dict:
        out = {"temperature": float(f([e["temperature"] for e in folds.values()]))}
        for key in PARTS:
            entries = [e[key] for e in folds.values() if e[key] is not None]
            out[key] = (
                {
                    when: {m: float(f([e[when][m] for e in entries])) for m in MEASURES}
                    for when in ("before", "after")
                }
                if entries
                else None
            )
        return out

    return {"mean": stat(np.mean), "std": stat(np.std), "pooled": pooled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="--cv folders or run folders")
    parser.add_argument(
        "--cache",
        type=Path,
        action="append",
        help=f"feature caches, each run scored from the one made with its settings; default "
        f"{DEFAULT_OUT_DIR}, {DEFAULT_CLASSIC_DIR} and the encoder's {ENCODER_CACHE} (give it "
        "once per cache)",
    )
    parser.add_argument("--summary", type=Path, help="result file (JSON, a PNG beside it)")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="fit each fold's T on the validation clips of all folds of its --cv folder that did "
        "not validate on its test actors",
    )
    parser.add_argument(
        "--borrow",
        type=Path,
        action="append",
        help="refit runs take the mean T of these calibrated validated runs (--cv folders)",
    )
    parser.add_argument("--bins", type=int, default=BINS, help="ECE bins (%(default)s)")
    args = parser.parse_args(argv)
    caches = args.cache or [DEFAULT_OUT_DIR, DEFAULT_CLASSIC_DIR, ENCODER_CACHE]

    try:
        groups = {}
        for path in args.runs:
            groups.update(run_groups(path))
        borrowed = borrowed_calibration(args.borrow) if args.borrow else None
        summary_runs, panels = {}, {}
        for source, folders in groups.items():
            given = {}
            if args.pool:
                given = _pooled(folders, caches)
            if borrowed is not None:
                given |= {k: borrowed for k, f in folders.items() if load_run(f).refit}
            folds, test = {}, []
            for k, folder in folders.items():
                result = calibrate_run(
                    folder, cache_for(folder, caches), calibration=given.get(k), bins=args.bins
                )
                run = load_run(folder)
                folds[k] = {"run": str(folder), "test_actors": list(run.test_actors)}
                folds[k] |= result.scores
                test.append((*result.probabilities["test"], result.calibration.temperature))
                _print(source, k, result.scores)
            # every fold's test clips together, each calibrated with its own fold's T
            p = np.concatenate([p for p, _, _ in test])
            y = np.concatenate([y for _, y, _ in test])
            after = np.concatenate([apply_temperature(p, t) for p, _, t in test])
            pooled = {
                "test": {
                    "before": scores(p, y, bins=args.bins),
                    "after": scores(after, y, bins=args.bins),
                }
            }
            summary_runs[source] = {
                "model": load_run(next(iter(folders.values()))).model,
                "folds": folds,
                **summarise(folds, pooled),
            }
            panels[f"{source}: raw"] = (p, y)
            panels[f"{source}: calibrated"] = (after, y)
            _print_mean(source, summary_runs[source])
    except SerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.summary:
        from ser_cnn.versions import git_commit, library_versions

        args.summary.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "protocol": PROTOCOL,
            "bins": args.bins,
            "pool": args.pool,
            "runs": summary_runs,
            "versions": library_versions(),
            "git_commit": git_commit(),
        }
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
        plot_reliability(
            panels,
            args.summary.with_suffix(".png"),
            bins=args.bins,
            title="test actors of every fold, pooled",
        )
        print(f"-> {args.summary}")
    return 0


def _pooled(folders: dict[str, Path], caches: list[Path]) -> dict:
    """Each validated fold's calibration, fitted on the other folds' validation clips too."""
    from ser_cnn.training.cv import run_probabilities

    validation, test_actors = {}, {}
    for k, folder in folders.items():
        run = load_run(folder)
        if run.refit:
            continue
        p, y = run_probabilities(folder, cache_for(folder, caches), parts=("val",))["val"]
        validation[folder.name] = (p, y, run.split["val"])
        test_actors[k] = run.test_actors
    return {k: pooled_calibration(validation, excluding=t) for k, t in test_actors.items()}


def _line(s: dict) -> str:
    b, a = s["before"], s["after"]
    return (
        f"accuracy {b['accuracy']:.3f}->{a['accuracy']:.3f}  ECE {b['ece']:.3f}->{a['ece']:.3f} "
        f"(floor {a['ece_floor']:.3f})  NLL {b['nll']:.3f}->{a['nll']:.3f}"
    )


def _print(source: str, k: str, entry: dict) -> None:
    val = entry["validation"]
    line = f"{source} {k}: T {entry['temperature']:.3f}  test {_line(entry['test'])}"
    if val:
        line += f"  | validation ECE {val['before']['ece']:.3f}->{val['after']['ece']:.3f}"
    print(line)


def _print_mean(source: str, s: dict) -> None:
    mean, std = s["mean"], s["std"]
    b, a = mean["test"]["before"], mean["test"]["after"]
    print(
        f"{source} mean of {len(s['folds'])}: T {mean['temperature']:.3f} ± "
        f"{std['temperature']:.3f}  test ECE {b['ece']:.3f}->{a['ece']:.3f}  NLL "
        f"{b['nll']:.3f}->{a['nll']:.3f}  accuracy {b['accuracy']:.3f}->{a['accuracy']:.3f}; "
        f"pooled {_line(s['pooled']['test'])}"
    )


if __name__ == "__main__":
    sys.exit(main())
