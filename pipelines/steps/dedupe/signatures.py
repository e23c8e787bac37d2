"""Step 1 of dedupe, one task per documents file: the exact hash, band hashes and sketch of every document."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.steps.dedupe.minhash import MinHasher, exact_hashes, sketch_bytes
from gristmill.pipelines.steps.dedupe.store import write_table
from gristmill.pipelines.steps.dedupe.task import DedupeTask
from gristmill.storage import filesystem

_BATCH = 2048


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
    """Reads one documents file (rank = file ordinal) and writes its signature file."""

    name = "dedupe signatures"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        file = self.job.files[rank]
        fs, inner = filesystem(file.documents)
        parts = []
        with fs.open(inner, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH, columns=["text"]):
                texts = batch.column(0).to_pylist()
                parts.append(signature_table(texts, self.job.hasher))
                self.stat_update("documents", value=len(texts))
        table = pa.concat_tables(parts) if parts else signature_schema(self.job.hasher).empty_table()
        write_table(file.signatures, table)
