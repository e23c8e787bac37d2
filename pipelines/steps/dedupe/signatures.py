"""Step 1 of dedupe, one task per documents file: the exact hash, band hashes and sketch of every document;
and, for this file and each earlier build's index file, its share of the shuffle to the bucket tasks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.steps.dedupe.job import EXACT_BAND, DedupeJob, DocFile
from gristmill.pipelines.steps.dedupe.minhash import MinHasher, exact_hashes, sketch_bytes
from gristmill.pipelines.steps.dedupe.task import DedupeTask
from gristmill.pipelines.tables import column, read_table, write_partitioned, write_table
from gristmill.storage import atomic_write, filesystem

_BATCH = 2048
EXACT_SCHEMA = pa.schema([("key", pa.uint64()), ("hi", pa.uint64()), ("lo", pa.uint64())])
BAND_SCHEMA = pa.schema([("band", pa.int16()), ("key", pa.uint64()), ("hash", pa.uint64())])


def band_column(band: int) -> str:
    """Return the column name of a band's hash (the exact band is the exact hash's high half)."""
    return "exact_hi" if band < 0 else f"band_{band:03d}"


def signature_table(texts: Sequence[str], hasher: MinHasher) -> pa.Table:
    """Return one row per text: exact_hi/lo (xxh3-128), has_sig, band_<b> (uint64), sketch (8-bit MinHash)."""
    exact = exact_hashes(texts)
    sig, has = hasher.signatures(texts)
    bands = hasher.band_hashes(sig)
    columns = {"exact_hi": pa.array(exact[:, 0]), "exact_lo": pa.array(exact[:, 1]), "has_sig": pa.array(has)}
    for b in range(hasher.bands):
        columns[band_column(b)] = pa.array(bands[:, b])
    sketch = sketch_bytes(sig)
    columns["sketch"] = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(hasher.num_perm), len(texts), [None, pa.py_buffer(np.ascontiguousarray(sketch).tobytes())]
    )
    return pa.table(columns)


def signature_schema(hasher: MinHasher) -> pa.Schema:
    """Return the schema of `signature_table`."""
    return signature_table([], hasher).schema


def sketches(table: pa.Table, rows: np.ndarray, num_perm: int) -> np.ndarray:
    """Return the sketches of `rows` of a signature table as a (len(rows), num_perm) uint8 array."""
    col = table.column("sketch").combine_chunks()
    flat = np.frombuffer(col.buffers()[1], dtype=np.uint8, count=(col.offset + len(col)) * num_perm)
    return flat.reshape(-1, num_perm)[col.offset :][rows]


class ComputeSignatures(DedupeTask):
    """Rank r < len(files) reads documents file r and writes its signature file; a rank past them takes an
    earlier build's index file (its signatures are in it). Either then writes the file's share of the shuffle
    (`write_shuffle`)."""

    name = "dedupe signatures"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        job = self.job
        if rank >= len(job.files):
            file = job.earlier[rank - len(job.files)]
            write_shuffle(job, file, read_table(file.signatures))
            return
        file = job.files[rank]
        fs, inner = filesystem(file.documents)
        parts = []
        with fs.open(inner, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH, columns=["text"]):
                texts = batch.column(0).to_pylist()
                parts.append(signature_table(texts, job.hasher))
                self.stat_update("documents", value=len(texts))
        table = pa.concat_tables(parts) if parts else signature_schema(job.hasher).empty_table()
        write_table(file.signatures, table)
        write_shuffle(job, file, table)


def write_shuffle(job: DedupeJob, file: DocFile, table: pa.Table) -> None:
    """Write a file's rows for the bucket tasks: its exact hashes and, per band group, its near bands' hashes,
    each partitioned by hash (a bucket task reads one partition of each), and its sketches as a flat file
    (a bucket task reads just its candidates' rows)."""
    partitions = job.partitions
    keys = file.keys()
    if EXACT_BAND in job.bands:
        hi, lo = column(table, "exact_hi"), column(table, "exact_lo")
        exact = pa.table({"key": keys, "hi": hi, "lo": lo}, schema=EXACT_SCHEMA)
        write_partitioned(job.exact_file(file), exact, _partition(hi, partitions), partitions)
    near = [b for b in job.bands if b != EXACT_BAND]
    if not near:
        return
    has_sig = column(table, "has_sig")
    signed = keys[has_sig]
    for group, bands in enumerate(job.band_groups):
        bands = [b for b in bands if b != EXACT_BAND]
        if not bands:
            continue
        hashes = np.concatenate([column(table, band_column(b))[has_sig] for b in bands])
        rows = pa.table(
            {
                "band": np.repeat(np.asarray(bands, np.int16), signed.size),
                "key": np.tile(signed, len(bands)),
                "hash": hashes,
            },
            schema=BAND_SCHEMA,
        )
        write_partitioned(job.band_file(file, group), rows, _partition(hashes, partitions), partitions)
    with atomic_write(job.sketch_file(file)) as f:
        f.write(sketches(table, np.arange(table.num_rows), job.hasher.num_perm).tobytes())


def _partition(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """Return each hash's bucket-task partition."""
    return (hashes % np.uint64(partitions)).astype(np.int64)
