"""Benchmarks: wall times measured as a user sees them, written to results/ for the README.

    python tools/benchmark.py preprocess [--data-dir DIR]
    python tools/benchmark.py infer [--data-dir DIR] [--run DIR] [--runtime light|reference]
    python tools/benchmark.py augment [--cache DIR] [--cv results/cv_cnn_robust_dropout.json]
    python tools/benchmark.py live [--hop 0.5] [--run DIR] [--speech-rule [--data-dir DIR]]
    python tools/benchmark.py scale [--data-dir DIR] [--run DIR]

``preprocess`` times scripts/preprocess.py on the full RAVDESS set into a fresh cache with one
worker and with all cores, then the no-op re-run, each as a separate process (start-up included).

``infer`` times scripts/infer.py with the shipped model, once per runtime (``--runtime light``:
LiteRT and NumPy; ``reference``: TensorFlow's SavedModel and scikit-learn; see
ser_cnn/serving/runtime.py): one clip from a cold start (a new process each time) for each choice of
``--model`` (COLD_MODELS), the throughput on a folder of RAVDESS clips (FOLDER_MODELS), and a
one-hour recording; each with its peak memory (maximum resident set size). The light runtime
needs the run's light files (``python -m ser_cnn.serving.runtime RUN``).

``scale`` times scoring a folder of clips (the light runtime, every file a row): ``ser-cnn infer
--format csv`` in one process with LiteRT's interpreter on one thread and on every core
(``ser_cnn.serving.runtime.LITERT_THREADS``), for all the run's models and for the CNN alone; then
``--engine ray`` on a local Ray cluster and on a two-node cluster on 127.0.0.1 (one CPU each),
start-up included, and the start-up alone (one clip). It writes the key ``scale`` of
``results/benchmark_infer.json`` and keeps the file's other keys.

``live`` plays a recording in real time through ``ser-cnn listen``'s stream
(ser_cnn/serving/live.py, blocks of ``BLOCK`` s as from a microphone, the light runtime) and times
each update from the end of its window's audio (when its last sample would have been spoken) to its
line written, for the CNN alone and for every model of the run, from a 16 kHz file and a 48 kHz one
(a microphone's usual rate, resampled as it streams). ``--speech-rule`` also counts, on the
monologues of tools/long_recordings.py (RAVDESS), the windows whose live verdict (the recording
so far) differs from the file's (the whole recording). It writes the key ``live`` of
``results/benchmark_infer.json`` and keeps the file's other keys.

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

    from ser_cnn.audio.io import load_audio

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
# `--model` choices of `ser-cnn infer` timed: "all" is the shipped answer (encoder, CNN, MLP),
# "both" the CNN and the MLP (the shipped model before the encoder, for comparison)
COLD_MODELS = ("all", "encoder", "cnn", "mlp", "both")
FOLDER_MODELS = ("all", "both", "cnn")


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
                f"no light files {missing}: run `python -m ser_cnn.serving.runtime {run_dir}` first"
            )
    script = [sys.executable, str(REPO / "scripts" / "infer.py"), "--quiet", "--run", str(run_dir)]
    cold, cold_runs, folder, hour = {}, {}, {"clips": len(clips), "path": str(data_dir)}, {}
    for runtime in runtimes:
        infer = [*script, "--runtime", runtime]
        cold_runs[runtime] = {
            model: [_peak_rss_mb([*infer, "--model", model, str(clips[0])]) for _ in range(repeats)]
            for model in COLD_MODELS
        }
        cold[runtime] = {
            model: {
                "wall_s": round(min(w for w, _ in r), 2),
                "peak_rss_mb": round(max(m for _, m in r)),
            }
            for model, r in cold_runs[runtime].items()
        }
        folder[runtime] = {}
        for model in FOLDER_MODELS:
            wall, rss = _peak_rss_mb([*infer, "--model", model, str(data_dir)])
            folder[runtime][model] = {
                "seconds": round(wall, 2),
                "clips_per_s": round(len(clips) / wall, 1),
                "peak_rss_mb": round(rss),
            }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "hour.wav")
        hour = {**_hour_long_file(path, clips), "model": "all"}  # infer's default models
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


# a child `ser-cnn infer` with LiteRT's interpreter on argv[1] threads (ser_cnn.serving.runtime)
_INFER_WITH_LITERT_THREADS = (
    "import sys\n"
    "import ser_cnn.serving.runtime as runtime\n"
    "runtime.LITERT_THREADS = int(sys.argv[1])\n"
    "from ser_cnn.cli.infer import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _folder_run(cmd: list[str], n: int, env: dict | None = None) -> dict:
    """Wall time, clips/s and the load average before, of one child process."""
    load = os.getloadavg()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    return {
        "seconds": round(wall, 2),
        "clips_per_s": round(n / wall, 1),
        "loadavg_before": [round(x, 2) for x in load],
    }


def bench_scale(data_dir: Path, repeats: int, run_dir: Path) -> dict:
    from ser_cnn.ravdess import find_audio
    from ser_cnn.scale import local_cluster
    from ser_cnn.serving.runtime import LITERT_THREADS

    clips = find_audio(data_dir)
    if not clips:
        raise SystemExit(f"no clips in {data_dir}")
    cores = os.cpu_count() or 1
    rows = ["--format", "csv", "--quiet", "--runtime", "light", "--run", str(run_dir)]
    settings = {"litert_1_thread": 1, "litert_every_core": cores}  # its interpreter's threads
    runs: dict = {m: {k: [] for k in settings} for m in ("all", "cnn")}
    for _ in range(repeats):  # interleaved, so a busy spell touches both settings
        for model in runs:
            for name, threads in settings.items():
                child = [sys.executable, "-c", _INFER_WITH_LITERT_THREADS, str(threads)]
                cmd = [*child, *rows, "--model", model, str(data_dir)]
                runs[model][name].append(_folder_run(cmd, len(clips)))
    one_process = {
        model: {name: min(r, key=lambda x: x["seconds"]) for name, r in by.items()}
        for model, by in runs.items()
    }
    infer = [sys.executable, str(REPO / "scripts" / "infer.py")]
    ray: dict = {}
    with tempfile.TemporaryDirectory() as tmp:

        def engine(key: str, extra: list[str], env: dict | None = None) -> None:
            base = [*infer, "--engine", "ray", "--quiet", "--run", str(run_dir), *extra]
            out = Path(tmp, f"{key}.parquet")
            start = _folder_run([*base, "--out", str(out), str(clips[0])], 1, env)
            out.unlink()
            run = _folder_run([*base, "--out", str(out), str(data_dir)], len(clips), env)
            work = run["seconds"] - start["seconds"]
            ray[key] = {
                **run,
                "startup_s": start["seconds"],
                "clips_per_s_after_startup": round(len(clips) / work, 1),
            }

        engine("local", [])
        with local_cluster(nodes=2, cpus=1) as (address, env):
            engine("two_nodes", ["--address", address], {**os.environ, **env})
    return {
        "what": "ser-cnn infer --format csv --runtime light on a folder, every model of the run "
        "(all) and the CNN alone, one process (features and the encoder on every core, one BLAS "
        "thread each): LiteRT's interpreter on one thread and on every core, best of the "
        "repeats; and "
        "--engine ray (all models, one single-threaded actor per CPU), on a local cluster "
        "(every core) and on two node processes on 127.0.0.1 with one CPU each, start-up "
        "included (startup_s: the same command on one clip)",
        "clips": len(clips),
        "path": os.path.relpath(data_dir, REPO),
        "litert_threads": settings,
        "litert_threads_chosen": LITERT_THREADS or "every core (the Recognizer's threads)",
        "one_process": one_process,
        "one_process_all_runs": runs,
        "ray": ray,
        "machine": machine(),
        "versions": {**library_versions(), "ray": _version("ray")},
    }


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


LIVE_MODELS = {"cnn": ("cnn",), "all": None}  # `ser-cnn listen --model cnn`, and its default
LIVE_RATES = (16_000, 48_000)  # Hz: the models' own rate, and a microphone's usual one
LIVE_SECONDS = 40.0  # s of recording played per setting, at least (updates every hop)


def _live_recording(path: Path, sr: int) -> float:
    """Write the five example clips with 1 s pauses and room tone (-60 dBFS), again and again
    for at least LIVE_SECONDS, as 16-bit WAV at ``sr``; its seconds."""
    from ser_cnn.audio.io import load_audio

    rng = np.random.default_rng(0)
    parts = []
    for clip in sorted((REPO / "examples").glob("03-*")):
        parts += [load_audio(clip), np.zeros(16_000, np.float32)]
    y = np.concatenate(parts)
    y = np.tile(y, int(np.ceil(LIVE_SECONDS * 16_000 / len(y))))
    y = (y + 1e-3 * rng.standard_normal(len(y))).astype(np.float32)
    import soundfile as sf

    sf.write(path, load_audio(y, sr=16_000, target_sr=sr), sr, subtype="PCM_16")
    return len(y) / 16_000


def _live_latency(rec, path: Path, hop: float) -> dict:
    """Play ``path`` in real time through a LiveStream; each update's latency and compute."""
    from ser_cnn.cli.listen import line
    from ser_cnn.serving.live import LiveStream, play

    stream = LiveStream(rec, hop=hop)
    latency, compute = [], []
    with Path(os.devnull).open("w") as screen:
        start = time.monotonic()
        for y in play(path, sr=rec.sample_rate, start=start):
            pushed = time.monotonic()
            updates = stream.push(y, rec.sample_rate)
            for u in updates:
                screen.write(line(u, rec.models) + "\n")
                screen.flush()
                latency.append(time.monotonic() - (start + u.end))
            if updates:
                compute.append((time.monotonic() - pushed) / len(updates))
        stream.close()
    ms = lambda v, q: round(1000 * float(np.percentile(v, q)), 1)  # noqa: E731
    return {
        "updates": len(latency),
        "latency_ms": {"median": ms(latency, 50), "p95": ms(latency, 95), "max": ms(latency, 100)},
        "compute_ms": {"median": ms(compute, 50), "p95": ms(compute, 95)},
    }


