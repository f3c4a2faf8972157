"""Ablation of the CNN's training choices: each variant changes one thing from a base recipe.

    python tools/ablation.py [--folds 1] [--epochs 50] [--cache data/processed]
    python tools/ablation.py --base configs/robust.toml --reuse checkpoints/cv_cnn_robust_seed0 \
        --out results/ablation_robust.json

By default the base is plain training (``ser_cnn.config.PLAIN``: the studio recipe with weight
averaging off, no augmentation), so each row shows what one choice gives on its own. With
``--base`` a recipe that trains on degraded copies, each row leaves one kind of degradation out
of its chain (the other kinds draw exactly what they drew before: each kind has its own random
stream).
Trains every variant on the given folds (validation actors pick the best epoch, as always)
and writes validation and test accuracy, UAR and macro-F1 of each to ``--out``. A choice is
judged on the *validation* actors; test scores are reported beside them, not used to choose.
The six-fold runs of whole configurations are in results/cv_cnn*.json (see the README).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ser_cnn.audio.degradations import CHAIN_KINDS
from ser_cnn.config import PLAIN, TrainConfig, changes, load_config
from ser_cnn.features.cache import DEFAULT_OUT_DIR
from ser_cnn.ravdess import split
from ser_cnn.run import load_metrics, load_run
from ser_cnn.training.train import train_cnn
from ser_cnn.versions import git_commit, library_versions

VARIANTS: dict[str, dict] = {
    "plain (no augmentation)": {},
    "+ speed perturbation (±10 %)": {"speed": 0.1},
    "+ SpecAugment (2 frequency + 2 time masks)": {"freq_masks": 2, "time_masks": 2},
    "+ time shift (±0.3 s)": {"time_shift": 30},
    "+ mixup (α = 0.2)": {"mixup_alpha": 0.2},
    "+ weight averaging (EMA 0.99)": {"ema": 0.99},
    "+ noise (1 dB)": {"noise_db": 1.0},
    "+ utterance normalisation": {"architecture": {"utterance_norm": True}},
    "no class weights": {"class_weights": False},
    "narrow CNN (16-32-64-128, 10 ms frames)": {
        "architecture": {"filters": (16, 32, 64, 128), "time_pool": 1}
    },
}

# Leave-one-kind-out rows of a recipe with degraded copies.
LEAVE_ONE_OUT: dict[str, dict] = {"whole chain": {}} | {
    f"without {kind}": {"degradations": tuple(k for k in CHAIN_KINDS if k != kind)}
    for kind in CHAIN_KINDS
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=str(DEFAULT_OUT_DIR))
    p.add_argument("--folds", default="1", help="comma-separated folds (1)")
    p.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    p.add_argument(
        "--base",
        default=None,
        help="a training config file (configs/robust.toml) to start from instead of plain "
        "training; with degraded copies the variants leave one kind out each",
    )
    p.add_argument("--variants", default=None, help="subset of the names, separated by ;")
    p.add_argument("--out", default="results/ablation.json")
    p.add_argument("--runs", default="checkpoints/ablation", help="run folders go here")
    p.add_argument(
        "--reuse",
        default=None,
        help="a cross-validation folder (checkpoints/cv_cnn_robust_seed0 for --base "
        "configs/robust.toml) whose fold runs trained with the base recipe are taken instead "
        "of training it again",
    )
    args = p.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    base = PLAIN if args.base is None else load_config(args.base)
    variants = LEAVE_ONE_OUT if base.degraded_copies else VARIANTS
    names = args.variants.split(";") if args.variants else list(variants)
    out = Path(args.out)
    results = json.loads(out.read_text())["variants"] if out.exists() else {}
    for name in names:
        config = _variant(base, variants[name], epochs=args.epochs)
        per_fold = {}
        for k in folds:
            reused = _reuse(args.reuse, k, config)
            if reused is not None:
                per_fold[str(k)] = reused
                continue
            started = time.perf_counter()
            slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
            r = train_cnn(
                args.cache, Path(args.runs) / f"{slug}_fold{k}", split(k), config, verbose=0
            )
            per_fold[str(k)] = {
                "validation": r.metrics["validation"],
                "test": {s: r.metrics[s] for s in ("accuracy", "uar", "macro_f1")},
                "best_epoch": r.best_epoch,
                "epochs_run": r.epochs_run,
                "seconds": round(time.perf_counter() - started, 1),
            }
        mean = {
            part: {
                s: float(np.mean([f[part][s] for f in per_fold.values()]))
                for s in ("accuracy", "uar", "macro_f1")
            }
            for part in ("validation", "test")
        }
        results[name] = {"changes": _jsonable(variants[name]), "folds": per_fold, "mean": mean}
        print(
            f"{name:45s} val acc {mean['validation']['accuracy']:.3f}  "
            f"test acc {mean['test']['accuracy']:.3f}  UAR {mean['test']['uar']:.3f}",
            flush=True,
        )
        summary = {
            "what": (
                "each variant changes one training choice of plain training (no augmentation)"
                if args.base is None
                else f"each variant leaves one kind of degradation out of {args.base}"
            ),
            "folds": folds,
            "epochs": args.epochs,
            "base": base.replace(epochs=args.epochs).to_dict(),
            "variants": results,
            "versions": library_versions(),
            "git_commit": git_commit(),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")  # after every variant: resumable
    return 0


def _variant(base: TrainConfig, change: dict, *, epochs: int) -> TrainConfig:
    """``base`` with one change (an architecture change merges into its architecture)."""
    d = base.to_dict() | {"epochs": epochs} | change
    d["architecture"] = base.architecture.to_dict() | change.get("architecture", {})
    return TrainConfig.from_dict(d)


def _reuse(cv_dir: str | None, fold: int, config: TrainConfig) -> dict | None:
    """Scores of an existing run of this fold with exactly this configuration, if there is one."""
    if cv_dir is None:
        return None
    path = Path(cv_dir) / f"fold{fold}"
    if not (path / "config.json").exists():
        return None
    run = load_run(path)
    same = changes(run.training.to_dict()) == changes(config.to_dict())
    same = same and (run.training.epochs, run.seed) == (config.epochs, config.seed)
    if not same or run.split["fold"] != fold:
        return None
    m = load_metrics(path)
    return {
        "validation": m["validation"],
        "test": {s: m[s] for s in ("accuracy", "uar", "macro_f1")},
        "best_epoch": m["best_epoch"],
        "epochs_run": m["epochs_run"],
        "seconds": run.cost["seconds_total"],
        "reused_from": str(path),
    }


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


if __name__ == "__main__":
    sys.exit(main())
