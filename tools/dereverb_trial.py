"""Would dereverberation help the encoder in a hall? Weighted prediction error on validation actors.

    pip install nara-wpe==0.0.11     # the trial's own dependency (not ser_cnn's)
    python tools/dereverb_trial.py CV_RUN [--taps 10 20]

Every fold run of ``CV_RUN`` (an encoder cross-validation folder) answers its own validation
actors' clips clean and in the robustness benchmark's two rooms (the same seeds as
``tools/robustness.py``), as recorded and dereverberated by single-channel WPE (nara_wpe's
``wpe``, Yoshioka and Nakatani 2012: each frequency's late reverberation predicted from the
frames ``DELAY`` and more before it and taken away; ``--taps`` frames of prediction). Also
recorded: how much energy WPE takes away (dB), the quantity a gate would read. All of it on
validation actors, never on test actors. Writes ``results/dereverb_trial.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import denoise_trial  # tools/denoise_trial.py, beside this file: its clips and conditions
import numpy as np
import robustness

from ser_cnn.audio.io import SAMPLE_RATE
from ser_cnn.ravdess import scan

OUT = robustness.REPO / "results" / "dereverb_trial.json"
CONDITIONS = ("clean", "reverb 0.3 s", "reverb 0.8 s")
# STFT of 32 ms every 8 ms at 16 kHz and a 24 ms guard before the prediction (nara_wpe's
# 16 kHz example), its function's default three iterations
FRAME, SHIFT, DELAY, ITERATIONS = 512, 128, 3, 3


def dereverberate(y: np.ndarray, *, taps: int) -> np.ndarray:
    """``y`` with its late reverberation taken away by WPE, the same length, float32."""
    from nara_wpe.utils import istft, stft
    from nara_wpe.wpe import wpe

    spectrum = stft(y[None].astype(np.float64), size=FRAME, shift=SHIFT).transpose(2, 0, 1)
    clean = wpe(spectrum, taps=taps, delay=DELAY, iterations=ITERATIONS, statistics_mode="full")
    out = istft(clean.transpose(1, 2, 0), size=FRAME, shift=SHIFT)[0][: len(y)]
    return np.pad(out, (0, len(y) - len(out))).astype(np.float32)


def removed_db(y: np.ndarray, out: np.ndarray) -> float:
    """Energy taken away, in dB."""
    return float(10 * np.log10(np.sum(np.square(y, dtype=np.float64)) / np.sum(np.square(out))))


def trial(cv_run: Path, taps: list[int], ravdess) -> dict:
    import ser_cnn

    variants = [None, *taps]
    per_fold, removed, seconds = {}, {}, {t: [] for t in taps}
    for fold, run_dir in robustness.fold_runs(cv_run).items():
        rec = ser_cnn.load_recognizer(run_dir, calibrated=False)
        clips, emotions, pool = denoise_trial.fold_clips(run_dir, "validation", ravdess)
        for name in CONDITIONS:
            heard = denoise_trial.degraded(name, clips, pool)
            for t in variants:
                key, versions = f"{name}, {_variant(t)}", heard
                if t is not None:
                    started = time.perf_counter()
                    versions = [dereverberate(y, taps=t) for y in heard]
                    seconds[t].append((time.perf_counter() - started) / len(heard))
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
            "package": "nara-wpe",
            "version": version("nara-wpe"),
            "frame": FRAME,
            "shift": SHIFT,
            "delay": DELAY,
            "iterations": ITERATIONS,
        },
        "accuracy": {k: round(accuracy(k), 4) for k in per_fold},
        "gain": {
            f"{n}, {_variant(t)}": round(
                accuracy(f"{n}, {_variant(t)}") - accuracy(f"{n}, {_variant(None)}"), 4
            )
            for n in CONDITIONS
            for t in taps
        },
        "removed_db": {
            k: {f"p{q}": round(float(np.percentile(v, q)), 2) for q in (10, 50, 90)}
            for k, v in removed.items()
        },
        "seconds_per_clip": {_variant(t): round(float(np.mean(s)), 3) for t, s in seconds.items()},
        "per_fold": per_fold,
    }


def _variant(taps: int | None) -> str:
    return "as recorded" if taps is None else f"WPE, {taps} taps"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_run", type=Path, help="an encoder cross-validation folder (fold1 ...)")
    p.add_argument("--taps", type=int, nargs="+", default=[10, 20])
    p.add_argument("--data", type=Path, help="shared data folder (as tools/robustness.py)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if importlib.util.find_spec("nara_wpe") is None:  # before the scoring, not after it
        p.error("the trial needs nara-wpe: pip install nara-wpe==0.0.11")
    ravdess, _ = scan(robustness._corpus_dir("RAVDESS_DIR", args.data, "ravdess-speech"))
    args.out.write_text(json.dumps(trial(args.cv_run, args.taps, ravdess), indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
