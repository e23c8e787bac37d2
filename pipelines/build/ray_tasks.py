"""Runs a step's ranks on Ray, one Ray task per rank: bounded retries, no wait without a timeout, and each
failure named by its exception and where it happened.

Why not datatrove's RayPipelineExecutor: it runs each rank in a `multiprocess` pool forked inside a
`RankWorker` actor. A SIGKILL of that forked child (it too is named `ray::RankWorker` in `ps`) is invisible
to Ray, and the pool's `starmap` then waits forever; a placement group that cannot be placed is waited for
forever in a helper thread; and a task's exception reaches the driver only as "tasks N did not complete".
Here the rank runs in the Ray worker process itself, so a lost worker or node is a Ray system failure that
Ray retries (`max_retries`), and datatrove's own `PipelineExecutor._run_for_rank` still writes the logs,
stats and completion markers, so resume and `run_locally` keep sharing them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from datatrove.executor.base import DistributedEnvVars, PipelineExecutor


class StepExecutor(PipelineExecutor):
    """datatrove's executor contract for one step: `_run_for_rank` with datatrove's logs, stats and completion
    markers under `logging_dir`. It runs no ranks itself: `run_ranks` submits them to Ray."""

    def __init__(
        self,
        pipeline: Sequence[object],
        tasks: int,
        logging_dir: str | tuple[str, dict],
        cpus_per_task: int = 1,
        mem_per_cpu_gb: float = 1.0,
    ) -> None:
        super().__init__(list(pipeline), logging_dir, skip_completed=True)
        self.tasks = tasks
        self.cpus_per_task = cpus_per_task
        self.mem_per_cpu_gb = mem_per_cpu_gb

    @property
    def world_size(self) -> int:
        """The step's task count."""
        return self.tasks

    def get_distributed_env(self, node_rank: int = -1) -> DistributedEnvVars:
        """The environment datatrove's steps may read (each rank is a single-node task)."""
        return DistributedEnvVars(
            datatrove_node_ips="",
            datatrove_cpus_per_task=str(self.cpus_per_task),
            datatrove_mem_per_cpu=str(self.mem_per_cpu_gb),
            datatrove_gpus_on_node="0",
            datatrove_executor="RAY",
        )

    def run(self) -> None:
        """Not used: the build submits ranks with `run_ranks`."""
        raise NotImplementedError("a StepExecutor's ranks are run by ray_tasks.run_ranks")


@dataclass(frozen=True)
class TaskFailure:
    """Why one task did not complete: its exception (type and message) and where it happened."""

    rank: int
    error: str
    where: str

    def describe(self) -> str:
        """Return e.g. "task 5: OSError: [Errno 28] No space left on device (node n3, pid 812, at …)"."""
        return f"task {self.rank}: {self.error} ({self.where})"


def failure_of(rank: int, exc: BaseException) -> TaskFailure:
    """Describe `exc`, raised by task `rank` in this process: node, pid and the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f", at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    message = str(exc).strip().splitlines()
    error = type(exc).__name__ + (f": {message[0]}" if message else "")
    return TaskFailure(rank, error, f"node {socket.gethostname()}, pid {os.getpid()}{at}")


@dataclass(frozen=True)
class TaskRun:
    """How one task ended: its failure (None once it completed) and, when it ran, what it cost: the peak
    resident memory of its process while it ran (bytes), wall and CPU seconds, the node and pid, when it
    started and the bytes it read and wrote."""

    rank: int
    failure: TaskFailure | None
    peak_rss: int | None = None
    start_rss: int | None = None  # the process's RSS as the task began: what earlier tasks of a reused
    # worker left resident; peak_rss - start_rss is what the task itself added
    seconds: float | None = None
    cpu_seconds: float | None = None
    node: str | None = None
    pid: int | None = None
    started: float | None = None  # Unix time, so a step's span can be told from its tasks'
    read_bytes: int | None = None  # read(2) and friends (page-cache hits too; not memory-mapped reads)
    written_bytes: int | None = None  # write(2) and friends

    def figures(self) -> dict[str, object]:
        """Return the measurements as a JSON-ready dict (the failure, if any, described)."""
        return {
            "peak_rss": self.peak_rss,
            "start_rss": self.start_rss,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "node": self.node,
            "pid": self.pid,
            "started": self.started,
            "read_bytes": self.read_bytes,
            "written_bytes": self.written_bytes,
            "failure": self.failure.describe() if self.failure else None,
        }


def release_memory() -> None:
    """Hand the memory an earlier task of this (reused) worker freed back to the system: Python's garbage,
    Arrow's pool, and glibc's free heap pages (malloc_trim, where the C library has it)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)


