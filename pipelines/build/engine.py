"""Runs build steps as datatrove pipelines on Ray, one Ray task per rank (`ray_tasks`), or, for tests and
benches, with datatrove's LocalPipelineExecutor in this process; resumably.

A Step is a datatrove pipeline and a fixed task count. The task count comes from the data (files, bands,
partitions), never from the number of workers, so outputs are the same whatever the cluster size. Finished
tasks leave a completion marker under BUILD/logs/<step>/ and are skipped when the build is rerun.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gristmill.errors import BuildError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.ray_tasks import (
    RetryPolicy,
    StepExecutor,
    TaskFailure,
    capacity,
    record_task_runs,
    run_ranks,
)
from gristmill.storage import UseStorage, options_for, registered_storage
from gristmill.threads import FollowTaskThreads

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One build step: `pipeline` runs once per task with (rank=task, world_size=tasks)."""

    name: str
    pipeline: Sequence[object]
    tasks: int
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 1.0
    after: Callable[[], None] | None = field(
        default=None, repr=False
    )  # runs in the driver once all tasks end


def quiet_datatrove_logs(level: str = "WARNING") -> None:
    """Keep datatrove's per-step INFO chatter off the driver's console; the build draws its own progress.

    Its warning that a local logging directory must be shared across nodes is dropped too: the build's
    documentation says so once (a cluster build needs a shared file system).
    """
    import datatrove.utils.logging  # noqa: F401  (on import it installs its own stderr sink: replace it after)
    from loguru import logger

    logger.remove()
    logger.add(
        sys.stderr, level=level, filter=lambda record: "points to a local filesystem" not in record["message"]
    )


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at `address` (or RAY_ADDRESS), else start an embedded local one."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Embedded runs keep datatrove's loguru output off the driver console; task logs still go to BUILD/logs.
    env = {"env_vars": {"LOGURU_LEVEL": os.environ.get("LOGURU_LEVEL", "WARNING")}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=env, log_to_driver=False)


def check_fits(step: Step) -> None:
    """Raise BuildError when no live node of the Ray cluster has the CPUs and memory one task of `step` asks
    for: Ray would otherwise keep the task pending."""
    slots, why = capacity(step.cpus_per_task, step.cpus_per_task * step.mem_per_cpu_gb * 2**30)
    if not slots:
        raise BuildError(
            f"step {step.name!r}: {why}",
            hint="add a larger node, or lower the step's threads (e.g. tokenizer.train.num_threads)",
        )


def logging_dir(layout: BuildLayout, step: str) -> str | tuple[str, dict]:
    """Return datatrove's logging directory of `step`, with the storage options registered for it."""
    path = layout.logs(step)
    options = options_for(path)
    return (path, options) if options else path


def run_step(
    step: Step, layout: BuildLayout, workers: int | None = None, policy: RetryPolicy | None = None
) -> bool:
    """Run every unfinished task of `step` on Ray (one Ray task per rank); return True when there was work.

    Raises BuildError naming each failed task's exception and where it happened, when a task could not be
    placed, or when one was lost more often than `policy.retries`. Finished tasks keep their completion
    markers, so a rerun resumes. Each task's peak RSS, wall and CPU seconds, node and pid are merged into
    BUILD/logs/tasks/<step>.json (`layout.task_runs_file`).
    """
    # threads follow the task's CPUs; the output's storage options reach the task's process
    pipeline = [FollowTaskThreads(step.cpus_per_task), UseStorage(registered_storage()), *step.pipeline]
    executor = StepExecutor(
        pipeline, step.tasks, logging_dir(layout, step.name), step.cpus_per_task, step.mem_per_cpu_gb
    )
    todo = executor.get_incomplete_ranks(range(step.tasks))
    if todo:
        check_fits(step)
        log.info("step %s: %d of %d tasks to run", step.name, len(todo), step.tasks)
        runs = run_ranks(step.name, executor, todo, policy or RetryPolicy(), workers)
        record_task_runs(layout.task_runs_file(step.name), runs)
        failures = [r.failure for r in runs if r.failure is not None]
        unmarked = set(executor.get_incomplete_ranks(range(step.tasks))) - {f.rank for f in failures}
        failures += [
            TaskFailure(r, "ended without its completion marker", "see its task log") for r in unmarked
        ]
        if failures:
            raise step_failed(step.name, sorted(failures, key=lambda f: f.rank), layout.logs(step.name))
    if step.after is not None:
        step.after()
    return bool(todo)


def step_failed(step: str, failures: list[TaskFailure], logs: str, shown: int = 10) -> BuildError:
    """Return the BuildError of a step whose `failures` are listed, each with its cause and place."""
    lines = [f.describe() for f in failures[:shown]]
    if len(failures) > shown:
        lines.append(f"… and {len(failures) - shown} more")
    return BuildError(
        f"step {step!r}: {len(failures)} task(s) failed\n  " + "\n  ".join(lines),
        path=logs,
        hint="each task's log is logs/task_<rank>.log there; rerun to resume (finished tasks are kept)",
    )


def run_locally(steps: Iterable[Step], layout: BuildLayout) -> None:
    """Run every unfinished task of each step in this process, in order, with datatrove's own
    LocalPipelineExecutor and the same completion markers as `run_step`; then the step's `after` hook.

    For tests, benchmarks and debugging; `gristmill build` runs steps on Ray.
    """
    from datatrove.executor.local import LocalPipelineExecutor

    for step in steps:
        LocalPipelineExecutor(
            list(step.pipeline),
            tasks=step.tasks,
            workers=1,
            logging_dir=logging_dir(layout, step.name),
            skip_completed=True,
        ).run()
        if step.after is not None:
            step.after()
