"""Say which emotion ser_cnn hears in audio files, with a probability for every emotion.

    ser-cnn infer file.wav [more files or folders]     # every model of the run: encoder, CNN, MLP
    ser-cnn infer --model encoder file.wav
    ser-cnn infer --all --format json recordings/
    ser-cnn infer --window 3 --hop 1 long_interview.flac
    ser-cnn infer --run checkpoints/encoder_speaker_fold1 --speaker one_speaker/
    ser-cnn infer --run run_seed0 --run run_seed1 --run run_seed2 file.wav
    ser-cnn infer --front-end configs/encoder_logistic_gated_reverb_fast.toml hall.wav
    ser-cnn infer --engine ray --out scores.parquet recordings/ manifest.csv s3://bucket/audio/

``python scripts/infer.py`` takes the same arguments.

Exit status: 0 when every file was analysed, 1 when some could not be, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

# "all": every model the run folders have (the shipped one: the encoder, the CNN and the MLP)
MODEL_CHOICES = {
    "all": None,
    "encoder": ("encoder",),
    "cnn": ("cnn",),
    "mlp": ("mlp",),
    "both": ("cnn", "mlp"),
}


# TensorFlow's C++ start-up chatter (no GPU found, oneDNN notes) is not for users' terminals.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--run, --model, --raw and --runtime: which models answer, and how (infer, listen,
    evaluate)."""
    p.add_argument(
        "--run",
        action="append",
        default=None,
        help="run folder (default: the shipped model); give it several times for an ensemble, "
        "whose probabilities are the mean of its members'",
    )
    p.add_argument(
        "--model",
        choices=tuple(MODEL_CHOICES),
        default="all",
        help="which models answer: all (every model the run has; the first is the headline: "
        "the encoder, else the CNN), encoder, cnn, mlp, or both (cnn and mlp)",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="the models' raw probabilities, without the temperature a calibrated run stores",
    )
    p.add_argument(
        "--runtime",
        choices=("auto", "light", "reference"),
        default="auto",
        help="what runs the models: 'light' (LiteRT and NumPy: a start-up in well under a "
        "second), 'reference' (TensorFlow's SavedModel and scikit-learn), or 'auto' (light "
        "where the run folder has its files and LiteRT is installed; the default)",
    )
    add_front_end_option(p)


def add_front_end_option(p: argparse.ArgumentParser) -> None:
    """--front-end: the encoder served behind another recipe's front end (infer, listen,
    evaluate, app)."""
    p.add_argument(
        "--front-end",
        metavar="RECIPE",
        default=None,
        help="the encoder's clips through this recipe's front end (its [denoise] and [dereverb] "
        "tables) instead of its run's own; e.g. configs/encoder_logistic_gated_reverb_fast.toml "
        "adds dereverberation for echoing rooms (an option: docs/results.md, Dereverberation)",
    )


NOT_SPEAKER_NORMALISED = (
    "--speaker is for models trained with speaker normalisation (speaker_norm = true in their "
    "`ser-cnn train --config` file), such as --run checkpoints/encoder_speaker_fold1; these "
    "were not"
)