# A step allocates millions of short-lived containers (word lists, id lists, datatrove Documents) and makes
# almost no reference cycles: with Python's default threshold (700) the collector keeps re-scanning the
# batch's live lists, 20-28% of the web filters' time (measured on the scale corpus). Tasks run with it
# raised; cycles are still collected, and `release_memory` collects everything between tasks.
TASK_GC_THRESHOLD = (50_000, 20, 20)


@contextlib.contextmanager
def rare_collections(threshold: tuple[int, int, int] = TASK_GC_THRESHOLD):
    """Run the block with the garbage collector's generation thresholds at `threshold`, then restore them."""
    before = gc.get_threshold()
    gc.set_threshold(*threshold)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (VmHWM) to its current RSS; return False where the kernel
    does not allow it (not Linux, or Linux < 4.0), so the peak then covers the process's whole life.

    Ray reuses worker processes across tasks, so without the reset a task would report the largest peak of
    every task the process ran before it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int | None:
    """Return a memory figure of /proc/self/status (e.g. "VmHWM") in bytes, or None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024  # in kB
    except OSError:
        pass
    return None


def current_rss() -> int | None:
    """Return this process's resident set size in bytes (VmRSS), or None where /proc does not say."""
    return _status_bytes("VmRSS")


def peak_rss() -> int | None:
    """Return this process's peak resident set size in bytes since its last reset (VmHWM), or, where /proc
    is missing, the lifetime peak from getrusage."""
    found = _status_bytes("VmHWM")
    if found is not None:
        return found
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


