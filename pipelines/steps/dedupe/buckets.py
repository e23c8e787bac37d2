"""Step 2 of dedupe, one task per (band, hash partition): bucket documents by band hash and emit edges.

Every bucket of two or more documents becomes a star: each member is linked to the bucket's smallest key
(its best survivor candidate). The exact "band" buckets by the full 128-bit exact hash; a MinHash band's
candidates are kept only when their Jaccard similarity estimated from the 8-bit sketches of the whole
signature reaches `near.jaccard_threshold` (this removes LSH false positives). Edges are written both ways,
partitioned by the clustering partition of their first end.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.steps.dedupe.job import (
    EXACT_BAND,
    DedupeJob,
    DocFile,
    key_file_ordinal,
    key_is_earlier,
    key_row,
)
from gristmill.pipelines.steps.dedupe.minhash import estimated_jaccard
from gristmill.pipelines.steps.dedupe.signatures import band_column, sketches
from gristmill.pipelines.steps.dedupe.store import column, read_table, write_partitioned
from gristmill.pipelines.steps.dedupe.task import DedupeTask

EDGE_SCHEMA = pa.schema([("src", pa.uint64()), ("dst", pa.uint64())])


def star_edges(keys: np.ndarray, *hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (member, leader) pairs: documents sharing every hash, each linked to the smallest such key."""
    if keys.size == 0:
        return keys[:0], keys[:0]
    order = np.lexsort((keys, *reversed(hashes)))
    keys = keys[order]
    same = np.ones(keys.size, dtype=bool)
    same[0] = False
    for h in hashes:
        h = h[order]
        same[1:] &= h[1:] == h[:-1]
    group_start = np.flatnonzero(~same)
    leader = keys[np.repeat(group_start, np.diff(np.r_[group_start, keys.size]))]
    return keys[same], leader[same]


def band_edges_path(job: DedupeJob, band: int, partition: int) -> str:
    """Return the edge file of one band task."""
    name = "exact" if band == EXACT_BAND else f"band-{band:03d}"
    return job.work("edges", f"{name}-{partition:05d}.arrow")


class BucketBands(DedupeTask):
    """Rank r is band group `job.band_groups[r // partitions]`, partition `r % partitions`.

    A task buckets its bands one after another (so its peak memory is one band's), writing each band's
    edges. Grouping bands keeps the task count, and Ray's per-task cost, low on small builds.
    """

    name = "dedupe buckets"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        for band in job.band_groups[rank // job.partitions]:
            self._bucket(band, rank % job.partitions)

    def _bucket(self, band: int, partition: int) -> None:
        job = self.job
        exact = band == EXACT_BAND
        names = ["exact_hi", "exact_lo"] if exact else [band_column(band), "has_sig"]
        keys, hi, lo, tables = [], [], [], {}
        for file in [*job.earlier, *job.files]:
            table = read_table(file.signatures, names if exact else [*names, "sketch"])
            tables[(file.earlier, file.ordinal)] = table
            h = column(table, names[0])
            mine = (h % np.uint64(job.partitions)) == partition
            if not exact:
                mine &= column(table, "has_sig")
            keys.append(file.keys()[mine])
            hi.append(h[mine])
            if exact:
                lo.append(column(table, "exact_lo")[mine])
        all_keys = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        hashes = (np.concatenate(hi), np.concatenate(lo)) if exact else (np.concatenate(hi),)
        member, leader = star_edges(all_keys, *hashes) if all_keys.size else (all_keys, all_keys)
        threshold = job.config.near.jaccard_threshold
        if not exact and threshold > 0 and member.size:
            member, leader = self._verified(member, leader, tables, threshold)
        self.stat_update("edges", value=int(member.size))
        src, dst = np.concatenate([member, leader]), np.concatenate([leader, member])
        table = pa.table({"src": src, "dst": dst}, schema=EDGE_SCHEMA)
        write_partitioned(band_edges_path(job, band, partition), table, job.partition_of(src), job.partitions)

    def _verified(self, member: np.ndarray, leader: np.ndarray, tables: dict, threshold: float):
        """Keep the pairs whose estimated Jaccard similarity reaches `threshold`."""
        job = self.job
        wanted = np.unique(np.concatenate([member, leader]))
        rows = np.empty((wanted.size, job.hasher.num_perm), dtype=np.uint8)
        earlier, ordinal = key_is_earlier(wanted), key_file_ordinal(wanted)
        # `wanted` is sorted, so each file's keys are one contiguous run.
        starts = np.flatnonzero(np.r_[True, (earlier[1:] != earlier[:-1]) | (ordinal[1:] != ordinal[:-1])])
        for start, end in zip(starts, np.r_[starts[1:], wanted.size]):
            file: DocFile = job.file_of(int(ordinal[start]), bool(earlier[start]))
            table = tables[(file.earlier, file.ordinal)]
            rows[start:end] = sketches(table, key_row(wanted[start:end]), job.hasher.num_perm)
        similar = (
            estimated_jaccard(rows[np.searchsorted(wanted, member)], rows[np.searchsorted(wanted, leader)])
            >= threshold
        )
        return member[similar], leader[similar]
