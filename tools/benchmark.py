"""Benchmarks: wall times measured as a user sees them, written to results/ for the README.

    python tools/benchmark.py preprocess [--data-dir DIR]
    python tools/benchmark.py infer [--data-dir DIR]

``preprocess`` times scripts/preprocess.py on the full RAVDESS set into a fresh cache with one
worker and with all cores, then the no-op re-run, each as a separate process (start-up included).

``infer`` times scripts/infer.py with the shipped model: one clip from a cold start (a new
process each time), the throughput on a folder of RAVDESS clips, and the peak memory (maximum
resident set size) on a one-hour recording.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ser_cnn.ravdess import resolve_data_dir
from ser_cnn.versions import library_versions

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def machine() -> dict:
    return {
        "cpu_cores": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "system": platform.platform(),
    }


def bench_preprocess(data_dir: Path, repeats: int) -> dict:
    script = [sys.executable, str(REPO / "scripts" / "preprocess.py"), "--data-dir", str(data_dir)]
    runs: dict[str, list[float]] = {"one_core_s": [], "all_cores_s": [], "no_op_rerun_s": []}
    n_clips = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            one, full = Path(tmp, "one"), Path(tmp, "all")
            runs["one_core_s"].append(
                _timed([*script, "--out", str(one), "--jobs", "1", "--quiet"])
            )
            runs["all_cores_s"].append(_timed([*script, "--out", str(full), "--quiet"]))
            runs["no_op_rerun_s"].append(_timed([*script, "--out", str(full), "--quiet"]))
            n_clips = sum(1 for _ in (full / "features").glob("*.npy"))
    best = {k: round(min(v), 2) for k, v in runs.items()}  # least disturbed of the repeats
    return {
        "what": "scripts/preprocess.py wall time, separate process, start-up included",
        "clips": n_clips,
        **best,
        "clips_per_s_one_core": round(n_clips / best["one_core_s"], 1),
        "clips_per_s_all_cores": round(n_clips / best["all_cores_s"], 1),
        "repeats": repeats,
        "all_runs": runs,
        "machine": machine(),
        "versions": library_versions(),
    }


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process."""
    code = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps([wall, rss]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True)
    wall, rss = json.loads(out.stdout)
    return wall, rss


def _hour_long_file(path: Path, clips: list[Path], seconds: float = 3600.0) -> dict:
    """Write a one-hour 44.1 kHz mono WAV of RAVDESS clips with pauses, block by block."""
    import numpy as np
    import soundfile as sf

    from ser_cnn.audio import load_audio

    sr = 44_100
    pieces = [load_audio(c, target_sr=sr) for c in clips[:20]]
    pause = np.zeros(sr // 2, dtype=np.float32)
    written, i = 0, 0
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        while written < seconds * sr:
            block = np.concatenate([pieces[i % len(pieces)], pause])[: int(seconds * sr) - written]
            f.write(block)
            written += len(block)
            i += 1
    return {"seconds": written / sr, "sample_rate": sr, "bytes": path.stat().st_size}


def bench_infer(data_dir: Path, repeats: int) -> dict:
    from ser_cnn.ravdess import find_audio

    clips = find_audio(data_dir)
    if not clips:
        raise SystemExit(f"no clips in {data_dir}")
    infer = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet"]
    cold = {
        model: [_timed([*infer, "--model", model, str(clips[0])]) for _ in range(repeats)]
        for model in ("both", "cnn")
    }
    folder = {}
    for model in ("both", "cnn"):
        wall = min(_timed([*infer, "--model", model, str(data_dir)]) for _ in range(1))
        folder[model] = {"seconds": round(wall, 2), "clips_per_s": round(len(clips) / wall, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp, "hour.wav")
        made = _hour_long_file(hour, clips)
        wall, rss = _peak_rss_mb([*infer, "--format", "json", str(hour)])
    return {
        "what": "scripts/infer.py with the shipped model, wall times of separate processes",
        "one_clip_cold_s": {m: round(min(v), 2) for m, v in cold.items()},
        "one_clip_cold_all_runs_s": cold,
        "folder": {"clips": len(clips), "path": str(data_dir), **folder},
        "hour_long_file": {**made, "wall_s": round(wall, 1), "peak_rss_mb": round(rss)},
        "machine": machine(),
        "versions": library_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("preprocess", help="time preprocessing of the full set")
    p.add_argument("--data-dir", default=None, help="RAVDESS folder ($RAVDESS_DIR)")
    p.add_argument("--repeats", type=int, default=3)
    q = sub.add_parser("infer", help="time inference with the shipped model")
    q.add_argument("--data-dir", default=None, help="folder of clips ($RAVDESS_DIR)")
    q.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    RESULTS.mkdir(exist_ok=True)
    if args.what == "preprocess":
        result = bench_preprocess(resolve_data_dir(args.data_dir), args.repeats)
        out = RESULTS / "benchmark_preprocess.json"
    else:
        result = bench_infer(resolve_data_dir(args.data_dir), args.repeats)
        out = RESULTS / "benchmark_infer.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("all_runs", "versions")}, indent=2)
    )
    print(f"written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