def _speech_rule_check(run_dir: Path, data_dir: Path, hop: float) -> dict:
    """Windows of tools/long_recordings.py's monologues (every actor and emotion, both room
    tones) whose verdict differs between the live rule and the file's, and the recordings."""
    sys.path.insert(0, str(REPO / "tools"))
    from long_recordings import SEED, TONE_SNR_DB, monologues

    from ser_cnn.audio.degrade import add_noise
    from ser_cnn.audio.io import SAMPLE_RATE, is_voiced, windows
    from ser_cnn.ravdess import ACTORS, scan
    from ser_cnn.serving.inference import load_recognizer

    rec = load_recognizer(run_dir, models=("cnn",), runtime="light")  # only its speech rule
    clips, _ = scan(data_dir)
    recordings = monologues(clips, tuple(ACTORS))
    out = {}
    for snr in TONE_SNR_DB:
        rng = np.random.default_rng(SEED)
        n = differ = touched = 0
        for _, y in recordings:
            y = add_noise(y, SAMPLE_RATE, snr_db=snr, kind="pink", rng=rng)
            cut = windows(iter([y]), SAMPLE_RATE, window=rec.window, hop=hop)
            levels = {t: rec._levels(w) for t, w in cut if is_voiced(w)}
            whole = rec._speech_windows(levels)
            seen, live = [], set()
            for t, v in levels.items():
                seen.append(v)
                if rec._is_speech(v, np.concatenate(seen, axis=1)):
                    live.add(t)
            n += len(levels)
            differ += len(whole ^ live)
            touched += whole != live
        out[f"{snr:g}"] = {
            "recordings": len(recordings),
            "recordings_with_a_difference": touched,
            "voiced_windows": n,
            "windows_judged_otherwise": differ,
            "share": round(differ / n, 4),
        }
    return {"hop_s": hop, "by_tone_snr_db": out}


