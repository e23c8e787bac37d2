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
from gristmill.pipelines.steps.dedupe.job import DedupeJob
from gristmill.pipelines.steps.dedupe.signatures import ComputeSignatures
from gristmill.storage import write_json


def dedupe_steps(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> Iterator[Step]:
    """Yield the ordered dedupe steps for the ingest outputs `inputs` ((source, task) pairs), each once the
    one before it has run (components operations stop when the graph has converged).

    Call after ingest: the partition count comes from the documents files' row counts. Raises BuildError when
    a documents file is missing, ConfigError when `dedupe.against` names an unusable build.
    """
    job = DedupeJob(recipe, layout, inputs)  # validates `dedupe.against` now, not when first iterated
    return _steps(job, layout)


def _steps(job: DedupeJob, layout: BuildLayout) -> Iterator[Step]:
    files = len(job.files)
    if not job.bands:
        overlap = layout.overlap_file
        yield Step("dedupe-copy", [CopyDocuments(job)], tasks=files, after=lambda: write_json(overlap, {}))
        return
    yield Step("dedupe-signatures", [ComputeSignatures(job)], tasks=files + len(job.earlier))
    yield Step("dedupe-buckets", [BucketBands(job)], tasks=len(job.band_groups) * job.partitions)
    for op in range(MAX_OPERATIONS):
        if converged(job):
            break
        yield Step(
            operation_step_name(op),
            [StarOperation(job, op)],
            tasks=job.partitions,
            after=lambda op=op: after_operation(job, op),
        )
    yield Step("dedupe-resolve", [ResolveKept(job)], tasks=job.partitions)
    yield Step("dedupe-apply", [ApplyDedupe(job)], tasks=files, after=lambda: finish_apply(job))
