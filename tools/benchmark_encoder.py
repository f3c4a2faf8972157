"""Whisper encoder benchmark: the Keras model against its NumPy twin, as wall times a user sees.

    python tools/benchmark_encoder.py [--repeats 3] [--clips 64] [--only light|keras] [--out ...]

Compares :mod:`ser_cnn.encoder.whisper` (Keras, TensorFlow backend) with
:mod:`ser_cnn.encoder.light` (NumPy), both on the pinned weights, and writes
``results/benchmark_encoder.json``:

``cold``   one clip from a cold start: a new Python process imports the encoder, loads the
           weights, computes the log-mel of one example clip and encodes it; the process's wall
           time from spawn to exit, its peak resident memory and its own split of the time.
``warm``   milliseconds per ``encode([mel])`` of that clip, the median of 10 calls, in a process
           that has the encoder loaded.
``batch``  clips per second encoding ``--clips`` RAVDESS-length clips in one call, their
           log-mels computed before: clips of ``$RAVDESS_DIR`` when it is set (every n-th file,
           so every actor), else the five example clips repeated. With it the process's CPU
           seconds: less than threads × wall when other jobs held the cores.

Variants: NumPy with one thread, with two sharing the rows (the default) and with two BLAS
threads instead (``ser_cnn.encoder.light.SHARE_ROWS = False``); Keras as
``Encoder.encode`` runs it (eager), as a ``tf.function`` compiled for the batch's padded shape,
and that with XLA (``jit_compile``); compile times apart.

Every measurement runs ``--repeats`` times in rounds that alternate the encoders, each in a new
process, so that both see the same load on a shared machine; the median is reported, the best
run beside it (the least disturbed), and every run with the load average before it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
EXAMPLES = sorted((REPO / "examples").glob("03-*"))
COLD_CLIP = REPO / "examples" / "03-01-04-02-01-01-21.flac"  # the longest example: 4.2 s
ENCODERS = ("light", "keras")
TARGETS = {"cold_one_clip_s": 1.5, "batch_clips_per_s": 30.0}
NOTE = (
    "Measured on a development machine whose cores other jobs (training and encoding runs) "
    "shared at the same time: the load average before each run is recorded beside it, and the "
    "times are medians of the repeats, rough to tens of percent. CPU seconds below threads x "
    "wall mean the process waited for a core."
)

# -- what a new process runs --------------------------------------------------------------------

_COLD = {
    "light": (
        "from ser_cnn.encoder.light import LightEncoder\n"
        "from ser_cnn.features.logmel import whisper_log_mel\n",
        "encoder = LightEncoder.load()\n",
    ),
    "keras": (
        "from ser_cnn.encoder.whisper import load_encoder\n"
        "from ser_cnn.features.logmel import whisper_log_mel\n",
        "encoder = load_encoder()\n",
    ),
}
_COLD_CODE = """\
import time
t0 = time.perf_counter()
{imports}t1 = time.perf_counter()
{load}t2 = time.perf_counter()
mel = whisper_log_mel({clip!r})
t3 = time.perf_counter()
states = encoder.encode([mel])[0]
t4 = time.perf_counter()
import json, resource, sys
print(json.dumps({{
    "import_s": t1 - t0, "load_s": t2 - t1, "log_mel_s": t3 - t2, "encode_s": t4 - t3,
    "answer_s": t4 - t0, "frames": mel.shape[1], "states": list(states.shape),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tensorflow_imported": "tensorflow" in sys.modules,
}}))
"""


def cold(encoder: str) -> dict:
    """One cold one-clip answer in a new process: its wall time, memory and split."""
    imports, load = _COLD[encoder]
    code = _COLD_CODE.format(imports=imports, load=load, clip=str(COLD_CLIP))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"cold {encoder} run failed:\n{out.stderr[-3000:]}")
    return {"wall_s": wall, "load_before": load_before, **json.loads(out.stdout.splitlines()[-1])}


def warm(encoder: str, n_clips: int) -> dict:
    """One round of the warm measurements of ``encoder`` in a new process (``--worker``)."""
    load_before = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, __file__, "--worker", encoder, "--clips", str(n_clips)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if out.returncode:
        raise RuntimeError(f"warm {encoder} run failed:\n{out.stderr[-3000:]}")
    return {"load_before": load_before, **json.loads(out.stdout.splitlines()[-1])}


# -- the worker: warm measurements in one process -----------------------------------------------


def batch_paths(n: int) -> tuple[list[Path], str]:
    """``n`` clips: every n-th file of $RAVDESS_DIR when set, else the examples repeated."""
    data_dir = os.environ.get("RAVDESS_DIR")
    if data_dir:
        from ser_cnn.ravdess import find_audio

        files = find_audio(data_dir)
        if len(files) >= n:
            return files[:: len(files) // n][:n], f"$RAVDESS_DIR ({data_dir}), every n-th file"
    return [EXAMPLES[i % len(EXAMPLES)] for i in range(n)], "the five example clips, repeated"


def _timed(call) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def _per_call_ms(call, n: int = 10) -> float:
    call()
    return 1e3 * statistics.median(_timed(call)[0] for _ in range(n))


def _batch(call, n_clips: int) -> dict:
    call()  # first call apart: allocations, thread pools
    wall, cpu = _timed(call)
    return {"clips_per_s": n_clips / wall, "wall_s": wall, "cpu_s": cpu}


def worker(encoder: str, n_clips: int) -> dict:
    from ser_cnn.features.logmel import whisper_log_mel

    paths, _ = batch_paths(n_clips)
    mels = [whisper_log_mel(p) for p in paths]
    one = [whisper_log_mel(COLD_CLIP)]
    return (worker_light if encoder == "light" else worker_keras)(mels, one)


def worker_light(mels, one) -> dict:
    import ser_cnn.encoder.light as light

    encoder = light.LightEncoder.load()
    result = {}
    for name, threads, share_rows in (
        ("threads_1", 1, True),
        ("threads_2_rows", 2, True),
        ("threads_2_blas", 2, False),
    ):
        light.SHARE_ROWS, encoder.threads = share_rows, threads
        result[name] = {
            "batch": _batch(lambda: encoder.encode(mels), len(mels)),
            "one_clip_ms": _per_call_ms(lambda: encoder.encode(one)),
        }
    return result


def worker_keras(mels, one) -> dict:
    import numpy as np
    import tensorflow as tf

    from ser_cnn.encoder.light import LightEncoder
    from ser_cnn.encoder.whisper import load_encoder, pad_batch

    encoder = load_encoder()
    result = {
        "eager": {
            "batch": _batch(lambda: encoder.encode(mels), len(mels)),
            "one_clip_ms": _per_call_ms(lambda: encoder.encode(one)),
        }
    }
    for name, jit in (("tf_function", False), ("xla", True)):

        def compiled(batch, jit=jit):
            inputs = pad_batch(batch)
            spec = {
                "log_mel": tf.TensorSpec(inputs["log_mel"].shape, tf.float32),
                "lengths": tf.TensorSpec(inputs["lengths"].shape, tf.int32),
            }
            f = tf.function(
                lambda x: encoder.model(x, training=False), input_signature=[spec], jit_compile=jit
            )
            start = time.perf_counter()
            f(inputs)
            lengths = inputs["lengths"]

            def run():  # as Encoder.encode: each clip's own frames, as NumPy
                states = f(inputs).numpy()
                return [states[i, :, : (n + 1) // 2] for i, n in enumerate(lengths)]

            return run, time.perf_counter() - start

        run_batch, compile_batch = compiled(mels)
        run_one, compile_one = compiled(one)
        result[name] = {
            "batch": _batch(run_batch, len(mels)),
            "one_clip_ms": _per_call_ms(run_one),
            "compile_s": {"batch": compile_batch, "one_clip": compile_one},
        }
    ours = LightEncoder.load().encode(mels)  # the twin on the same clips, for the record
    theirs = encoder.encode(mels)
    result["numpy_vs_keras_max_abs_diff"] = max(
        float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True)
    )
    return result


# -- the report ---------------------------------------------------------------------------------


def machine() -> dict:
    import numpy as np
    from threadpoolctl import threadpool_info

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    blas = [  # NumPy's, and SciPy's when the features have loaded it
        {
            "of": Path(lib["filepath"]).parent.name.removesuffix(".libs"),
            **{k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")},
        }
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return {
        "cpu_cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "processor": model,
        "system": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "load_average_at_start": os.getloadavg(),
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def summarise(runs: dict, repeats: int, n_clips: int) -> dict:
    import soundfile

    from ser_cnn.versions import library_versions

    paths, source = batch_paths(n_clips)
    from ser_cnn.features.logmel import whisper_log_mel

    frames = [whisper_log_mel(p).shape[1] for p in sorted(set(paths))]
    result: dict = {
        "what": (
            "Whisper tiny.en encoder: Keras (ser_cnn.encoder.whisper, TensorFlow backend) against "
            "NumPy (ser_cnn.encoder.light); cold one-clip answer in a new process, warm ms per "
            "clip, clips/s on a batch"
        ),
        "note": NOTE,
        "targets": TARGETS,
        "cold_clip": {
            "path": str(COLD_CLIP.relative_to(REPO)),
            "duration_s": round(soundfile.info(COLD_CLIP).duration, 2),
        },
        "batch_clips": {
            "n": n_clips,
            "source": source,
            "log_mel_frames_of_distinct_clips": {
                "n": len(frames),
                "mean": round(statistics.fmean(frames), 1),
                "min": min(frames),
                "max": max(frames),
            },
        },
        "repeats": repeats,
        "cold_one_clip": {},
        "warm_one_clip_ms": {},
        "batch_clips_per_s": {},
        "batch_cpu_s": {},
    }
    for encoder, rounds in runs.get("cold", {}).items():
        result["cold_one_clip"][encoder] = {
            "wall_s": _median([r["wall_s"] for r in rounds]),
            "wall_s_best": round(min(r["wall_s"] for r in rounds), 4),  # the least disturbed
            "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in rounds)),
            "split_s": {
                k: _median([r[k] for r in rounds])
                for k in ("import_s", "load_s", "log_mel_s", "encode_s", "answer_s")
            },
            "log_mel_frames": rounds[0]["frames"],
            "tensorflow_imported": rounds[0]["tensorflow_imported"],
        }
    for encoder, rounds in runs.get("warm", {}).items():
        variants = [k for k, v in rounds[0].items() if isinstance(v, dict) and "batch" in v]
        for key, pick, best in (
            ("warm_one_clip_ms", lambda v: v["one_clip_ms"], min),
            ("batch_clips_per_s", lambda v: v["batch"]["clips_per_s"], max),
            ("batch_cpu_s", lambda v: v["batch"]["cpu_s"], min),
        ):
            digits = 1 if "ms" in key else 2
            result[key][encoder] = {
                name: {
                    "median": round(_median([pick(r[name]) for r in rounds]), digits),
                    "best": round(best(pick(r[name]) for r in rounds), digits),
                }
                for name in variants
            }
        if encoder == "keras":
            result["keras_compile_s"] = {
                name: {
                    k: round(statistics.median(r[name]["compile_s"][k] for r in rounds), 2)
                    for k in ("batch", "one_clip")
                }
                for name in ("tf_function", "xla")
            }
            result["numpy_vs_keras_max_abs_diff"] = max(
                r["numpy_vs_keras_max_abs_diff"] for r in rounds
            )
    result["machine"] = machine()
    result["versions"] = library_versions()
    result["all_runs"] = runs
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=64, help="clips in the batch")
    parser.add_argument("--only", choices=ENCODERS, help="measure one encoder only")
    parser.add_argument("--out", type=Path, default=RESULTS / "benchmark_encoder.json")
    parser.add_argument("--worker", choices=ENCODERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.clips)))
        return 0

    encoders = (args.only,) if args.only else ENCODERS
    runs: dict = {"cold": {e: [] for e in encoders}, "warm": {e: [] for e in encoders}}
    print(f"load average at start: {os.getloadavg()}")
    for r in range(args.repeats):
        for e in encoders:
            runs["cold"][e].append(cold(e))
            print(f"round {r + 1}: cold {e} {runs['cold'][e][-1]['wall_s']:.2f} s", flush=True)
        for e in encoders:
            runs["warm"][e].append(warm(e, args.clips))
            print(f"round {r + 1}: warm {e} done", flush=True)
    result = summarise(runs, args.repeats, args.clips)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("cold_one_clip", "warm_one_clip_ms", "batch_clips_per_s", "batch_cpu_s")
    print(json.dumps({k: result[k] for k in shown if k in result}, indent=2))
    print(f"written to {os.path.relpath(args.out, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
