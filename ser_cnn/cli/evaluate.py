"""Score a trained run on labelled recordings: accuracy, UAR, macro-F1, per-class recall and
the confusion matrix of every model in it.

    ser-cnn evaluate --run checkpoints/ravdess_fold1 --data my_clips.csv --out results/mine
    ser-cnn evaluate --data $URDU_DIR --restricted
    ser-cnn evaluate --run RUN --data a.csv --data emotion_folders/ --strict

Each clip is judged alone, exactly as `ser-cnn infer` judges that file. Clips whose file is
unusable, whose emotion the run does not have, or which cannot be analysed are counted and
named, never dropped silently. Exit status: 0 when every file was scored or left out for its
label, 1 when some file could not be used (the rest were scored), 2 for a usage or data error
(nothing is written then).
"""

from __future__ import annotations

import argparse
import sys

from ser_cnn.cli.infer import add_model_options, load_from_options


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    from ser_cnn.corpora import INPUT_HELP

    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="labelled recordings (give --data again for more): "
        f"{INPUT_HELP.removeprefix('expected ')}; a table's paths are relative to it",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write DIR/metrics.json, DIR/confusion.png (the first model's; others "
        "confusion_MODEL.png) and DIR/predictions.csv; DIR must be new, empty, or an earlier "
        "evaluation's",
    )
    p.add_argument(
        "--restricted",
        action="store_true",
        help="score only the emotions both the data and the run have, calm counted as "
        "neutral, the run's probabilities renormalised over them (for corpora with fewer "
        "emotions)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse the whole evaluation when any clip would be left out (unusable file, "
        "emotion the run lacks, not analysable)",
    )
    p.add_argument("--batch", type=int, default=64, metavar="N", help="clips per model call (64)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error("--batch must be at least 1")
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    from threadpoolctl import threadpool_limits

    from ser_cnn.errors import SerError
    from ser_cnn.training.evaluation import check_out_dir, read_data, score, write_evaluation

    # as infer does: one BLAS thread per feature thread, so the answers are infer's too
    threadpool_limits(limits=1, user_api="blas")
    try:
        if args.out is not None:
            check_out_dir(args.out)  # before any work: a refused folder costs nothing
        inputs, manifest, problems = read_data(args.data, strict=args.strict)
        rec = load_from_options(args)
        result = score(
            rec,
            manifest,
            problems=problems,
            data=inputs,
            restricted=args.restricted,
            strict=args.strict,
            batch_size=args.batch,
            progress=not args.quiet and sys.stderr.isatty(),
        )
        print(result.describe())
        if args.out is not None:
            written = write_evaluation(result, args.out)
            print(f"wrote {', '.join(str(p) for p in written)}")
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if result.failed else 0