def take_speaker(rec, paths: list, *, window=None, hop=None) -> str:
    """Give ``rec`` the statistics of one speaker's recordings (``Recognizer.calibrate``); the
    line that says from how much audio (``--speaker`` of infer and listen)."""
    seconds = rec.calibrate(paths, window=window, hop=hop)
    return (
        f"speaker statistics from {len(paths)} recording(s), {seconds:.0f} s of audio"
        + (" (few: the statistics are rough below about 30 s)" if seconds < 30 else "")
        + "; they should span the speaker's moods (recordings of one mood only do worse "
        "than no statistics: docs/results.md)"
    )


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    add_model_options(p)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--top-k", type=int, default=1, help="emotions shown per model (1)")
    shown.add_argument("--all", action="store_true", help="show every emotion's probability")
    p.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default=None,
        help="table (the default), json, or csv (one row per file; the Ray engine's rows)",
    )
    p.add_argument("--window", type=float, default=None, help="seconds per window of long files")
    p.add_argument("--hop", type=float, default=None, help="seconds between windows (window/2)")
    p.add_argument(
        "--speaker",
        action="store_true",
        help="all inputs are recordings of one speaker: standardise the models' input with their "
        "joint statistics (needed by models trained with speaker normalisation: "
        "speaker_norm = true in their `ser-cnn train --config` file)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="clips per model call (64)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    ray = p.add_argument_group(
        "scaling out", "score on a Ray cluster (pip install 'ser_cnn[ray]'; docs/scale.md)"
    )
    ray.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: actors on a Ray cluster, light runtime, one "
        "core each; inputs may also be manifests (.csv), lists (.txt) and URIs (s3://...)",
    )
    ray.add_argument(
        "--out",
        default=None,
        help="with --engine ray: write the rows to this .parquet, .csv or .jsonl file "
        "(default: CSV on stdout); an existing file is refused without --append",
    )
    ray.add_argument(
        "--append",
        action="store_true",
        help="add to an existing --out, skipping the files it has (resumes a stopped job)",
    )
    ray.add_argument(
        "--address",
        default=None,
        help="join the Ray cluster at this address (default: start a local one)",
    )
    ray.add_argument(
        "--actors", type=int, default=None, help="actors, one core each (one per cluster CPU)"
    )
    args = p.parse_args(argv)
    if args.engine == "ray":
        if args.format not in (None, "csv"):
            p.error("--engine ray writes rows (csv, or --out .parquet/.csv/.jsonl)")
        if args.speaker or args.runtime == "reference":
            p.error("--engine ray runs the light runtime, without --speaker")
        if args.actors is not None and args.actors < 1:
            p.error("--actors must be at least 1")
    else:
        given = [o for o in ("out", "append", "address", "actors") if getattr(args, o)]
        if given:
            p.error(f"--{given[0]} is for --engine ray")
    args.format = args.format or ("csv" if args.engine == "ray" else "table")
    if args.top_k < 1:
        p.error("--top-k must be at least 1")
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    for name in ("window", "hop"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            p.error(f"--{name} must be a positive number of seconds")
    if args.window is not None and args.hop is not None and args.hop > args.window:
        p.error("--hop must not exceed --window")
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    if args.engine == "ray":
        return _main_ray(args)
    # TensorFlow and the models load only after the arguments are known to be good
    from threadpoolctl import threadpool_limits

    from ser_cnn.errors import SerError
    from ser_cnn.serving import batch
    from ser_cnn.serving.inference import find_inputs

    # Features are computed by a thread per core: BLAS threads inside each would fight over the
    # same cores (measured on 2 busy cores: 200 clips in 2.5 s instead of 11 s, light runtime)
    threadpool_limits(limits=1, user_api="blas")
    try:
        rec = load_from_options(args)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.verbose:
        used = ", ".join(f"{m.upper()} {'+'.join(sorted(set(r)))}" for m, r in rec.runtimes.items())
        print(f"runtime: {used}", file=sys.stderr)
    inputs = list(find_inputs(args.paths))
    k = len(rec.labels) if args.all else args.top_k
    records, failed = [], 0
    readable = [path for _, path, err in inputs if err is None]
    if args.speaker != rec.speaker_normalized and set(rec.models) != {"mlp"}:
        print(
            "error: "
            + (
                NOT_SPEAKER_NORMALISED
                if args.speaker
                else "this model was trained with speaker normalisation (speaker_norm = true): "
                "it needs several recordings of one speaker, passed together with --speaker"
            ),
            file=sys.stderr,
        )
        return 2
    if args.speaker and rec.speaker_normalized:
        try:
            print(take_speaker(rec, readable, window=args.window, hop=args.hop), file=sys.stderr)
        except SerError as err:
            print(f"error: speaker statistics: {err}", file=sys.stderr)
            return 1
    rows = []  # --format csv: the rows of ser_cnn.serving.batch, as the Ray engine writes them
    for name, result in _predict_all(rec, inputs, args):
        rows.append(batch.row(name, result, rec.labels, rec.models))
        if isinstance(result, Exception):
            failed += 1
            message = batch.message(name, result)
            print(f"error: {message}", file=sys.stderr)
            records.append({"file": name, "ok": False, "error": message})
            continue
        records.append({"ok": True, "error": None, **result.to_dict()})
        if args.format == "table":
            print(_table(result, rec.models, k))
    if args.format == "json":
        print(json.dumps(records, indent=2))
    elif args.format == "csv":
        print(batch.format_csv(rows, rec.labels, rec.models), end="")
    if args.format == "table" and len(inputs) > 1:
        print(f"\n{len(inputs) - failed} of {len(inputs)} analysed", file=sys.stderr)
    return 1 if failed else 0


def _main_ray(args) -> int:
    """``--engine ray``: :func:`ser_cnn.scale.infer`."""
    from ser_cnn import scale
    from ser_cnn.errors import SerError

    try:
        n, failed = scale.infer(
            args.paths,
            out=args.out,
            append=args.append,
            address=args.address,
            actors=args.actors,
            run=args.run,
            models=MODEL_CHOICES[args.model],
            calibrated=not args.raw,
            batch_size=args.batch_size,
            window=args.window,
            hop=args.hop,
            progress=not args.quiet,
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    where = f" to {args.out}" if args.out else ""
    print(f"{n - failed} of {n} analysed{where}", file=sys.stderr)
    return 1 if failed else 0


def load_from_options(args: argparse.Namespace):
    """The Recognizer that :func:`add_model_options`' arguments name (infer, listen, evaluate),
    loaded with TensorFlow's start-up lines hidden unless ``--verbose``."""
    from ser_cnn.serving.inference import load_recognizer

    with _native_stderr_silenced(not args.verbose):
        return load_recognizer(
            args.run,
            models=MODEL_CHOICES[args.model],
            calibrated=not args.raw,
            runtime=args.runtime,
            front_end=args.front_end,
        )


@contextlib.contextmanager
def _native_stderr_silenced(active: bool):
    """Hide what TensorFlow's C++ code writes to stderr while it loads.

    Its start-up lines (oneDNN notes, 'no CUDA drivers') are written before its logging is set
    up, so TF_CPP_MIN_LOG_LEVEL cannot stop them (tensorflow/tensorflow#79029). Python
    exceptions are unaffected: they are raised, and reported once stderr is back.
    """
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with Path(os.devnull).open("w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _predict_all(rec, inputs, args):
    """:func:`ser_cnn.serving.batch.predictions` of every input, with a progress bar."""
    from tqdm import tqdm

    from ser_cnn.serving import batch

    bar = tqdm(
        total=len(inputs),
        unit="file",
        desc="analysing",
        disable=args.quiet or len(inputs) < 2 or not sys.stderr.isatty(),
    )
    try:
        for answer in batch.predictions(
            rec, inputs, batch_size=args.batch_size, window=args.window, hop=args.hop
        ):
            bar.update()
            yield answer
    finally:
        bar.close()


def _scores_text(scores, k: int) -> str:
    return ", ".join(f"{emotion} ({p:.2f})" for emotion, p in scores.top(k))


def _table(result, models, k: int) -> str:
    lines = [result.source]
    width = max(4, *(len(m) for m in models))  # "ENCODER" is longer than "CNN" and "MLP"
    for m in models:
        lines.append(f"  {m.upper():{width}s} {_scores_text(result.scores[m], k)}")
    if result.windows:
        lines.append(f"  {len(result.windows)} windows, {result.duration:.1f} s; overall above")
        for w in result.windows:
            text = (
                "no speech"
                if w.silent
                else "  ".join(
                    f"{m.upper()} {_scores_text(w.scores[m], min(k, 3))}" for m in models
                )
            )
            lines.append(f"    {w.start:8.2f}–{w.end:8.2f} s  {text}")
    return "\n".join(lines)
