"""Cross-validate heads on the frozen encoder's cached states: RAVDESS six folds, other corpora.

    python tools/encoder_cv.py CACHE --config configs/encoder.toml --seeds 0 1 2
    python tools/encoder_cv.py CACHE --config configs/encoder_probe.toml   # the issue's probe
    python tools/encoder_cv.py CACHE --config C --extra OTHER_CACHE        # + other corpora
    python tools/encoder_cv.py CACHE CACHE_SEED1 CACHE_SEED2 --config C --name N  # copies redrawn
    python tools/encoder_cv.py CACHE --config C --extra OTHER --loco       # leave one corpus out
    python tools/encoder_cv.py CACHE --config C --extra OTHER --loco --only-ravdess
    python tools/encoder_cv.py CACHE --config C --extra OTHER --loco --wide-temperature-from F
    python tools/encoder_cv.py CACHE --config C --beside OTHER_ENCODER_CACHE  # two encoders
    python tools/encoder_cv.py CACHE --config C --view view   # + <cache>/view.copy<j>.npy
    python tools/encoder_cv.py CACHE --config C --refit       # validation actors train too
    python tools/encoder_cv.py CACHE --config C --train-actors 6 --name N   # a learning curve
    python tools/encoder_cv.py CACHE --config C --train-actors 6 --actor-draw 1 --name N2

``CACHE`` holds RAVDESS (tools/encode_cache.py). Six folds: the published test actors, the
validation actors of ``ser_cnn.ravdess.split``, the other actors train, with every clip of the
``--extra`` corpora (which never hold a RAVDESS actor). ``--loco``: for each corpus of
``--extra``, train on RAVDESS and the other extra corpora and score the corpus left out,
restricted to its emotions (calm counted as neutral), and how well calibrated it is there
(:func:`left_out_calibration`, :func:`unheard_temperatures`); validation is RAVDESS fold 1's
validation actors plus every tenth speaker of each training corpus. A head always judges one
clip alone. Writes ``results/cv_encoder_<name>.json`` (``loco_encoder_<name>.json``).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.corpora import speaker_keys
from ser_cnn.encoder.cache import cache_settings
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.encoder.train import (
    fit_parts,
    labelled,
    load_pooled_set,
    pooled_norms,
    ravdess_parts,
)
from ser_cnn.ravdess import EMOTIONS, gender_of, load_folds, split
from ser_cnn.training.evaluation import restrict
from ser_cnn.training.metrics import SCORES, evaluate, mean_std

RESULTS = Path("results")
SERVED_BATCH = 32  # clips heard through a front end and encoded together (as a batch is served)
VAL_EVERY = 10  # LOCO: every tenth speaker (sorted ids) of a training corpus validates


def fit_and_score(
    x, y, tr, va, te, config, seed, *, manifest, restrict=None, gender=False, served=None
) -> tuple[dict, np.ndarray]:
    """Train on ``tr`` (all versions), select on ``va``, score ``te``: one run's record and
    its probabilities of the test clips (``gender``: every clip standardised by its gender's
    training statistics first; ``served``: what the run hears of each clip as served, from
    :func:`served_states`, instead of the clip as recorded)."""
    started = time.perf_counter()
    told = {}
    if gender:
        x, told["gender_told_right"] = by_gender(x, manifest["gender"].to_numpy(), tr, config)
    cfg = HeadTraining.from_dict(config.to_dict() | {"seed": seed})
    corpora, speakers = manifest["corpus"].to_numpy(), speaker_keys(manifest).to_numpy()
    model, history = fit_parts(x, y, tr, va, cfg, corpora=corpora, speakers=speakers)
    heard = x[0] if served is None else served
    probs_val, probs = model.predict(heard[va], verbose=0), model.predict(heard[te], verbose=0)
    if cfg.head.home_gate:  # how far the home gate opened for the test clips (0: home's answer)
        told["home_gate_mean"] = round(float(np.mean(home_gate(model, heard[te]))), 4)
        told["wide_temperature"] = cfg.wide_temperature  # as this run took it
    val = evaluate(y[va], probs_val.argmax(1), EMOTIONS)
    if restrict is None:
        test = evaluate(y[te], probs.argmax(1), EMOTIONS)
    else:
        test = restricted_scores(probs, y[te], restrict)
        home = (manifest["corpus"].to_numpy() == "ravdess")[va]  # as a shipped run's temperature
        told["calibration"] = left_out_calibration(
            probs, y[te], restrict, probs_val[home], y[va][home]
        )
    record = {
        **{k: test[k] for k in (*SCORES, "n", "labels", "confusion_matrix")},
        "val": {k: val[k] for k in SCORES},
        "epochs": len(history),
        "seconds": round(time.perf_counter() - started, 1),
        **told,
    }
    return record, probs


def home_gate(model, x: np.ndarray) -> np.ndarray:
    """The home gate's h of each clip (:data:`ser_cnn.encoder.head.HOME_GATE_LAYER`)."""
    import keras

    from ser_cnn.encoder.head import HOME_GATE_LAYER

    gate = keras.Model(model.input, model.get_layer(HOME_GATE_LAYER).output)
    return gate.predict(x, verbose=0)[:, 0]


