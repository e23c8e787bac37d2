"""Threads follow the task: the native libraries of the hot path use only the CPUs a task was given.

A Ray task of a build has `cpus_per_task` CPUs (one by default), but `tokenizers`, sentencepiece, pyarrow
and OpenBLAS each size their thread pools by the machine's cores. `limit_threads(n)` caps them all in the
current process; the engine calls it at the start of every task (`FollowTaskThreads`), before any encoder
runs, and `Tokenizer` sizes its own encoder threads by `task_cpus()`.

`tokenizers` reads RAYON_NUM_THREADS only when its pool first starts, but it reads TOKENIZERS_PARALLELISM
on every batch call: with one CPU parallelism is switched off, so no pool is ever started; with more, the
pool size is set before first use (a datatrove task runs in a freshly forked process, so it is first).
"""

from __future__ import annotations

import os

# Pool-size variables read at start-up by OpenMP, the BLAS builds numpy and torch ship, numexpr and rayon.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)
_limit: int | None = None


def _ray_task_cpus() -> int | None:
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    try:
        context = ray.get_runtime_context()
        if context.worker.mode != ray.WORKER_MODE:
            return None
        cpus = context.get_assigned_resources().get("CPU")
    except Exception:  # a forked child of a worker has no usable core worker
        return None
    return max(1, int(cpus)) if cpus else None


def task_cpus() -> int:
    """Return the CPUs this process may use: the last `limit_threads` value, else the Ray task's CPU
    resource inside a Ray worker, else the CPUs of this process's affinity mask."""
    if _limit is not None:
        return _limit
    cpus = _ray_task_cpus()
    if cpus is not None:
        return cpus
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def limit_threads(cpus: int) -> None:
    """Make tokenizers, pyarrow, numpy's BLAS and OpenMP use at most `cpus` threads in this process."""
    global _limit
    cpus = max(1, int(cpus))
    _limit = cpus
    for name in THREAD_ENV:
        os.environ[name] = str(cpus)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if cpus > 1 else "false"
    import pyarrow as pa

    pa.set_cpu_count(cpus)
    from threadpoolctl import threadpool_limits

    threadpool_limits(cpus)  # BLAS and OpenMP libraries already loaded (numpy's OpenBLAS)


class FollowTaskThreads:
    """A datatrove pipeline's first element: limits the task's threads to its CPUs, then passes data on.

    It is a plain callable, not a lazy PipelineStep, so it runs when the task starts, before later steps.
    """

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus

    def __call__(self, data=None, rank: int = 0, world_size: int = 1):
        limit_threads(self.cpus)
        return data

    def __repr__(self) -> str:
        return f"FollowTaskThreads(cpus={self.cpus})"
