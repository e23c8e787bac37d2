"""The base of every dedupe step: a datatrove step that runs one task (rank) of a DedupeJob."""

from __future__ import annotations

from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.dedupe.job import DedupeJob


class DedupeTask(WritingStep):
    """A dedupe step over `job`; subclasses name themselves and implement `write`."""

    type = "🫂 - DEDUP"

    def __init__(self, job: DedupeJob) -> None:
        super().__init__()
        self.job = job
