"""Preprocess RAVDESS into a cache of fixed-size log-mel tensors.

python scripts/preprocess.py [--data-dir DIR] [--out DIR] [--jobs N] [--force]
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.data import resolve_data_dir
from ser_cnn.errors import SerError
from ser_cnn.preprocess import DEFAULT_OUT_DIR, preprocess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="RAVDESS folder (default: $RAVDESS_DIR, else data/ravdess)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT_DIR), help="cache folder (%(default)s)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (all cores)")
    parser.add_argument(
        "--force", action="store_true", help="rebuild a cache made with other feature settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        summary = preprocess(
            resolve_data_dir(args.data_dir),
            args.out,
            jobs=args.jobs,
            force=args.force,
            progress=not args.quiet,
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.describe())
    return 0 if summary.total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
