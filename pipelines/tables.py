"""The steps' intermediate Arrow IPC tables (dedupe's signatures and partitions, token-file indexes, plans),
optionally split into partitions readable one by one; and `ParquetRowWriter`, which streams rows into one
parquet file atomically (the documents files, decontamination's removed text).

A partitioned file holds one record batch per partition, in partition order (a shuffle with one file per
writer task), and the row offsets of every partition in the schema metadata. A reader of partition p reads
the file's footer and that one batch: local files are memory-mapped (it touches only those pages), remote
ones are read by range, so a task of P partitions reads 1/P of each file, not all of it.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.storage import atomic_write, filesystem, is_local

_OFFSETS = b"gristmill.partition_offsets"
_ROW_GROUP_BYTES = 32 << 20


class ParquetRowWriter:
    """Streams rows (column name → value) into one zstd parquet file of `schema`, a row group each time the
    rows' `text_column` reaches `group_bytes` characters; the file appears on `close` (with no row group when
    no row was written), and `abort` leaves nothing."""

    def __init__(
        self, path: str, schema: pa.Schema, text_column: str = "text", group_bytes: int = _ROW_GROUP_BYTES
    ) -> None:
        self.path = path
        self.schema = schema
        self.text_column = text_column
        self.group_bytes = group_bytes
        self.count = 0
        self._ctx = atomic_write(path, "wb")
        self._writer = pq.ParquetWriter(self._ctx.__enter__(), schema, compression="zstd")
        self._rows: dict[str, list] = {name: [] for name in schema.names}
        self._bytes = 0

    def write(self, row: dict) -> None:
        """Append one row (a column it does not name is null)."""
        for name, column in self._rows.items():
            column.append(row.get(name))
        self._bytes += len(row[self.text_column])
        self.count += 1
        if self._bytes >= self.group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._rows[self.text_column]:
            self._writer.write_table(pa.table(self._rows, schema=self.schema))
            self._rows = {name: [] for name in self.schema.names}
            self._bytes = 0

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._flush()
        self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        """Drop the partial file."""
        self._writer.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)


def write_table(path: str, table: pa.Table) -> None:
    """Write `table` atomically as an uncompressed Arrow IPC file."""
    with atomic_write(path, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)


def write_partitioned(path: str, table: pa.Table, partition: np.ndarray, partitions: int) -> None:
    """Write `table` with its rows grouped by `partition` (one int per row, in [0, partitions)), stably."""
    order = np.argsort(partition, kind="stable")
    counts = np.bincount(partition, minlength=partitions)
    offsets = np.zeros(partitions + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    schema = table.schema.with_metadata({_OFFSETS: json.dumps(offsets.tolist())})
    rows = table.take(pa.array(order)).combine_chunks()
    batch = rows.to_batches()[0] if rows.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    with atomic_write(path, "wb") as f, pa.ipc.new_file(f, schema) as writer:
        for p in range(partitions):
            writer.write_batch(batch.slice(offsets[p], counts[p]))


def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read an Arrow IPC file (memory-mapped when local), keeping only `columns` if given."""
    if is_local(path):
        source = pa.memory_map(path.removeprefix("file://"), "r")
    else:
        fs, inner = filesystem(path)
        with fs.open(inner, "rb") as f:
            source = pa.BufferReader(f.read())
    table = pa.ipc.open_file(source).read_all()
    return table.select(columns) if columns is not None else table


def read_partition(path: str, partition: int, columns: list[str] | None = None) -> pa.Table:
    """Read the rows of one partition of a file written by `write_partitioned`."""
    if is_local(path):
        table = _read_partition(pa.memory_map(path.removeprefix("file://"), "r"), partition)
    else:
        fs, inner = filesystem(path)
        with fs.open(inner, "rb") as f:
            table = _read_partition(f, partition)
    return table.select(columns) if columns is not None else table


def _read_partition(source, partition: int) -> pa.Table:
    reader = pa.ipc.open_file(source)
    offsets = json.loads((reader.schema.metadata or {})[_OFFSETS])
    schema = reader.schema.remove_metadata()
    if reader.num_record_batches == len(offsets) - 1:
        return pa.Table.from_batches([reader.get_batch(partition)], schema)
    # Written by gristmill before 2026-12 (a build resumed across the upgrade): one batch, sliced.
    table = reader.read_all()
    start, end = offsets[partition], offsets[partition + 1]
    return table.slice(start, end - start).replace_schema_metadata(None)


def column(table: pa.Table, name: str) -> np.ndarray:
    """Return a numeric column as a numpy array (zero-copy when it is one chunk)."""
    col = table.column(name)
    if col.num_chunks == 1:
        return col.chunk(0).to_numpy(zero_copy_only=False)
    return col.to_numpy()


def concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenate tables of one schema (an empty table of `schema` when there are none)."""
    tables = [t.replace_schema_metadata(None) for t in tables]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_partitions(paths: list[str], partition: int, schema: pa.Schema) -> pa.Table:
    """Read partition `partition` of every file in `paths`, concatenated (empty `schema` rows if none)."""
    return concat([read_partition(path, partition) for path in paths], schema)
