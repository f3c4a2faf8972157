"""Load test of the web app: many clients at once upload a clip through the Gradio API.

    python tools/load_app.py                                  # 4, 32 and 100 clients
    python tools/load_app.py --clients 8 --budget 60 --no-write

Starts ``ser-cnn app`` on 127.0.0.1 (a free port) in a process of its own, then for each number
of clients: connects that many ``gradio_client`` Clients (not timed; each its own session, as
browsers would be), releases them at once, and measures each one's wait from its request (the
upload included) to its answer, or to the app's refusal when its queue is full. Each level is
bounded in time (``--budget`` seconds); a client still waiting then counts as timed out. Answers
per second are the answers over the time from the release to the last answer. It writes the
figures under the ``app`` key of ``results/benchmark_infer.json``, as its ``--entry`` (the
file's other keys and entries are kept), with the load average before it started. The clients
run on the same machine as the app, so their own work is in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "03-01-05-02-01-01-11.flac"  # 3.5 s, angry
CLIENTS = (4, 32, 100)
BUDGET_S = 300.0  # most seconds one level of clients may take
START_S = 300.0  # most seconds the app may take to start (the first start compiles caches)
API_NAME = "/analyse"  # the app's upload endpoint (ser_cnn.serving.app.build_app)
# "hears **angry** (0.96)" and "CNN: angry (0.61)" in the verdict's Markdown
VERDICT = re.compile(
    r"(?:The (.+?) hears \*\*(\w+)\*\* \(([\d.]+)\)|^(.+?): (\w+) \(([\d.]+)\))", re.M
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(app_args: list[str], log_path: Path, *, timeout: float = START_S) -> Iterator[str]:
    """``ser-cnn app APP_ARGS`` on a free port of 127.0.0.1 until the block ends; its URL.

    Its output goes to ``log_path``, uploads to a temporary folder beside it.
    """
    port = free_port()
    env = dict(
        os.environ,
        GRADIO_TEMP_DIR=str(log_path.parent / "uploads"),
        TF_CPP_MIN_LOG_LEVEL="3",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    code = "from ser_cnn.cli import main; raise SystemExit(main())"
    args = [sys.executable, "-c", code, "app", "--port", str(port), *app_args]
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app stopped: {log_path.read_text()}")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(url, timeout=5) as response,
                ):
                    if response.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not answer in time: {log_path.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Outcome:
    """One client's request: ``status`` is answered, refused (the queue was full), timeout or
    failed; ``wait_s`` from its request to its answer or refusal."""

    status: str
    wait_s: float
    answer: tuple | None = None
    message: str = ""


def verdict_scores(verdict: str) -> dict[str, tuple[str, float]]:
    """Each model's emotion and probability (2 decimals) in the verdict's Markdown, by the
    model's name as the page shows it."""
    out = {}
    for m in VERDICT.finditer(verdict):
        name, emotion, p = m.group(1, 2, 3) if m.group(1) else m.group(4, 5, 6)
        out[name] = (emotion, float(p))
    return out


