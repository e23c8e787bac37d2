"""Dedupe steps 4 and 5: name each cluster's kept copy, then write clean documents, decisions, index.

Resolve (one task per node partition) reads the final star forest's edges of its centres, looks up each
centre's id in its own file, and sends (duplicate, centre, kept id, kept source) to the duplicate's partition.
Apply (one task per documents file) drops the file's duplicates, keeping the row order, and writes
clean/, stats/dedupe/, dedupe/decisions/ and dedupe/index/ (the kept documents' hashes, for later builds).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline

from gristmill.errors import BuildError
from gristmill.pipelines.documents import DOCUMENT_SCHEMA
from gristmill.pipelines.steps.dedupe.buckets import EDGE_SCHEMA, band_edges_path
from gristmill.pipelines.steps.dedupe.components import MAX_OPERATIONS, converged_path, operation_path
from gristmill.pipelines.steps.dedupe.job import (
    EXACT_BAND,
    DedupeJob,
    DocFile,
    index_settings,
    key_file_ordinal,
    key_is_earlier,
    key_row,
)
from gristmill.pipelines.steps.dedupe.task import DedupeTask
from gristmill.pipelines.tables import (
    column,
    read_partitions,
    read_table,
    write_partitioned,
    write_table,
)
from gristmill.storage import atomic_write, exists, filesystem, is_local, read_json, write_json

RESOLVED_SCHEMA = pa.schema(
    [
        ("duplicate", pa.uint64()),
        ("cluster", pa.uint64()),
        ("kept_id", pa.string()),
        ("kept_source", pa.string()),
    ]
)
DECISION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("row", pa.int64()),
        ("kind", pa.string()),
        ("cluster", pa.uint64()),
        ("kept_id", pa.string()),
        ("kept_source", pa.string()),
    ]
)


def resolved_path(job: DedupeJob, partition: int) -> str:
    """Return the resolve task's output file."""
    return job.work("resolved", f"{partition:05d}.arrow")


def apply_summary_path(job: DedupeJob, ordinal: int) -> str:
    """Return the apply task's summary (overlap counts and kept documents)."""
    return job.work("apply", f"{ordinal:05d}.json")


def decisions_path(job: DedupeJob, file: DocFile) -> str:
    """Return BUILD/dedupe/decisions/<source>/<task>.parquet."""
    return job.layout.decisions_file(file.source, file.task)


def _ids(file: DocFile, rows: np.ndarray) -> list[str]:
    """Return the ids of `rows` of a documents file or an earlier build's index file."""
    if file.earlier:
        table = read_table(file.signatures, ["id"])
    else:
        fs, inner = filesystem(file.documents)
        with fs.open(inner, "rb") as f:
            table = pq.read_table(f, columns=["id"])
    return table.column("id").take(pa.array(rows)).to_pylist()


class ResolveKept(DedupeTask):
    """Rank = node partition: attaches the kept copy's id and source to every duplicate of its centres."""

    name = "dedupe resolve"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        if not exists(converged_path(job)):
            raise BuildError(
                f"dedupe clustering did not converge within {MAX_OPERATIONS} operations",
                path=job.work("components"),
                hint="this is a bug in gristmill; please report it",
            )
        final = read_json(converged_path(job))["operation"]
        edges = read_partitions(
            [operation_path(job, final, q) for q in range(job.partitions)], rank, EDGE_SCHEMA
        )
        src, dst = column(edges, "src"), column(edges, "dst")
        centre, duplicate = src[src < dst], dst[src < dst]
        kept_id = np.empty(centre.size, dtype=object)
        kept_source = np.empty(centre.size, dtype=object)
        earlier, ordinal = key_is_earlier(centre), key_file_ordinal(centre)
        for is_earlier, number in sorted(set(zip(earlier.tolist(), ordinal.tolist()))):
            file = job.file_of(number, is_earlier)
            at = np.flatnonzero((earlier == is_earlier) & (ordinal == number))
            kept_id[at] = _ids(file, key_row(centre[at]))
            kept_source[at] = file.source
        table = pa.table(
            {
                "duplicate": duplicate,
                "cluster": centre,
                "kept_id": pa.array(kept_id, pa.string()),
                "kept_source": pa.array(kept_source, pa.string()),
            },
            schema=RESOLVED_SCHEMA,
        )
        write_partitioned(resolved_path(job, rank), table, job.partition_of(duplicate), job.partitions)
        self.stat_update("duplicates", value=int(duplicate.size))


