"""Preprocess RAVDESS into a cache of fixed-size log-mel tensors.

python scripts/preprocess.py [--data-dir DIR] [--out DIR] [--jobs N] [--force]
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.errors import SerError
from ser_cnn.features import DEFAULT_CONFIG
from ser_cnn.preprocess import DEFAULT_CLASSIC_DIR, DEFAULT_OUT_DIR, preprocess
from ser_cnn.ravdess import resolve_data_dir


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="RAVDESS folder (default: $RAVDESS_DIR, else data/ravdess)",
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
        help=f"cache folder ({DEFAULT_OUT_DIR}, or {DEFAULT_CLASSIC_DIR} for --features classic)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (all cores)")
    parser.add_argument(
        "--force", action="store_true", help="rebuild a cache made with other feature settings"
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
    try:
        summary = preprocess(
            resolve_data_dir(args.data_dir),
            out,
            config=config,
            jobs=args.jobs,
            force=args.force,
            progress=not args.quiet,
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.describe())
    return 0 if summary.total > 0 else 1
