"""Start the web app: upload or record speech in a browser, see which emotion ser_cnn hears.

    ser-cnn app                          # http://127.0.0.1:7860, the shipped model
    ser-cnn app --port 8000 --run DIR    # another port, another run folder
    ser-cnn app --host 0.0.0.0           # reachable from other machines of the network

Needs the app extra: pip install 'ser_cnn[app]' (make install does). It works offline.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from ser_cnn.cli.infer import (  # the same choices as infer and evaluate
    MODEL_CHOICES,
    add_front_end_option,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    from ser_cnn.serving.app import (
        DEFAULT_HOST,
        DEFAULT_LIVE,
        DEFAULT_MAX_MB,
        DEFAULT_MAX_MINUTES,
        DEFAULT_PORT,
        DEFAULT_QUEUE,
        DEFAULT_WORKERS,
    )

    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--run",
        action="append",
        default=None,
        help="run folder (default: the shipped model); several for an ensemble",
    )
    p.add_argument(
        "--model",
        choices=tuple(MODEL_CHOICES),
        default="all",
        help="(all: every model the run has; both: the CNN and the MLP)",
    )
    add_front_end_option(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on ({DEFAULT_HOST}: this machine only; 0.0.0.0: every network)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT})")
    p.add_argument(
        "--max-mb",
        type=float,
        default=DEFAULT_MAX_MB,
        help=f"largest file in MB ({DEFAULT_MAX_MB:g})",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULT_MAX_MINUTES,
        help=f"longest recording, minutes ({DEFAULT_MAX_MINUTES:g})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"recordings analysed at a time ({DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--live",
        type=int,
        default=DEFAULT_LIVE,
        help=f"live microphones served at a time, apart from uploads ({DEFAULT_LIVE})",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=DEFAULT_QUEUE,
        help=f"most requests waiting; newcomers beyond are asked to retry ({DEFAULT_QUEUE})",
    )
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error("--port must be between 1 and 65535")
    if not args.max_mb > 0 or not args.max_minutes > 0:
        p.error("--max-mb and --max-minutes must be positive")
    if args.workers < 1 or args.queue < 1 or args.live < 1:
        p.error("--workers, --live and --queue must be at least 1")
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    if importlib.util.find_spec("gradio") is None:
        print(
            "error: the app needs Gradio: pip install 'ser_cnn[app]' (or `make install`)",
            file=sys.stderr,
        )
        return 1
    from ser_cnn.cli.infer import _native_stderr_silenced
    from ser_cnn.errors import SerError
    from ser_cnn.serving.app import Limits, build_app, launch
    from ser_cnn.serving.inference import load_recognizer

    limits = Limits(args.max_mb, args.max_minutes)
    try:
        with _native_stderr_silenced(not args.verbose):
            rec = load_recognizer(
                args.run, models=MODEL_CHOICES[args.model], front_end=args.front_end
            )
        demo = build_app(rec, limits, workers=args.workers, live=args.live)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: other machines can use this app", file=sys.stderr)
    try:
        launch(demo, limits, host=args.host, port=args.port, queue=args.queue)
    except OSError as err:  # the port is taken, or the address is not this machine's
        print(f"error: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0
