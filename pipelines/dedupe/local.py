"""Runs build steps in this process, task by task, with the same resume markers as the Ray engine.

For tests, benchmarks and debugging; `gristmill build` runs steps on Ray through engine.run_step.
"""

from __future__ import annotations

from collections.abc import Sequence

from gristmill.pipelines.engine import Step
from gristmill.pipelines.layout import BuildLayout
from gristmill.storage import filesystem


def run_steps_locally(steps: Sequence[Step], layout: BuildLayout) -> None:
    """Run every unfinished task of every step in order, then the step's `after` hook."""
    for step in steps:
        fs, logs = filesystem(layout.logs(step.name))
        for rank in range(step.tasks):
            marker = f"{logs}/completions/{rank:05d}"
            if fs.exists(marker):
                continue
            data = None
            for pipeline_step in step.pipeline:
                data = pipeline_step(data, rank, step.tasks)
            for _ in data or ():
                pass
            fs.makedirs(f"{logs}/completions", exist_ok=True)
            with fs.open(marker, "w"):
                pass
        if step.after is not None:
            step.after()
