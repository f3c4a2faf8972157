"""Benchmarks: wall times measured as a user sees them, written to results/ for the README.

    python scripts/benchmark.py preprocess [--data-dir DIR]

``preprocess`` times scripts/preprocess.py on the full RAVDESS set into a fresh cache with one
worker and with all cores, then the no-op re-run, each as a separate process (start-up included).
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

from ser_cnn.data import resolve_data_dir
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("preprocess", help="time preprocessing of the full set")
    p.add_argument("--data-dir", default=None, help="RAVDESS folder ($RAVDESS_DIR)")
    p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    RESULTS.mkdir(exist_ok=True)
    if args.what == "preprocess":
        result = bench_preprocess(resolve_data_dir(args.data_dir), args.repeats)
        out = RESULTS / "benchmark_preprocess.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("all_runs", "versions")}, indent=2)
    )
    print(f"written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
