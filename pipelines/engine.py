"""Runs build steps as datatrove pipelines on datatrove's RayPipelineExecutor, resumably.

A Step is a datatrove pipeline and a fixed task count. The task count comes from the data (files, bands,
partitions), never from the number of workers, so outputs are the same whatever the cluster size. Finished
tasks leave a completion marker under BUILD/logs/<step>/ and are skipped when the build is rerun.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gristmill.errors import BuildError
from gristmill.pipelines.layout import BuildLayout
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


def run_step(step: Step, layout: BuildLayout, workers: int | None = None) -> bool:
    """Run every unfinished task of `step`; return True when there was work to do.

    Raises BuildError when a task still has not completed after datatrove's retries.
    """
    from datatrove.executor.ray import RayPipelineExecutor

    executor = RayPipelineExecutor(
        [FollowTaskThreads(step.cpus_per_task), *step.pipeline],  # threads follow the task's CPUs
        tasks=step.tasks,
        workers=workers or -1,
        logging_dir=layout.logs(step.name),
        skip_completed=True,
        cpus_per_task=step.cpus_per_task,
        mem_per_cpu_gb=step.mem_per_cpu_gb,
    )
    todo = executor.get_incomplete_ranks(range(step.tasks))
    if todo:
        log.info("step %s: %d of %d tasks to run", step.name, len(todo), step.tasks)
        executor.run()
        failed = executor.get_incomplete_ranks(range(step.tasks))
        if failed:
            shown = ", ".join(map(str, failed[:10]))
            raise BuildError(
                f"step {step.name!r}: tasks {shown} did not complete",
                path=layout.logs(step.name),
                hint="see the task logs there; rerun to resume",
            )
    if step.after is not None:
        step.after()
    return bool(todo)
