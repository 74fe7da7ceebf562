"""docqa on a Ray cluster: extraction for ``docqa index --ray``, readers for ``docqa ask --batch --ray``.

Ray is an optional extra (``pip install 'docqa[ray]'``) imported here only, only when asked
for. Nothing is re-implemented for the cluster: indexing runs the local pipeline (the same
walk, incremental plan and single SQLite writer on the driver) with ``RayExecutor`` mapping the
same ``extract_and_split`` over the files with a Ray Data actor pool, each file in the same
``Sandbox`` (time limit, memory cap) on its node; batch answering maps a callable class over
an actor pool, each actor a read-only ``DocQA`` that loads its model once and runs ``read_batch``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from docqa.errors import DocQAError
from docqa.types import Limits

if TYPE_CHECKING:
    from docqa.api import DocQA
    from docqa.indexer import J, ExtractTask, Sandbox, _Outcome
    from docqa.types import BatchQuestion, Reading

log = logging.getLogger(__name__)

RAY_MISSING = "--ray needs Ray: pip install 'docqa[ray]'"
# A file whose Ray actor dies (its node is lost) goes again at most this many times; a reader
# actor is restarted at most this many times.
MAX_RETRIES = 3
# Files up to this size travel with their task when docqa joins a cluster (--ship-max): a file
# only on the driver's disk is extracted anywhere. Bigger files are read by path on the node.
DEFAULT_SHIP_MB = 32
# One Ray Data run covers at most this many files, or this many shipped bytes, so the driver's
# memory stays bounded on an archive of millions of files.
CHUNK_FILES = 4096
CHUNK_BYTES = 256 * 2**20


class RayMissing(DocQAError):
    pass


class RayFailed(DocQAError):
    pass


def ray_module(data: bool = True) -> Any:
    """``ray``, with Ray Data imported too unless ``data`` is False."""
    # Ray Data logs every run's start and end to stderr; docqa reports runs itself.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    # Ray Data's usage record of docqa's runs costs a detached actor per instance (a process
    # that starts beside the extractors) and a thread polling for metrics in the driver.
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
    try:
        import ray

        if data:
            import ray.data
    except ImportError as err:
        raise RayMissing(RAY_MISSING) from err
    return ray


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address`` (``None``: ``$RAY_ADDRESS``, else start a local
    instance). Returns True when docqa started a local instance (every worker sees this
    machine's files). A connection already made in this process is reused."""
    # Ray Data is imported once connected: a new local instance starts its first workers as
    # docqa joins it, and they start up meanwhile, ready for the extractors.
    ray = ray_module(data=False)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        try:
            # "local" always starts a fresh instance: a stale cluster file under the temp
            # folder cannot send docqa to a cluster it did not ask for.
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RayFailed(f"cannot connect to Ray at {address or 'a new local instance'} ({err}); "
                            "check the address (ray status on the head node)") from err
    ray = ray_module()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # docqa draws its own, on stderr
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1  # a file whose task ran out of retries gets a status instead
    # An extraction actor placed on a node that dies before it starts is replaced, within bounds.
    ctx.max_consecutive_actor_init_deaths = MAX_RETRIES
    return address is None


def disconnect() -> None:
    """Leave the cluster (a local instance docqa started stops)."""
    ray = ray_module(data=False)
    if not ray.is_initialized():
        return
    # Of a local instance, Ray's shutdown stops the GCS before the autoscaler monitor, whose
    # SIGTERM handler then reports to the stopped GCS until it is killed a second later: kill
    # it first, as that second would, and the rest stop as usual (the same processes end).
    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None and hasattr(node, "kill_monitor"):
        node.kill_monitor(check_alive=False)
    ray.shutdown()


# -- indexing -------------------------------------------------------------------------------


_LOST = ("lost", "the Ray workers extracting it died {tries} times (a lost node, or a file that kills "
         "its worker); it is tried again next run")


class RayExecutor:
    """``Executor`` that maps extraction over a Ray cluster with Ray Data: an actor pool, one
    actor per CPU, each holding its node's sandbox."""

    reads_uris = True  # each node reads its objects from the store, not through the driver

    def __init__(self, address: str | None = None, *, limits: Limits = Limits(),
                 ship_mb: float = DEFAULT_SHIP_MB) -> None:
        local = connect(address)
        self.limits = limits
        self.ship_bytes = 0 if local else int(ship_mb * 2**20)

    def run(self, jobs: Iterable[tuple[J, ExtractTask]]) -> Iterator[tuple[J, _Outcome]]:
        pending = iter(jobs)
        while True:
            chunk: list[tuple[J, ExtractTask]] = []
            shipped = 0
            for job, task in pending:
                chunk.append((job, task))
                shipped += len(task.data or b"")
                if len(chunk) >= CHUNK_FILES or shipped >= CHUNK_BYTES:
                    break
            if not chunk:
                return
            yield from self._run_chunk(chunk)

    def _run_chunk(self, chunk: list[tuple[J, ExtractTask]]) -> Iterator[tuple[J, _Outcome]]:
        from docqa.indexer import _Outcome

        waiting = dict(enumerate(chunk))
        # Files whose actor died (a lost node) go again in a new pool, at most MAX_RETRIES times.
        for _ in range(MAX_RETRIES + 1):
            if not waiting:
                return
            for i, outcome in self._map(waiting):
                entry = waiting.pop(i, None)
                if entry is not None:  # a block delivered twice is written once
                    yield entry[0], outcome
        status, message = _LOST
        for job, _ in waiting.values():
            yield job, _Outcome(status, message.format(tries=MAX_RETRIES + 1))

    def _map(self, tasks: dict[int, tuple[J, ExtractTask]]) -> Iterator[tuple[int, _Outcome]]:
        ray = ray_module()
        rows = [{"i": i, "task": pickle.dumps(task)} for i, (_, task) in tasks.items()]
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # One file per block, so each outcome streams back as soon as its file is done and a
        # lost node costs only its own files. Actors, not tasks: each starts its sandbox once,
        # and with two files queued at every actor it never waits for the driver between files.
        # An actor that dies is not restarted and its files are not retried by Ray (a shrunk
        # cluster could not place it again): they come back missing and go in the next pool.
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=min(cpus, len(rows)),
                                          initial_size=min(cpus, len(rows)), max_tasks_in_flight_per_actor=2)
        with warnings.catch_warnings():
            # Ray 2.60 deprecates ray_remote_args, with no named replacement for these two;
            # Ray Data's defaults (-1) restart an actor and retry its tasks forever.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
                _Extractor, fn_constructor_args=(self.limits,), compute=pool, num_cpus=1,
                max_restarts=0, max_task_retries=0)
        try:
            for row in ds.iter_rows():
                yield row["i"], pickle.loads(row["outcome"])
        except ray.exceptions.RayError:  # the pool itself failed (actors lost): the rest go again
            log.debug("Ray extraction pool failed", exc_info=True)