def by_gender(
    x: np.ndarray, gender: np.ndarray, tr: np.ndarray, config
) -> tuple[np.ndarray, float]:
    """``x`` (versions, n, states, width) with every clip standardised by the mean and std of
    its gender's training clips (``tr``, every version): a training clip's gender as labelled,
    any other clip's as a logistic regression on the training clips' standardised statistics
    predicts it from the clip as recorded (configs/encoder_logistic_gender.toml). Returns the
    new ``x`` and the share of the other clips (of known gender) whose gender was told right."""
    from sklearn.linear_model import LogisticRegression

    from ser_cnn.encoder.fit import LOGISTIC_ITER, pooled_statistics

    versions, n = x.shape[:2]
    flat = x.reshape(versions, n, -1)
    mean, std = (a.ravel() for a in pooled_statistics(x[:, tr]))
    z = (flat[:, tr] - mean) / std
    clf = LogisticRegression(C=config.logistic_c, max_iter=LOGISTIC_ITER)
    clf.fit(z.reshape(-1, flat.shape[-1]), np.tile(gender[tr], versions))
    told = gender.astype(object).copy()
    told[~tr] = clf.predict((flat[0, ~tr] - mean) / std)
    known = ~tr & (gender != None)  # noqa: E711 (an object array: elementwise)
    right = float(np.mean(told[known] == gender[known]))
    out = np.empty_like(flat)
    for g in sorted(set(gender[tr])):
        mine = tr & (gender == g)
        theirs = flat[:, mine].reshape(-1, flat.shape[-1])
        out[:, told == g] = (flat[:, told == g] - theirs.mean(0)) / (theirs.std(0) + 1e-6)
    return out.reshape(x.shape), right


def restricted_scores(probs: np.ndarray, y: np.ndarray, emotions: tuple[str, ...]) -> dict:
    """Scores over a corpus's own ``emotions`` only, as ``ser-cnn evaluate --restricted``."""
    p = restricted(probs, emotions)
    truth = restricted_truth(y, emotions)
    return evaluate(truth, p.argmax(1), emotions)


def left_out_calibration(probs, y, emotions: tuple[str, ...], val_probs, val_y) -> dict:
    """How well the probabilities on a corpus left out of training are calibrated: the ECE of
    its restricted probabilities raw, and with the temperature a run carries (fitted on
    RAVDESS's validation actors, ``val_probs``: tools/calibrate.py), beside the ECE floor of
    as many clips."""
    from ser_cnn.serving.calibration import ece_floor
    from ser_cnn.training.calibrate import fit_temperature

    t = fit_temperature(val_probs, val_y)
    raw, _ = restricted_ece(probs, y, emotions, 1.0)
    calibrated, scaled = restricted_ece(probs, y, emotions, t)
    return {
        "temperature": round(t, 4),
        "ece_raw": round(raw, 4),
        "ece_calibrated": round(calibrated, 4),
        "ece_floor": round(ece_floor(scaled), 4),
        "mean_confidence": round(float(scaled.max(1).mean()), 4),
    }


def restricted(probs: np.ndarray, emotions: tuple[str, ...]) -> np.ndarray:
    """Each row's probabilities over a corpus's own ``emotions`` (``ser-cnn evaluate``'s)."""
    return np.stack([restrict(row, EMOTIONS, emotions) for row in probs])


def restricted_truth(y: np.ndarray, emotions: tuple[str, ...]) -> np.ndarray:
    """Indices into EMOTIONS -> indices into a corpus's own ``emotions``."""
    return np.array([emotions.index(EMOTIONS[k]) for k in y])


