"""The base of every dedupe step: a datatrove step that runs one task (rank) of a DedupePlan."""

from __future__ import annotations

from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.dedupe.plan import DedupePlan


class DedupeTask(WritingStep):
    """A dedupe step over `plan`; subclasses name themselves and implement `write`."""

    type = "🫂 - DEDUP"

    def __init__(self, plan: DedupePlan) -> None:
        super().__init__()
        self.plan = plan
