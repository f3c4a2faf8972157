"""Train ser_cnn models with speaker-independent (actor-wise) splits.

ser-cnn train --epochs 50                        # CNN, shipped recipe, fold 1 held out
ser-cnn train --fold 3 --out checkpoints/f3      # another published fold
ser-cnn train --test-actors 1,2 --val-actors 3,4
ser-cnn train --cv                     # six folds -> results/cv_cnn_robust_dropout.json
ser-cnn train --cv --config configs/refit.toml   # a recipe -> results/cv_cnn_refit.json
ser-cnn train --cv --config configs/studio.toml  # the studio recipe -> results/cv_cnn.json
ser-cnn train --model mlp --cv                   # MLP baseline -> results/cv_mlp.json
ser-cnn train --model mlp --split random --emotions calm,happy,fearful,disgust
ser-cnn train --model encoder --config configs/encoder_logistic_gated_steady.toml --fold 1 \
    --extra-cache data/encoder/urdu_noisy --extra-cache data/encoder/ased_noisy \
    --extra-cache data/encoder/nemo_noisy       # the shipped encoder head
ser-cnn train --data mine.csv --cv               # your data: speaker-grouped folds (5)
ser-cnn train --data mine.csv --from checkpoints/ravdess_fold1 --out runs/mine   # fine-tune
ser-cnn train --model encoder --data mine.csv --from checkpoints/ravdess_fold1 --out runs/enc

With --data (a corpus folder, a CSV/TSV table of path,emotion[,speaker], or a folder of
emotion folders; give it again for more) the data is preprocessed into a cache of its own
unless it is there already, the classes are the data's own emotions, and the folds group
speakers (--folds, default 5); without speakers the split is by clips and its scores are
optimistic. RAVDESS alone keeps its six published folds. With --model encoder the data is
encoded by the frozen Whisper encoder into data/encoder/<name>-whisper_logmel-<hash> instead,
and --from fine-tunes the head of an encoder run (the run's own settings unless --config).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig, load_config, recipe_name
from ser_cnn.corpora.splits import DEFAULT_FOLDS
from ser_cnn.encoder.cache import noisy_cache_command
from ser_cnn.encoder.train import DEFAULT_CACHE as ENCODER_CACHE
from ser_cnn.encoder.train import NOISY_CACHE
from ser_cnn.errors import ParameterError, SerError
from ser_cnn.features.cache import DEFAULT_CLASSIC_DIR, DEFAULT_OUT_DIR, data_name
from ser_cnn.ravdess import EMOTIONS, split
from ser_cnn.training.metrics import SCORES

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
    p.add_argument(
        "--model",
        choices=("cnn", "mlp", "encoder"),
        default="cnn",
        help="what to train (cnn); encoder: a head on the frozen Whisper encoder's cached states "
        f"(--cache, default {ENCODER_CACHE}, {NOISY_CACHE} for a noise-gated recipe), with "
        "--config of its settings",
    )
    p.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="PATH",
        help="train on labelled data, preprocessed first unless cached (give --data again for "
        "more): a corpus folder, a folder with one sub-folder of audio per emotion, or a "
        "CSV/TSV table with the columns path and emotion (and speaker, gender, text); its "
        f"cache: {DEFAULT_OUT_DIR}/<name>-<features>-<hash>, or --cache",
    )
    p.add_argument(
        "--cache",
        default=None,
        help=f"preprocessed cache ({DEFAULT_OUT_DIR}; {DEFAULT_CLASSIC_DIR} for --model mlp); "
        "with --data, where to put the data's cache",
    )
    p.add_argument(
        "--extra-cache",
        action="append",
        default=[],
        metavar="DIR",
        help="--model encoder: an encoder cache of another corpus (tools/encode_cache.py) whose "
        "every clip also trains; repeatable",
    )
    p.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="RUN",
        help="fine-tune: start the CNN from this run (a CNN run folder, or one with cnn/ such "
        "as checkpoints/ravdess_fold1): its architecture, weights and input normalisation; "
        "a new output layer when the labels differ; with --model encoder, the head of its "
        "encoder run (encoder/)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="run folder (checkpoints/<name>_fold<K>_seed<S>; with --cv "
        "checkpoints/cv_<name>_seed<S>), <name> the recipe's: cnn_robust_dropout by default, "
        "cnn_<file name> with --config, mlp",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--fold",
        type=int,
        default=None,
        help="fold to test on (1): RAVDESS's published 1..6, or 1..K of --folds with --data",
    )
    where.add_argument("--test-actors", type=actor_list, default=None, help="e.g. 1,11,20,21")
    where.add_argument("--cv", action="store_true", help="train every fold (RAVDESS: six)")
    p.add_argument(
        "--folds",
        type=int,
        default=None,
        metavar="K",
        help=f"with --data: speaker-grouped folds ({DEFAULT_FOLDS}); RAVDESS alone keeps its "
        "six published ones",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="with --data: refuse the data when any file is missing, unreadable or misnamed",
    )
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
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="with --cv: train the folds one after another here (local, the default), or as "
        "parallel Ray tasks (pip install 'ser_cnn[ray]'; docs/scale.md), into the same run "
        "folders and result file",
    )
    p.add_argument("--address", default=None, help="--engine ray: the cluster (default: local)")
    p.add_argument(
        "--cpus-per-fold", type=int, default=1, help="--engine ray: CPUs of each fold's task (1)"
    )
    args = p.parse_args(argv)
    if args.engine == "ray" and not args.cv:
        p.error("--engine ray trains the folds of --cv")
    if args.engine == "local" and args.address:
        p.error("--address is for --engine ray")
    if args.cpus_per_fold < 1:
        p.error("--cpus-per-fold must be at least 1")

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
    if args.model == "encoder":
        _check_encoder_args(p, args)
    elif args.extra_cache:
        p.error("--extra-cache is for --model encoder")
    if args.config and args.model == "mlp":
        p.error("--config sets CNN training; the MLP's grid is fixed (ser_cnn/training/mlp.py)")
    if args.source and args.model == "mlp":
        p.error("--from fine-tunes the CNN or the encoder's head; the MLP trains from scratch")
    if args.folds is not None and not args.data:
        p.error("--folds needs --data: RAVDESS's folds are its six published ones")
    if args.folds is not None and args.folds < 2:
        p.error("--folds must be at least 2")
    if args.strict and not args.data:
        p.error("--strict applies to --data")
    if args.data and (args.split == "random" or args.emotions):
        p.error("--split random and --emotions are for the RAVDESS cache, not --data")
    if not args.data and args.model != "encoder":  # the encoder's: by its recipe (run_encoder)
        args.cache = args.cache or str(
            DEFAULT_CLASSIC_DIR if args.model == "mlp" else DEFAULT_OUT_DIR
        )
    try:
        args.name = run_name(args.model, args.config)
    except SerError:  # an unreadable or broken file: main() reports it, before TensorFlow loads
        args.name = None
    # what default run folders and result files are named after: the recipe, the data, and
    # whether it was fine-tuned (just the recipe for RAVDESS's cache, as always)
    args.label = (
        f"{args.name}"
        + (f"_{data_name(args.data)}" if args.data else "")
        + ("_finetuned" if args.source else "")
    )
    args.summary = args.summary or f"results/cv_{args.label}.json"
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
        from ser_cnn.features.cache import check_cache

        if args.model == "encoder":  # its own settings (HeadTraining) and cache
            return run_encoder(args)
        config = training_config(args)
        if args.data:
            return run_data(args, config)
        check_cache(args.cache)  # fail early, before TensorFlow loads, if there is no cache
        return run(args, config)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _check_encoder_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What `--model encoder` takes: --config (or --from), --fold or --cv, --cache, --seed,
    --epochs, --out; with --data also --from, --folds, --strict and --summary."""
    if not args.config and not (args.data and args.source):
        p.error(
            "--model encoder needs --config: its head's settings (the shipped recipe: "
            "configs/encoder_logistic_gated_steady.toml; on RAVDESS alone: "
            "configs/encoder_logistic_gated_usual.toml), or --data with --from (the run's own "
            "settings)"
        )
    given = {
        "--test-actors": args.test_actors,
        "--val-actors": args.val_actors,
        "--split random": args.split == "random",
        "--emotions": args.emotions,
    }
    if not args.data:
        given |= {
            "--from": args.source,
            "--folds": args.folds,
            "--strict": args.strict,
            "--summary": args.summary,
        }
    elif args.extra_cache:
        given["--extra-cache"] = args.extra_cache
    refused = [name for name, value in given.items() if value]
    if refused:
        p.error(
            f"--model encoder takes a published fold (--fold or --cv) of its RAVDESS cache, or "
            f"a fold of --data, not {refused[0]}: the cache's degraded copies take their babble "
            "from the speakers tested in the same fold; six-fold figures are tools/encoder_cv.py's"
        )


