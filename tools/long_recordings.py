"""Long recordings with pauses: does leaving room-tone windows out of the answer help?

    python tools/long_recordings.py [RUN] [--data ../shared/data] [--out FILE]

RUN is a run folder (default: the shipped model) or a cross-validation folder of them
(``fold1/`` ...). For each run, each of its test actors and each emotion, that actor's RAVDESS
clips of the emotion are joined into one recording with ``GAP`` s of silence between them and
room tone (pink noise) is added throughout, at each of ``TONE_SNR_DB`` below the speech: a
monologue with pauses, half a minute to a minute long, cut into 3 s windows. Its overall
answer (``Recognizer.predict``: the windows with speech averaged) is compared with the mean
of *every* voiced window, the rule before room-tone windows were left out, each window scored
on its own through the same public API. Recordings are pooled over the runs; the CNN's raw
(uncalibrated) output is scored.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from robustness import fold_runs, split_actors  # tools/robustness.py, beside this file

from ser_cnn.audio.degrade import add_noise
from ser_cnn.audio.io import SAMPLE_RATE, check_window_hop, is_voiced, load_audio, windows
from ser_cnn.ravdess import EMOTIONS, scan
from ser_cnn.serving.inference import DEFAULT_RUN, load_recognizer
from ser_cnn.training.metrics import evaluate
from ser_cnn.versions import git_commit, library_versions

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
GAP = 4.0  # s of pause between two clips
TONE_SNR_DB = (30.0, 15.0)  # dB over active speech: a quiet room, a noisy one
SEED = 0


def monologues(clips, actors: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """(emotion, samples) for each actor and emotion: the clips joined with GAP s pauses."""
    pause = np.zeros(round(GAP * SAMPLE_RATE), dtype=np.float32)
    out = []
    for actor in actors:
        for emotion in EMOTIONS:
            paths = [c.path for c in clips if c.actor == actor and c.emotion == emotion]
            parts = [part for path in paths for part in (load_audio(path), pause)][:-1]
            out.append((emotion, np.concatenate(parts)))
    return out


def score(runs: dict[str, Path], data: Path) -> dict:
    """For each room-tone level: accuracy, UAR and macro-F1 of both rules, each run on its test
    actors' recordings, pooled over the runs."""
    clips, _ = scan(data / "ravdess-speech")
    rngs = {snr: np.random.default_rng(SEED) for snr in TONE_SNR_DB}  # one stream per level
    tally = {snr: {"truth": [], "new": [], "old": [], "kept": 0, "total": 0} for snr in TONE_SNR_DB}
    for run in runs.values():
        rec = load_recognizer(run, models=["cnn"], calibrated=False)
        window, hop = check_window_hop(rec.window)
        recordings = monologues(clips, split_actors(run))
        for snr, t in tally.items():
            for emotion, y in recordings:
                y = add_noise(y, SAMPLE_RATE, snr_db=snr, kind="pink", rng=rngs[snr])
                p = rec.predict(y, sr=SAMPLE_RATE)
                every = [
                    list(rec.predict(w, sr=SAMPLE_RATE).probabilities.values())
                    for _, w in windows(iter([y]), SAMPLE_RATE, window=window, hop=hop)
                    if is_voiced(w)
                ]
                t["truth"].append(rec.labels.index(emotion))
                t["new"].append(rec.labels.index(p.emotion))
                t["old"].append(int(np.argmax(np.mean(every, axis=0))))
                t["kept"] += sum(not w.silent for w in p.windows)
                t["total"] += len(p.windows)
    return {f"{snr:g}": _summary(t, rec.labels) for snr, t in tally.items()}


def _summary(t: dict, labels: tuple[str, ...]) -> dict:
    def scores(predicted):
        s = evaluate(np.array(t["truth"]), np.array(predicted), labels)
        return {k: round(s[k], 3) for k in ("accuracy", "uar", "macro_f1")}

    return {
        "recordings": len(t["truth"]),
        "windows_with_speech": round(t["kept"] / t["total"], 3),
        "speech_windows_averaged": scores(t["new"]),
        "every_window_averaged": scores(t["old"]),
        "answers_changed": round(float(np.mean(np.array(t["new"]) != np.array(t["old"]))), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "long_recordings.json")
    args = parser.parse_args(argv)
    runs = fold_runs(args.run)
    result = {
        "what": " ".join(__doc__.split("\n\n")[2].split()),
        "run": str(args.run.resolve().relative_to(REPO)),
        "test_actors": sorted(a for run in runs.values() for a in split_actors(run)),
        "gap_s": GAP,
        "by_tone_snr_db": score(runs, args.data),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["by_tone_snr_db"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
