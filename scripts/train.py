"""Train ser_cnn models with speaker-independent (actor-wise) splits.

python scripts/train.py --epochs 50                    # CNN, fold 1 held out
python scripts/train.py --fold 3 --out checkpoints/f3  # another published fold
python scripts/train.py --test-actors 1,2 --val-actors 3,4
python scripts/train.py --cv                           # six folds -> results/cv_cnn.json
python scripts/train.py --model mlp --cv               # MLP baseline -> results/cv_mlp.json
python scripts/train.py --model mlp --split random --emotions calm,happy,fearful,disgust
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ser_cnn.data import EMOTIONS, split
from ser_cnn.errors import SerError
from ser_cnn.metrics import SCORES
from ser_cnn.preprocess import DEFAULT_CLASSIC_DIR, DEFAULT_OUT_DIR
from ser_cnn.train import TrainConfig

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("cnn", "mlp"), default="cnn", help="what to train (cnn)")
    p.add_argument(
        "--cache",
        default=None,
        help=f"preprocessed cache ({DEFAULT_OUT_DIR}; {DEFAULT_CLASSIC_DIR} for --model mlp)",
    )
    p.add_argument("--out", default=None, help="run folder (checkpoints/<model>_fold<K>_seed<S>)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--fold", type=int, default=None, help="published fold 1..6 to test on (1)")
    where.add_argument("--test-actors", type=actor_list, default=None, help="e.g. 1,11,20,21")
    where.add_argument("--cv", action="store_true", help="train all six folds")
    p.add_argument("--val-actors", type=actor_list, default=None, help="default: 1 male, 1 female")
    p.add_argument("--summary", default=None, help="--cv result file (results/cv_<model>.json)")
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
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    cnn = p.add_argument_group("CNN training")
    cnn.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    cnn.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    cnn.add_argument("--lr", type=float, default=DEFAULTS.learning_rate)
    cnn.add_argument("--patience", type=int, default=DEFAULTS.patience)
    cnn.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default=DEFAULTS.precision,
        help="CNN arithmetic while training (auto: bfloat16 where the CPU has it); "
        "the saved model always runs in float32",
    )
    cnn.add_argument(
        "--ema",
        type=float,
        default=DEFAULTS.ema,
        help="select and save a moving average of the weights (momentum per step, e.g. 0.99)",
    )
    cnn.add_argument(
        "--refit",
        action="store_true",
        help="train on the training and validation actors together for exactly --epochs "
        "epochs and keep the last weights (no validation, no early stopping)",
    )
    cnn.add_argument(
        "--speaker-norm",
        action="store_true",
        help="standardise every actor's log-mels with that actor's own band statistics "
        "(the model then needs several recordings of a speaker at inference)",
    )
    cnn.add_argument(
        "--utterance-norm", action="store_true", help="standardise each clip before band norm"
    )
    aug = p.add_argument_group("CNN augmentation and balancing (training actors only)")
    aug.add_argument("--mixup", type=float, default=DEFAULTS.mixup_alpha, help="Beta alpha; 0 off")
    aug.add_argument("--time-shift", type=int, default=DEFAULTS.time_shift, help="frames; 0 off")
    aug.add_argument(
        "--specaugment",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.freq_masks > 0,
        help="2 frequency (≤8 bands) and 2 time (≤25 frames) masks",
    )
    aug.add_argument(
        "--speed", type=float, default=DEFAULTS.speed, help="speed perturbation 1 ± SPEED; 0 off"
    )
    aug.add_argument("--noise-db", type=float, default=DEFAULTS.noise_db, help="dB std; 0 off")
    aug.add_argument("--no-class-weights", action="store_true")
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
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    args.cache = args.cache or str(DEFAULT_CLASSIC_DIR if args.model == "mlp" else DEFAULT_OUT_DIR)
    for flag in ("refit", "speaker_norm"):
        if getattr(args, flag) and args.model != "cnn":
            p.error(f"--{flag.replace('_', '-')} is only offered for the CNN")
    # refit and speaker-normalised runs get names of their own, so they never overwrite the
    # default runs' files
    args.name = args.model + "_speaker" * args.speaker_norm + "_refit" * args.refit
    args.summary = args.summary or f"results/cv_{args.name}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        utterance_norm=args.utterance_norm,
        mixup_alpha=args.mixup,
        speed=args.speed,
        precision=args.precision,
        ema=args.ema,
        refit=args.refit,
        speaker_norm=args.speaker_norm,
        time_shift=args.time_shift,
        freq_masks=2 if args.specaugment else 0,
        time_masks=2 if args.specaugment else 0,
        noise_db=args.noise_db,
        class_weights=not args.no_class_weights,
    )
    try:
        from ser_cnn.preprocess import check_cache

        check_cache(args.cache)  # fail early, before TensorFlow loads, if there is no cache
        return run(args, config)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, config: TrainConfig) -> int:
    from ser_cnn.train import cross_validate, train_cnn, train_mlp

    verbose = 0 if args.quiet else 2
    if args.cv:
        out = Path(args.out or f"checkpoints/cv_{args.name}_seed{args.seed}")
        summary = cross_validate(
            args.cache, out, config, model=args.model, summary_path=args.summary, verbose=verbose
        )
        mean, std = summary["mean"], summary["std"]
        print("six folds: " + "  ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in SCORES))
        print(f"written to {args.summary}")
        return 0

    if args.split == "random":
        parts, default_out = None, f"checkpoints/{args.model}_random_seed{args.seed}"
        print("split: random clips; the same actors are in training and test data (leaky)")
    elif args.test_actors is None:
        fold = args.fold or 1
        parts = split(fold, val_actors=args.val_actors)
        default_out = f"checkpoints/{args.name}_fold{fold}_seed{args.seed}"
    else:
        parts = split(test_actors=args.test_actors, val_actors=args.val_actors)
        actors = "-".join(map(str, parts.test))
        default_out = f"checkpoints/{args.name}_test{actors}_seed{args.seed}"
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
            seed=args.seed,
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


if __name__ == "__main__":
    sys.exit(main())
