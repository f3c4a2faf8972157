"""Score a trained run on labelled data: accuracy, UAR, macro-F1, per-class recall and the
confusion matrix of every model in it, as ``ser-cnn evaluate`` reports and writes them.

This is serving-side code: each clip is judged by :class:`ser_cnn.serving.inference.Recognizer`
alone (a speaker-normalised model: with its speaker's scored clips, as ``--speaker`` does),
exactly as ``ser-cnn infer`` judges that file (batched model calls; calibrated unless asked
otherwise; a recording with more than 6 s of speech in windows), so the scores are those of the
answers a user gets. The data is read by the corpus layer (:func:`ser_cnn.corpora.load_many`);
no training code and no feature cache is involved. Nothing is dropped silently: clips whose file
is unusable, whose emotion the run does not have, or which the Recognizer cannot analyse are
counted and named in the result.

Restricted scoring (``restricted=True``, for data with fewer emotions than the run): only the
emotions both have are scored; calm is counted as neutral (the run's calm probability is added
to its neutral one, and a clip labelled calm is scored as neutral); the run's probabilities of
the shared emotions are renormalised to sum to 1 and the most probable one is the answer. This
is how the robustness benchmark scores URDU and ASED.

Output folder (:func:`write_evaluation`)::

    metrics.json        the scores (see :meth:`Evaluation.to_dict`); written last
    confusion.png       the first model's confusion matrix (the CNN's when it was scored)
    confusion_<m>.png   every other model's
    predictions.csv     one row per scored clip: its emotion and each model's answer
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn import corpora
from ser_cnn.errors import DataError, ParameterError, SerError
from ser_cnn.run import load_run
from ser_cnn.serving.inference import Recognizer, load_recognizer
from ser_cnn.training.metrics import evaluate, plot_confusion
from ser_cnn.versions import library_versions

EVALUATION_FORMAT = 1
WRITTEN_BY = "ser-cnn evaluate"  # metrics.json says so: an --out folder it may write again
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion.png"
MERGED = {"calm": "neutral"}  # restricted scoring: the first counted as the second
SHOWN = 20  # files listed in the text report; metrics.json lists them all
# what an --out folder may hold for evaluate to write into it again: its own files, and the
# temporary ones of an interrupted write
OWN_FILE = re.compile(
    rf"{re.escape(METRICS_FILE)}|{re.escape(PREDICTIONS_FILE)}|confusion(_\w+)?\.png"
    r"|\..+\.\d+\.tmp(\.png)?"
)


@dataclass
class Evaluation:
    """What :func:`evaluate_run` found; :meth:`to_dict` is metrics.json, :meth:`describe` the
    text report."""

    run: list[str]  # the run folder(s) given
    data: list[str]  # the data inputs given (empty for a manifest)
    models: dict[str, dict]  # model -> scores of ser_cnn.training.metrics.evaluate, first one first
    classes: list[str]  # the classes scored, in the run's order
    run_labels: list[str]  # every emotion the run knows, in its output order
    clips: dict  # {"given": n, "scored": n, "left_out": n}
    left_out: dict  # why clips were not scored (see to_dict)
    restricted: dict | None = None  # what restricted scoring did; None when it was not asked
    notes: list[str] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)  # one per scored clip

    @property
    def failed(self) -> bool:
        """Whether some file could not be used (missing, unreadable, or not analysable)."""
        return bool(self.left_out["unusable"] or self.left_out["failed"])

    def to_dict(self) -> dict:
        """metrics.json: the first model's ``accuracy``, ``uar``, ``macro_f1``, ``per_class``,
        ``n``, ``labels``, ``confusion_matrix`` at the top (``model`` says which), every
        model's under ``models``; ``left_out``: ``unusable`` (files, with why), ``no_emotion``
        and ``not_in_run`` (clips per label), ``failed`` (files the models could not analyse);
        ``restricted``: what restricted scoring did, or null."""
        first = next(iter(self.models))
        return {
            "written_by": WRITTEN_BY,
            "format": EVALUATION_FORMAT,
            "run": self.run,
            "data": self.data,
            "model": first,
            **self.models[first],
            "run_labels": self.run_labels,
            "models": self.models,
            "clips": self.clips,
            "left_out": self.left_out,
            "restricted": self.restricted,
            "notes": self.notes,
            "versions": library_versions(),
        }

    def describe(self) -> str:
        """The text report: scores, per-class recall and confusion matrix of each model, then
        what was left out and why."""
        c = self.clips
        data = ", ".join(self.data) or "a manifest"
        lines = [
            f"run {', '.join(self.run)} on {data}: {c['given']} clips, {c['scored']} scored, "
            f"{c['left_out']} left out"
        ]
        if self.restricted:
            lines.append(f"restricted scoring: {self.restricted['description']}")
        for model, scores in self.models.items():
            lines += ["", *_describe_model(model, scores)]
        if c["left_out"]:
            lines += ["", *_describe_left_out(self.left_out, self.run_labels)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines).rstrip()


def evaluate_run(
    run: str | os.PathLike | Sequence[str | os.PathLike] | None,
    data: str | os.PathLike | Iterable[str | os.PathLike] | pd.DataFrame,
    *,
    restricted: bool = False,
    strict: bool = False,
    batch_size: int = 64,
    models: Iterable[str] | None = None,
    calibrated: bool = True,
    runtime: str = "auto",
    progress: bool = False,
) -> Evaluation:
    """Score every model of a run folder on labelled data.

    Parameters
    ----------
    run : path, sequence of paths, or None
        A model's run folder, a folder with ``encoder/``, ``cnn/`` and ``mlp/`` (every model
        in it is scored, the encoder first, then the CNN), or several (an ensemble, as
        ``ser-cnn infer --run`` takes them); None: the shipped model.
    data : path, paths or manifest
        Corpus folders, CSV/TSV tables or folders of emotion folders (read by
        :func:`ser_cnn.corpora.load_many`), or a manifest DataFrame.
    restricted : bool
        Score only the emotions both the data and the run have, calm counted as neutral (see
        the module's docstring).
    strict : bool
        Refuse (DataError) when any clip would be left out, for whatever reason.
    batch_size : int
        Clips per model call.
    models, calibrated, runtime
        As for :class:`ser_cnn.serving.inference.Recognizer`.
    progress : bool
        A progress bar on stderr.

    Raises
    ------
    DataError
        The data or the run is refused (see :func:`ser_cnn.corpora.load_many`), ``strict`` and
        a clip left out, or no clip left to score.
    ParameterError
        A bad argument.

    A speaker-normalised model judges every speaker's clips against that speaker's own
    recordings: the scored clips of each speaker (``Recognizer.calibrate``), as
    ``ser-cnn infer --speaker`` would; every clip then needs its speaker (else DataError).
    """
    inputs, manifest, problems = read_data(data, strict=strict)
    rec = load_recognizer(run, models=models, calibrated=calibrated, runtime=runtime)
    return score(
        rec,
        manifest,
        problems=problems,
        data=inputs,
        restricted=restricted,
        strict=strict,
        batch_size=batch_size,
        progress=progress,
    )


def read_data(
    data: str | os.PathLike | Iterable[str | os.PathLike] | pd.DataFrame, *, strict: bool = False
) -> tuple[list[str], pd.DataFrame, list[str]]:
    """The inputs named (none for a manifest), their manifest, and the problems the corpus layer
    found (see :func:`ser_cnn.corpora.load_many`, which raises what it refuses)."""
    if isinstance(data, pd.DataFrame):
        return [], corpora.make_manifest(data), []
    inputs = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    manifest, problems = corpora.load_many(inputs, strict=strict)
    return [str(p) for p in inputs], manifest, problems


def score(
    rec: Recognizer,
    manifest: pd.DataFrame,
    *,
    problems: Sequence[str] = (),
    data: Sequence[str] = (),
    restricted: bool = False,
    strict: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> Evaluation:
    """Score a loaded Recognizer on a manifest (see :func:`evaluate_run`); ``problems`` are
    those :func:`ser_cnn.corpora.load_many` found, reported with the rest, and ``data`` names
    the inputs in the report."""
    if batch_size < 1:
        raise ParameterError(f"batch_size must be at least 1, got {batch_size}")
    labels = rec.labels
    unusable = [p for p in problems if Path(p.partition(": ")[0]).is_absolute()]
    # the corpus layer's notes, less those on labels without a project emotion: counted below
    notes = [p for p in problems if p not in unusable and not _unmapped_note(p, manifest)]
    targets, no_emotion, not_in_run, renamed = [], Counter(), Counter(), Counter()
    for i, (emotion, label) in enumerate(zip(manifest["emotion"], manifest["label"], strict=True)):
        if emotion is None:
            no_emotion[label or "(none)"] += 1
            continue
        found = _match(emotion, labels, restricted)
        if found is None:
            not_in_run[emotion] += 1
            continue
        if found != emotion:
            renamed[(emotion, found)] += 1
        targets.append((i, found))
    left_out = {
        "unusable": unusable,
        "no_emotion": dict(sorted(no_emotion.items())),
        "not_in_run": dict(sorted(not_in_run.items())),
        "failed": [],
    }
    if strict and (unusable or no_emotion or not_in_run):
        raise DataError(f"--strict: clips would be left out: {_left_out_text(left_out)}")
    if not targets:
        raise DataError(
            f"none of the {len(manifest)} clips can be scored: "
            f"{_left_out_text(left_out)}; the run's emotions are {', '.join(labels)}"
        )
    classes = [c for c in labels if c in {t for _, t in targets}] if restricted else list(labels)

    paths = [manifest.at[i, "path"] for i, _ in targets]
    speakers = None
    if rec.speaker_normalized:  # each speaker judged against their own recordings
        keys = corpora.speaker_keys(manifest)
        speakers = [keys.iloc[i] for i, _ in targets]
        if any(who is None for who in speakers):
            raise DataError(
                f"{rec.run_dir} was trained with speaker normalisation: it judges each "
                "speaker's clips against that speaker's own recordings, so every clip needs "
                "its speaker (a `speaker` column in the table, or a corpus that names them)"
            )
        notes.append(
            f"each of the {len(set(speakers))} speakers' clips judged with the statistics of "
            "that speaker's scored clips (speaker normalisation)"
        )
    answers: dict[str, list[str]] = {m: [] for m in rec.models}
    truth, predictions = [], []
    for (i, target), (path, result) in zip(
        targets, _predict(rec, paths, batch_size, progress, speakers), strict=True
    ):
        if isinstance(result, Exception):
            text = str(result)
            left_out["failed"].append(text if text.startswith(path) else f"{path}: {text}")
            continue
        truth.append(target)
        row = {"file": path, "emotion": manifest.at[i, "emotion"], "scored_as": target}
        for m in rec.models:
            scores = result.scores[m]
            row[f"{m}_emotion"], row[f"{m}_probability"] = scores.emotion, scores.probability
            answer = scores.emotion
            if restricted:
                p = restrict([scores.probabilities[lab] for lab in labels], labels, classes)
                answer = classes[int(np.argmax(p))]
                row[f"{m}_restricted"] = answer
                row[f"{m}_restricted_probability"] = float(p.max())
            answers[m].append(answer)
        predictions.append(row)
    if strict and left_out["failed"]:
        raise DataError(f"--strict: clips would be left out: {_left_out_text(left_out)}")
    if not truth:
        raise DataError(f"no clip could be analysed: {_left_out_text(left_out)}")

    y_true = np.array([classes.index(c) for c in truth])
    scores = {}
    with warnings.catch_warnings():  # classes the data lacks but a model answered
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        for m, given in answers.items():
            y_pred = np.array([classes.index(a) for a in given])
            scores[m] = evaluate(y_true, y_pred, classes, present_only=True)
            scores[m]["members"] = [str(f) for f in rec.members[m]]
    notes += [
        f"{n} clip(s) labelled {old!r} scored as {new!r}" for (old, new), n in renamed.items()
    ]
    notes += _heard(rec, manifest.loc[[i for i, _ in targets]])
    if "encoder" in rec.runs and rec.encoder_front_end != rec.runs["encoder"].training.front_end:
        served = rec.encoder_front_end and rec.encoder_front_end.to_dict()
        notes.append(f"the encoder served behind another front end than its run's: {served}")
    n_left = len(manifest) - len(truth)
    return Evaluation(
        run=[str(r) for r in _run_dirs(rec)],
        data=list(data),
        models=scores,
        classes=classes,
        run_labels=list(labels),
        clips={
            "given": len(manifest) + len(unusable),
            "scored": len(truth),
            "left_out": n_left + len(unusable),
        },
        left_out=left_out,
        restricted=_restricted_info(labels, classes) if restricted else None,
        notes=notes,
        predictions=predictions,
    )


def restrict(p: Sequence[float], labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Probabilities over ``labels`` -> over ``classes`` (a subset): each :data:`MERGED` pair's
    first probability added to the second's (calm's to neutral's) where the run has both, the
    others dropped, the rest renormalised to sum to 1."""
    p = np.array(p, dtype=np.float64)
    labels = list(labels)
    for source, target in MERGED.items():
        if source in labels and target in labels:
            p[labels.index(target)] += p[labels.index(source)]
    q = p[[labels.index(c) for c in classes]]
    return q / q.sum()


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Refuse (DataError) an output folder that holds anything but an earlier evaluation's
    files; it may be missing or empty."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return out_dir
    if not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; give a folder (new, empty, or evaluate's)")
    foreign = sorted(p.name for p in out_dir.iterdir() if not _own(p))
    metrics = out_dir / METRICS_FILE
    if not foreign and metrics.exists():
        try:
            ours = json.loads(metrics.read_text()).get("written_by") == WRITTEN_BY
        except (ValueError, AttributeError, OSError):
            ours = False
        foreign = [] if ours else [f"{METRICS_FILE} (not written by {WRITTEN_BY})"]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise DataError(
            f"--out {out_dir} holds files that evaluate did not write ({shown}); "
            "give a new or empty folder, or one an earlier evaluation wrote"
        )
    return out_dir


def write_evaluation(evaluation: Evaluation, out_dir: str | os.PathLike) -> list[Path]:
    """Write metrics.json, the confusion matrices and predictions.csv into ``out_dir``.

    The folder must pass :func:`check_out_dir`. An earlier evaluation's metrics.json is
    removed first and the new one written last, each file under a temporary name and renamed,
    so the folder holds a metrics.json only when every file beside it belongs to it.

    Returns
    -------
    list of Path
        The files written, metrics.json last.
    """
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).unlink(missing_ok=True)
    written = []
    title = _title(evaluation)
    for k, (model, scores) in enumerate(evaluation.models.items()):
        name = CONFUSION_FILE if k == 0 else f"confusion_{model}.png"
        scores["confusion_png"] = name
        tmp = _tmp(out_dir / name)
        plot_confusion(
            scores["confusion_matrix"],
            scores["labels"],
            tmp,
            title=f"{model.upper()} {title}: UAR {scores['uar']:.2f}, {scores['n']} clips",
        )
        written.append(_replace(tmp, out_dir / name))
    written.append(_write_text(out_dir / PREDICTIONS_FILE, _predictions_csv(evaluation)))
    for stale in out_dir.iterdir():  # an earlier evaluation's files that this one lacks
        if stale not in written and stale.name != METRICS_FILE and _own(stale):
            stale.unlink()
    text = json.dumps(evaluation.to_dict(), indent=2, ensure_ascii=False) + "\n"
    written.append(_write_text(out_dir / METRICS_FILE, text))
    return written


# ---------------------------------------------------------------------------------------------


def _unmapped_note(note: str, manifest: pd.DataFrame) -> bool:
    """Whether ``note`` is the corpus layer's on clips whose label has no project emotion
    (``left_out["no_emotion"]`` counts them instead)."""
    unmapped = manifest[manifest["emotion"].isna()]
    return any(
        note.startswith(f"{corpus}: {n} clip(s) labelled {label!r}")
        for (corpus, label), n in unmapped.groupby(["corpus", "label"]).size().items()
    )


def _run_dirs(rec: Recognizer) -> list[Path]:
    return [rec.run_dir] if isinstance(rec.run_dir, Path) else list(rec.run_dir)


def _match(emotion: str, labels: Sequence[str], restricted: bool) -> str | None:
    """The run's class for a clip's emotion: the same name, or the same but for case and
    surrounding spaces; with ``restricted``, a :data:`MERGED` emotion (calm) as its target
    (neutral) where the run has that; None when the run has no class for it."""
    folded = {lab.casefold(): lab for lab in labels}
    found = emotion if emotion in labels else folded.get(emotion.strip().casefold())
    name = (found or emotion.strip()).casefold()
    if restricted and name in MERGED and MERGED[name] in labels:
        found = MERGED[name]
    return found


def _predict(rec: Recognizer, paths: list[str], batch_size: int, progress: bool, speakers=None):
    """``(path, Prediction or Exception)`` per path, in order, as ``ser-cnn infer`` gets them;
    with ``speakers`` (each path's), every speaker's paths after :meth:`Recognizer.calibrate` on
    them, as ``ser-cnn infer --speaker`` judges them."""
    from tqdm import tqdm

    bar = tqdm(total=len(paths), unit="clip", desc="scoring", disable=not progress)
    try:
        if speakers is None:
            for path, result in rec.iter_predict(paths, batch_size=batch_size):
                bar.update()
                yield path, result
            return
        groups: dict[str, list[int]] = {}  # speaker -> their paths' indices, in order
        for k, who in enumerate(speakers):
            groups.setdefault(who, []).append(k)
        results: list[tuple] = [()] * len(paths)
        for who, mine in groups.items():
            try:
                rec.calibrate([paths[k] for k in mine])
                found = rec.iter_predict([paths[k] for k in mine], batch_size=batch_size)
                for k, pair in zip(mine, found, strict=True):
                    results[k] = pair
            except SerError as err:  # none of the speaker's recordings could be read
                for k in mine:
                    results[k] = (paths[k], DataError(f"speaker {who}: {err}"))
            bar.update(len(mine))
        yield from results
    finally:
        bar.close()


def _heard(rec: Recognizer, manifest: pd.DataFrame) -> list[str]:
    """Notes when scored clips were heard in training: RAVDESS clips of actors a model trained
    or validated on, and clips of another corpus a model trained on beside RAVDESS's folds
    (every clip of it: ``ser-cnn train --extra-cache``, as the shipped encoder head)."""
    heard: set[str] = set()
    corpora: set[str] = set()
    for folders in rec.members.values():
        for folder in folders:
            run = load_run(folder)
            if run.split.get("kind") == "random":
                heard |= set(manifest.loc[manifest["corpus"] == "ravdess", "speaker"])
            heard |= {str(a) for part in ("train", "val") for a in run.split.get(part, ())}
            corpora |= set(run.whole_corpora)
    notes = []
    ravdess = manifest[manifest["corpus"] == "ravdess"]
    seen = ravdess["speaker"].isin(heard)
    if seen.any():
        actors = sorted({int(s) for s in ravdess.loc[seen, "speaker"]})
        notes.append(
            f"{int(seen.sum())} of the scored clips are of RAVDESS actors the run trained or "
            f"validated on ({', '.join(map(str, actors))}): their scores are optimistic; score "
            "only its test actors for an estimate on unheard voices"
        )
    trained = manifest["corpus"].isin(corpora)
    if trained.any():
        names = sorted(set(manifest.loc[trained, "corpus"]))
        notes.append(
            f"{int(trained.sum())} of the scored clips are of {', '.join(names)}, which the run "
            "trained on (every clip of it): their scores are optimistic; a corpus left out of "
            "training is the estimate (tools/encoder_cv.py --loco)"
        )
    return notes


def _restricted_info(labels: Sequence[str], classes: list[str]) -> dict:
    """What restricted scoring did, for metrics.json and the report."""
    merged = {s: t for s, t in MERGED.items() if t in labels}
    dropped = [lab for lab in labels if lab not in classes and lab not in merged]
    parts = [
        f"only the {len(classes)} emotions both the data and the run have ({', '.join(classes)})"
    ]
    for source, target in merged.items():
        if target not in classes:
            if source in labels:
                parts.append(f"the run's {source} probability left out, as {target} is not scored")
            continue
        added = (
            f"the run's {source} probability added to its {target} one; "
            if source in labels
            else ""
        )
        parts.append(
            f"{source} counted as {target} ({added}clips labelled {source} scored as {target})"
        )
    parts.append(
        "the run's probabilities of these renormalised to sum to 1; the most probable the answer"
    )
    if dropped:
        parts.append(f"the run's {', '.join(dropped)} not considered")
    return {
        "classes": classes,
        "merged": merged,
        "dropped": dropped,
        "description": "; ".join(parts),
    }


def _left_out_text(left_out: dict) -> str:
    parts = []
    if left_out["unusable"]:
        parts.append(f"{len(left_out['unusable'])} unusable file(s) ({left_out['unusable'][0]})")
    if left_out["no_emotion"]:
        parts.append(f"no project emotion: {_counts(left_out['no_emotion'])}")
    if left_out["not_in_run"]:
        parts.append(f"emotions the run does not have: {_counts(left_out['not_in_run'])}")
    if left_out["failed"]:
        parts.append(f"{len(left_out['failed'])} not analysable ({left_out['failed'][0]})")
    return "; ".join(parts)


def _counts(counts: dict) -> str:
    return ", ".join(f"{label!r} {n}" for label, n in counts.items())


def _describe_model(model: str, scores: dict) -> list[str]:
    """Scores, per-class recall and the confusion matrix (rows: the classes the data has)."""
    labels = scores["labels"]
    lines = [
        f"{model.upper()}: accuracy {scores['accuracy']:.3f}, UAR {scores['uar']:.3f}, "
        f"macro-F1 {scores['macro_f1']:.3f} ({scores['n']} clips)"
    ]
    present = [lab for lab in labels if scores["per_class"][lab]["support"]]
    width = max(len(lab) for lab in labels)
    lines.append(f"  {'recall':>{width + 8}}  clips")
    for lab in present:
        c = scores["per_class"][lab]
        lines.append(f"  {lab:<{width}}  {c['recall']:6.3f}  {c['support']:5d}")
    lines.append(f"  confusion (rows: true emotion, columns: {model.upper()}'s answer):")
    columns = [max(len(lab), 3) for lab in labels]
    lines.append(
        "  "
        + " " * width
        + "".join(f"  {lab:>{w}}" for lab, w in zip(labels, columns, strict=True))
    )
    for i, lab in enumerate(labels):
        if lab in present:
            row = scores["confusion_matrix"][i]
            lines.append(
                f"  {lab:<{width}}"
                + "".join(f"  {v:>{w}}" for v, w in zip(row, columns, strict=True))
            )
    return lines


def _describe_left_out(left_out: dict, run_labels: Sequence[str]) -> list[str]:
    lines = []
    if left_out["unusable"]:
        lines.append(f"left out, file unusable: {len(left_out['unusable'])}")
        lines += _listed(left_out["unusable"])
    for key, what in (
        ("no_emotion", "no project emotion"),
        ("not_in_run", f"not an emotion of the run ({', '.join(run_labels)})"),
    ):
        if left_out[key]:
            lines.append(f"left out, {what}: {_counts(left_out[key])}")
    if left_out["failed"]:
        lines.append(f"left out, could not be analysed: {len(left_out['failed'])}")
        lines += _listed(left_out["failed"])
    return lines


def _listed(items: list[str]) -> list[str]:
    lines = [f"  {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        lines.append(f"  ... and {len(items) - SHOWN} more (all in {METRICS_FILE})")
    return lines


def _title(evaluation: Evaluation) -> str:
    names = ", ".join(Path(d).name for d in evaluation.data) or "a manifest"
    how = " (restricted)" if evaluation.restricted else ""
    return f"on {names}{how}"


def _predictions_csv(evaluation: Evaluation) -> str:
    buf = io.StringIO()
    columns = list(evaluation.predictions[0]) if evaluation.predictions else ["file"]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in evaluation.predictions:
        writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue()


def _own(path: Path) -> bool:
    return path.is_file() and OWN_FILE.fullmatch(path.name) is not None


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


def _replace(tmp: Path, path: Path) -> Path:
    tmp.replace(path)
    return path


def _write_text(path: Path, text: str) -> Path:
    tmp = _tmp(path)
    tmp.write_text(text, encoding="utf-8")
    return _replace(tmp, path)
