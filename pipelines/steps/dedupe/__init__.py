"""Exact and MinHash-LSH near-duplicate removal across all sources, as resumable build steps on Ray.

    signatures   one task per documents file: exact hash, band hashes, 8-bit sketch per document; it and one
                 task per earlier build's index file write the file's rows partitioned by hash (a shuffle)
    buckets      one task per (band group, partition): bucket by band hash, verify, emit star edges
    components   one step per operation until converged (at most MAX_OPERATIONS), one task per partition:
                 large-star / small-star
    resolve      one task per partition: the kept copy's id and source for every duplicate
    apply        one task per documents file: clean/, stats/dedupe/, dedupe/decisions/, dedupe/index/

Every task count depends on the data and the recipe only, so outputs are the same on any number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gristmill.pipelines.build.engine import Step
    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.recipe import Recipe

__all__ = ["dedupe_steps"]


def dedupe_steps(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> Iterator[Step]:
    """Yield the ordered dedupe steps for the ingest outputs `inputs` ((source, task) pairs), each once the
    one before it has run (components operations stop when the graph has converged).

    Call after ingest: the partition count comes from the documents files' row counts. Raises BuildError when
    a documents file is missing, ConfigError when `dedupe.against` names an unusable build.
    """
    # Imported here: the recipe imports this package's config, and the steps import the recipe.
    from gristmill.pipelines.steps.dedupe.steps import build_steps

    return build_steps(recipe, layout, inputs)