def _engine(args: argparse.Namespace, out: Path, cache):
    """--engine: the ``fold_map`` that trains each fold (None: one after another here; ray:
    :func:`ser_cnn.scale.fold_map`), with ``out`` and ``cache`` made absolute for Ray, whose
    tasks run in other folders or on other nodes (a file system they all see)."""
    if args.engine != "ray":
        return None, out, cache
    from ser_cnn.scale import fold_map

    folds = fold_map(address=args.address, cpus=args.cpus_per_fold)
    return folds, out.resolve(), str(Path(cache).resolve())


def run_encoder(args: argparse.Namespace) -> int:
    """--model encoder: train the head of one published fold, or of each (--cv: run folders
    only; the summary over seeds is tools/encoder_cv.py's), from the encoder cache; with
    --data, of a fold of the data (or each, with a summary), encoded first unless cached."""
    import tomllib

    from ser_cnn.encoder.fit import HeadTraining
    from ser_cnn.encoder.train import (
        check_cache,
        cross_validate_encoder,
        default_cache,
        train_encoder,
    )

    overrides = {k: getattr(args, k) for k in ("seed", "epochs") if getattr(args, k) is not None}
    if args.config:
        path = Path(args.config)
        try:
            settings = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ParameterError(f"cannot read the encoder settings {path}: {err}") from None
        settings.pop("run_name", None)  # names the runs (run_name above), not a setting
        config = HeadTraining.from_dict(settings | overrides)
    else:  # --data --from: the source run's own recipe, as fine-tuning trains it
        from ser_cnn.training.finetune import load_source

        source = load_source(args.source, "encoder")
        config = source.config_for(
            HeadTraining.from_dict(source.run.training.to_dict() | overrides)
        )
    if args.data:
        return run_encoder_data(args, config)
    args.cache = args.cache or str(default_cache(config))
    if config.home_corpus and not args.extra_cache:
        command = noisy_cache_command("CORPUS", "DIR", config.copies, config.noisy_copies)
        raise ParameterError(
            f"this recipe's home gate needs other corpora beside {config.home_corpus}: give "
            f"--extra-cache DIR for each ({command})"
        )
    for cache in (args.cache, *args.extra_cache):
        check_cache(cache, config.copies, config.noisy_copies)  # before TensorFlow loads
    if args.cv:
        out = Path(args.out or f"checkpoints/cv_{args.label}_seed{config.seed}")
        fold_map, out, args.cache = _engine(args, out, args.cache)
        extra = [str(Path(c).resolve()) for c in args.extra_cache]
        folds = cross_validate_encoder(
            args.cache, out, config, extra=extra, verbose=not args.quiet, fold_map=fold_map
        )
        accuracy = np.array([m["accuracy"] for m in folds.values()])
        uar = np.array([m["uar"] for m in folds.values()])
        print(
            f"six folds: accuracy {accuracy.mean():.3f} ± {accuracy.std():.3f}  UAR "
            f"{uar.mean():.3f} ± {uar.std():.3f}  (run folders in {out}; the summary over seeds: "
            f"python tools/encoder_cv.py {args.cache} --config {args.config})"
        )
        return 0
    fold = args.fold or 1
    parts = split(fold)
    print(parts.describe())
    out = args.out or f"checkpoints/{args.label}_fold{fold}_seed{config.seed}"
    result = train_encoder(args.cache, out, parts, config, extra=args.extra_cache, verbose=False)
    _print_result(result)
    return 0