def restricted_ece(probs, y, emotions: tuple[str, ...], t: float) -> tuple[float, np.ndarray]:
    """The ECE of ``probs`` at temperature ``t``, restricted to ``emotions``, and those
    restricted probabilities."""
    from ser_cnn.serving.calibration import apply_temperature, expected_calibration_error

    scaled = restricted(apply_temperature(probs, t), emotions)
    return expected_calibration_error(scaled, restricted_truth(y, emotions)), scaled


def unheard_temperatures(out: dict, answers: dict) -> float:
    """For each corpus left out, a temperature fitted on the other corpora left out (each
    answered by a head that never heard it; ``answers``: corpus -> its probabilities, labels
    and the run's own temperature) and the ECE it gives there: whether what one unheard corpus
    teaches about confidence holds for another. Likewise the factor on top of each run's own
    temperature (``wide_temperature``, :class:`HeadTraining`'s), fitted on the others' answers
    after their runs' temperatures. Adds both to each record's calibration; returns the factor
    fitted on every corpus left out."""
    from ser_cnn.serving.calibration import apply_temperature
    from ser_cnn.training.calibrate import fit_temperature

    def fitted(corpora, run_temperature: bool) -> float:
        probs = [
            apply_temperature(answers[c][0], answers[c][2] if run_temperature else 1.0)
            for c in corpora
        ]
        labels = np.concatenate([answers[c][1] for c in corpora])
        return fit_temperature(np.concatenate(probs), labels)

    for c, record in out.items():
        others = [o for o in answers if o != c]
        probs, y, t_run = answers[c]
        labels = tuple(record["labels"])
        t, factor = fitted(others, False), fitted(others, True)
        calibration = record["calibration"]
        calibration["temperature_unheard"] = round(t, 4)
        calibration["ece_unheard_temperature"] = round(restricted_ece(probs, y, labels, t)[0], 4)
        calibration["wide_temperature"] = round(factor, 4)
        calibration["ece_wide_temperature"] = round(
            restricted_ece(probs, y, labels, t_run * factor)[0], 4
        )
    return fitted(list(answers), True)


def served_states(manifest, x, config: HeadTraining, features: dict) -> tuple[np.ndarray, dict]:
    """What a run of ``config`` hears of each clip as served, (n_clips, ...) as ``x[0]``: the
    clip as recorded, but where its front end (``config.front_end``) changes a clip, that clip
    read again, passed through it and encoded (the NumPy encoder, its states rounded to float16
    as the cache keeps them); and how many clips of each corpus it changed."""
    out, front_end = x[0], config.front_end
    if front_end is None:
        return out, {}
    from ser_cnn.audio.io import load_audio
    from ser_cnn.encoder.head import pool
    from ser_cnn.encoder.light import LightEncoder
    from ser_cnn.features.logmel import WhisperFeatureConfig, clip_whisper_log_mel

    if config.head.clip_norm or config.head.speaker_norm:
        raise SystemExit("error: a front end is scored only without clip or speaker norm")
    settings = WhisperFeatureConfig.from_dict({k: v for k, v in features.items() if k != "kind"})
    sr, encoder, changed = settings.sample_rate, None, dict.fromkeys(manifest["corpus"], 0)
    paths, corpora, out = list(manifest["path"]), list(manifest["corpus"]), out.copy()

    def heard(i: int) -> np.ndarray | None:
        """Clip ``i``'s log-mel as served, or None where the front end leaves it as it is."""
        y = load_audio(paths[i], target_sr=sr)
        return (
            clip_whisper_log_mel(y, settings, front_end=front_end)
            if front_end.changes(y, sr)
            else None
        )

    # a batch of clips at a time, through the front end on both cores, then encoded together
    with ThreadPoolExecutor(max_workers=2) as workers:
        for start in range(0, len(paths), SERVED_BATCH):
            batch = range(start, min(start + SERVED_BATCH, len(paths)))
            mels = zip(batch, workers.map(heard, batch), strict=True)
            todo = [(i, m) for i, m in mels if m is not None]
            if not todo:
                continue
            encoder = encoder or LightEncoder.load()
            for (i, _), states in zip(todo, encoder.encode([m for _, m in todo]), strict=True):
                out[i] = pool(states.astype(np.float16))
                changed[corpora[i]] += 1
    print(f"changed by the front end as served: {changed}")
    return out, changed


