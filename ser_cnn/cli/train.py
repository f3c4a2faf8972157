"""Train ser_cnn models with speaker-independent (actor-wise) splits.

ser-cnn train --epochs 50                        # CNN, shipped recipe, fold 1 held out
ser-cnn train --fold 3 --out checkpoints/f3      # another published fold
ser-cnn train --test-actors 1,2 --val-actors 3,4
ser-cnn train --cv                     # six folds -> results/cv_cnn_robust_dropout.json
ser-cnn train --cv --config configs/refit.toml   # a recipe -> results/cv_cnn_refit.json
ser-cnn train --cv --config configs/studio.toml  # the studio recipe -> results/cv_cnn.json
ser-cnn train --model mlp --cv                   # MLP baseline -> results/cv_mlp.json
ser-cnn train --model mlp --split random --emotions calm,happy,fearful,disgust
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ser_cnn.config import TrainConfig, load_config, recipe_name
from ser_cnn.errors import SerError
from ser_cnn.metrics import SCORES
from ser_cnn.preprocess import DEFAULT_CLASSIC_DIR, DEFAULT_OUT_DIR
from ser_cnn.ravdess import EMOTIONS, split

DEFAULTS = TrainConfig()


# TensorFlow's C++ start-up chatter (no GPU found, oneDNN notes) is not for users' terminals.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def actor_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected actor numbers like 1,11,20; got {text!r}"
        ) from None


def emotion_list(text: str) -> tuple[str, ...]:
    names = tuple(e.strip() for e in text.split(",") if e.strip())
    unknown = [e for e in names if e not in EMOTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown emotions {unknown}; choose from {', '.join(EMOTIONS)}"
        )
    return names


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("cnn", "mlp"), default="cnn", help="what to train (cnn)")
    p.add_argument(
        "--cache",
        default=None,
        help=f"preprocessed cache ({DEFAULT_OUT_DIR}; {DEFAULT_CLASSIC_DIR} for --model mlp)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="run folder (checkpoints/<name>_fold<K>_seed<S>; with --cv "
        "checkpoints/cv_<name>_seed<S>), <name> the recipe's: cnn_robust_dropout by default, "
        "cnn_<file name> with --config, mlp",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--fold", type=int, default=None, help="published fold 1..6 to test on (1)")
    where.add_argument("--test-actors", type=actor_list, default=None, help="e.g. 1,11,20,21")
    where.add_argument("--cv", action="store_true", help="train all six folds")
    p.add_argument("--val-actors", type=actor_list, default=None, help="default: 1 male, 1 female")
    p.add_argument("--summary", default=None, help="--cv result file (results/cv_<name>.json)")
    p.add_argument(
        "--split",
        choices=("actors", "random"),
        default="actors",
        help="random: clip-level split as the seed projects did; LEAKS SPEAKERS (mlp only)",
    )
    p.add_argument(
        "--emotions",
        type=emotion_list,
        default=None,
        help="restrict to these emotions, e.g. calm,happy,fearful,disgust (mlp only)",
    )
    p.add_argument("--seed", type=int, default=None, help=f"({DEFAULTS.seed})")
    p.add_argument("--epochs", type=int, default=None, help=f"CNN epochs ({DEFAULTS.epochs})")
    p.add_argument(
        "--config",
        default=None,
        help="TOML or JSON file of CNN training settings (ser_cnn.config.TrainConfig: "
        "augmentation, refit, speaker normalisation, [architecture], ...); saved with the run. "
        "Default: the shipped recipe (configs/robust_dropout.toml); configs/studio.toml: the "
        "studio recipe",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = p.parse_args(argv)

    if args.val_actors is not None and args.cv:
        p.error("--val-actors cannot be combined with --cv (each fold chooses its own)")
    if args.split == "random":
        if args.model != "mlp":
            p.error("--split random is only offered for the MLP baseline")
        if args.cv or args.fold is not None or args.test_actors or args.val_actors:
            p.error("--split random cannot be combined with --fold, --cv or actor lists")
    if args.emotions and args.model != "mlp":
        p.error("--emotions is only offered for the MLP baseline")
    if args.emotions and args.cv:
        p.error("--emotions cannot be combined with --cv (the six-fold figures use all eight)")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.config and args.model != "cnn":
        p.error("--config sets CNN training; the MLP's grid is fixed (ser_cnn/mlp.py)")
    args.cache = args.cache or str(DEFAULT_CLASSIC_DIR if args.model == "mlp" else DEFAULT_OUT_DIR)
    try:
        args.name = run_name(args.model, args.config)
    except SerError:  # an unreadable or broken file: main() reports it, before TensorFlow loads
        args.name = None
    args.summary = args.summary or f"results/cv_{args.name}.json"
    return args


def run_name(model: str, config_path: str | None) -> str:
    """A recipe's runs and result files are named after its config file, so they never overwrite
    another recipe's: --config configs/refit.toml -> cnn_refit (checkpoints/cv_cnn_refit_seed0).
    No --config trains the shipped recipe, named like its file (cnn_robust_dropout); a file's
    ``run_name`` key wins (configs/studio.toml: cnn, its published names). See
    :func:`ser_cnn.config.recipe_name`."""
    return recipe_name(config_path, model)


def training_config(args: argparse.Namespace) -> TrainConfig:
    """The config file's settings (or the defaults), with --seed and --epochs on top."""
    overrides = {k: getattr(args, k) for k in ("seed", "epochs") if getattr(args, k) is not None}
    if args.config:
        return load_config(args.config, **overrides)
    return TrainConfig.from_dict(overrides)


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    try:
        from ser_cnn.preprocess import check_cache

        config = training_config(args)
        check_cache(args.cache)  # fail early, before TensorFlow loads, if there is no cache
        return run(args, config)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, config: TrainConfig) -> int:
    from ser_cnn.cv import cross_validate
    from ser_cnn.mlp import train_mlp
    from ser_cnn.train import train_cnn

    verbose = 0 if args.quiet else 2
    if args.cv:
        out = Path(args.out or f"checkpoints/cv_{args.name}_seed{config.seed}")
        summary = cross_validate(
            args.cache, out, config, model=args.model, summary_path=args.summary, verbose=verbose
        )
        mean, std = summary["mean"], summary["std"]
        print("six folds: " + "  ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in SCORES))
        print(f"written to {args.summary}")
        return 0

    if args.split == "random":
        parts, default_out = None, f"checkpoints/{args.model}_random_seed{config.seed}"
        print("split: random clips; the same actors are in training and test data (leaky)")
    elif args.test_actors is None:
        fold = args.fold or 1
        parts = split(fold, val_actors=args.val_actors)
        default_out = f"checkpoints/{args.name}_fold{fold}_seed{config.seed}"
    else:
        parts = split(test_actors=args.test_actors, val_actors=args.val_actors)
        actors = "-".join(map(str, parts.test))
        default_out = f"checkpoints/{args.name}_test{actors}_seed{config.seed}"
    if parts is not None:
        print(f"actors: train {list(parts.train)}  val {list(parts.val)}  test {list(parts.test)}")
    out = args.out or default_out
    if args.model == "cnn":
        result = train_cnn(args.cache, out, parts, config, verbose=verbose)
    else:
        result = train_mlp(
            args.cache,
            out,
            parts,
            seed=config.seed,
            emotions=args.emotions,
            random_split=args.split == "random",
        )
    m = result.metrics
    print(
        f"test: accuracy {m['accuracy']:.3f}  UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
        f"(best epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.0f} s)"
    )
    print(f"run folder: {result.run_dir}")
    return 0