def run_encoder_data(args: argparse.Namespace, config) -> int:
    """--model encoder --data: read and check the data and its split (nothing is written when
    refused), encode it into its encoder cache unless there, then train the head of a fold, or
    of each (--cv, with a summary)."""
    from ser_cnn.corpora.splits import check_ravdess_fold
    from ser_cnn.encoder.train import cross_validate_data, prepare_data, train_encoder

    if args.source:
        from ser_cnn.training.finetune import load_source

        load_source(args.source, "encoder")  # refused before anything is encoded
    cache, folds, data = prepare_data(
        args.data,
        args.cache,
        copies=config.copies,
        noisy_copies=config.noisy_copies,
        folds=args.folds,
        strict=args.strict,
        progress=not args.quiet,
    )
    print(f"cache {cache}: {sum(c['clips'] for c in data['corpora'].values())} clips")
    if folds is None:  # RAVDESS alone: its published folds
        check_ravdess_fold(args.fold, args.folds)
    elif args.fold is not None and not 1 <= args.fold <= len(folds):
        raise ParameterError(f"--fold must be 1..{len(folds)} with --folds {len(folds)}")
    for note in dict.fromkeys(f.note for f in folds or () if f.note):
        print(f"warning: {note}")
    if args.cv:
        out = Path(args.out or f"checkpoints/cv_{args.label}_seed{config.seed}")
        if folds is None:
            raise ParameterError(
                "RAVDESS's six encoder folds: ser-cnn train --model encoder --cv (its cache, "
                "data/encoder/ravdess) or tools/encoder_cv.py"
            )
        fold_map, out, cache = _engine(args, out, cache)
        summary = cross_validate_data(
            cache,
            out,
            config,
            folds,
            source=args.source,
            data=data,
            summary_path=args.summary,
            verbose=not args.quiet,
            fold_map=fold_map,
        )
        mean, std = summary["mean"], summary["std"]
        print(
            f"{len(folds)} folds: " + "  ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in SCORES)
        )
        for note in summary.get("notes") or ():
            print(f"warning: {note}")
        print(f"written to {args.summary}")
        return 0
    fold = args.fold or 1
    parts = split(fold) if folds is None else folds[fold - 1]
    print(parts.describe())
    out = args.out or f"checkpoints/{args.label}_fold{fold}_seed{config.seed}"
    result = train_encoder(cache, out, parts, config, source=args.source, data=data, verbose=False)
    _print_result(result)
    return 0


