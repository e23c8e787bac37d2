"""Step 3 of dedupe: connected components of the duplicate graph by alternating large-star and small-star.

The algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014): each operation is
one map-reduce over edges grouped by node, run as one task per hash partition of the nodes (no task ever holds
the whole graph), and alternating them converges in O(log² n) operations to a forest of stars, each centred on
its component's smallest key, which is the survivor (see job.py). A task also checks whether its input is
already such a star forest; when every task of an operation says so, the graph has converged, and no further
operation is made (the build's steps are yielded lazily, see `steps.build_steps`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.steps.dedupe.buckets import EDGE_SCHEMA, band_edges_path
from gristmill.pipelines.steps.dedupe.job import DedupeJob
from gristmill.pipelines.steps.dedupe.task import DedupeTask
from gristmill.pipelines.tables import column, read_partitions, write_partitioned
from gristmill.storage import exists, read_json, write_json

MAX_OPERATIONS = 40  # 20 rounds; LSH graphs of real corpora converge in a handful (see docs/dedupe.md)


def unique_edges(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct edges without self-loops, sorted by (src, dst)."""
    keep = src != dst
    src, dst = src[keep], dst[keep]
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    new = np.ones(src.size, dtype=bool)
    new[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    return src[new], dst[new]


def _groups(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (index of each edge's group start, group sizes) for edges sorted by src."""
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if src.size else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, src.size])
    return np.repeat(starts, sizes), sizes


def is_star_forest(src: np.ndarray, dst: np.ndarray) -> bool:
    """True when every node is a centre (all neighbours larger) or a leaf (one neighbour, smaller).

    Input: unique edges sorted by (src, dst). Checked on every partition, it proves all components are stars
    centred on their minimum.
    """
    if not src.size:
        return True
    first, sizes = _groups(src)
    smallest = dst[first]
    leaf_ok = np.repeat(sizes == 1, sizes)
    return bool(np.all((smallest > src) | ((smallest < src) & leaf_ok)))


def large_star(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node u: link each larger neighbour to the smallest of u's neighbourhood (u included)."""
    first, _ = _groups(src)
    smallest = np.minimum(src, dst[first])
    larger = dst > src
    return dst[larger], smallest[larger]


def small_star(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node u with smaller neighbours: link u and each smaller neighbour to the smallest of them."""
    first, _ = _groups(src)
    smallest = dst[first]  # < src exactly where the node has a smaller neighbour
    smaller = dst < src
    nodes = np.concatenate([dst[smaller], np.unique(src[smaller])])
    targets = np.concatenate([smallest[smaller], smallest[np.searchsorted(src, np.unique(src[smaller]))]])
    keep = nodes != targets
    return nodes[keep], targets[keep]


def operation_path(job: DedupeJob, op: int, partition: int, ext: str = "arrow") -> str:
    """Return the output (or `json` status) file of one task of one operation."""
    return job.work("components", f"op-{op:02d}", f"{partition:05d}.{ext}")


def converged_path(job: DedupeJob) -> str:
    """Return the file naming the operation whose output is the final star forest."""
    return job.work("components", "converged.json")


def operation_inputs(job: DedupeJob, op: int) -> list[str]:
    """Return the files whose partition slices are the input of operation `op`."""
    if op == 0:
        return [band_edges_path(job, b, q) for b in job.bands for q in range(job.partitions)]
    return [operation_path(job, op - 1, q) for q in range(job.partitions)]


class StarOperation(DedupeTask):
    """One operation (large-star when `op` is even, small-star when odd); rank = node partition."""

    name = "dedupe components"

    def __init__(self, job: DedupeJob, op: int) -> None:
        super().__init__(job)
        self.op = op

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        edges = read_partitions(operation_inputs(job, self.op), rank, EDGE_SCHEMA)
        src, dst = unique_edges(column(edges, "src"), column(edges, "dst"))
        done = is_star_forest(src, dst)
        nodes, targets = (large_star if self.op % 2 == 0 else small_star)(src, dst)
        out_src, out_dst = np.concatenate([nodes, targets]), np.concatenate([targets, nodes])
        table = pa.table({"src": out_src, "dst": out_dst}, schema=EDGE_SCHEMA)
        write_partitioned(
            operation_path(job, self.op, rank), table, job.partition_of(out_src), job.partitions
        )
        write_json(operation_path(job, self.op, rank, "json"), {"star_forest": done, "edges": int(src.size)})
        self.stat_update("edges", value=int(src.size))


def operation_step_name(op: int) -> str:
    """Return the build step name of operation `op`."""
    return f"dedupe-components-{op:02d}"


def converged(job: DedupeJob) -> bool:
    """Return True once an operation has found a star forest in every partition."""
    return exists(converged_path(job))


def after_operation(job: DedupeJob, op: int) -> None:
    """Driver hook: when operation `op` found a star forest everywhere, record that the graph converged."""
    if converged(job):
        return
    statuses = [read_json(operation_path(job, op, q, "json")) for q in range(job.partitions)]
    if all(s["star_forest"] for s in statuses):
        write_json(converged_path(job), {"operation": op})
