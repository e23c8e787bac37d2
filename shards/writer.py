"""Writes a shard: an Arrow IPC file in record batches of about 4 MiB, renamed into place atomically, with the
xxh3-64 of its bytes computed while they are written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import xxhash

from gristmill.shards.format import ROWS_PER_BATCH_BYTES, TOKEN_TYPES, ShardMeta, shard_schema
from gristmill.storage import atomic_write


@dataclass(frozen=True)
class WrittenShard:
    """What was written: rows, file size in bytes and the xxh3-64 of the file as 16 hex digits."""

    path: str
    rows: int
    bytes: int
    xxh3: str


class _HashingSink:
    """A write-only file object that hashes and counts what passes through to `inner`."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.hash = xxhash.xxh3_64()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.size += view.nbytes
        return self._inner.write(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:  # the atomic writer closes the real file
        self.closed = True


def rows_per_batch(seq_len: int, token_type: str = "int32") -> int:
    """Return how many rows of length `seq_len` make a record batch of about ROWS_PER_BATCH_BYTES."""
    return max(1, ROWS_PER_BATCH_BYTES // ((seq_len + 1) * TOKEN_TYPES[token_type].byte_width))


def shard_table(
    meta: ShardMeta, tokens: np.ndarray, list_offsets: np.ndarray, offsets: np.ndarray, source: np.ndarray
) -> pa.Table:
    """Return the shard's rows as an Arrow table of the shard schema.

    `tokens` is an integer array [rows, L + 1] whose ids fit `meta.token_type`; row r's doc_offsets are
    `offsets[list_offsets[r]:list_offsets[r + 1]]`; `source` is uint8[rows]. Raises ValueError when the
    shapes disagree with `meta` or an id does not fit the token type.
    """
    rows, width = tokens.shape
    if width != meta.seq_len + 1:
        raise ValueError(f"rows have {width} tokens, the stage's L + 1 is {meta.seq_len + 1}")
    if len(list_offsets) != rows + 1 or len(source) != rows:
        raise ValueError(f"{rows} rows but {len(list_offsets) - 1} offset lists and {len(source)} sources")
    schema = shard_schema(meta)
    token_type = TOKEN_TYPES[meta.token_type]
    dtype = np.dtype(token_type.to_pandas_dtype())
    if tokens.size and tokens.dtype != dtype and (tokens.min() < 0 or tokens.max() > np.iinfo(dtype).max):
        raise ValueError(f"token ids [{tokens.min()}, {tokens.max()}] do not fit {meta.token_type}")
    flat = pa.array(np.ascontiguousarray(tokens, dtype=dtype).reshape(-1), type=token_type)
    columns = [
        pa.FixedSizeListArray.from_arrays(flat, width),
        pa.ListArray.from_arrays(pa.array(list_offsets, pa.int32()), pa.array(offsets, pa.int32())),
        pa.array(np.asarray(source, np.uint8), pa.uint8()),
    ]
    # from_arrays builds nullable fields; the values are never null, so cast to the declared schema.
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def write_shard(path: str, table: pa.Table) -> WrittenShard:
    """Write `table` (see shard_table) to `path` as an Arrow IPC file, atomically; return size and hash."""
    meta = ShardMeta.from_schema(table.schema)
    with atomic_write(path, "wb") as f:
        sink = _HashingSink(f)
        with pa.ipc.new_file(pa.PythonFile(sink, mode="w"), table.schema) as writer:
            writer.write_table(table, max_chunksize=rows_per_batch(meta.seq_len, meta.token_type))
    return WrittenShard(path=path, rows=table.num_rows, bytes=sink.size, xxh3=sink.hash.hexdigest())


def file_xxh3(path: str, chunk_bytes: int = 8 << 20) -> tuple[int, str]:
    """Return (size in bytes, xxh3-64 hex) of a file, local or fsspec URL."""
    from gristmill.storage import open_binary

    h = xxhash.xxh3_64()
    size = 0
    with open_binary(path) as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()
