"""Preprocess labelled speech into a cache of fixed-size features: RAVDESS, or your own data.

ser-cnn preprocess [--data-dir DIR] [--out DIR] [--jobs N] [--force] [--features classic]
ser-cnn preprocess --data PATH [--data PATH ...] [--strict] [--out DIR]

Without --data it reads RAVDESS (--data-dir, else $RAVDESS_DIR, else data/ravdess). Exit
status: 0 when the cache holds usable clips, 1 when it holds none or the data was refused
(nothing is written then), 2 for a usage error. With --data and no --out, the cache goes
where `ser-cnn train --data` looks for it: data/processed/<name>-<features>-<hash>.
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.corpora import INPUT_HELP
from ser_cnn.errors import SerError
from ser_cnn.features import DEFAULT_CONFIG
from ser_cnn.preprocess import (
    DEFAULT_CLASSIC_DIR,
    DEFAULT_OUT_DIR,
    data_cache,
    preprocess,
    ravdess_dir,
)


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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.features == "classic":
        from ser_cnn.classic import DEFAULT_CLASSIC as config

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
    return 0 if summary.total > 0 else 1
