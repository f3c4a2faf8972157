"""The denoising front end's gate and strength: where clips fall, and what validation says.

    python tools/denoise_trial.py --validation CV_RUN [--amounts 0.6 0.8 1.0]
    python tools/denoise_trial.py --survey CV_RUN --config RECIPE.toml

``--validation``: every fold run of ``CV_RUN`` (an encoder cross-validation folder) answers its
own validation actors' clips under the robustness benchmark's added noises
(:data:`ser_cnn.audio.conditions.CONDITIONS`, the same seeds as ``tools/robustness.py``), as
recorded and denoised with the gate open (every clip denoised): the noise profile and amount
that do best under white noise at 5 and 10 dB SNR, then the gate from where that variant gains
and where it loses. All of it on validation actors, never on test actors. ``--survey``: the
noise-floor SNR (:func:`ser_cnn.audio.denoise.floor_snr`) of every clip of each corpus as
recorded, and of the fold runs' test clips under each benchmark condition; how many fall
below the recipe's gate.
Both write their part of ``results/denoise_gate.json`` (the survey under the recipe's name).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import robustness  # tools/robustness.py, beside this file: its clips, babble pool and seeds

from ser_cnn import corpora
from ser_cnn.audio.conditions import CONDITIONS
from ser_cnn.audio.denoise import (
    PROFILES,
    DenoiseConfig,
    denoise,
    floor_snr,
    floor_spread,
    needs_denoising,
)
from ser_cnn.audio.io import SAMPLE_RATE, load_audio
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.ravdess import scan

OUT = robustness.REPO / "results" / "denoise_gate.json"
CHOOSE_ON = ("white 5 dB", "white 10 dB")  # the profile and amount: the best mean over these
GATE_ON = ("white 20 dB", "hum 10 dB", "babble 10 dB")  # the benchmark's other added noises
OPEN = 1e9  # dB: a gate every clip passes
PERCENTILES = (5, 50, 95)
CAP_DB = 120.0  # floor SNRs above are written as this: digital silence in the pauses is infinite


def fold_clips(run_dir: Path, part: str, ravdess) -> tuple[list, list, list]:
    """A fold run's clips of ``part``'s actors, their emotions, and the babble pool, as
    ``tools/robustness.py`` draws them."""
    actors = robustness.split_actors(run_dir, part)
    held_out = set(actors) | set(robustness.split_actors(run_dir, "test"))
    tests = [c for c in ravdess if c.actor in actors]
    others = robustness._subset(
        [c for c in ravdess if c.actor not in held_out], robustness.BABBLE_POOL, 0
    )
    return (
        [load_audio(c.path) for c in tests],
        [c.emotion for c in tests],
        [load_audio(c.path) for c in others],
    )


def degraded(name: str, clips: list, pool: list) -> list[np.ndarray]:
    index = list(CONDITIONS).index(name)
    return [
        CONDITIONS[name](y, SAMPLE_RATE, np.random.default_rng([0, index, k]), babble=pool)
        for k, y in enumerate(clips)
    ]


def validation(cv_run: Path, amounts: list[float], ravdess) -> dict:
    """Choose the front end on validation actors: right answers per fold, condition and
    variant (as recorded; denoised with the gate open, each profile and amount), the variant
    chosen, and the gate set from it."""
    import ser_cnn

    runs = robustness.fold_runs(cv_run)
    variants = [
        DenoiseConfig(below_db=OPEN, amount=a, profile=p) for p in PROFILES for a in amounts
    ]
    per_fold, floor, spread_db = {}, {}, {}

    def score(conditions, candidates) -> None:
        for fold, run_dir in runs.items():
            rec = ser_cnn.load_recognizer(run_dir, calibrated=False)
            clips, emotions, pool = fold_clips(run_dir, "validation", ravdess)
            for name in conditions:
                noisy = degraded(name, clips, pool)
                floor.setdefault(name, []).extend(floor_snr(y, SAMPLE_RATE) for y in noisy)
                spread_db.setdefault(name, []).extend(floor_spread(y, SAMPLE_RATE) for y in noisy)
                for config in candidates:
                    heard = [
                        y if config is None else denoise(y, SAMPLE_RATE, config=config)
                        for y in noisy
                    ]
                    right = sum(
                        rec.predict(y, sr=SAMPLE_RATE).scores["encoder"].emotion == e
                        for y, e in zip(heard, emotions, strict=True)
                    )
                    key = f"{name}, {_variant(config)}"
                    per_fold.setdefault(key, {})[fold] = {"right": int(right), "n": len(emotions)}
                    print(f"{fold} {key}: {right}/{len(emotions)}", file=sys.stderr)

    def accuracy(key: str) -> float:
        folds = per_fold[key].values()
        return sum(f["right"] for f in folds) / sum(f["n"] for f in folds)

    score(CHOOSE_ON, [None, *variants])  # the variant: best mean over the two
    best = max(
        variants, key=lambda c: np.mean([accuracy(f"{n}, {_variant(c)}") for n in CHOOSE_ON])
    )
    score(GATE_ON, [None, best])
    # The gate: halfway between the median floor SNR of the noisiest condition where denoising
    # lost and of the cleanest where it gained, so that clips like those pass, and no others.
    gain = {n: accuracy(f"{n}, {_variant(best)}") - accuracy(f"{n}, as recorded") for n in floor}
    gained, lost = [n for n in gain if gain[n] > 0], [n for n in gain if gain[n] <= 0]
    median = {n: float(np.median(v)) for n, v in floor.items()}
    gate = (max(median[n] for n in gained) + min(median[n] for n in lost)) / 2
    # Steadiness: a lost condition some of whose clips still pass that gate (its 5th percentile
    # below it) is told apart by how its floor moves, halfway between the median spread of the
    # least steady condition that gained and of the steadiest of those.
    moving = {n: float(np.median(v)) for n, v in spread_db.items()}
    through = [n for n in lost if np.percentile(floor[n], 5) < gate]
    steady = (max(moving[n] for n in gained) + min(moving[n] for n in through)) / 2
    return {
        "what": "validation actors of every fold, each clip as recorded or denoised (gate open)",
        "cv_run": str(cv_run),
        "accuracy": {k: round(accuracy(k), 4) for k in per_fold},
        "chosen": {"amount": best.amount, "profile": best.profile},
        "gain": {n: round(g, 4) for n, g in gain.items()},
        "floor_snr_median_db": {n: round(m, 1) for n, m in median.items()},
        "gate_db": round(gate, 1),
        "floor_spread_median_db": {n: round(m, 2) for n, m in moving.items()},
        "through_the_gate_and_lost": through,
        "steady_db": round(steady, 1),
        "per_fold": per_fold,
    }


def _variant(config: DenoiseConfig | None) -> str:
    if config is None:
        return "as recorded"
    return f"denoised, {config.profile} profile, amount {config.amount}"


def facts(y: np.ndarray, config: DenoiseConfig) -> tuple[float, bool]:
    """A clip's floor SNR and whether the front end denoises it."""
    return floor_snr(y, SAMPLE_RATE), needs_denoising(y, SAMPLE_RATE, config=config)


