"""What fine-tuning gains: a trained run fine-tuned on other data against the same model trained
from scratch on it, on the same speaker-grouped folds, seeds and epochs.

    python tools/finetune.py --data /work/shared/data/urdu --from checkpoints/ravdess_fold1 \\
        --folds 5 --epochs 15 --seeds 0 --degraded-copies 0 --out results/finetune_urdu.json
    python tools/finetune.py --data DIR --from RUN --check-lr 1e-3 3e-4 1e-4 --check-folds 1 2
    python tools/finetune.py --model encoder --data /work/shared/data/urdu \\
        --from checkpoints/ravdess_fold1 --cache data/encoder/urdu --seeds 0 \\
        --out results/finetune_urdu_encoder.json

``--model encoder`` compares the head on the frozen Whisper encoder the same way
(``ser_cnn.encoder.train.cross_validate_data``): trained from scratch, and fine-tuned from the
source run's encoder head (ser_cnn/training/finetune.py's ``HeadSource``), both with the source
run's recipe (or --config) at its learning rate and for its epochs (or --epochs), on the folds of
the clips its encoder cache holds (``prepare_data``: made unless there; --cache names one).

Both arms train ``ser_cnn.training.train.train_cnn`` with one recipe (the shipped one, or --config;
its architecture is the source run's), on the folds of ``ser_cnn.corpora.splits.data_folds``: from
random weights at ``learning_rate``, and from the source run (``--from``,
ser_cnn/training/finetune.py) at ``finetune_learning_rate``. The data is preprocessed with the
source run's feature settings into the cache ``ser-cnn train --data`` would use. The result file has
accuracy, UAR and macro-F1 per fold and seed, their mean ± std (population std over the fold runs)
for each arm, and the gain (fine-tuned minus scratch, fold by fold; mean ± std).

``--check-lr`` is the small validation check that chose ``finetune_learning_rate``: the
fine-tuned arm alone at each rate on ``--check-folds``, scored on the validation speakers only
(the test speakers are not looked at); it writes its own file (``--out`` with ``_lr_check``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig, load_config
from ser_cnn.corpora.splits import data_folds
from ser_cnn.errors import ParameterError
from ser_cnn.features.cache import cache_manifest, data_cache, preprocess
from ser_cnn.training.cv import cross_validate, data_protocol
from ser_cnn.training.finetune import load_source
from ser_cnn.training.metrics import SCORES
from ser_cnn.versions import git_commit, library_versions

ARMS = ("scratch", "finetuned")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("cnn", "encoder"), default="cnn")
    p.add_argument("--data", action="append", required=True, metavar="PATH")
    p.add_argument("--from", dest="source", required=True, metavar="RUN")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--epochs", type=int, default=None, help="CNN: 15; encoder: the recipe's (patience too)"
    )
    p.add_argument("--cache", default=None, help="encoder: its cache (default: made for --data)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--config", default=None, help="recipe (default: the shipped one)")
    p.add_argument(
        "--degraded-copies",
        type=int,
        default=None,
        help="override the recipe's degraded copies per clip (0: none, to save time)",
    )
    p.add_argument(
        "--runs", default=None, help="where the fold runs go (checkpoints/finetune[_encoder])"
    )
    p.add_argument("--out", default=None, help="results/finetune_urdu[_encoder].json")
    p.add_argument("--check-lr", type=float, nargs="+", default=None, metavar="LR")
    p.add_argument("--check-folds", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    suffix = "" if args.model == "cnn" else f"_{args.model}"
    args.runs = args.runs or f"checkpoints/finetune{suffix}"
    args.out = args.out or f"results/finetune_urdu{suffix}.json"
    if args.model == "encoder":
        if args.check_lr:
            raise ParameterError("--check-lr is the CNN's; the head keeps its recipe's rate")
        return main_encoder(args)
    if args.cache:
        raise ParameterError("--cache is the encoder's; the CNN's is made for --data")

    source = load_source(args.source)
    config = load_config(args.config) if args.config else TrainConfig()
    config = config.replace(epochs=args.epochs or 15)
    if args.degraded_copies is not None:
        config = config.replace(degraded_copies=args.degraded_copies)
    cache = data_cache(args.data, source.run.features)
    summary = preprocess(args.data, cache, config=source.run.features, progress=False)
    print(summary.describe(), flush=True)
    data = {
        "inputs": [str(Path(d).resolve()) for d in args.data],
        "cache": str(cache.resolve()),
        "corpora": summary.by_corpus,
    }
    folds = data_folds(cache_manifest(cache), args.folds)
    out = Path(args.out)
    runs = Path(args.runs)
    if args.check_lr:
        return check_lr(args, config, cache, folds, data, runs, out)

    return compare(
        args,
        folds,
        data,
        source,
        lambda arm, seed: cross_validate(
            cache,
            runs / f"{arm}_seed{seed}",
            config.replace(seed=seed),
            splits=folds,
            source=source.run_dir if arm == "finetuned" else None,
            data=data,
            verbose=0,
        ),
        epochs=config.epochs,
        learning_rate={"scratch": config.learning_rate, "finetuned": config.finetune_learning_rate},
    )


def main_encoder(args) -> int:
    """--model encoder: the head from scratch against the head fine-tuned from the source's."""
    import dataclasses
    import tomllib

    from ser_cnn.encoder.cache import cache_settings
    from ser_cnn.encoder.fit import HeadTraining
    from ser_cnn.encoder.train import cross_validate_data, prepare_data

    source = load_source(args.source, "encoder")
    if args.config:
        recipe = tomllib.loads(Path(args.config).read_text())
        recipe.pop("run_name", None)  # names runs, not a setting
        config = HeadTraining.from_dict(recipe)
    else:
        config = source.run.training  # the recipe of the run fine-tuned from
    if args.epochs is not None:
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.degraded_copies is not None:
        config = dataclasses.replace(config, copies=args.degraded_copies)
    cache, folds, data = prepare_data(
        args.data,
        args.cache,
        copies=config.copies,
        noisy_copies=config.noisy_copies,
        folds=args.folds,
        progress=False,
    )
    if folds is None:
        raise ParameterError("RAVDESS alone: its six published folds are tools/encoder_cv.py's")
    runs = Path(args.runs)
    babble = cache_settings(cache).get("babble")
    notes = (
        []
        if babble or not config.copies
        else [
            f"the degraded copies of {cache} take their babble from other speakers of the same "
            "corpus (tools/encode_cache.py), test speakers among them: a faint trace of their "
            "voices under some training clips, alike in both arms"
        ]
    )
    return compare(
        args,
        folds,
        data,
        source,
        lambda arm, seed: cross_validate_data(
            cache,
            runs / f"{arm}_seed{seed}",
            dataclasses.replace(config, seed=seed),
            folds,
            source=source.run_dir if arm == "finetuned" else None,
            data=data,
            summary_path=runs / f"{arm}_seed{seed}" / "cv_summary.json",
            verbose=False,
        ),
        epochs=config.epochs,
        learning_rate={"scratch": config.learning_rate, "finetuned": config.learning_rate},
        notes=notes,
    )