def io_counters() -> tuple[int, int] | None:
    """Return (bytes read, bytes written) by this process through system calls so far (/proc/self/io
    `rchar`, `wchar`), or None where the kernel does not say."""
    try:
        with open("/proc/self/io") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["rchar"]), int(fields["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def run_rank(executor: StepExecutor, rank: int) -> TaskRun:
    """Run one rank in this (Ray worker) process; return how it ended (failure None once it completed) with
    its peak RSS, wall and CPU seconds, node, pid, start time and bytes read and written.

    An exception of the step is returned, not raised, so that it reaches the driver whole (even one that
    cannot be pickled) and is not retried: a step is deterministic, so it would fail again.
    """
    release_memory()
    reset_peak_rss()
    start_rss = current_rss()
    io_before, started_at = io_counters(), time.time()
    started, cpu_started = time.monotonic(), time.process_time()
    failure: TaskFailure | None = None
    try:
        with rare_collections():
            executor._run_for_rank(rank)
    except Exception as e:
        failure = failure_of(rank, e)
    io_after = io_counters()
    read, written = (
        (io_after[0] - io_before[0], io_after[1] - io_before[1]) if io_before and io_after else (None, None)
    )
    return TaskRun(
        rank,
        failure,
        peak_rss=peak_rss(),
        start_rss=start_rss,
        seconds=round(time.monotonic() - started, 3),
        cpu_seconds=round(time.process_time() - cpu_started, 3),
        node=socket.gethostname(),
        pid=os.getpid(),
        started=round(started_at, 3),
        read_bytes=read,
        written_bytes=written,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How long the driver waits, and how often Ray retries a task whose worker process or node was lost."""

    retries: int = 3  # runs again after a lost worker or node (Ray's max_retries); exceptions are not retried
    task_timeout_s: float | None = 4 * 3600.0  # a task running longer is cancelled and reported
    place_timeout_s: float = 120.0  # how long tasks may wait while no live node could run one
    poll_s: float = 1.0  # the longest single wait of the driver


def capacity(cpus: int, memory: float) -> tuple[int, str | None]:
    """Return (how many tasks of `cpus` CPUs and `memory` bytes the live nodes hold at once, None), or
    (0, why no live node holds one)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    slots = sum(min(int(r.get("CPU", 0) // cpus), int(r.get("memory", 0) // memory)) for r in nodes)
    if slots:
        return slots, None
    biggest = max(nodes, key=lambda r: (r.get("CPU", 0), r.get("memory", 0)), default={})
    return 0, (
        f"a task needs {cpus} CPU(s) and {memory / 2**30:.1f} GiB, but the largest live node has "
        f"{biggest.get('CPU', 0):g} CPU(s) and {biggest.get('memory', 0) / 2**30:.1f} GiB"
    )


def _lost(rank: int, exc: BaseException, retries: int) -> TaskFailure:
    """A task Ray gave up on: its worker process or node was lost more than `retries` times."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return TaskFailure(rank, f"{type(exc).__name__}: {first}", f"lost after {retries} retries")


def run_ranks(
    name: str,
    executor: StepExecutor,
    ranks: Sequence[int],
    policy: RetryPolicy = RetryPolicy(),
    workers: int | None = None,
) -> list[TaskRun]:
    """Run `ranks` of step `name` (its `executor`) as Ray tasks, at most `workers` at once (default: as many
    as the live nodes hold); return a TaskRun per rank that ended, by rank: its failure (None when it
    completed) and, for a task that ran to its end, its measurements (none for a lost, cancelled or unplaced
    one).

    Never blocks longer than `policy.poll_s` at a time; stops waiting for a task after
    `policy.task_timeout_s`, and for unplaced tasks after `policy.place_timeout_s` without a node that could
    run one.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    cpus, memory = executor.cpus_per_task, executor.cpus_per_task * executor.mem_per_cpu_gb * 2**30
    remote = ray.remote(run_rank).options(
        num_cpus=cpus,
        memory=int(memory),
        max_retries=policy.retries,
        retry_exceptions=False,
        name=f"gristmill:{name}",
    )
    executor_ref = ray.put(executor)
    queue = list(ranks)
    running: dict[object, tuple[int, float]] = {}  # ref → (rank, submitted at)
    ended: list[TaskRun] = []
    unplaceable_since: float | None = None
    try:
        while queue or running:
            slots, why = capacity(cpus, memory)
            now = time.monotonic()
            if slots == 0:
                unplaceable_since = unplaceable_since or now
                if now - unplaceable_since > policy.place_timeout_s:
                    ended += [
                        TaskRun(r, TaskFailure(r, f"cannot be placed: {why}", "not started"))
                        for r in [*(r for r, _ in running.values()), *queue]
                    ]
                    break
            else:
                unplaceable_since = None
            while queue and len(running) < min(workers or slots, slots):
                rank = queue.pop(0)
                running[remote.remote(executor_ref, rank)] = (rank, now)
            if not running:  # nothing placeable yet: wait for a node
                time.sleep(policy.poll_s)
                continue
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=policy.poll_s)
            for ref in done:
                rank, submitted = running.pop(ref)
                try:
                    ended.append(ray.get(ref, timeout=policy.poll_s))
                except GetTimeoutError:
                    running[ref] = (rank, submitted)  # ready but not yet fetched: look again next round
                except RayError as e:
                    ended.append(TaskRun(rank, _lost(rank, e, policy.retries)))
            if policy.task_timeout_s is not None:
                for ref, (rank, submitted) in list(running.items()):
                    if time.monotonic() - submitted > policy.task_timeout_s:
                        ray.cancel(ref, force=True)
                        del running[ref]
                        late = f"did not finish within {policy.task_timeout_s:g} s"
                        ended.append(TaskRun(rank, TaskFailure(rank, late, "cancelled by the driver")))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    return sorted(ended, key=lambda r: r.rank)


def record_task_runs(path: str, runs: Sequence[TaskRun]) -> None:
    """Merge the measurements of `runs` into the step's JSON at `path` ({rank: figures}), keeping the figures
    of ranks an earlier (resumed) run recorded; ranks that never ran (lost, cancelled, unplaced) are left
    out. `path` may be any gristmill.storage path."""
    from gristmill.storage import exists, read_json, write_json

    measured = {f"{r.rank:05d}": r.figures() for r in runs if r.seconds is not None}
    if not measured:
        return
    recorded = read_json(path) if exists(path) else {}
    write_json(path, {**recorded, **measured})
