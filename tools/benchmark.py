"""Benchmarks: wall times measured as a user sees them, written to results/ for the README.

    python tools/benchmark.py preprocess [--data-dir DIR]
    python tools/benchmark.py infer [--data-dir DIR] [--run DIR] [--runtime light|reference]
    python tools/benchmark.py augment [--cache DIR] [--cv results/cv_cnn_robust_dropout.json]

``preprocess`` times scripts/preprocess.py on the full RAVDESS set into a fresh cache with one
worker and with all cores, then the no-op re-run, each as a separate process (start-up included).

``infer`` times scripts/infer.py with the shipped model, once per runtime (``--runtime light``:
LiteRT and NumPy; ``reference``: TensorFlow's SavedModel and scikit-learn; see
ser_cnn/runtime.py): one clip from a cold start (a new process each time) for the CNN, the MLP
and both, the throughput on a folder of RAVDESS clips, and a one-hour recording; each with its
peak memory (maximum resident set size). The light runtime needs the run's light files
(``python -m ser_cnn.runtime RUN``).

``augment`` times the robust recipe's data work alone, without a model: making the degraded
copies of fold 1's training clips (one worker and all cores) and one epoch of the tf.data
pipeline that draws from them; it copies the training's seconds per epoch and six-fold wall time
from the cross-validation summary beside them.
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

import numpy as np

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


RUNTIMES = ("light", "reference")


def bench_infer(data_dir: Path, repeats: int, run_dir: Path, runtimes=RUNTIMES) -> dict:
    from ser_cnn.ravdess import find_audio
    from ser_cnn.run import LIGHT_FILES, model_folders

    clips = find_audio(data_dir)
    if not clips:
        raise SystemExit(f"no clips in {data_dir}")
    if "light" in runtimes:
        missing = [
            str(folder / LIGHT_FILES[kind])
            for kind, folder in model_folders(run_dir).items()
            if not (folder / LIGHT_FILES[kind]).is_file()
        ]
        if missing:
            raise SystemExit(
                f"no light files {missing}: run `python -m ser_cnn.runtime {run_dir}` first"
            )
    script = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--run", str(run_dir)]
    cold, cold_runs, folder, hour = {}, {}, {"clips": len(clips), "path": str(data_dir)}, {}
    for runtime in runtimes:
        infer = [*script, "--runtime", runtime]
        cold_runs[runtime] = {
            model: [_peak_rss_mb([*infer, "--model", model, str(clips[0])]) for _ in range(repeats)]
            for model in ("cnn", "mlp", "both")
        }
        cold[runtime] = {
            model: {
                "wall_s": round(min(w for w, _ in r), 2),
                "peak_rss_mb": round(max(m for _, m in r)),
            }
            for model, r in cold_runs[runtime].items()
        }
        folder[runtime] = {}
        for model in ("both", "cnn"):
            wall, rss = _peak_rss_mb([*infer, "--model", model, str(data_dir)])
            folder[runtime][model] = {
                "seconds": round(wall, 2),
                "clips_per_s": round(len(clips) / wall, 1),
                "peak_rss_mb": round(rss),
            }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "hour.wav")
        hour = _hour_long_file(path, clips)
        for runtime in runtimes:
            wall, rss = _peak_rss_mb([*script, "--runtime", runtime, "--format", "json", str(path)])
            hour[runtime] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss)}
    return {
        "what": "scripts/infer.py, wall times and peak resident memory of separate processes, "
        "per runtime (light: LiteRT CNN and NumPy MLP; reference: TensorFlow SavedModel and "
        "scikit-learn)",
        "run": os.path.relpath(run_dir, REPO),
        "repeats": repeats,
        "one_clip_cold": cold,
        "one_clip_cold_all_runs": cold_runs,  # [wall s, peak MB] per process
        "folder": folder,
        "hour_long_file": hour,
        "machine": machine(),
        "versions": library_versions(),
    }


def bench_augment(cache_dir: Path, cv_summary: Path, copies: int, n_clips: int) -> dict:
    from ser_cnn.audio import load_audio
    from ser_cnn.augment import degraded_copies, make_dataset
    from ser_cnn.config import load_config
    from ser_cnn.preprocess import load_cache
    from ser_cnn.ravdess import labels_of, select, split

    manifest, features, feature_config = load_cache(cache_dir)
    train = select(manifest, split(1).train)
    rows = manifest[train].iloc[:n_clips]
    audio = [load_audio(p, target_sr=feature_config.sample_rate) for p in rows["path"]]
    speakers = rows["actor"].to_numpy()
    made = {}
    for jobs in (1, os.cpu_count() or 1):
        start = time.perf_counter()
        degraded_copies(audio, speakers, feature_config, copies=copies, seed=0, jobs=jobs)
        made[f"{jobs}_workers_ms_per_copy"] = round(
            1000 * (time.perf_counter() - start) / (len(audio) * copies), 1
        )
    x, y = features[train], labels_of(manifest)[train]
    fake = np.repeat(x[:, None], copies, axis=1)  # the pipeline's cost does not depend on values
    config = load_config(REPO / "configs" / "robust.toml")
    dataset = make_dataset(x, y, 8, config, training=True, copies=fake)
    start = time.perf_counter()
    for _ in dataset:
        pass
    pipeline_s = time.perf_counter() - start
    summary = json.loads(cv_summary.read_text()) if cv_summary.is_file() else {}
    return {
        "what": "the robust recipe's data work without a model: degraded copies of fold 1's "
        "training clips (audio already decoded) and one epoch of the tf.data pipeline",
        "degraded_copies": {"clips": len(audio), "copies": copies, **made},
        "pipeline_epoch": {
            "clips": len(x),
            "seconds": round(pipeline_s, 2),
            "clips_per_s": round(len(x) / pipeline_s),
        },
        "training": {"from": os.path.relpath(cv_summary, REPO), **summary.get("cost", {})},
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
    q.add_argument("--run", type=Path, default=REPO / "checkpoints" / "ravdess_fold1")
    q.add_argument(
        "--runtime", choices=RUNTIMES, action="append", help="only this runtime (both by default)"
    )
    q.add_argument("--out", type=Path, default=RESULTS / "benchmark_infer.json")
    a = sub.add_parser("augment", help="time the robust recipe's data work")
    a.add_argument("--cache", type=Path, default=REPO / "data" / "processed")
    a.add_argument("--cv", type=Path, default=RESULTS / "cv_cnn_robust_dropout.json")
    a.add_argument("--copies", type=int, default=2)
    a.add_argument("--clips", type=int, default=200, help="training clips to degrade")
    args = parser.parse_args(argv)

    RESULTS.mkdir(exist_ok=True)
    if args.what == "preprocess":
        result = bench_preprocess(resolve_data_dir(args.data_dir), args.repeats)
        out = RESULTS / "benchmark_preprocess.json"
    elif args.what == "infer":
        result = bench_infer(
            resolve_data_dir(args.data_dir),
            args.repeats,
            args.run.resolve(),
            tuple(args.runtime or RUNTIMES),
        )
        out = args.out.resolve()
    else:
        result = bench_augment(args.cache, args.cv.resolve(), args.copies, args.clips)
        out = RESULTS / "benchmark_augment.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("all_runs", "versions")}, indent=2)
    )
    print(f"written to {os.path.relpath(out, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