def fire(url: str, clip: Path, n: int, *, budget: float = BUDGET_S) -> tuple[list[Outcome], float]:
    """``n`` clients at once, each uploading ``clip`` once; their outcomes and the seconds from
    their release to the last answer or refusal."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio_client reads it
    from gradio_client import Client, handle_file
    from gradio_client.utils import QueueError

    # ssl_verify=False: the app is plain HTTP on 127.0.0.1, and with it each request's new httpx
    # client skips loading the CA bundle, which cost 0.09 s of the clients' CPU per request
    # (measured), taken from the app on this 2-core machine
    clients = [
        Client(url, verbose=False, download_files=False, analytics_enabled=False, ssl_verify=False)
        for _ in range(n)
    ]
    outcomes: list[Outcome | None] = [None] * n
    release = threading.Barrier(n + 1)
    deadline = [0.0]

    def one(i: int) -> None:
        release.wait()
        start = time.perf_counter()
        job = clients[i].submit(handle_file(str(clip)), api_name=API_NAME)
        try:
            answer = job.result(timeout=max(0.0, deadline[0] - time.perf_counter()))
            outcomes[i] = Outcome("answered", time.perf_counter() - start, answer)
        except QueueError as err:
            outcomes[i] = Outcome("refused", time.perf_counter() - start, message=str(err))
        except TimeoutError:
            job.cancel()
            outcomes[i] = Outcome("timeout", time.perf_counter() - start)
        except Exception as err:  # an error of the app itself: reported, never hidden
            outcomes[i] = Outcome("failed", time.perf_counter() - start, message=repr(err))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + budget
    release.wait()
    for t in threads:
        t.join(max(0.0, deadline[0] + 30 - time.perf_counter()))
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()
    done = [o for o in outcomes if o is not None]
    last = max((o.wait_s for o in done if o.status != "timeout"), default=budget)
    return [o or Outcome("timeout", budget) for o in outcomes], last


def summary(outcomes: list[Outcome], seconds: float) -> dict:
    """Counts, answers per second and the waits' median and 95th percentile, in seconds."""
    waits = np.array([o.wait_s for o in outcomes if o.status == "answered"])
    refused = [o.wait_s for o in outcomes if o.status == "refused"]
    out = {
        "clients": len(outcomes),
        **{s: sum(o.status == s for o in outcomes) for s in ("answered", "refused")},
        **{s: sum(o.status == s for o in outcomes) for s in ("timeout", "failed")},
        "seconds": round(seconds, 2),
        "answers_per_s": round(len(waits) / seconds, 2) if seconds > 0 else None,
    }
    if len(waits):
        out["wait_median_s"] = round(float(np.median(waits)), 3)
        out["wait_p95_s"] = round(float(np.percentile(waits, 95)), 3)
        out["wait_max_s"] = round(float(waits.max()), 3)
    if refused:
        out["refusal_median_s"] = round(float(np.median(refused)), 3)
    messages = sorted({o.message for o in outcomes if o.status == "failed"})
    if messages:
        out["failures"] = messages[:5]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--clip", type=Path, default=CLIP, help="the clip every client uploads")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per level")
    parser.add_argument("--app-arg", action="append", default=[], help="passed to ser-cnn app")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmark_infer.json")
    parser.add_argument(
        "--entry",
        default="current",
        help="name of these figures under the app key (current; before: the app of an older "
        "commit, run from its checkout)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures only")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from benchmark import machine

    from ser_cnn.serving.app import DEFAULT_QUEUE, DEFAULT_WORKERS
    from ser_cnn.versions import library_versions

    load = os.getloadavg()
    levels = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        served_app(args.app_arg, Path(tmp) / "app.log") as url,
    ):
        fire(url, args.clip, 2, budget=args.budget)  # warm up: the first answers compile
        for n in args.clients:
            outcomes, seconds = fire(url, args.clip, n, budget=args.budget)
            levels[str(n)] = summary(outcomes, seconds)
            print(json.dumps({n: levels[str(n)]}), flush=True)
    result = {
        "what": (
            "tools/load_app.py: N gradio_client clients at once, each uploading one clip to "
            "`ser-cnn app` on 127.0.0.1 (clients on the same machine); wait from request to "
            "answer (upload included), answers/s over the time to the last answer"
        ),
        "clip": os.path.relpath(args.clip.resolve(), REPO),
        "app_args": args.app_arg,
        "defaults": {"workers": DEFAULT_WORKERS, "queue": DEFAULT_QUEUE},
        "budget_s": args.budget,
        "load_average_before": [round(x, 2) for x in load],
        "levels": levels,
        "machine": machine(),
        "versions": library_versions(),
    }
    if not args.no_write:
        data = json.loads(args.out.read_text()) if args.out.exists() else {}
        # read, modify, write: other benchmarks own the other keys, other entries stay
        data.setdefault("app", {})[args.entry] = result
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(f"written to {os.path.relpath(args.out.resolve(), REPO)} (app, {args.entry})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
