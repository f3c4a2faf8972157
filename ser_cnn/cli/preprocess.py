"""Preprocess labelled speech into a cache of fixed-size features: RAVDESS, or your own data.

ser-cnn preprocess [--data-dir DIR] [--out DIR] [--jobs N] [--force] [--features classic]
ser-cnn preprocess --data PATH [--data PATH ...] [--strict] [--out DIR]
ser-cnn preprocess --config RECIPE [--data-dir DIR] [--out DIR]

Without --data it reads RAVDESS (--data-dir, else $RAVDESS_DIR, else data/ravdess). Exit
status: 0 when the cache holds usable clips, 1 when it holds none or the data was refused
(nothing is written then), 2 for a usage error. With --data and no --out, the cache goes
where `ser-cnn train --data` looks for it: data/processed/<name>-<features>-<hash>.
With --config, the cache also gets the degraded copies that recipe trains on (its
degraded_copies, seed and degradation settings) for each of RAVDESS's six published folds, in
<out>/copies/, so training reads them instead of making them (it makes any missing ones).
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.corpora import INPUT_HELP
from ser_cnn.errors import SerError
from ser_cnn.features.cache import (
    DEFAULT_CLASSIC_DIR,
    DEFAULT_OUT_DIR,
    data_cache,
    preprocess,
    ravdess_dir,
)
from ser_cnn.features.logmel import DEFAULT_CONFIG


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        default=None,
        help="RAVDESS folder (default: $RAVDESS_DIR, else data/ravdess)",
    )
    source.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="PATH",
        help="data to preprocess instead of RAVDESS (give --data again for more): "
        f"{INPUT_HELP.removeprefix('expected ')}; a table's paths are relative to it",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse the data as a whole when any file is missing, unreadable or misnamed "
        "(default: list those and go on with the rest)",
    )
    parser.add_argument(
        "--features",
        choices=("logmel", "classic"),
        default="logmel",
        help="logmel: the CNN's tensors (default); classic: the MLP baseline's 180-number vectors",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"cache folder ({DEFAULT_OUT_DIR}, or {DEFAULT_CLASSIC_DIR} for --features classic; "
        f"with --data, {DEFAULT_OUT_DIR}/<name>-<features>-<hash>, the one train --data uses)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (all cores)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild a cache made with other feature settings, or drop the clips of data "
        "no longer given",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="RECIPE",
        help="also make the degraded copies of the training clips that this training recipe "
        "(TOML/JSON, e.g. configs/robust_dropout.toml) uses, for every published RAVDESS fold",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.config and (args.data or args.features == "classic"):
        parser.error(
            "--config makes the CNN's degraded copies of RAVDESS's published folds: not with "
            "--data (`ser-cnn train --data` makes its folds' copies) or --features classic"
        )
    if args.features == "classic":
        from ser_cnn.features.classic import DEFAULT_CLASSIC as config

        out = args.out or DEFAULT_CLASSIC_DIR
    else:
        config, out = DEFAULT_CONFIG, args.out or DEFAULT_OUT_DIR
    if args.data and not args.out:
        out = data_cache(args.data, config)
    try:
        summary = preprocess(
            args.data if args.data else ravdess_dir(args.data_dir),
            out,
            config=config,
            jobs=args.jobs,
            force=args.force,
            progress=not args.quiet,
            strict=args.strict,
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.describe())
    if summary.total == 0:
        return 1
    if args.config:
        try:
            _make_copies(out, args.config, args.jobs)
        except SerError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


def _make_copies(out, recipe: str, jobs: int | None) -> None:
    """The degraded copies of every published fold's training clips that ``recipe`` trains on,
    made into (or found in) the cache ``out``."""
    import time

    from ser_cnn.config import load_config
    from ser_cnn.ravdess import load_folds, split
    from ser_cnn.training.train import fold_copies

    config = load_config(recipe)
    if not config.degraded_copies:
        print(f"{recipe}: no degraded copies (degraded_copies = 0): nothing more to make")
        return
    for fold in load_folds():
        started = time.perf_counter()
        copies = fold_copies(out, split(fold), config, jobs=jobs)
        print(
            f"fold {fold}: {copies.shape[1]} degraded copies of {copies.shape[0]} training "
            f"clips in {out}/copies ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
