"""Say which emotion ser_cnn hears as someone speaks: a microphone, or a recording played live.

    ser-cnn listen                                # the default microphone (needs ser_cnn[live])
    ser-cnn listen --model cnn --hop 0.25         # the CNN alone, four updates a second
    ser-cnn listen --input call.wav               # a recording, played in real time
    ser-cnn listen --input call.wav --fast --format jsonl    # as fast as it goes, for programs
    ser-cnn listen --run checkpoints/encoder_speaker_fold1 --speaker anna/   # her voice as baseline

One line per window (the model's 3 s, every --hop seconds) as soon as its audio has arrived:
when it ends, each model's emotion and probability ("no speech" when nobody spoke), and the
headline model's answer over the last --smooth seconds. Ctrl-C (or the end of --input) ends it
with a summary: the mean of the windows with speech. A recording played with --fast gives the
windows and probabilities of `ser-cnn infer --window W --hop H FILE` (see ser_cnn/serving/live.py
for the one difference, a speech rule that cannot know what follows).

Exit status: 0 when it ends (Ctrl-C included), 1 when the recording or the model cannot be
read, 2 for a usage error or no microphone (none found, PortAudio or sounddevice missing, no
permission).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from ser_cnn.cli.infer import add_model_options

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    from ser_cnn.serving.live import HOP, SMOOTH

    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--input", default=None, help="a recording to play as if live (no microphone)")
    p.add_argument("--fast", action="store_true", help="play --input as fast as it goes")
    p.add_argument("--device", default=None, help="microphone: its number or part of its name")
    add_model_options(p)
    p.add_argument("--window", type=float, default=None, help="seconds per window (the model's)")
    p.add_argument("--hop", type=float, default=HOP, help=f"seconds between updates ({HOP:g})")
    p.add_argument(
        "--smooth",
        type=float,
        default=SMOOTH,
        help=f"seconds of recent windows with speech in the smoothed answer ({SMOOTH:g})",
    )
    p.add_argument(
        "--speaker",
        nargs="+",
        metavar="RECORDING",
        help="recordings (files or folders) of the person who will speak, in several moods: "
        "their statistics, for a model trained with speaker normalisation",
    )
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    args = p.parse_args(argv)
    for name in ("window", "hop", "smooth"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            p.error(f"--{name} must be a positive number of seconds")
    if args.window is not None and args.hop > args.window:
        p.error("--hop must not exceed --window")
    if args.fast and args.input is None:
        p.error("--fast plays a recording: give it with --input FILE")
    if args.input is not None and args.device is not None:
        p.error("--device picks a microphone: not with --input")
    if args.device is not None and args.device.isdigit():
        args.device = int(args.device)
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    from ser_cnn.audio.io import BLOCK_SECONDS
    from ser_cnn.cli.infer import NOT_SPEAKER_NORMALISED, load_from_options, take_speaker
    from ser_cnn.errors import DataError, ParameterError, SerError
    from ser_cnn.serving.inference import find_inputs
    from ser_cnn.serving.live import BLOCK, LiveStream, microphone, play

    try:
        rec = load_from_options(args)
        if args.speaker:
            if not rec.speaker_normalized:
                raise ParameterError(NOT_SPEAKER_NORMALISED)
            found = list(find_inputs(args.speaker))
            bad = [f"{name}: {error}" for name, _, error in found if error]
            if bad:
                raise DataError("--speaker: " + "; ".join(bad))
            print(take_speaker(rec, [path for _, path, _ in found]), file=sys.stderr)
        stream = LiveStream(rec, window=args.window, hop=args.hop, smooth=args.smooth)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.input is not None:
        # --fast: a long file's blocks, so windows are scored many per model call (the answers
        # do not depend on the blocks: each window is judged by what came before it alone)
        block = BLOCK_SECONDS if args.fast else BLOCK
        played = play(args.input, sr=rec.sample_rate, block=block, realtime=not args.fast)
        blocks = ((y, rec.sample_rate) for y in played)
    else:
        blocks = microphone(device=args.device)
    stopped = []  # Ctrl-C: end after the block in hand, so every update given stays whole
    signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
    started = False  # an error before the first block: no microphone (2) or no file (1)
    try:
        for y, sr in blocks:
            started = True
            for update in stream.push(y, sr):
                _show(update, rec.models, args)
            if stopped:
                break
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        if not started:
            return 1 if args.input is not None else 2
        status = 1
    else:
        status = 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        blocks.close()  # the microphone's stream, or the file, closed now
    summary = stream.close()
    for update in summary.last:
        _show(update, rec.models, args)
    if args.format == "jsonl":
        print(json.dumps({"summary": summary.to_dict()}), flush=True)
    else:
        print(_summary_text(summary, rec.models), flush=True)
    return status


def line(update, models) -> str:
    """One update as a line of the table: its end, each model's answer, the smoothed one."""
    now = (
        "no speech"
        if update.scores is None
        else "  ".join(
            f"{m.upper()} {update.scores[m].emotion} {update.scores[m].probability:.2f}"
            for m in models
        )
    )
    head = models[0]
    recent = (
        "-"
        if update.smoothed is None
        else f"{update.smoothed[head].emotion} {update.smoothed[head].probability:.2f}"
    )
    return f"{update.end:8.2f} s  {now}   | recent: {recent}"


def _show(update, models, args) -> None:
    text = json.dumps(update.to_dict()) if args.format == "jsonl" else line(update, models)
    print(text, flush=True)


def _summary_text(summary, models) -> str:
    head = (
        f"summary: {summary.duration:.1f} s, {summary.windows} windows, "
        f"{summary.speech_windows} with speech"
    )
    if summary.scores is None:
        return head + "; nobody spoke"
    return (
        head
        + "; "
        + "  ".join(
            f"{m.upper()} {summary.scores[m].emotion} {summary.scores[m].probability:.2f}"
            for m in models
        )
    )