def fewer_actors(actors, n: int, seed: int) -> list[int]:
    """``n`` of the RAVDESS ``actors``, as many women as men (one more man when ``n`` is odd)
    where the fold has them, else all of the fewer and the rest of the others; drawn with
    ``seed``."""
    rng = np.random.default_rng(seed)
    men, women = ([a for a in sorted(actors) if gender_of(a) == g] for g in ("male", "female"))
    if not 0 < n <= len(men) + len(women):
        raise SystemExit(f"error: --train-actors must be 1 to {len(men) + len(women)}")
    n_men = min(max((n + 1) // 2, n - len(women)), len(men))
    drawn = [
        *rng.choice(men, n_men, replace=False),
        *rng.choice(women, n - n_men, replace=False),
    ]
    return sorted(int(a) for a in drawn)


def six_folds(
    manifest,
    x,
    y,
    config,
    seed,
    *,
    gender=False,
    served=None,
    refit=False,
    train_actors=0,
    actor_draw=0,
) -> dict:
    """The published folds (``ser-cnn train --model encoder`` trains one, as here);
    other corpora are training data only. ``refit``: the validation actors train too (a
    logistic fit selects nothing on them; their scores are then of heard voices).
    ``train_actors``: only that many of a fold's training actors train, for a learning curve
    (``actor_draw`` 0 draws them with the fold's number, draw k with it plus k times the
    number of folds)."""
    out, folds = {}, load_folds()
    for fold in sorted(folds):
        parts = split(fold)
        if train_actors:
            seed = fold + len(folds) * actor_draw
            parts = replace(parts, train=tuple(fewer_actors(parts.train, train_actors, seed)))
        tr, va, te = ravdess_parts(manifest, parts)
        tr = tr | va if refit else tr
        out[str(fold)], _ = fit_and_score(
            x, y, tr, va, te, config, seed, manifest=manifest, gender=gender, served=served
        )
        r = out[str(fold)]
        print(f"seed {seed} fold {fold}: test {r['accuracy']:.3f} val {r['val']['accuracy']:.3f}")
    return out


def leave_one_corpus_out(
    manifest,
    x,
    y,
    config,
    seed,
    *,
    only_ravdess=False,
    gender=False,
    wide=None,
    notes=None,
    served=None,
) -> dict:
    """Each other corpus left out in turn (its records by corpus). ``wide``: corpus -> the
    ``wide_temperature`` its run takes instead of the config's (fitted without it, as
    ``--wide-temperature-from`` reads them); ``notes``: gets, by seed, the
    ``wide_temperature`` fitted on every corpus left out."""
    corpus = manifest["corpus"].to_numpy()
    speaker = speaker_keys(manifest).to_numpy()
    val_actors = {f"ravdess/{a}" for a in split(1).val}  # the corpus layer's speaker ids
    for c in sorted(set(corpus) - {"ravdess"}):
        ids = sorted(set(speaker[corpus == c]))
        val_actors |= set(ids[::VAL_EVERY])
    is_val = np.isin(speaker, sorted(val_actors))
    out, answers = {}, {}
    for left in sorted(set(corpus) - {"ravdess"}):
        te = corpus == left
        train = corpus == "ravdess" if only_ravdess else ~te
        emotions = tuple(e for e in EMOTIONS if e in set(manifest.loc[te, "emotion"]))
        out[left], probs = fit_and_score(
            x,
            y,
            train & ~is_val,
            train & is_val,
            te,
            config if wide is None else replace(config, wide_temperature=wide[left]),
            seed,
            manifest=manifest,
            restrict=emotions,
            gender=gender,
            served=served,
        )
        answers[left] = (probs, y[te], out[left]["calibration"]["temperature"])
        r = out[left]
        print(f"seed {seed} left out {left}: UAR {r['uar']:.3f} val {r['val']['accuracy']:.3f}")
    factor = unheard_temperatures(out, answers)
    if notes is not None:
        notes[str(seed)] = round(factor, 4)
    return out


def wide_temperatures(path: Path | None) -> dict | None:
    """Corpus -> the ``wide_temperature`` a LOCO file fitted without that corpus (its first
    seed's), or None without a file."""
    if path is None:
        return None
    run = next(iter(json.loads(path.read_text())["runs"].values()))
    return {c: r["calibration"]["wide_temperature"] for c, r in run.items()}


def side_by_side(manifest, x: np.ndarray, other: Path, config: HeadTraining) -> np.ndarray:
    """``x`` (versions, n, states, width) and the ``other`` encoder cache's statistics of the
    same clips, flattened into one vector each: (versions, n, 1, width_x + width_other)."""
    if config.head.pooling != "concat" or config.head.clip_norm:
        raise SystemExit("--beside needs a concat head without clip_norm")
    theirs, y = load_pooled_set([other], config.copies, clip_norm=False)
    if list(theirs["key"]) != list(manifest["key"]):
        raise SystemExit(f"{other} does not hold the same clips in the same order")
    flat = [a.reshape(*a.shape[:2], 1, -1) for a in (x, y)]
    return np.concatenate(flat, axis=-1)


def with_view(x: np.ndarray, caches: list[Path], name: str, config: HeadTraining) -> np.ndarray:
    """``x`` (versions, n, states, width) flattened, each clip's other numbers beside it
    (``<cache>/<name>.copy<j>.npy``: tools/view_trial.py's CNN view, tools/delta_trial.py's
    dynamics; the caches' clips one after another): (versions, n, 1, width_x + theirs)."""
    if config.head.pooling != "concat":
        raise SystemExit("--view needs a concat head")
    view = np.stack(
        [
            np.concatenate([np.load(c / f"{name}.copy{j}.npy") for c in caches])
            for j in range(len(x))
        ]
    )[:, :, None, :]
    return np.concatenate([x.reshape(*x.shape[:2], 1, -1), view], axis=-1)


def copy_seeds(caches: list[Path]) -> dict[int, Path]:
    """RAVDESS caches of one recipe by the seed of their copies' draws; they must differ in
    that seed alone."""
    settings = {c: cache_settings(c) for c in caches}
    seeds = {s["seed"]: c for c, s in settings.items()}
    rest = {json.dumps({k: v for k, v in s.items() if k != "seed"}) for s in settings.values()}
    if len(seeds) < len(caches) or len(rest) > 1:
        raise SystemExit("error: several caches must differ in their copies' seed, and only in it")
    return seeds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "cache",
        type=Path,
        nargs="+",
        help="the RAVDESS encoder cache; several: the same recipe's copies drawn with other "
        "seeds (tools/encode_cache.py --seed), one run each, keyed by that seed",
    )
    p.add_argument("--extra", type=Path, action="append", default=[], help="other corpora")
    p.add_argument("--loco", action="store_true", help="leave each --extra corpus out in turn")
    p.add_argument(
        "--only-ravdess", action="store_true", help="(--loco) train on RAVDESS alone instead"
    )
    p.add_argument("--config", type=Path, required=True, help="TOML of HeadTraining settings")
    p.add_argument(
        "--beside",
        type=Path,
        help="another encoder's cache of the same clips: each clip's statistics from both, "
        "side by side (as one hidden state: a concat head only)",
    )
    p.add_argument(
        "--view",
        metavar="NAME",
        help="each clip's <cache>/NAME.copy<j>.npy beside its statistics (a concat head): "
        "view (tools/view_trial.py), delta (tools/delta_trial.py)",
    )
    p.add_argument(
        "--corpus-norm",
        action="store_true",
        help="standardise each corpus by its own clips' statistics (not one clip alone)",
    )
    p.add_argument(
        "--by-gender",
        action="store_true",
        help="standardise every clip by its (predicted) gender's training statistics",
    )
    p.add_argument(
        "--wide-temperature-from",
        type=Path,
        metavar="LOCO_FILE",
        help="(--loco) each corpus left out takes the wide_temperature that LOCO_FILE fitted "
        "without it, instead of the config's",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="(six folds, a logistic fit) each fold's validation actors train too",
    )
    p.add_argument(
        "--train-actors",
        type=int,
        default=0,
        metavar="N",
        help="(six folds) only N of each fold's training actors train, half of them women "
        "where the fold has them",
    )
    p.add_argument(
        "--actor-draw",
        type=int,
        default=0,
        metavar="K",
        help="(--train-actors) which draw of the actors (0: seeded with the fold's number)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--name", help="result name (default: the config's stem)")
    args = p.parse_args(argv)
    if args.loco and not args.extra:
        p.error("--loco needs --extra corpora")
    if (args.refit or args.train_actors) and args.loco:
        p.error("--refit and --train-actors are for the six folds")
    if args.refit and args.train_actors:
        p.error("--refit and --train-actors: choose one (which actors train)")
    if args.actor_draw and not args.train_actors:
        p.error("--actor-draw draws the actors of --train-actors")
    config = HeadTraining.from_dict(tomllib.loads(args.config.read_text()))
    if args.refit and config.fit != "logistic":
        p.error("--refit needs a logistic fit: a gradient fit selects its epoch on validation")
    by_seed = copy_seeds(args.cache)
    if len(by_seed) > 1 and (len(args.seeds) > 1 or args.beside or args.view):
        p.error("several caches (one per copies' seed) take one --seeds and no --beside, --view")
    norms = {"corpus_norm": args.corpus_norm, **pooled_norms(config.head)}
    runs, changed, notes = {}, None, {}  # notes (--loco): the wide_temperature fitted, by seed
    for copies_seed, cache in by_seed.items():
        caches = [cache, *args.extra]  # one corpus or more each
        if args.loco and args.only_ravdess:  # the others are only scored: as recorded suffices
            manifest, x = load_pooled_set([cache], config.copies, **norms)
            others, recorded = load_pooled_set(args.extra, 0, **norms)
            manifest = pd.concat([manifest, others], ignore_index=True)
            x = np.concatenate([x, np.repeat(recorded, len(x), axis=0)], axis=1)  # never trained
        else:
            manifest, x = load_pooled_set(caches, config.copies, **norms)
        if args.beside:
            x = side_by_side(manifest, x, args.beside, config)
        if args.view:
            x = with_view(x, caches, args.view, config)
        manifest, x, y = labelled(manifest, x)
        if changed is None:  # the clips as recorded are every cache's copy 0
            served, changed = served_states(manifest, x, config, cache_settings(cache)["features"])
        if args.loco:
            protocol = functools.partial(
                leave_one_corpus_out,
                only_ravdess=args.only_ravdess,
                gender=args.by_gender,
                wide=wide_temperatures(args.wide_temperature_from),
                notes=notes,
                served=served,
            )
        else:
            protocol = functools.partial(
                six_folds,
                gender=args.by_gender,
                served=served,
                refit=args.refit,
                train_actors=args.train_actors,
                actor_draw=args.actor_draw,
            )
        for seed in args.seeds:
            key = str(copies_seed if len(by_seed) > 1 else seed)
            runs[key] = protocol(manifest, x, y, config, seed)
            if key != str(seed) and str(seed) in notes:  # keyed by the copies' seed instead
                notes[key] = notes.pop(str(seed))
    every = [r for run in runs.values() for r in run.values()]
    summary = {
        "model": "encoder head",
        "protocol": (
            ("trained on RAVDESS alone" if args.only_ravdess else "leave one corpus out")
            if args.loco
            else "RAVDESS six folds"
        ),
        "corpora": {c: int(n) for c, n in manifest["corpus"].value_counts().items()},
        "caches": {str(c): cache_settings(c) for c in [*args.cache, *args.extra, args.beside] if c},
        "training": config.to_dict(),
        "corpus_norm": args.corpus_norm,
        "view": args.view,
        "by_gender": args.by_gender,
        "refit": args.refit,  # the validation actors trained too ("val" then scores them heard)
        "train_actors": args.train_actors,  # of each fold's training actors (0: all of them)
        "actor_draw": args.actor_draw,  # which draw of them (seeded: fold + 6 x draw)
        "changed_as_served": changed,  # clips the front end (training.front_end) changed
        "seeds": [int(k) for k in runs],
        # what a seed draws: the RAVDESS copies (one cache each) or the head's initialisation
        "seed_of": "copies" if len(by_seed) > 1 else "head",
        "labels": list(EMOTIONS),
        **mean_std(every),
        "val": mean_std(r["val"] for r in every),
        "per_seed": {s: mean_std(r.values()) for s, r in runs.items()},
        "runs": runs,
    }
    if args.loco:
        summary["wide_temperature"] = notes
        summary["wide_temperature_from"] = args.wide_temperature_from and str(
            args.wide_temperature_from
        )
        summary["per_corpus"] = {
            c: mean_std(run[c] for run in runs.values()) for c in next(iter(runs.values()))
        }
    name = args.name or args.config.stem
    kind = ("ravdess_only" if args.only_ravdess else "loco") if args.loco else "cv"
    kind += "_corpusnorm" if args.corpus_norm else ""
    out = RESULTS / f"{kind}_encoder_{name}.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    m, s = summary["mean"], summary["std"]
    print(f"{out}: " + ", ".join(f"{k} {m[k]:.3f} ± {s[k]:.3f}" for k in SCORES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
