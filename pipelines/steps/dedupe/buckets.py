"""Step 2 of dedupe, one task per (band group, hash partition): bucket documents by band hash, emit edges.

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
    key_file_ordinal,
    key_is_earlier,
    key_row,
)
from gristmill.pipelines.steps.dedupe.minhash import estimated_jaccard
from gristmill.pipelines.steps.dedupe.signatures import BAND_SCHEMA, EXACT_SCHEMA
from gristmill.pipelines.steps.dedupe.task import DedupeTask
from gristmill.pipelines.tables import column, read_partitions, write_partitioned
from gristmill.storage import is_local, read_ranges

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
    """Rank r is band group `job.band_groups[r // partitions]`, hash partition `r % partitions`.

    A task reads its partition of every file's shuffle files (`signatures.write_shuffle`), so it holds and
    reads its partition's rows, not the corpus's; it buckets its bands one after another, reads the sketches
    of just the candidates to verify them, and writes each band's edges. Grouping bands keeps the task
    count, and Ray's per-task cost, low on small builds.
    """

    name = "dedupe buckets"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        group, partition = divmod(rank, job.partitions)
        bands = job.band_groups[group]
        files = [*job.earlier, *job.files]
        if EXACT_BAND in bands:
            exact = read_partitions([job.exact_file(f) for f in files], partition, EXACT_SCHEMA)
            member, leader = star_edges(column(exact, "key"), column(exact, "hi"), column(exact, "lo"))
            del exact
            self._write_edges(EXACT_BAND, partition, member, leader)
        near = [b for b in bands if b != EXACT_BAND]
        if not near:
            return
        rows = read_partitions([job.band_file(f, group) for f in files], partition, BAND_SCHEMA)
        band, keys, hashes = column(rows, "band"), column(rows, "key"), column(rows, "hash")
        threshold = job.config.near.jaccard_threshold
        for b in near:
            mine = band == b
            member, leader = star_edges(keys[mine], hashes[mine])
            if threshold > 0 and member.size:
                similar = estimated_jaccard(*candidate_sketches(job, member, leader)) >= threshold
                member, leader = member[similar], leader[similar]
            self._write_edges(b, partition, member, leader)

    def _write_edges(self, band: int, partition: int, member: np.ndarray, leader: np.ndarray) -> None:
        job = self.job
        self.stat_update("edges", value=int(member.size))
        src, dst = np.concatenate([member, leader]), np.concatenate([leader, member])
        table = pa.table({"src": src, "dst": dst}, schema=EDGE_SCHEMA)
        write_partitioned(band_edges_path(job, band, partition), table, job.partition_of(src), job.partitions)


def candidate_sketches(
    job: DedupeJob, member: np.ndarray, leader: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sketches of each pair's two documents, read from their files' sketch files (only the rows
    wanted: a memory map locally, ranged reads on an object store)."""
    wanted = np.unique(np.concatenate([member, leader]))
    num_perm = job.hasher.num_perm
    out = np.empty((wanted.size, num_perm), dtype=np.uint8)
    # `wanted` is sorted, so each file's keys (same priority rank and ordinal) are one contiguous run.
    file_bits = wanted >> np.uint64(32)
    starts = np.flatnonzero(np.r_[True, file_bits[1:] != file_bits[:-1]])
    for start, end in zip(starts.tolist(), np.r_[starts[1:], wanted.size].tolist()):
        keys = wanted[start:end]
        file = job.file_of(int(key_file_ordinal(keys[:1])[0]), bool(key_is_earlier(keys[:1])[0]))
        out[start:end] = _read_rows(job.sketch_file(file), key_row(keys), num_perm)
    return out[np.searchsorted(wanted, member)], out[np.searchsorted(wanted, leader)]


def _read_rows(path: str, rows: np.ndarray, width: int) -> np.ndarray:
    """Return rows (sorted) of a flat file of fixed-width rows."""
    if is_local(path):
        return np.memmap(path.removeprefix("file://"), dtype=np.uint8, mode="r").reshape(-1, width)[rows]
    starts = (rows * width).tolist()
    pieces = read_ranges(path, starts, [s + width for s in starts])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8).reshape(-1, width)
