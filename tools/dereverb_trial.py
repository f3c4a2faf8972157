"""Would dereverberation help the encoder in a hall? Weighted prediction error on validation actors.

    python tools/dereverb_trial.py CV_RUN --variants 10x1 20x1 --out results/dereverb_front_end.json
    python tools/dereverb_trial.py CV_RUN --gate
    python tools/dereverb_trial.py CV_RUN --variants 10x1:16:2 20x1:16:2 20x1 \
        --out results/dereverb_own.json

Every fold run of ``CV_RUN`` (an encoder cross-validation folder) answers its own validation
actors' clips clean and in the robustness benchmark's two rooms (the same seeds as
``tools/robustness.py``), as recorded and dereverberated by the serving front end's WPE
(:func:`ser_cnn.audio.dereverb.dereverberate`; each ``--variants`` entry TAPSxITERATIONS,
or TAPSxITERATIONS:SHIFT_MS:DELAY; otherwise the shift and delay are
:class:`~ser_cnn.audio.dereverb.DereverbConfig`'s). Also recorded: how much energy
WPE takes away (dB) and its seconds per clip (one thread: run it alone on the machine). All
of it on validation actors, never on test actors. ``--gate`` instead: the floor SNR
(:func:`ser_cnn.audio.denoise.floor_snr`) of the same clips under every condition of the
benchmark, and the gate (``DereverbConfig.above_db``) that the third stage's plan sets from it.
Either writes its part of ``--out``.

``results/dereverb_trial.json`` (the first stage, three iterations at 10 and 20 taps) was
written by this tool as of commit 7170020, with nara-wpe's own STFT (Blackman frames);
``results/dereverb_front_end.json`` and ``results/dereverb_fast.json`` (the second to fourth
stages) as of commit 720b327, with nara-wpe's filter behind ser_cnn's STFT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import denoise_trial  # tools/denoise_trial.py, beside this file: its clips and conditions
import numpy as np
import robustness
from threadpoolctl import threadpool_limits

from ser_cnn.audio.conditions import CONDITIONS as BENCHMARK
from ser_cnn.audio.denoise import floor_snr
from ser_cnn.audio.dereverb import FRAME, DereverbConfig, dereverberate
from ser_cnn.audio.io import SAMPLE_RATE
from ser_cnn.ravdess import scan

OUT = robustness.REPO / "results" / "dereverb_front_end.json"
CONDITIONS = ("clean", "reverb 0.3 s", "reverb 0.8 s")
# The gate lies between where the benchmark's added noises fill the pauses and where WPE is meant
# to work: halfway between the former's highest 95th and the latter's lowest 5th percentile.
NOISES = ("white 20 dB", "white 10 dB", "white 5 dB", "babble 10 dB", "hum 10 dB")
GATE_PERCENTILES = (5, 50, 95)


def removed_db(y: np.ndarray, out: np.ndarray) -> float:
    """Energy taken away, in dB."""
    return float(10 * np.log10(np.sum(np.square(y, dtype=np.float64)) / np.sum(np.square(out))))


def trial(cv_run: Path, configs: list[DereverbConfig], ravdess) -> dict:
    import ser_cnn

    variants = [None, *configs]
    per_fold, removed, seconds = {}, {}, {c: [] for c in configs}
    for fold, run_dir in robustness.fold_runs(cv_run).items():
        rec = ser_cnn.load_recognizer(run_dir, calibrated=False)
        clips, emotions, pool = denoise_trial.fold_clips(run_dir, "validation", ravdess)
        for name in CONDITIONS:
            heard = denoise_trial.degraded(name, clips, pool)
            for c in variants:
                key, versions = f"{name}, {_variant(c)}", heard
                if c is not None:
                    with threadpool_limits(1):  # the cost on one core, as the plan counts it
                        started = time.perf_counter()
                        versions = [dereverberate(y, SAMPLE_RATE, config=c) for y in heard]
                        elapsed = time.perf_counter() - started
                    seconds[c].append(elapsed / len(heard))
                    removed.setdefault(key, []).extend(map(removed_db, heard, versions))
                right = sum(
                    rec.predict(y, sr=SAMPLE_RATE).scores["encoder"].emotion == e
                    for y, e in zip(versions, emotions, strict=True)
                )
                per_fold.setdefault(key, {})[fold] = {"right": int(right), "n": len(emotions)}
                print(f"{fold} {key}: {right}/{len(emotions)}", file=sys.stderr)

    def accuracy(key: str) -> float:
        folds = per_fold[key].values()
        return sum(f["right"] for f in folds) / sum(f["n"] for f in folds)

    return {
        "what": "validation actors of every fold, each clip as recorded or dereverberated (WPE)",
        "cv_run": str(cv_run),
        "wpe": {
            "package": "ser_cnn",  # its own filter (nara-wpe's before the fifth stage)
            "version": version("ser_cnn"),
            "front_end": "ser_cnn.audio.dereverb.dereverberate",
            "frame_s": FRAME,
            "variants": {_variant(c): c.to_dict() for c in configs},
        },
        "accuracy": {k: round(accuracy(k), 4) for k in per_fold},
        "gain": {
            f"{n}, {_variant(c)}": round(
                accuracy(f"{n}, {_variant(c)}") - accuracy(f"{n}, {_variant(None)}"), 4
            )
            for n in CONDITIONS
            for c in configs
        },
        "removed_db": {
            k: {f"p{q}": round(float(np.percentile(v, q)), 2) for q in (10, 50, 90)}
            for k, v in removed.items()
        },
        "seconds_per_clip": {  # the median over the folds' and conditions' means
            _variant(c): round(float(np.median(s)), 4) for c, s in seconds.items()
        },
        "per_fold": per_fold,
    }


def gate(cv_run: Path, ravdess) -> dict:
    """The floor SNR of every fold run's validation clips per condition, and the gate between
    the added noises and the clean clips and rooms (None where they overlap)."""
    floors = {name: [] for name in BENCHMARK}
    for run_dir in robustness.fold_runs(cv_run).values():
        clips, _, pool = denoise_trial.fold_clips(run_dir, "validation", ravdess)
        for name in BENCHMARK:
            floors[name] += [
                floor_snr(y, SAMPLE_RATE) for y in denoise_trial.degraded(name, clips, pool)
            ]
    cap = denoise_trial.CAP_DB  # digital silence in the pauses is infinite
    spread = {
        name: {
            f"p{q}": round(float(np.percentile(np.minimum(v, cap), q)), 1) for q in GATE_PERCENTILES
        }
        for name, v in floors.items()
    }
    noise = max(spread[n]["p95"] for n in NOISES)
    quiet = min(spread[n]["p5"] for n in CONDITIONS)
    return {
        "what": "floor SNR of the validation actors' clips per condition (dB, capped); the gate "
        "halfway between the added noises' highest p95 and the clean clips' and rooms' lowest p5",
        "cv_run": str(cv_run),
        "capped_at_db": cap,
        "clips": {name: len(v) for name, v in floors.items()},
        "floor_snr_db": spread,
        "noises_highest_p95_db": noise,
        "quiet_lowest_p5_db": quiet,
        "above_db": round((noise + quiet) / 2, 1) if noise < quiet else None,
    }


def _variant(config: DereverbConfig | None) -> str:
    if config is None:
        return "as recorded"
    name = f"WPE, {config.taps} taps, {config.iterations} iteration" + "s" * (config.iterations > 1)
    if (config.shift, config.delay) != (DereverbConfig.shift, DereverbConfig.delay):
        name += f", frames every {config.shift * 1000:g} ms, delay {config.delay}"
    return name


def _config(text: str) -> DereverbConfig:
    """``TAPSxITERATIONS`` or ``TAPSxITERATIONS:SHIFT_MS:DELAY``, e.g. ``10x1`` or ``10x1:16:2``."""
    head, *frames = text.split(":")
    taps, _, iterations = head.partition("x")
    try:
        if frames:
            shift_ms, delay = frames
            return DereverbConfig(
                taps=int(taps),
                iterations=int(iterations),
                shift=float(shift_ms) / 1000,
                delay=int(delay),
            )
        return DereverbConfig(taps=int(taps), iterations=int(iterations))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected TAPSxITERATIONS such as 10x1, or TAPSxITERATIONS:SHIFT_MS:DELAY such as "
            f"10x1:16:2, got {text!r}"
        ) from err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_run", type=Path, help="an encoder cross-validation folder (fold1 ...)")
    p.add_argument("--variants", type=_config, nargs="+", default=[_config("10x1")])
    p.add_argument("--gate", action="store_true", help="the floor-SNR gate, not the variants")
    p.add_argument("--data", type=Path, help="shared data folder (as tools/robustness.py)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    ravdess, _ = scan(robustness._corpus_dir("RAVDESS_DIR", args.data, "ravdess-speech"))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.gate:
        results["gate"] = gate(args.cv_run, ravdess)
    else:
        results.update(trial(args.cv_run, args.variants, ravdess))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
