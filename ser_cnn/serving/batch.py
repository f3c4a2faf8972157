"""Score recordings into rows: the one path behind ``ser-cnn infer --format csv`` and the Ray
engine (:mod:`ser_cnn.scale`), so the two cannot drift apart.

A row is a dict with the fields of :func:`columns`: ``file``, ``ok``, ``error``, ``duration``,
``windows`` and, per model, its emotion, that emotion's probability and every emotion's
probability. A file that cannot be analysed is a row too (``ok`` False, ``error`` saying why,
the other fields None), never an exception: one bad file in a million does not stop a job.

    >>> rec = ser_cnn.load_recognizer(runtime="light")
    >>> rows = score_batch(rec, ["examples/03-01-05-02-01-01-11.flac", "missing.wav"])
    >>> [(r["ok"], r["encoder_emotion"]) for r in rows]
    [(True, 'angry'), (False, None)]

Nothing here imports training code or TensorFlow (the light runtime stays light).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ser_cnn.errors import AudioError, ParameterError

PROBABILITY_FORMAT = ".6f"  # probabilities in CSV text: 1e-6 is far below any difference shown


def columns(labels: Sequence[str], models: Sequence[str]) -> list[str]:
    """The fields of a row, in order, for a Recognizer's ``labels`` and ``models``."""
    names = ["file", "ok", "error", "duration", "windows"]
    for m in models:
        names += [f"{m}_emotion", f"{m}_probability"] + [f"{m}_p_{lab}" for lab in labels]
    return names


def message(name: str, err: Exception | str) -> str:
    """An error as reported for one file: ``"<file>: <problem>"``."""
    text = str(err)
    return text if text.startswith(name) else f"{name}: {text}"


def row(name: str, result, labels: Sequence[str], models: Sequence[str]) -> dict:
    """The row of one file: ``result`` is its :class:`~ser_cnn.serving.prediction.Prediction`, or
    the exception (or error text) that stopped it."""
    out = dict.fromkeys(columns(labels, models))
    out["file"] = name
    if isinstance(result, Exception | str):
        out.update(ok=False, error=message(name, result))
        return out
    out.update(ok=True, duration=round(result.duration, 3), windows=len(result.windows))
    for m in models:
        scores = result.scores[m]
        out[f"{m}_emotion"] = scores.emotion
        out[f"{m}_probability"] = float(scores.probability)
        for lab in labels:
            out[f"{m}_p_{lab}"] = float(scores.probabilities[lab])
    return out


def predictions(
    rec,
    inputs: Iterable[tuple[str, Path | None, str | None]],
    *,
    batch_size: int = 64,
    window: float | None = None,
    hop: float | None = None,
) -> Iterator[tuple[str, object]]:
    """``(name, Prediction or the error that stopped it)`` for every input, in input order.

    ``inputs`` are ``(name, path, error)`` as :func:`ser_cnn.serving.inference.find_inputs` yields
    them. Clips are scored ``batch_size`` at a time (:meth:`Recognizer.iter_predict`). Should a
    batch fail for anything but a bad file (a model error, memory), the files it had not answered
    yet are scored one by one, so the failure stays with the file that causes it.
    """
    inputs = list(inputs)
    readable = [path for _, path, err in inputs if err is None]
    answered = iter(_answers(rec, readable, batch_size=batch_size, window=window, hop=hop))
    for name, _, err in inputs:
        if err is not None:
            yield name, AudioError(err)
            continue
        _, result = next(answered)
        yield name, result


def _answers(rec, paths: list, **options) -> Iterator[tuple[str, object]]:
    done = 0
    try:
        for answer in rec.iter_predict(paths, **options):
            yield answer
            done += 1
    except Exception:  # not a bad file (those are yielded): the rest one at a time
        pass
    window, hop = options["window"], options["hop"]
    for path in paths[done:]:
        try:
            yield str(path), rec.predict(path, window=window, hop=hop)
        except Exception as err:
            yield str(path), err


def score_batch(
    rec,
    files: Sequence[str],
    *,
    batch_size: int = 64,
    window: float | None = None,
    hop: float | None = None,
) -> list[dict]:
    """Rows (:func:`row`) of audio files, one per file and in their order, scored by ``rec``.

    A missing or unreadable file gives an error row. A folder among ``files`` gives a row per
    audio file in it (:func:`~ser_cnn.serving.inference.find_inputs`).
    """
    from ser_cnn.serving.inference import find_inputs

    if isinstance(files, str):
        raise ParameterError("files: expected a sequence of paths, got one string")
    labels, models = rec.labels, rec.models
    found = predictions(rec, find_inputs(files), batch_size=batch_size, window=window, hop=hop)
    return [row(name, result, labels, models) for name, result in found]


def format_csv(
    rows: Iterable[dict], labels: Sequence[str], models: Sequence[str], *, header: bool = True
) -> str:
    """``rows`` as ``ser-cnn infer --format csv`` prints them (None as an empty field)."""
    names = columns(labels, models)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names)
    if header:
        writer.writeheader()
    probabilities = {n for n in names if "_probability" in n or "_p_" in n}
    for r in rows:
        writer.writerow(
            {
                k: format(v, PROBABILITY_FORMAT) if k in probabilities and v is not None else v
                for k, v in r.items()
            }
        )
    return buf.getvalue()
