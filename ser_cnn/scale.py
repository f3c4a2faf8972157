"""Score many recordings on a Ray cluster (``ser-cnn infer --engine ray``), and train the folds
of a cross-validation as parallel Ray tasks (``ser-cnn train --cv --engine ray``).

One machine runs ``ser-cnn infer`` in one process (:mod:`ser_cnn.serving.inference`); past it, the
work goes to `Ray <https://docs.ray.io>`_, an existing distributed engine, rather than a
home-made one. The driver (the ``ser-cnn`` process) lists the inputs, hands them out in batches
to a pool of actors and writes their rows, in input order, to one file::

    inputs ──> driver: list files ──> actors (one per core, anywhere in the cluster), each:
               Recognizer(runtime="light", threads=1) loaded once, ser_cnn.serving.batch.score_batch
           <── rows (the fields of `ser-cnn infer --format csv`) ──> Parquet, CSV or JSON lines

* **The same rows as on one machine**: an actor scores a batch with
  :func:`ser_cnn.serving.batch.score_batch`, the function behind ``ser-cnn infer --format csv``.
* **Light runtime only**: actors load LiteRT and NumPy models; TensorFlow is never imported
  on a worker (``tests/test_ray.py`` checks it).
* **Bad files are rows** with an ``error``, never a failed job; a file that kills its worker
  process (a decoder crash) is found by scoring its batch again one file at a time in a fresh
  actor, and gets a row saying so.
* **Inputs**: files and folders (searched for audio), a manifest of :mod:`ser_cnn.corpora`
  (``.csv``: its ``path`` column), a list (``.txt``: one path or URI a line), and object-store
  URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``; a URI ending in ``/`` is listed), read
  by pyarrow's filesystems on the worker. Paths must exist where the actors run.

Training: the folds of a recipe are independent jobs, so :func:`fold_map` hands
:func:`ser_cnn.training.cv.cross_validate` a Ray task per fold (a CPU budget each), writing the run
folders and result file the local run writes.

Ray is an optional extra (``pip install 'ser_cnn[ray]'``), imported only here and only when
used. Deploying on a real cluster: ``docs/scale.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from ser_cnn.errors import DataError, ParameterError, SerError

INSTALL = "pip install 'ser_cnn[ray]'"
# One core per actor, single-threaded inside (features, LiteRT, the NumPy encoder, BLAS): the
# cluster's scheduler places the work, and no actor's threads compete with another's.
ACTOR_CPUS = 1
IN_FLIGHT = 2  # batches queued per actor: one being scored, the next waiting, so none idles
FOLD_CPUS = 1  # a fold's training task, by default: a RAVDESS-sized fit gains little from more
START_TIMEOUT_S = 300.0  # loading the models in a fresh actor (weights read from disk)
WAIT_S = 1.0  # how often the driver looks for finished batches (progress, dead actors)
# one core each, spread over the nodes; a dead actor is replaced by the driver, not by Ray
ACTOR_OPTIONS = {"num_cpus": ACTOR_CPUS, "scheduling_strategy": "SPREAD", "max_restarts": 0}
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
URI_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "file://", "abfs://", "az://")


def import_ray():
    """The ``ray`` module, or a :class:`SerError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SerError(f"--engine ray needs Ray, an optional extra: {INSTALL}") from None
    return ray


def is_uri(name: str) -> bool:
    """Whether ``name`` is an object-store (or other pyarrow filesystem) URI."""
    return name.startswith(URI_SCHEMES)


def output_format(out: str | os.PathLike) -> str:
    """'parquet', 'csv' or 'jsonl', from the suffix of ``out``."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"--out {out}: expected a name ending in {', '.join(FORMATS)}")
    return FORMATS[suffix]


def check_out(out: str | os.PathLike, *, append: bool = False) -> str:
    """The format of an output file (:func:`output_format`); an existing one is refused
    unless ``append``."""
    kind = output_format(out)
    if Path(out).exists() and not append:
        raise DataError(
            f"{out} exists: give another --out, delete it, or add --append to add the files "
            "it does not have yet"
        )
    return kind


# -- inputs ------------------------------------------------------------------------------------


def list_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The files (paths or URIs) that ``inputs`` name, in order, each once.

    A folder gives its audio files (searched recursively), a ``.csv`` manifest its ``path``
    column, a ``.txt`` list its lines, a URI ending in ``/`` the audio files under it; any other
    name is kept as it is (a missing one becomes an error row, from the worker that tries it).
    """
    from ser_cnn.audio.io import AUDIO_SUFFIXES
    from ser_cnn.corpora import read_manifest
    from ser_cnn.ravdess import find_audio

    found: list[str] = []
    for item in map(str, inputs):
        path = Path(item)
        if is_uri(item):
            found += _list_uri(item, AUDIO_SUFFIXES) if item.endswith("/") else [item]
        elif path.is_dir():
            found += [str(f) for f in find_audio(path, AUDIO_SUFFIXES)] or [item]
        elif path.suffix.lower() == ".csv" and path.is_file():
            found += [str(p) for p in read_manifest(path)["path"]]
        elif path.suffix.lower() == ".txt" and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            found += [line.strip() for line in lines if line.strip()]
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def _list_uri(uri: str, suffixes: Sequence[str]) -> list[str]:
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(uri)
    scheme = uri[: uri.index("://") + 3]
    infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    return sorted(
        scheme + info.path
        for info in infos
        if info.type == fs.FileType.File and info.path.lower().endswith(tuple(suffixes))
    )


# -- the actor ---------------------------------------------------------------------------------


class Scorer:
    """What each Ray actor holds: one light-runtime Recognizer, loaded once.

    Parameters are :class:`ser_cnn.serving.inference.Recognizer`'s; ``threads`` is the actor's
    cores.
    """

    def __init__(
        self, run=None, *, models=None, calibrated: bool = True, threads: int = ACTOR_CPUS
    ):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from threadpoolctl import threadpool_limits

        from ser_cnn.serving.inference import Recognizer

        threadpool_limits(limits=1, user_api="blas")  # each of the actor's threads: one core
        self.rec = Recognizer(
            run, models=models, calibrated=calibrated, runtime="light", threads=threads
        )

    def columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The labels and models of the rows (:func:`ser_cnn.serving.batch.columns`)."""
        return self.rec.labels, self.rec.models

    def modules(self) -> list[str]:
        """The modules this worker process has imported (to check that it stays light)."""
        return sorted(sys.modules)

    def node(self) -> str:
        """The id of the Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def score(self, files: list[str], **options) -> list[dict]:
        """:func:`ser_cnn.serving.batch.score_batch` of ``files``; URIs are fetched to a temporary
        folder first, and their rows name the URI."""
        from ser_cnn.serving.batch import row, score_batch

        if not any(is_uri(f) for f in files):
            return score_batch(self.rec, files, **options)
        with tempfile.TemporaryDirectory(prefix="ser_cnn_") as tmp:
            local, fetched = [], {}
            for i, name in enumerate(files):
                if not is_uri(name):
                    local.append(name)
                    continue
                copy = str(Path(tmp, f"{i}{Path(name).suffix}"))
                try:
                    _fetch(name, copy)
                except (OSError, ValueError) as err:
                    fetched[name] = str(err).splitlines()[0]
                    local.append(name)
                    continue
                local.append(copy)
                fetched[copy] = name
            labels, models = self.columns()
            rows = []
            for name, r in zip(local, score_batch(self.rec, local, **options), strict=True):
                if is_uri(name):  # not fetched
                    rows.append(row(name, fetched[name], labels, models))
                    continue
                if name in fetched:
                    r["file"] = fetched[name]
                    if r["error"]:
                        r["error"] = r["error"].replace(name, fetched[name])
                rows.append(r)
            return rows


def _fetch(uri: str, path: str) -> None:
    from pyarrow import fs

    filesystem, where = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(where) as src, Path(path).open("wb") as dst:
        shutil.copyfileobj(src, dst)


# -- output ------------------------------------------------------------------------------------


class Writer:
    """Rows to one file (Parquet, CSV or JSON lines), batch by batch.

    An existing file is refused unless ``append``; then its rows are kept, the new ones follow
    (Parquet: the file is rewritten at the end, the old one replaced only then) and
    :attr:`done` holds the files it already has, which are not scored again.
    """

    def __init__(self, out: str | os.PathLike, labels, models, *, append: bool = False):
        from ser_cnn.serving.batch import columns

        self.out, self.kind = Path(out), check_out(out, append=append)
        self.labels, self.models = labels, models
        self.names = columns(labels, models)
        self.done: set[str] = set()
        exists = self.out.exists()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        old = self._read_existing() if exists else None
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            self._tmp = self.out.with_name(f".{self.out.name}.partial")
            self._file = pq.ParquetWriter(self._tmp, self.schema())
            if old is not None:
                self._file.write_table(old)
        else:
            self._file = self.out.open("a" if exists else "w", encoding="utf-8", newline="")
            if self.kind == "csv" and not exists:
                self._file.write(",".join(self.names) + "\n")

    def schema(self):
        import pyarrow as pa

        kinds = {"file": pa.string(), "ok": pa.bool_(), "error": pa.string()}
        kinds.update({"duration": pa.float64(), "windows": pa.int64()})
        return pa.schema(
            [
                (n, kinds.get(n, pa.string() if n.endswith("_emotion") else pa.float64()))
                for n in self.names
            ]
        )

    def _read_existing(self):
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(self.out)
            names, files = table.column_names, table.column("file").to_pylist()
        elif self.kind == "csv":
            import csv

            with self.out.open(encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                names, files = reader.fieldnames or [], [r["file"] for r in reader]
            table = None
        else:
            lines = self.out.read_text(encoding="utf-8").splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
            names = list(records[0]) if records else self.names
            files, table = [r["file"] for r in records], None
        if list(names) != self.names:
            raise DataError(
                f"{self.out}: its columns are not those of these models and labels; "
                "--append adds only to results of the same models"
            )
        self.done = set(files)
        return table

    def write(self, rows: list[dict]) -> None:
        from ser_cnn.serving.batch import format_csv

        if not rows:
            return
        if self.kind == "parquet":
            import pyarrow as pa

            self._file.write_table(pa.Table.from_pylist(rows, schema=self.schema()))
        elif self.kind == "csv":
            self._file.write(format_csv(rows, self.labels, self.models, header=False))
        else:
            self._file.writelines(json.dumps(r) + "\n" for r in rows)

    def close(self) -> None:
        self._file.close()
        if self.kind == "parquet":
            self._tmp.replace(self.out)


class _Stdout:
    """Rows printed as ``ser-cnn infer --format csv`` prints them (no ``--out``)."""

    def __init__(self, labels, models):
        self.labels, self.models, self.header = labels, models, True
        self.done: set[str] = set()

    def write(self, rows: list[dict]) -> None:
        from ser_cnn.serving.batch import format_csv

        sys.stdout.write(format_csv(rows, self.labels, self.models, header=self.header))
        sys.stdout.flush()
        self.header = False

    def close(self) -> None:
        if self.header:
            self.write([])


# -- the driver --------------------------------------------------------------------------------


@contextlib.contextmanager
def connected(address: str | None = None, *, num_cpus: int | None = None) -> Iterator:
    """Ray, joined to the cluster at ``address``, or to a new local one (every core, or
    ``num_cpus``) that ends with the block; usage statistics off, no dashboard."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry, as the web app
    ray = import_ray()
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise SerError(f"could not start or join {where}: {err}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def local_cluster(
    *, nodes: int = 2, cpus: int = 1, start_timeout: float = 60.0
) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster of ``nodes`` node processes on 127.0.0.1 (a head and ``nodes - 1`` more),
    ``cpus`` logical CPUs each, for tests and benchmarks of the multi-node path on one machine.

    Each node is a ``ray start --block`` process in a process group of its own, ended (TERM,
    then KILL) when the block ends; usage statistics off, no dashboard, a token of its own.
    Yields ``(address, env)``: ``env`` is what a process needs to join (the token's path).
    """
    import secrets
    import signal
    import socket
    import subprocess

    import_ray()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    tmp = Path(tempfile.mkdtemp(prefix="ser_ray_"))  # short: Ray's sockets live in it
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus)]
    head = ["--head", "--port", address.split(":")[1], "--temp-dir", str(tmp / "ray")]
    head += ["--include-dashboard", "false", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    try:
        for i in range(nodes):
            with (tmp / f"node{i}.log").open("w") as log:
                procs.append(
                    subprocess.Popen(
                        [ray_cli, "start", *common, *(head if i == 0 else ["--address", address])],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, ended below
                    )
                )
            _wait_for_nodes(address, env, i + 1, start_timeout, tmp / f"node{i}.log")
        yield address, {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    finally:
        for proc in reversed(procs):
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for_nodes(address: str, env: dict, n: int, timeout: float, log: Path) -> None:
    """Until the cluster at ``address`` has ``n`` live nodes, asked by a short-lived driver."""
    import subprocess

    code = (
        "import ray, sys\n"
        "ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)\n"
        "print(sum(n['Alive'] for n in ray.nodes()))\n"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = subprocess.run(
                [sys.executable, "-c", code, address],
                env=env,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
            if done.returncode == 0 and int(done.stdout.split()[-1]) >= n:
                return
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            pass
        time.sleep(2)
    raise SerError(f"the Ray node did not start in {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def fold_map(*, address: str | None = None, cpus: int = FOLD_CPUS):
    """A ``fold_map`` for :func:`ser_cnn.training.cv.cross_validate` (``ser-cnn train --cv --engine
    ray``): each fold's training a Ray task of ``cpus`` CPUs, all started at once, their
    results yielded in fold order.

    A task writes its run folder where the local run would (``out_dir/fold<K>``: a path every
    node must see, as the cache), with TensorFlow, OpenMP and the BLAS held to its ``cpus``
    threads; the driver then writes the same result file as the local run.
    """
    if cpus < 1:
        raise ParameterError(f"cpus per fold must be at least 1, got {cpus}")
    threads = str(cpus)
    env = {
        "TF_NUM_INTRAOP_THREADS": threads,  # read by TensorFlow when it starts in the task
        "TF_NUM_INTEROP_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }

    def run(jobs):
        with connected(address) as ray:
            task = ray.remote(_call).options(
                num_cpus=cpus, max_retries=0, runtime_env={"env_vars": env}
            )
            refs = [task.remote(job) for job in jobs]
            for ref in refs:
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as err:
                    raise SerError(
                        f"a fold's training failed on the cluster: {_cause(err)}"
                    ) from None

    return run


def _call(job):
    return job()


def infer(
    inputs: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    append: bool = False,
    address: str | None = None,
    actors: int | None = None,
    run=None,
    models=None,
    calibrated: bool = True,
    batch_size: int = 64,
    window: float | None = None,
    hop: float | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Score every file ``inputs`` name on a Ray cluster and write one row per file.

    Parameters
    ----------
    inputs : sequence of str or path
        Files, folders, manifests (``.csv``), lists (``.txt``) and URIs (:func:`list_inputs`).
    out : path, optional
        ``.parquet``, ``.csv`` or ``.jsonl`` file (:class:`Writer`); default: CSV on stdout.
    append : bool
        Add to an existing ``out``, skipping the files it already has (a stopped job resumes).
    address : str, optional
        A running cluster to join (``ray start --head`` prints it); default: a local cluster.
    actors : int, optional
        Actors (one core each); default: one per CPU of the cluster.
    run, models, calibrated
        As for :class:`ser_cnn.serving.inference.Recognizer`; ``run`` folders must exist, at the
        same path, where the actors run.
    batch_size, window, hop
        As for :meth:`ser_cnn.serving.inference.Recognizer.iter_predict`.

    Returns
    -------
    (int, int)
        Rows written, and how many of them are errors.
    """
    if actors is not None and actors < 1:
        raise ParameterError(f"actors must be at least 1, got {actors}")
    if out is not None:  # refused before any cluster starts
        check_out(out, append=append)
    files = list_inputs(inputs)
    if run is not None:
        run = [
            str(Path(r).resolve()) for r in ([run] if isinstance(run, str | os.PathLike) else run)
        ]
    options = {"batch_size": batch_size, "window": window, "hop": hop}
    with connected(address) as ray:
        n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // ACTOR_CPUS))
        remote = ray.remote(Scorer).options(**ACTOR_OPTIONS)

        def start():
            return remote.remote(run, models=models, calibrated=calibrated, threads=ACTOR_CPUS)

        pool = [start() for _ in range(n_actors)]
        try:
            labels, kinds = ray.get(pool[0].columns.remote(), timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise SerError(
                f"the actors did not load the models in {START_TIMEOUT_S:.0f} s"
            ) from None
        except ray.exceptions.RayError as err:
            raise SerError(f"the actors could not load the models: {_cause(err)}") from None
        writer = Writer(out, labels, kinds, append=append) if out else _Stdout(labels, kinds)
        files = [f for f in files if f not in writer.done]
        try:
            errors = _run(ray, pool, start, files, writer, labels, kinds, options, progress)
        finally:
            writer.close()
    return len(files), errors


def _cause(err: Exception) -> str:
    """The first line of what a Ray error wraps: the worker's own message."""
    cause = getattr(err, "cause", None) or err
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__


def _run(ray, pool, start, files, writer, labels, models, options, progress) -> int:
    """Hand ``files`` out to ``pool`` in batches, write the rows in input order; return the
    number of error rows."""
    from tqdm import tqdm

    from ser_cnn.serving.batch import row

    size = options["batch_size"]
    # (first index, files, alone): a batch; alone: a retry of one file whose batch killed a worker
    queue = deque((i, files[i : i + size], False) for i in range(0, len(files), size))
    running: dict = {}  # ObjectRef -> (actor, batch)
    load = {a: 0 for a in pool}
    finished: dict[int, list[dict]] = {}
    next_index, errors = 0, 0
    bar = tqdm(
        total=len(files),
        unit="file",
        desc="analysing",
        disable=not progress or len(files) < 2 or not sys.stderr.isatty(),
    )
    try:
        while queue or running:
            for actor in list(load):
                while queue and load[actor] < IN_FLIGHT:
                    job = queue.popleft()
                    running[actor.score.remote(job[1], **options)] = (actor, job)
                    load[actor] += 1
            done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            for ref in done:
                actor, (first, batch, alone) = running.pop(ref)
                if actor in load:
                    load[actor] -= 1
                try:
                    finished[first] = ray.get(ref)
                except ray.exceptions.RayActorError:
                    if actor in load:  # the worker died: a fresh actor takes its place
                        del load[actor]
                        load[start()] = 0
                    if alone:
                        why = "the worker process died while analysing it"
                        finished[first] = [row(batch[0], why, labels, models)]
                    else:  # find the file that kills it: each file alone, first in the queue
                        queue.extendleft(
                            reversed([(first + k, [f], True) for k, f in enumerate(batch)])
                        )
                except ray.exceptions.RayTaskError as err:
                    why = f"not analysed: {_cause(err)}"
                    finished[first] = [row(f, why, labels, models) for f in batch]
            while next_index in finished:
                rows = finished.pop(next_index)
                writer.write(rows)
                errors += sum(not r["ok"] for r in rows)
                bar.update(len(rows))
                next_index += len(rows)
    finally:
        bar.close()
    return errors
