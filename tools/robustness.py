"""Robustness benchmark: trained run folders scored under fixed, seeded recording conditions.

    python tools/robustness.py RUN [RUN ...] [--label NAME] [--out results/robustness.json]
        [--data ../shared/data] [--conditions NAME ...] [--limit N] [--seed 0]
        [--part test|validation]
    python tools/robustness.py RUN --front-end RECIPE.toml --label NAME   # another front end
    python tools/robustness.py --merge LABEL [LABEL ...] --label NAME [--out ...]   # one: a rename

A RUN is a cross-validation folder (``fold1/`` ... ``fold6/``, each a run folder) or one run
folder (a model's, or one with ``cnn/`` and ``mlp/`` such as ``checkpoints/ravdess_fold1``);
all RUNs of one invocation are pooled under its ``--label``. Each fold's models score the
RAVDESS clips of that fold's test actors (from its config.json) under every condition of
:data:`ser_cnn.audio.conditions.CONDITIONS`, then the Urdu, ASED and nEMO corpora (cross-corpus,
read by :mod:`ser_cnn.corpora`; each from ``--data``/urdu, ased, nemo, else $URDU_DIR, $ASED_DIR,
$NEMO_DIR, else the shared data folder; skipped when absent). Each
invocation adds or replaces its label's entry in ``--out`` and redraws the chart beside it.
``--part validation`` scores each run's validation actors instead, RAVDESS only (the other
corpora are test data): the judge for choosing a recipe (tools/ablation.py). ``--front-end``:
the encoder runs serve with the front end of an encoder recipe (its ``[denoise]`` and
``[dereverb]`` tables, :mod:`ser_cnn.audio.front_end`) instead of their own, the head as
trained, to score a front end without retraining.
On a shared machine, run it with OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ser_cnn import corpora
from ser_cnn.audio.conditions import CONDITIONS, describe_conditions
from ser_cnn.audio.degrade import BABBLE_TALKERS
from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.audio.io import SAMPLE_RATE, load_audio
from ser_cnn.errors import DataError, SerError
from ser_cnn.ravdess import load_folds, scan
from ser_cnn.training.metrics import evaluate, mean_std
from ser_cnn.versions import git_commit, library_versions

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
MODELS = ("encoder", "cnn", "mlp")  # in the order tables show them
BABBLE_POOL = 24  # clips of non-test actors from which each babble draws its 4-6 talkers
CORPORA = {  # name: (environment variable, emotions in the corpus's own order)
    c: (corpora.CORPORA[c].ENV, corpora.emotions_of(c)) for c in ("urdu", "ased", "nemo")
}
PROTOCOL = (
    "Each fold run scores the RAVDESS clips of its own test actors (16 kHz, load_audio) under "
    "each condition through Recognizer.predict (raw, uncalibrated output); condition i of "
    "clip k draws from np.random.default_rng([seed, i, k]), i its index in "
    "ser_cnn.audio.conditions.CONDITIONS. Babble "
    f"mixes {BABBLE_TALKERS[0]}-{BABBLE_TALKERS[1]} of {BABBLE_POOL} clips of the fold's other "
    "actors. Scores are pooled per fold run, then mean and population std over fold runs; "
    "'changed' is the fraction of clips whose top emotion differs from the clean one. "
    "Cross-corpus: the 8 RAVDESS probabilities are restricted to the corpus's emotions, calm's "
    "probability added to neutral's, renormalised, and the argmax taken."
)


def fold_runs(run: Path) -> dict[str, Path]:
    """``{"name/foldK": folder}`` of a cross-validation folder, or ``{name: run}`` for one run."""
    folds = {
        p.name: p
        for p in sorted(run.glob("fold*"), key=lambda p: (len(p.name), p.name))
        if re.fullmatch(r"fold\d+", p.name) and _configs(p)
    }
    if folds:
        return {f"{run.name}/{k}": p for k, p in folds.items()}
    if not _configs(run):
        raise DataError(f"{run}: neither a run folder nor a folder of fold runs (fold1/ ...)")
    return {run.name: run}


def split_actors(run_dir: Path, part: str = "test") -> tuple[int, ...]:
    """The RAVDESS actors of a run's ``part`` ("test" or "validation"), from its config.json
    files (format 1 or 2)."""
    key = {"test": "test", "validation": "val"}[part]
    found = set()
    for path in _configs(run_dir):
        split = json.loads(path.read_text()).get("split") or {}
        if split.get(key):
            found.add(tuple(sorted(int(a) for a in split[key])))
        elif part == "test" and split.get("fold") is not None:  # saved by its fold number only
            found.add(tuple(sorted(load_folds()[int(split["fold"])])))
    if len(found) != 1:
        raise DataError(f"{run_dir}: expected one set of {part} actors in config.json, got {found}")
    return found.pop()


def corpus_emotion(corpus: str, path: str | os.PathLike) -> str | None:
    """The emotion a file name says (Urdu ``SM1_F01_A12``, ASED ``a5-03-01-02-50``, nEMO
    ``EB0_anger_1.wav``), as :mod:`ser_cnn.corpora` reads it; NameFormatError otherwise."""
    return corpora.CORPORA[corpus].parse_name(path)["emotion"]


def probabilities(rec, clips: list[np.ndarray], speakers=None) -> dict[str, np.ndarray]:
    """Each model's probabilities, shape (n, len(rec.labels)), through the public predict; a
    speaker-normalised model's with each speaker's statistics taken from their clips as given
    (``speakers``: each clip's), as ``ser-cnn infer --speaker`` would take them."""
    out = {m: np.zeros((len(clips), len(rec.labels))) for m in rec.models}
    groups = {None: range(len(clips))} if speakers is None else {}
    for k, who in enumerate(speakers if speakers is not None else ()):
        groups.setdefault(who, []).append(k)
    for who, mine in groups.items():
        if who is not None:
            rec.calibrate([clips[k] for k in mine], sr=SAMPLE_RATE)
        for k in mine:
            scores = rec.predict(clips[k], sr=SAMPLE_RATE).scores
            for m in rec.models:
                out[m][k] = [scores[m].probabilities[label] for label in rec.labels]
    return out


def score_ravdess(rec, clips, truth, pool, conditions, seed, speakers=None) -> dict:
    """``{condition: {model: scores and "changed"}}`` of one fold's test clips (``speakers``:
    each clip's actor, for a speaker-normalised model: its statistics from the actor's clips
    under the same condition, as a user's own recordings share their channel)."""
    out, clean = {}, None
    for name in conditions:
        index = list(CONDITIONS).index(name)  # a condition's seeds do not depend on --conditions
        degraded = [
            CONDITIONS[name](y, SAMPLE_RATE, np.random.default_rng([seed, index, k]), babble=pool)
            for k, y in enumerate(clips)
        ]
        found = probabilities(rec, degraded, speakers)
        answers = {m: p.argmax(axis=1) for m, p in found.items()}
        clean = answers if name == "clean" else clean
        out[name] = {
            m: {**_scores(truth, a, rec.labels), "changed": float(np.mean(a != clean[m]))}
            for m, a in answers.items()
        }
    return out


def score_corpus(rec, items: list[tuple[Path, str]], emotions: tuple[str, ...]) -> dict:
    """``{model: scores}`` on a corpus, with probabilities restricted to its ``emotions``."""
    columns = [rec.labels.index(e) for e in emotions]
    probs = {m: [] for m in rec.models}
    for path, _ in items:  # one clip in memory at a time: ASED alone is 2,474 clips
        for m, p in probabilities(rec, [load_audio(path)]).items():
            probs[m].append(p[0])
    truth = np.array([emotions.index(e) for _, e in items])
    out = {}
    for m, p in probs.items():
        p = np.array(p)
        p[:, rec.labels.index("neutral")] += p[:, rec.labels.index("calm")]
        out[m] = _scores(truth, p[:, columns].argmax(axis=1), emotions)
    return out


def benchmark(
    runs, *, data: Path | None, conditions, limit, seed, part="test", front_end=None
) -> dict:
    """Score every fold run of ``runs``; the entry of one label in the results file
    (``front_end``: the ``FrontEnd`` its encoder runs serve with instead of their own)."""
    import ser_cnn

    ravdess, _ = scan(_corpus_dir("RAVDESS_DIR", data, "ravdess-speech"))
    corpora = {
        c: read_corpus(c, _corpus_dir(env, data, c), limit, seed)
        for c, (env, _) in CORPORA.items()
        if part == "test"
    }
    folds, per_fold, corpus_fold, skipped = {}, {}, {c: {} for c in CORPORA}, []
    for fold, run_dir in {k: v for run in runs for k, v in fold_runs(Path(run)).items()}.items():
        actors = split_actors(run_dir, part)
        held_out = set(actors) | set(split_actors(run_dir, "test"))  # babble: training actors
        # raw output: a temperature changes no RAVDESS answer but can change a cross-corpus one
        rec = ser_cnn.load_recognizer(run_dir, calibrated=False)
        if front_end is not None and "encoder" in rec.models:
            rec.encoder_front_end = front_end
        tests = _subset([c for c in ravdess if c.actor in actors], limit, seed)
        speakers = [c.actor for c in tests] if rec.speaker_normalized else None
        others = _subset([c for c in ravdess if c.actor not in held_out], BABBLE_POOL, seed)
        print(f"{fold}: {len(tests)} {part} clips of actors {list(actors)}", file=sys.stderr)
        truth = np.array([rec.labels.index(c.emotion) for c in tests])
        clips, pool = [load_audio(c.path) for c in tests], [load_audio(c.path) for c in others]
        per_fold[fold] = score_ravdess(rec, clips, truth, pool, conditions, seed, speakers)
        folds[fold] = {"run": str(run_dir), f"{part}_actors": list(actors), "models": rec.models}
        if rec.speaker_normalized and any(isinstance(i, list) for i in corpora.values()):
            skipped.append(f"{fold}: speaker-normalised, scored on RAVDESS only")
            continue
        for c, items in corpora.items():
            if not isinstance(items, list):
                continue
            # a model that trained on every clip of c has no unheard speaker of it to score
            trained = [m for m in rec.models if c in rec.runs[m].whole_corpora]
            if trained:
                skipped.append(f"{fold}: {', '.join(trained)} trained on {c}, not scored on it")
            if len(trained) < len(rec.models):
                scores = score_corpus(rec, items, CORPORA[c][1])
                corpus_fold[c][fold] = {m: s for m, s in scores.items() if m not in trained}
    cross = {
        c: items
        if isinstance(items, dict)
        else {"emotions": list(CORPORA[c][1]), "clips": len(items), **_by_model(corpus_fold[c])}
        for c, items in corpora.items()
    }
    return {
        "runs": [str(r) for r in runs],
        "folds": folds,
        "conditions": {n: _by_model({f: r[n] for f, r in per_fold.items()}) for n in conditions},
        "cross_corpus": cross,
        "skipped": skipped,
        "part": part,
        "front_end": front_end and front_end.to_dict(),
        "limit": limit,
        "seed": seed,
    }


def merge(entries: list[dict]) -> dict:
    """One entry pooling the fold runs of ``entries`` (scored apart, e.g. each fold as soon as
    it was trained): their per-fold scores united, mean and std recomputed."""
    first = entries[0]
    same = ("part", "limit", "seed")
    if any(tuple(e.get(k) for k in same) != tuple(first.get(k) for k in same) for e in entries):
        raise DataError(f"entries scored with different {', '.join(same)} cannot be pooled")
    folds = {f: v for e in entries for f, v in e["folds"].items()}
    if len(folds) != sum(len(e["folds"]) for e in entries):
        raise DataError("the same fold run is in two of the entries")

    def pooled(part: str, name: str) -> dict:
        models = [m for m in MODELS if any(m in e[part].get(name, {}) for e in entries)]
        return {
            m: _summary({f: s for e in entries for f, s in e[part][name][m]["folds"].items()})
            for m in models
        }

    conditions = [n for n in first["conditions"] if all(n in e["conditions"] for e in entries)]
    cross = {}
    for c in first["cross_corpus"]:
        got = [e["cross_corpus"].get(c, {}) for e in entries]
        if any("skipped" in g for g in got):
            cross[c] = next(g for g in got if "skipped" in g)
        else:
            cross[c] = {k: v for k, v in got[0].items() if k not in MODELS} | pooled(
                "cross_corpus", c
            )
    return {
        "runs": [r for e in entries for r in e["runs"]],
        "folds": folds,
        "conditions": {n: pooled("conditions", n) for n in conditions},
        "cross_corpus": cross,
        "skipped": [x for e in entries for x in e["skipped"]],
        **{k: first.get(k) for k in same},
        "wall_seconds": round(sum(e.get("wall_seconds", 0) for e in entries), 1),
        "pooled_from": len(entries),
    }


def condition_mean(entry: dict, model: str = "cnn") -> float:
    """A label's accuracy averaged over its RAVDESS conditions (each the mean over folds)."""
    return float(np.mean([c[model]["mean"]["accuracy"] for c in entry["conditions"].values()]))


def table(results: dict) -> str:
    """Markdown: accuracy per condition (mean ± std over folds, % of answers changed from
    clean), and cross-corpus UAR, one column per label and model."""
    columns = [
        (label, m)
        for label, entry in results["labels"].items()
        for m in MODELS
        if any(m in c for c in entry["conditions"].values())
    ]
    names = list(dict.fromkeys(n for e in results["labels"].values() for n in e["conditions"]))
    lines = [
        "| condition | " + " | ".join(f"{lab} {m.upper()}" for lab, m in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name in names:
        cells = []
        for label, m in columns:
            s = results["labels"][label]["conditions"].get(name, {}).get(m)
            cell = _cell(s, "accuracy") if s else "–"
            if s and name != "clean":
                cell += f" · {100 * s['mean']['changed']:.0f} % changed"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for label, m in columns:
        entry = results["labels"][label]
        whole = len(entry["conditions"]) == len(names) and all(
            m in c for c in entry["conditions"].values()
        )
        cells.append(f"{condition_mean(entry, m):.3f}" if whole else "–")
    lines.append(f"| mean of the {len(names)} conditions | " + " | ".join(cells) + " |")
    for c, (_, emotions) in CORPORA.items():
        if not any(e["cross_corpus"].get(c) for e in results["labels"].values()):
            continue  # validation entries only: the other corpora are test data
        cells = []
        for label, m in columns:
            s = results["labels"][label]["cross_corpus"].get(c, {})
            cells.append("skipped" if "skipped" in s else _cell(s[m], "uar") if m in s else "–")
        row = f"{c} UAR ({len(emotions)} emotions, calm → neutral)"
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Accuracy per condition: one panel per model, one bar per label, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, entries = list(results["labels"]), list(results["labels"].values())
    names = list(dict.fromkeys(n for e in entries for n in e["conditions"]))
    models = [m for m in MODELS if any(m in c for e in entries for c in e["conditions"].values())]
    parts = sorted({e.get("part", "test") for e in entries})  # entries before --part were test
    fig, axes = plt.subplots(
        len(models), 1, figsize=(12, 3.5 * len(models)), sharex=True, squeeze=False
    )
    width, x = 0.8 / max(1, len(labels)), np.arange(len(names))
    for ax, m in zip(axes[:, 0], models, strict=True):
        for i, (label, entry) in enumerate(zip(labels, entries, strict=True)):
            cond = entry["conditions"]
            got = [cond.get(n, {}).get(m) for n in names]
            mean = [s["mean"]["accuracy"] if s else np.nan for s in got]
            std = [s["std"]["accuracy"] if s else 0 for s in got]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, mean, width, yerr=std, label=label)
        ax.set_ylabel(f"{m.upper()} accuracy")
        ax.set_ylim(0, 1)
        ax.axhline(1 / 8, color="grey", lw=0.8, ls=":")  # chance with 8 emotions
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xticks(x, names, rotation=35, ha="right")
    who = " and ".join(parts)
    fig.suptitle(f"RAVDESS {who} actors under recording conditions (mean ± std over folds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="LABEL",
        help="instead of scoring: pool these entries of --out (folds scored apart) into --label",
    )
    parser.add_argument("--label", help="name of this entry in --out (default: the RUN names)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "robustness.json")
    parser.add_argument("--data", type=Path, help=f"shared data folder (default {DEFAULT_DATA})")
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=list(CONDITIONS),
        metavar="NAME",
        help="a subset of: " + ", ".join(CONDITIONS),
    )
    parser.add_argument("--limit", type=int, help="score N random clips per fold and corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--part",
        choices=("test", "validation"),
        default="test",
        help="whose clips: each run's test actors, or its validation actors (RAVDESS only)",
    )
    parser.add_argument(
        "--front-end",
        type=Path,
        metavar="RECIPE",
        help="encoder runs serve with this encoder recipe's front end instead of their own",
    )
    args = parser.parse_args(argv)
    if args.merge:
        return _merge_labels(args.out, args.merge, args.label)
    if not args.runs:
        parser.error("give RUN folders to score, or --merge LABEL ...")
    label = args.label or " + ".join(run.name for run in args.runs)
    conditions = [
        "clean",
        *[c for c in CONDITIONS if c in (args.conditions or CONDITIONS) and c != "clean"],
    ]  # clean is what "changed" compares with
    start = time.perf_counter()
    try:
        entry = benchmark(
            args.runs,
            data=args.data,
            conditions=conditions,
            limit=args.limit,
            seed=args.seed,
            part=args.part,
            front_end=args.front_end and FrontEnd.from_recipe(args.front_end),
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    entry["wall_seconds"] = round(time.perf_counter() - start, 1)
    _write(args.out, results, label, entry)
    print(f"{label}: {entry['wall_seconds']} s; wrote {args.out}", file=sys.stderr)
    return 0


def _merge_labels(out: Path, labels: list[str], label: str | None) -> int:
    """``--merge``: replace the entries ``labels`` of ``out`` by one pooled entry ``label``."""
    results = json.loads(out.read_text()) if out.is_file() else {"labels": {}}
    missing = [x for x in labels if x not in results["labels"]]
    if missing or not label:
        print(f"error: need --label and entries of {out}; missing: {missing}", file=sys.stderr)
        return 1
    try:  # one LABEL: a new name only, the entry kept whole (when, by what it was scored)
        entry = (
            results["labels"][labels[0]]
            if len(labels) == 1
            else merge([results["labels"][x] for x in labels])
        )
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for x in labels:
        del results["labels"][x]
    _write(out, results, label, entry)
    return 0


def _write(out: Path, results: dict, label: str, entry: dict) -> None:
    """Add ``entry`` as ``label`` to ``results`` (stamped with versions, commit and date), write
    them to ``out`` with the chart beside it, and print the table."""
    results["protocol"] = {"text": PROTOCOL, "conditions": describe_conditions()}
    stamp = {
        "versions": library_versions(),
        "git_commit": git_commit(REPO),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    kept = {k: v for k, v in stamp.items() if k not in entry}  # a renamed entry keeps its own
    results.setdefault("labels", {})[label] = entry | kept
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    print(table(results))


def _configs(run_dir: Path) -> list[Path]:
    paths = [run_dir / "config.json", *(run_dir / m / "config.json" for m in MODELS)]
    return [p for p in paths if p.is_file()]


def _corpus_dir(env: str, data: Path | None, name: str) -> Path:
    """--data/NAME if --data was given, else $ENV, else the shared data folder's NAME."""
    if data is None and os.environ.get(env):
        return Path(os.environ[env])
    return (data or DEFAULT_DATA) / name


def read_corpus(corpus: str, root: Path, limit: int | None, seed: int) -> list | dict:
    """``[(path, emotion), ...]`` of a corpus (its manifest's order: sorted by path; clips
    without a project emotion left out), or ``{"skipped": why}`` without one."""
    if not root.is_dir():
        return {"skipped": f"{root} not found (set {CORPORA[corpus][0]} or --data)"}
    manifest = corpora.CORPORA[corpus].scan(root)
    items = [
        (Path(p), e)
        for p, e in zip(manifest["path"], manifest["emotion"], strict=True)
        if e is not None
    ]
    return _subset(items, limit, seed) if items else {"skipped": f"{root} holds no audio"}


def _subset(items: list, n: int | None, seed: int) -> list:
    """``n`` of ``items`` drawn with ``seed``, in their original order (all when n is None)."""
    if n is None or n >= len(items):
        return list(items)
    keep = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
    return [items[i] for i in sorted(keep)]


def _scores(truth: np.ndarray, predicted: np.ndarray, labels) -> dict:
    with warnings.catch_warnings():  # a --limit sample may lack an emotion: that is fine
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        s = evaluate(truth, predicted, labels)
    return {k: s[k] for k in ("n", "accuracy", "uar", "macro_f1")}


def _by_model(per_fold: dict[str, dict[str, dict]]) -> dict:
    """``{fold: {model: scores}}`` -> ``{model: mean, std and folds}``."""
    models = [m for m in MODELS if any(m in r for r in per_fold.values())]
    return {m: _summary({f: r[m] for f, r in per_fold.items() if m in r}) for m in models}


def _summary(per_fold: dict[str, dict]) -> dict:
    out = mean_std(per_fold.values())
    if all("changed" in s for s in per_fold.values()):
        changed = [s["changed"] for s in per_fold.values()]
        out["mean"]["changed"], out["std"]["changed"] = (
            float(np.mean(changed)),
            float(np.std(changed)),
        )
    return {**out, "folds": per_fold}


def _cell(summary: dict, score: str) -> str:
    """``0.583 ± 0.021`` (std only when there are several folds)."""
    mean, std = summary["mean"][score], summary["std"][score]
    return f"{mean:.3f} ± {std:.3f}" if len(summary["folds"]) > 1 else f"{mean:.3f}"


if __name__ == "__main__":
    sys.exit(main())