class ApplyDedupe(DedupeTask):
    """Rank = file ordinal: writes the file's clean documents, stats, decisions and index entries."""

    name = "dedupe apply"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job, file = self.job, self.job.files[rank]
        part = rank % job.partitions
        resolved = read_partitions(
            [resolved_path(job, q) for q in range(job.partitions)], part, RESOLVED_SCHEMA
        )
        dup_keys = column(resolved, "duplicate")
        mine = ~key_is_earlier(dup_keys) & (key_file_ordinal(dup_keys) == rank)
        resolved = resolved.filter(pa.array(mine))
        order = np.argsort(key_row(column(resolved, "duplicate")), kind="stable")
        resolved = resolved.take(pa.array(order))
        rows = key_row(column(resolved, "duplicate"))
        kinds = np.where(np.isin(rows, self._exact_rows(rank)), "exact", "near")

        fs, inner = filesystem(file.documents)
        with fs.open(inner, "rb") as f:
            documents = pq.read_table(f, schema=DOCUMENT_SCHEMA)
        keep = np.ones(documents.num_rows, dtype=bool)
        keep[rows] = False
        with atomic_write(job.layout.clean_file(file.source, file.task)) as f:
            pq.write_table(documents.filter(pa.array(keep)), f, compression="zstd")

        ids = documents.column("id").take(pa.array(rows))
        decisions = pa.table(
            {
                "id": ids,
                "row": pa.array(rows, pa.int64()),
                "kind": pa.array(kinds, pa.string()),
                "cluster": resolved.column("cluster"),
                "kept_id": resolved.column("kept_id"),
                "kept_source": resolved.column("kept_source"),
            },
            schema=DECISION_SCHEMA,
        )
        with atomic_write(decisions_path(job, file)) as f:
            pq.write_table(decisions, f, compression="zstd")

        subsets = documents.column("subset").to_numpy(zero_copy_only=False)
        stats = {s: {"exact": 0, "near": 0} for s in sorted(set(subsets.tolist()))}
        for subset, kind in zip(subsets[rows].tolist(), kinds.tolist()):
            stats[subset][kind] += 1
        write_json(job.layout.stats_file("dedupe", file.source, file.task), stats)

        signatures = read_table(file.signatures).filter(pa.array(keep))
        signatures = signatures.append_column("id", documents.column("id").filter(pa.array(keep)))
        write_table(job.layout.dedupe_index_file(file.source, file.task), signatures)
        overlap = Counter(resolved.column("kept_source").to_pylist())
        write_json(
            apply_summary_path(job, rank),
            {
                "source": file.source,
                "task": file.task,
                "kept": int(keep.sum()),
                "overlap": dict(sorted(overlap.items())),
            },
        )
        self.stat_update("duplicates", value=int(rows.size))

    def _exact_rows(self, rank: int) -> np.ndarray:
        """Return the rows of file `rank` that are exact duplicates (non-leaders of an exact-hash bucket)."""
        job = self.job
        if EXACT_BAND not in job.bands:
            return np.empty(0, np.int64)
        part = rank % job.partitions
        edges = read_partitions(
            [band_edges_path(job, EXACT_BAND, q) for q in range(job.partitions)], part, EDGE_SCHEMA
        )
        src, dst = column(edges, "src"), column(edges, "dst")
        members = src[(src > dst) & ~key_is_earlier(src) & (key_file_ordinal(src) == rank)]
        return key_row(members)


def finish_apply(job: DedupeJob) -> None:
    """Driver hook: sum the overlap matrix into BUILD/dedupe/overlap.json and describe the index."""
    overlap: dict[str, Counter] = {}
    files = []
    for file in job.files:
        summary = read_json(apply_summary_path(job, file.ordinal))
        overlap.setdefault(file.source, Counter()).update(summary["overlap"])
        files.append({"source": file.source, "task": file.task, "rows": summary["kept"]})
    write_json(
        job.layout.overlap_file,
        {removed: dict(sorted(kept.items())) for removed, kept in sorted(overlap.items()) if kept},
    )
    write_json(job.layout.dedupe_index_meta, {**index_settings(job.config), "files": files})


class CopyDocuments(DedupeTask):
    """With dedupe off: clean = documents (a hard link when local, else a copy), nothing removed."""

    name = "dedupe off: copy"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job, file = self.job, self.job.files[rank]
        clean = job.layout.clean_file(file.source, file.task)
        if is_local(clean) and is_local(file.documents):
            os.makedirs(os.path.dirname(clean), exist_ok=True)
            tmp = f"{clean}.link.tmp"
            if os.path.exists(tmp):
                os.unlink(tmp)
            try:
                os.link(file.documents, tmp)
            except OSError:  # another file system, or links not allowed: copy instead
                shutil.copyfile(file.documents, tmp)
            os.replace(tmp, clean)
        else:
            fs, inner = filesystem(file.documents)
            with fs.open(inner, "rb") as src, atomic_write(clean) as dst:
                shutil.copyfileobj(src, dst)
        fs, inner = filesystem(file.documents)
        with fs.open(inner, "rb") as f:
            subsets = pc.unique(pq.read_table(f, columns=["subset"]).column("subset")).to_pylist()
        write_json(
            job.layout.stats_file("dedupe", file.source, file.task),
            {s: {"exact": 0, "near": 0} for s in sorted(subsets)},
        )
        with atomic_write(decisions_path(job, file)) as f:
            pq.write_table(DECISION_SCHEMA.empty_table(), f)