def spread(found: list[tuple[float, bool]], config: DenoiseConfig) -> dict:
    """Where clips fall (their :func:`facts`): floor SNR percentiles, how many are denoised."""
    v = np.minimum([snr for snr, _ in found], CAP_DB)
    denoised = [d for _, d in found]
    return {
        "clips": len(v),
        "floor_snr_db": {f"p{q}": round(float(np.percentile(v, q)), 1) for q in PERCENTILES},
        "min_db": round(float(v.min()), 1),
        "below_gate": int(np.sum(v < config.below_db)),
        "denoised": int(np.sum(denoised)),
        "fraction_denoised": round(float(np.mean(denoised)), 4),
    }


def survey(cv_run: Path, config: DenoiseConfig, ravdess, data: Path) -> dict:
    """Where every corpus's clips fall, and the fold runs' test clips under each condition."""
    found = {"ravdess": [facts(load_audio(c.path), config) for c in ravdess]}
    for name, (env, _) in robustness.CORPORA.items():
        root = robustness._corpus_dir(env, data, name)
        items = robustness.read_corpus(name, root, None, 0)
        if isinstance(items, list):
            found[name] = [facts(load_audio(path), config) for path, _ in items]
    conditions = {name: [] for name in CONDITIONS}
    for run_dir in robustness.fold_runs(cv_run).values():
        clips, _, pool = fold_clips(run_dir, "test", ravdess)
        for name in CONDITIONS:
            conditions[name] += [facts(y, config) for y in degraded(name, clips, pool)]
    return {
        "what": "floor_snr of every clip as recorded; of the six folds' test clips per condition",
        "capped_at_db": CAP_DB,
        "denoise": config.to_dict(),
        "corpora": {c: spread(v, config) for c, v in found.items()},
        "conditions": {c: spread(v, config) for c, v in conditions.items()},
        "corpora_available": sorted(found),
        "known_corpora": sorted(corpora.CORPORA),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_run", type=Path, help="an encoder cross-validation folder (fold1 ...)")
    p.add_argument("--validation", action="store_true", help="choose the amount")
    p.add_argument("--amounts", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    p.add_argument("--survey", action="store_true", help="where clips fall against the gate")
    p.add_argument("--config", type=Path, help="(--survey) the recipe whose [denoise] gate")
    p.add_argument("--data", type=Path, help="shared data folder (as tools/robustness.py)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.survey and args.config is None:
        p.error("--survey needs --config")
    ravdess, _ = scan(robustness._corpus_dir("RAVDESS_DIR", args.data, "ravdess-speech"))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.validation:
        results["validation"] = validation(args.cv_run, args.amounts, ravdess)
    if args.survey:
        recipe = HeadTraining.from_dict(tomllib.loads(args.config.read_text()))
        if recipe.denoise is None:
            p.error(f"{args.config} has no [denoise] table")
        entry = survey(args.cv_run, recipe.denoise, ravdess, args.data)
        results.setdefault("survey", {})[args.config.stem] = entry
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