def compare(
    args, folds, data, source, train_arm, *, epochs: int, learning_rate: dict, notes=()
) -> int:
    """Train both arms (``train_arm(arm, seed)``: a cross-validation summary) for every seed,
    and write the result file."""
    out, runs = Path(args.out), Path(args.runs)
    started = time.perf_counter()
    load = os.getloadavg()  # before: a busy machine shows in the cost
    arms: dict[str, dict] = {arm: {"runs": {}} for arm in ARMS}
    for seed in args.seeds:
        for arm in ARMS:
            cv = train_arm(arm, seed)
            for k, m in cv["folds"].items():
                arms[arm]["runs"][f"seed{seed}/fold{k}"] = {s: m[s] for s in SCORES} | {
                    "best_epoch": cv["cost"]["per_fold"][k]["best_epoch"],
                    "seconds": cv["cost"]["per_fold"][k]["seconds"],
                }
            arms[arm]["training"] = cv["training"]
            print(f"{arm}, seed {seed}: " + _line(cv["mean"]), flush=True)
    for arm in ARMS:
        arms[arm] |= _mean_std(list(arms[arm]["runs"].values()))
    keys = list(arms["scratch"]["runs"])
    gain = {
        s: [arms["finetuned"]["runs"][k][s] - arms["scratch"]["runs"][k][s] for k in keys]
        for s in SCORES
    }
    kept = "every layer; the output rows of shared labels"
    if args.model == "encoder":
        kept += "; the head's input statistics (the run's)"
    result = {
        "what": f"fine-tuning a trained run's {args.model} against training it from scratch, "
        "same folds, seeds and epochs",
        "model": args.model,
        "protocol": data_protocol(folds[0], labels_of(runs, args.seeds[0]), data),
        "notes": ([folds[0].note] if folds[0].note else []) + list(notes),
        "data": data,
        "from": source.record({}) | {"kept": kept},
        "folds": {
            str(f.fold): {"test": list(f.test), "val": list(f.val), "train": len(f.train)}
            for f in folds
        },
        "seeds": args.seeds,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "scratch": arms["scratch"],
        "finetuned": arms["finetuned"],
        "gain": {
            "mean": {s: float(np.mean(v)) for s, v in gain.items()},
            "std": {s: float(np.std(v)) for s, v in gain.items()},
            "runs": {k: {s: gain[s][i] for s in SCORES} for i, k in enumerate(keys)},
        },
        "cost": {
            "wall_seconds": round(time.perf_counter() - started, 1),
            "cpu_cores": os.cpu_count(),
            "loadavg_before": [round(v, 2) for v in load],
            "command": " ".join(["python tools/finetune.py", *sys.argv[1:]]),
        },
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for arm in ARMS:
        print(f"{arm}: " + _line(arms[arm]["mean"], arms[arm]["std"]))
    print("gain: " + _line(result["gain"]["mean"], result["gain"]["std"]))
    print(f"written to {out}")
    return 0


def check_lr(args, config, cache, folds, data, runs: Path, out: Path) -> int:
    """The fine-tuned arm at each rate on a few folds, scored on validation speakers only."""
    from ser_cnn.training.train import train_cnn

    rows = {}
    for lr in args.check_lr:
        scores = []
        for k in args.check_folds:
            result = train_cnn(
                cache,
                runs / f"lr_check_{lr:g}_fold{k}",
                folds[k - 1],
                config.replace(finetune_learning_rate=lr),
                source=args.source,
                data=data,
                verbose=0,
            )
            scores.append(result.metrics["validation"] | {"best_epoch": result.best_epoch})
        rows[f"{lr:g}"] = {"folds": dict(zip(map(str, args.check_folds), scores, strict=True))}
        rows[f"{lr:g}"] |= _mean_std(scores)
        print(f"finetune_learning_rate {lr:g}: validation " + _line(rows[f"{lr:g}"]["mean"]))
    best = max(rows, key=lambda lr: (rows[lr]["mean"]["accuracy"], rows[lr]["mean"]["uar"]))
    result = {
        "what": "validation check of finetune_learning_rate (validation speakers only)",
        "selection": "highest mean validation accuracy (the CNN's selection score), then UAR",
        "chosen": float(best),
        "folds": args.check_folds,
        "epochs": config.epochs,
        "rates": rows,
        "data": data,
        "from": str(Path(args.source).resolve()),
        "git_commit": git_commit(),
    }
    path = out.with_name(out.stem + "_lr_check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"chosen: {best}; written to {path}")
    return 0


def labels_of(runs: Path, seed: int) -> list[str]:
    from ser_cnn.run import cv_folds, load_run

    return list(load_run(next(iter(cv_folds(runs / f"scratch_seed{seed}").values()))).labels)


def _mean_std(runs: list[dict]) -> dict:
    return {
        "mean": {s: float(np.mean([r[s] for r in runs])) for s in SCORES},
        "std": {s: float(np.std([r[s] for r in runs])) for s in SCORES},
    }


def _line(mean: dict, std: dict | None = None) -> str:
    return "  ".join(f"{s} {mean[s]:.3f}" + (f" ± {std[s]:.3f}" if std else "") for s in SCORES)


if __name__ == "__main__":
    sys.exit(main())
