"""The ordered dedupe steps of a build (see the package docstring for what each does)."""

from __future__ import annotations

from collections.abc import Iterator

from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.dedupe.apply import ApplyDedupe, CopyDocuments, ResolveKept, finish_apply
from gristmill.pipelines.steps.dedupe.buckets import BucketBands
from gristmill.pipelines.steps.dedupe.components import (
    MAX_OPERATIONS,
    StarOperation,
    after_operation,
    converged,
    operation_step_name,
)
from gristmill.pipelines.steps.dedupe.plan import DedupePlan
from gristmill.pipelines.steps.dedupe.signatures import ComputeSignatures
from gristmill.storage import write_json


def build_steps(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> Iterator[Step]:
    """Yield the ordered dedupe steps (see gristmill.pipelines.steps.dedupe.dedupe_steps); a components
    operation is made only while the graph has not converged, so run each step before asking for the next."""
    plan = DedupePlan(recipe, layout, inputs)  # validates `dedupe.against` now, not when first iterated
    return _steps(plan, layout)


def _steps(plan: DedupePlan, layout: BuildLayout) -> Iterator[Step]:
    files = len(plan.files)
    if not plan.bands:
        overlap = layout.overlap_file
        yield Step("dedupe-copy", [CopyDocuments(plan)], tasks=files, after=lambda: write_json(overlap, {}))
        return
    yield Step("dedupe-signatures", [ComputeSignatures(plan)], tasks=files)
    yield Step("dedupe-buckets", [BucketBands(plan)], tasks=len(plan.band_groups) * plan.partitions)
    for op in range(MAX_OPERATIONS):
        if converged(plan):
            break
        yield Step(operation_step_name(op), [StarOperation(plan, op)], tasks=plan.partitions,
                   after=lambda op=op: after_operation(plan, op))
    yield Step("dedupe-resolve", [ResolveKept(plan)], tasks=plan.partitions)
    yield Step("dedupe-apply", [ApplyDedupe(plan)], tasks=files, after=lambda: finish_apply(plan))
