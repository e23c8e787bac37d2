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

from gristmill.pipelines.steps.dedupe.job import EXACT_BAND, DedupeJob, DocFile
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

    A task reads each signature file once, keeping only its partition's rows of its bands (and the sketches
    of those rows, to verify candidates), so its memory is its partition's, not the corpus's; then it buckets
    its bands one after another, writing each band's edges. Grouping bands keeps the task count, and Ray's
    per-task cost, low on small builds.
    """

    name = "dedupe buckets"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        bands = job.band_groups[rank // job.partitions]
        partition = rank % job.partitions
        rows = _PartitionRows(bands, job.hasher.num_perm)
        for file in [*job.earlier, *job.files]:
            rows.add(file, partition, job.partitions)
        for band in bands:
            self._bucket(band, partition, rows)

    def _bucket(self, band: int, partition: int, rows: _PartitionRows) -> None:
        job = self.job
        all_keys, hashes = rows.band(band)
        member, leader = star_edges(all_keys, *hashes)
        threshold = job.config.near.jaccard_threshold
        if band != EXACT_BAND and threshold > 0 and member.size:
            similar = estimated_jaccard(rows.sketches_of(member), rows.sketches_of(leader)) >= threshold
            member, leader = member[similar], leader[similar]
        self.stat_update("edges", value=int(member.size))
        src, dst = np.concatenate([member, leader]), np.concatenate([leader, member])
        table = pa.table({"src": src, "dst": dst}, schema=EDGE_SCHEMA)
        write_partitioned(band_edges_path(job, band, partition), table, job.partition_of(src), job.partitions)


class _PartitionRows:
    """One hash partition's documents for a group of bands: per band its keys and hashes, and the 8-bit
    sketches of every document a near band holds (to estimate the Jaccard similarity of candidates)."""

    def __init__(self, bands: list[int], num_perm: int) -> None:
        self.bands = bands
        self.num_perm = num_perm
        self._parts: dict[int, list[tuple[np.ndarray, ...]]] = {band: [] for band in bands}
        self._sketch_keys: list[np.ndarray] = []
        self._sketches: list[np.ndarray] = []
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, file: DocFile, partition: int, partitions: int) -> None:
        """Take the partition's rows of one signature file (read once, then let go)."""
        near = [b for b in self.bands if b != EXACT_BAND]
        columns = (["exact_hi", "exact_lo"] if EXACT_BAND in self.bands else []) + (
            [*map(band_column, near), "has_sig", "sketch"] if near else []
        )
        table = read_table(file.signatures, columns)
        keys = file.keys()
        has_sig = column(table, "has_sig") if near else None
        in_near_band = np.zeros(table.num_rows, dtype=bool)
        for band in self.bands:
            h = column(table, band_column(band))
            mine = (h % np.uint64(partitions)) == partition
            if band == EXACT_BAND:
                self._parts[band].append((keys[mine], h[mine], column(table, "exact_lo")[mine]))
            else:
                mine &= has_sig
                in_near_band |= mine
                self._parts[band].append((keys[mine], h[mine]))
        if in_near_band.any():
            self._sketch_keys.append(keys[in_near_band])
            self._sketches.append(sketches(table, np.flatnonzero(in_near_band), self.num_perm))

    def band(self, band: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Return (keys, hashes) of a band's documents in this partition; the band's rows are let go."""
        parts = self._parts.pop(band)
        width = 3 if band == EXACT_BAND else 2
        arrays = [
            np.concatenate([p[i] for p in parts]) if parts else np.empty(0, np.uint64) for i in range(width)
        ]
        return arrays[0], tuple(arrays[1:])

    def sketches_of(self, keys: np.ndarray) -> np.ndarray:
        """Return the sketches of `keys` (every one a near band's document of this partition)."""
        if self._sorted is None:
            all_keys = np.concatenate(self._sketch_keys)
            order = np.argsort(all_keys)
            self._sorted = (all_keys[order], np.concatenate(self._sketches)[order])
            self._sketch_keys = self._sketches = []
        sorted_keys, sorted_sketches = self._sorted
        return sorted_sketches[np.searchsorted(sorted_keys, keys)]
