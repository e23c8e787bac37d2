"""The base of every dedupe step: a datatrove step that runs one task (rank) of a DedupePlan."""

from __future__ import annotations

from datatrove.pipeline.base import PipelineStep

from gristmill.pipelines.dedupe.plan import DedupePlan


class DedupeTask(PipelineStep):
    """A dedupe step over `plan`; subclasses name themselves and implement `run` (writing files only)."""

    type = "🫂 - DEDUP"

    def __init__(self, plan: DedupePlan) -> None:
        super().__init__()
        self.plan = plan
