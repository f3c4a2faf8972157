"""The ``ser-cnn`` command: one subcommand per pipeline stage (and the research tools apart).

    ser-cnn preprocess [--data PATH]        RAVDESS (or your data) -> cache of log-mel tensors
    ser-cnn train [--fold K | --cv]         train and write a run folder
    ser-cnn evaluate --data PATH            score a run on labelled recordings
    ser-cnn infer FILE...                   which emotion, with every probability
    ser-cnn listen [--input FILE]           the same, live: a microphone (ser_cnn[live]) or a file
    ser-cnn app [--port N]                  the same in a web page (needs ser_cnn[app])

``python scripts/<stage>.py`` runs the same code. Each subcommand imports what it needs only
once chosen, so ``ser-cnn infer`` starts as fast as it can.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "preprocess": "turn every clip of RAVDESS (or --data) into a cached log-mel tensor",
    "train": "train the CNN or the MLP baseline on actor-wise splits, write a run folder",
    "evaluate": "score a run on labelled recordings: accuracy, UAR, macro-F1, confusion",
    "infer": "say which emotion ser_cnn hears in audio files, with every probability",
    "listen": "say which emotion ser_cnn hears, live: a microphone, or a file played as one",
    "app": "a web page: upload or record speech, see every model's probabilities",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = argparse.ArgumentParser(
        prog="ser-cnn",
        description="Speech emotion recognition: a log-mel CNN and an MLP baseline.",
        epilog="`ser-cnn COMMAND --help` tells more about each command.",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv[:1])  # prints the help, or names the unknown command, and exits
    command = importlib.import_module(f"ser_cnn.cli.{argv[0]}")
    return command.main(argv[1:], prog=f"ser-cnn {argv[0]}")