class _Extractor:
    """One actor of the extraction pool: a one-worker ``Sandbox`` on its node, kept for all
    its files, so every file runs under the same limits as in a local run."""

    def __init__(self, limits: Limits) -> None:
        from docqa.indexer import Sandbox, _main_not_rerun

        # This process's __main__ is Ray's worker script: hidden for the actor's life (the sandbox
        # may start a worker at any time), or every sandbox worker would import it, and Ray.
        self._main_hidden = ExitStack()
        self._main_hidden.enter_context(_main_not_rerun())
        self.limits = limits
        self.sandbox: Sandbox = Sandbox(1, limits)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from docqa.indexer import Sandbox, WorkersFailed, _Outcome

        task: ExtractTask = pickle.loads(row["task"])
        problem = ""
        if task.fs is not None:
            # Read here, not in the sandbox: its limits are for extraction, not a slow download.
            try:
                with task.fs.open_input_stream(task.path) as f:
                    task = dataclasses.replace(task, data=f.read(), fs=None)
            except OSError as err:  # gone meanwhile: the driver sees that and removes it
                problem = (f"cannot read it on Ray node {socket.gethostname()} ({_first_line(err)}); check "
                           "that node's credentials for the object store")
        elif task.data is None and not os.path.exists(task.path):
            problem = (f"not found on Ray node {socket.gethostname()}: put the files where every node sees "
                       "them at the same path, or raise --ship-max to send them with the tasks")
        if problem:  # the node could not read it: retried next run, like a file that cannot be read
            outcome = _Outcome("lost", problem)
        else:
            try:
                outcome = self.sandbox.outcome(self.sandbox.submit(task))
            except WorkersFailed:
                self.sandbox.close(completed=False)
                self.sandbox = Sandbox(1, self.limits)  # for the next file; this one goes again
                raise
        return {"i": row["i"], "outcome": pickle.dumps(outcome)}


# -- batch answering ------------------------------------------------------------------------


def read_on_ray(qa: DocQA, chunks: Iterable[list[BatchQuestion]], passages: int, *, address: str | None = None,
                actors: int | None = None, gpus_per_actor: float = 0
                ) -> Iterator[tuple[list[BatchQuestion], list[Reading | str]]]:
    """``qa.read_each`` of every chunk on an actor pool, yielded in the chunks' order.

    Each actor is a read-only copy of ``qa`` (same index path: it must be where every node
    sees it) that loads the model once; the chunks are the local batches, so the reader sees
    the same windows together and gives the same spans."""
    ray = ray_module()
    connect(address)
    chunks = list(chunks)
    if not chunks:
        return
    # Each actor reads with as many torch threads as the CPUs it holds (--threads, default 1),
    # so several actors on a node do not fight over its cores.
    args = qa.reading_args()
    cpus = args["threads"] = int(args.get("threads") or 1)  # type: ignore[call-overload]
    if actors is None:
        resources = ray.cluster_resources()
        actors = int(resources.get("GPU", 0) // gpus_per_actor) if gpus_per_actor else int(resources.get("CPU", 1) // cpus)
    actors = max(1, min(actors, len(chunks)))
    rows = [{"i": i, "chunk": pickle.dumps(chunk)} for i, chunk in enumerate(chunks)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see RayExecutor._map
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
            _Reader, fn_constructor_args=(str(qa.index_path.resolve()), args, passages), concurrency=actors,
            num_cpus=cpus, num_gpus=gpus_per_actor or None, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)
    done: dict[int, list[Reading | str]] = {}
    following = 0
    try:
        for row in ds.iter_rows():
            done[row["i"]] = pickle.loads(row["read"])
            while following in done:  # in input order, as soon as the next chunk is in
                yield chunks[following], done.pop(following)
                following += 1
    except DocQAError:
        raise
    except Exception as err:  # a reader that cannot start (no model, no index on a node)
        raise RayFailed(f"the Ray readers failed: {_first_line(err)}") from err
    lost = f"the Ray readers handling it died {MAX_RETRIES + 1} times; ask it again"
    for i in range(following, len(chunks)):
        yield chunks[i], done.pop(i, None) or [lost] * len(chunks[i])


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


class _Reader:
    """One actor of the pool: a read-only ``DocQA`` over the index; the model loads once."""

    def __init__(self, index: str, args: dict[str, Any], passages: int) -> None:
        from docqa.api import DocQA

        self.qa = DocQA(index, **args)
        self.qa.reader.load()
        self.passages = passages

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        read = self.qa.read_each(pickle.loads(row["chunk"]), self.passages)
        return {"i": row["i"], "read": pickle.dumps(read)}