def _print_result(result) -> None:
    m = result.metrics
    print(
        f"test: accuracy {m['accuracy']:.3f}  UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
        f"(best epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.0f} s)"
    )
    for note in m.get("notes") or ():
        print(f"warning: {note}")
    print(f"run folder: {result.run_dir}")


def run_data(args: argparse.Namespace, config: TrainConfig) -> int:
    """--data: read and check the data and its split (nothing is written when refused),
    preprocess it into its cache unless there, then train as on any cache."""
    from ser_cnn.corpora.splits import check_ravdess_fold, data_folds, is_ravdess
    from ser_cnn.features.cache import (
        cache_keys,
        cache_manifest,
        data_cache,
        preprocess,
        read_inputs,
    )

    if args.source:
        from ser_cnn.training.finetune import load_source

        feature_config = load_source(args.source).run.features  # the source run's settings
    elif args.model == "mlp":
        from ser_cnn.features.classic import DEFAULT_CLASSIC as feature_config
    else:
        from ser_cnn.features.logmel import DEFAULT_CONFIG as feature_config

    def folds_of(manifest):
        """RAVDESS alone: None (its published folds); else every fold of the data."""
        if is_ravdess(manifest):
            check_ravdess_fold(args.fold, args.folds)
            return None
        if args.test_actors or args.val_actors:
            raise ParameterError(
                "--test-actors and --val-actors name RAVDESS actors; with other data, "
                "choose a fold with --fold N (of --folds K)"
            )
        folds = args.folds or DEFAULT_FOLDS
        if args.fold is not None and not 1 <= args.fold <= folds:
            raise ParameterError(f"--fold must be 1..{folds} with --folds {folds}")
        return data_folds(manifest, folds)

    manifest, _ = read_inputs(args.data, strict=args.strict)
    folds_of(manifest.assign(stem=cache_keys(manifest)))  # refusals come before any writing
    cache = Path(args.cache) if args.cache else data_cache(args.data, feature_config)
    summary = preprocess(
        args.data, cache, config=feature_config, progress=not args.quiet, strict=args.strict
    )
    print(summary.describe())
    data = {
        "inputs": [str(Path(p).resolve()) for p in args.data],
        "cache": str(cache.resolve()),
        "corpora": summary.by_corpus,
    }
    folds = folds_of(cache_manifest(cache))  # of the clips the cache holds
    args.cache = str(cache)
    if folds is None:  # RAVDESS alone: as from its cache
        return run(args, config, data=data)
    for note in dict.fromkeys(f.note for f in folds if f.note):
        print(f"warning: {note}")
    return run(args, config, data=data, folds=folds)