def bench_live(hop: float, run_dir: Path, speech_rule_data: Path | None) -> dict:
    from ser_cnn.serving.inference import load_recognizer
    from ser_cnn.serving.live import BLOCK

    load = os.getloadavg()
    by_rate: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sr in LIVE_RATES:
            path = Path(tmp, f"talk_{sr}.wav")
            seconds = _live_recording(path, sr)
            by_rate[f"{sr}"] = {"seconds": round(seconds, 1)}
            for name, models in LIVE_MODELS.items():
                rec = load_recognizer(run_dir, models=models, runtime="light")
                by_rate[f"{sr}"][name] = {
                    "models": list(rec.models),
                    **_live_latency(rec, path, hop),
                }
    result = {
        "what": "ser-cnn listen's stream (ser_cnn/serving/live.py), light runtime, one process: a "
        f"recording played in real time in blocks of {BLOCK:g} s; latency: from the end of each "
        "window's audio (when its last sample would have been spoken) to its line written; "
        "compute: the stream's time per update (features, models, speech rule); per sample "
        "rate of the file (48 kHz is resampled as it streams) and per models (cnn: the CNN "
        "alone; all: every model of the run)",
        "run": os.path.relpath(run_dir, REPO),
        "hop_s": hop,
        "window_s": 3.0,
        "block_s": BLOCK,
        "loadavg_before": [round(x, 2) for x in load],
        "by_sample_rate": by_rate,
        "machine": machine(),
        "versions": library_versions(),
    }
    if speech_rule_data is not None:
        result["speech_rule"] = _speech_rule_check(run_dir, speech_rule_data, hop)
    return result


