"""The speaker-leakage effect: the seed projects' MLP with random clip splits vs actor-wise folds.

    python tools/seed_parity.py [--cache data/processed_classic] [--seeds 5]

For four emotions (calm, happy, fearful, disgust, as in the seed project that reports 73.05 %)
and for all eight: the MLP baseline on random clip-level splits (75 % / 25 %, the same actors on
both sides; mean ± std over --seeds splits) and on the six actor-wise folds (mean ± std).
Writes results/seed_parity.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ser_cnn.features.cache import DEFAULT_CLASSIC_DIR
from ser_cnn.ravdess import EMOTIONS, split
from ser_cnn.training.metrics import SCORES, mean_std
from ser_cnn.training.mlp import train_mlp
from ser_cnn.versions import git_commit, library_versions

FOUR = ("calm", "happy", "fearful", "disgust")
SEED_FIGURES = {
    "four emotions, random split": 0.7305,  # the seed project's README
    "eight emotions, random split": 0.624,  # the other seed project's README
}


def summarise(runs: list[dict]) -> dict:
    return mean_std(runs) | {"runs": [{s: r[s] for s in SCORES} for r in runs]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=str(DEFAULT_CLASSIC_DIR))
    p.add_argument("--seeds", type=int, default=5, help="random splits per setting (5)")
    p.add_argument("--out", default="results/seed_parity.json")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, emotions in (("four emotions", FOUR), ("eight emotions", EMOTIONS)):
            random_runs = [
                train_mlp(
                    args.cache,
                    Path(tmp, f"r{s}"),
                    None,
                    seed=s,
                    emotions=emotions,
                    random_split=True,
                ).metrics
                for s in range(args.seeds)
            ]
            fold_runs = [
                train_mlp(args.cache, Path(tmp, f"f{k}"), split(k), emotions=emotions).metrics
                for k in range(1, 7)
            ]
            results[f"{label}, random split"] = {
                "split": f"random clips, 75/25, {args.seeds} seeds (LEAKS SPEAKERS)",
                **summarise(random_runs),
            }
            results[f"{label}, actor-wise"] = {
                "split": "six published folds, unseen test actors",
                **summarise(fold_runs),
            }
            for key in (f"{label}, random split", f"{label}, actor-wise"):
                m, sd = results[key]["mean"]["accuracy"], results[key]["std"]["accuracy"]
                print(f"{key:40s} accuracy {m:.3f} ± {sd:.3f}", flush=True)
    summary = {
        "what": "MLP baseline (StandardScaler + MLPClassifier on 180 classic features)",
        "emotions_four": list(FOUR),
        "seed_projects_reported": SEED_FIGURES,
        "results": results,
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
