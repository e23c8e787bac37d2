"""The ordered dedupe steps of a build (see the package docstring for what each does)."""

from __future__ import annotations

from gristmill.pipelines.dedupe.apply import ApplyDedupe, CopyDocuments, ResolveKept, finish_apply
from gristmill.pipelines.dedupe.buckets import BucketBands
from gristmill.pipelines.dedupe.components import (
    MAX_OPERATIONS,
    StarOperation,
    after_operation,
    operation_step_name,
)
from gristmill.pipelines.dedupe.plan import DedupePlan
from gristmill.pipelines.dedupe.signatures import ComputeSignatures
from gristmill.pipelines.engine import Step
from gristmill.pipelines.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.storage import write_json


def build_steps(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> list[Step]:
    """Return the ordered dedupe steps (see gristmill.pipelines.dedupe.dedupe_steps)."""
    plan = DedupePlan(recipe, layout, inputs)
    files = len(plan.files)
    if not plan.bands:
        overlap = layout.path("dedupe", "overlap.json")
        return [
            Step("dedupe-copy", [CopyDocuments(plan)], tasks=files, after=lambda: write_json(overlap, {}))
        ]
    steps = [
        Step("dedupe-signatures", [ComputeSignatures(plan)], tasks=files),
        Step("dedupe-buckets", [BucketBands(plan)], tasks=len(plan.band_groups) * plan.partitions),
    ]
    for op in range(MAX_OPERATIONS):
        steps.append(
            Step(
                operation_step_name(op),
                [StarOperation(plan, op)],
                tasks=plan.partitions,
                after=lambda op=op: after_operation(plan, op),
            )
        )
    steps.append(Step("dedupe-resolve", [ResolveKept(plan)], tasks=plan.partitions))
    steps.append(Step("dedupe-apply", [ApplyDedupe(plan)], tasks=files, after=lambda: finish_apply(plan)))
    return steps