def bench_augment(cache_dir: Path, cv_summary: Path, copies: int, n_clips: int) -> dict:
    from ser_cnn.audio.io import load_audio
    from ser_cnn.config import load_config
    from ser_cnn.features.cache import degraded_copies, load_cache
    from ser_cnn.ravdess import labels_of, select, split
    from ser_cnn.training.augment import make_dataset

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
    s = sub.add_parser("scale", help="time thread settings and the Ray engine on a folder")
    s.add_argument("--data-dir", default=None, help="folder of clips ($RAVDESS_DIR)")
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument("--run", type=Path, default=REPO / "checkpoints" / "ravdess_fold1")
    v = sub.add_parser("live", help="time ser-cnn listen's updates, played in real time")
    v.add_argument("--hop", type=float, default=0.5, help="seconds between updates (0.5)")
    v.add_argument("--run", type=Path, default=REPO / "checkpoints" / "ravdess_fold1")
    v.add_argument(
        "--speech-rule", action="store_true", help="also compare the live and file speech rules"
    )
    v.add_argument("--data-dir", default=None, help="RAVDESS, for --speech-rule ($RAVDESS_DIR)")
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
        old = json.loads(out.read_text()) if out.is_file() else {}
        result = {**old, **result}  # keys of other benchmarks (scale) stay
    elif args.what == "scale":
        scale = bench_scale(resolve_data_dir(args.data_dir), args.repeats, args.run.resolve())
        out = RESULTS / "benchmark_infer.json"
        result = json.loads(out.read_text()) if out.is_file() else {}
        result["scale"] = scale  # this key only: the file's others are infer's
    elif args.what == "live":
        data = resolve_data_dir(args.data_dir) if args.speech_rule else None
        live = bench_live(args.hop, args.run.resolve(), data)
        out = RESULTS / "benchmark_infer.json"
        result = json.loads(out.read_text()) if out.is_file() else {}
        result["live"] = live  # this key only: the file's others are other benchmarks'
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
