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

from gristmill.pipelines.steps.dedupe.steps import dedupe_steps

__all__ = ["dedupe_steps"]
