"""Six-fold scores of an ensemble of CNN cross-validation runs (their probabilities averaged).

    ser-cnn train --cv --config configs/refit.toml      # -> checkpoints/cv_cnn_refit_seed0
    ser-cnn train --cv --config configs/refit.toml --seed 1 \
        --summary results/cv_cnn_refit_seed1.json      # -> checkpoints/cv_cnn_refit_seed1
    python tools/ensemble.py checkpoints/cv_cnn_refit_seed0 checkpoints/cv_cnn_refit_seed1 \
        --summary results/ensemble_cnn_refit.json

Every member must hold the same folds, split alike (the default validation actors do not depend
on the seed), trained on the cache given with --cache.
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.errors import SerError
from ser_cnn.features.cache import DEFAULT_OUT_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", help="--cv output folders (fold1/ ... fold6/)")
    parser.add_argument("--cache", default=str(DEFAULT_OUT_DIR), help="log-mel cache (%(default)s)")
    parser.add_argument(
        "--summary", default="results/ensemble_cnn.json", help="result file (%(default)s)"
    )
    args = parser.parse_args(argv)

    from ser_cnn.training.cv import score_ensemble

    try:
        summary = score_ensemble(args.members, args.cache, summary_path=args.summary)
    except SerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for k, fold in summary["folds"].items():
        print(f"fold {k}: accuracy {fold['accuracy']:.3f}  uar {fold['uar']:.3f}")
    mean, std = summary["mean"], summary["std"]
    print(
        "ensemble: "
        + "  ".join(f"{s} {mean[s]:.3f} ± {std[s]:.3f}" for s in ("accuracy", "uar", "macro_f1"))
        + f"  -> {args.summary}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
