"""The build's steps, one module per kind, and `build_steps`: the whole sequence in one place.

decontam_index   the evaluation items' index, once (when the recipe decontaminates)
quality_model   the recipe's quality classifier, checked and copied or trained, and its top fractions resolved
ingest      ReadSources → filters (gristmill's and the recipe's datatrove steps) → quality scores →
            decontamination → WriteDocuments
dedupe/     exact and MinHash-LSH near duplicates across sources: signatures … apply
tokenizer   copy or train the build's tokenizer on the clean documents
decontam_tokens  the tokens of the text decontamination removed
tokenize    encode the clean documents into token files
plan        mix, epoch and length-bucket every stage
pack        gather each shard's rows and write it, with its provenance
index       each stage's document index (id → rows), from the pack tasks' index lines
"""

from __future__ import annotations

from collections.abc import Iterator

from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.decontam import decontam_enabled
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.decontam import decontam_index_step, decontam_tokens_step
from gristmill.pipelines.steps.dedupe import dedupe_steps
from gristmill.pipelines.steps.ingest import WorkUnit, ingest_step
from gristmill.pipelines.steps.pack import IndexDocuments, PackShards, index_jobs, index_partitions
from gristmill.pipelines.steps.plan import PlanShards, pack_jobs, slice_count, stage_shards, write_plan
from gristmill.pipelines.steps.quality import quality_model_step
from gristmill.pipelines.steps.tokenize import TokenizeDocuments, write_source_histograms
from gristmill.pipelines.steps.tokenizer import tokenizer_step
from gristmill.shards.plan import SHARD_BYTES

__all__ = ["build_steps", "shard_steps"]


def build_steps(
    recipe: Recipe, layout: BuildLayout, units: list[WorkUnit], *, strict: bool = False
) -> Iterator[Step]:
    """Yield the recipe's steps in the order they run.

    Lazily: a step is made only once the one before it has run, because later steps are sized from earlier
    outputs (dedupe's partitions from the documents' row counts, the pack tasks from the plan).
    """
    inputs = [(u.source, u.task) for u in units]
    decontaminate = decontam_enabled(recipe.decontam)
    if decontaminate:
        yield decontam_index_step(recipe, layout)
    if recipe.quality.enabled:
        yield quality_model_step(recipe, layout)
    yield ingest_step(recipe, layout, units, strict)
    yield from dedupe_steps(recipe, layout, inputs)
    if recipe.tokenizer is not None:
        yield tokenizer_step(recipe, layout, inputs)
        if decontaminate:
            yield decontam_tokens_step(layout, inputs)
    if recipe.stages:
        yield from shard_steps(recipe, layout, inputs)


def shard_steps(
    recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], *, shard_bytes: int = SHARD_BYTES
) -> Iterator[Step]:
    """Yield the tokenize, plan, pack and index steps for the clean files `inputs` ((source, task) pairs), the
    plan sized from the token files once the tokenize step has run, the index from the plan."""
    inputs = sorted(inputs)
    yield Step(
        "tokenize",
        [TokenizeDocuments(layout, inputs)],
        tasks=len(inputs),
        after=lambda: write_source_histograms(layout, inputs),
    )
    shards = stage_shards(recipe, layout, inputs, shard_bytes)
    slices = slice_count(recipe, layout, inputs, shards)
    yield Step(
        "plan",
        [PlanShards(recipe, layout, inputs, shards, slices)],
        tasks=slices,
        mem_per_cpu_gb=4.0,
        after=lambda: write_plan(recipe, layout, inputs, shards, slices),
    )
    jobs = pack_jobs(shards)
    partitions = index_partitions(recipe, layout)
    yield Step(
        "pack", [PackShards(recipe, layout, inputs, jobs, partitions)], tasks=len(jobs), mem_per_cpu_gb=2.0
    )
    indexing = index_jobs(partitions)
    yield Step("index", [IndexDocuments(recipe, layout, shards, indexing)], tasks=len(indexing))