def run(
    args: argparse.Namespace, config: TrainConfig, *, data: dict | None = None, folds=None
) -> int:
    from ser_cnn.training.cv import cross_validate
    from ser_cnn.training.mlp import train_mlp
    from ser_cnn.training.train import train_cnn

    verbose = 0 if args.quiet else 2
    if args.cv:
        out = Path(args.out or f"checkpoints/cv_{args.label}_seed{config.seed}")
        fold_map, out, args.cache = _engine(args, out, args.cache)
        summary = cross_validate(
            args.cache,
            out,
            config,
            model=args.model,
            summary_path=args.summary,
            verbose=verbose,
            splits=folds,
            source=args.source,
            data=data,
            fold_map=fold_map,
        )
        mean, std = summary["mean"], summary["std"]
        n = "six" if folds is None else f"{len(folds)}"
        print(f"{n} folds: " + "  ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in SCORES))
        for note in summary.get("notes") or ():
            print(f"warning: {note}")
        print(f"written to {args.summary}")
        return 0

    if args.split == "random":
        parts, default_out = None, f"checkpoints/{args.model}_random_seed{config.seed}"
        print("split: random clips; the same actors are in training and test data (leaky)")
    elif folds is not None:
        fold = args.fold or 1
        parts = folds[fold - 1]
        default_out = f"checkpoints/{args.label}_fold{fold}_seed{config.seed}"
    elif args.test_actors is None:
        fold = args.fold or 1
        parts = split(fold, val_actors=args.val_actors)
        default_out = f"checkpoints/{args.label}_fold{fold}_seed{config.seed}"
    else:
        parts = split(test_actors=args.test_actors, val_actors=args.val_actors)
        actors = "-".join(map(str, parts.test))
        default_out = f"checkpoints/{args.label}_test{actors}_seed{config.seed}"
    if parts is not None:
        print(parts.describe())
    out = args.out or default_out
    if args.model == "cnn":
        result = train_cnn(
            args.cache, out, parts, config, verbose=verbose, source=args.source, data=data
        )
    else:
        result = train_mlp(
            args.cache,
            out,
            parts,
            seed=config.seed,
            emotions=args.emotions,
            random_split=args.split == "random",
            data=data,
        )
    _print_result(result)
    return 0
