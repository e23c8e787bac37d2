"""Reads a shard: opens the Arrow IPC file (memory-mapped when local), checks its schema, returns rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gristmill.errors import InputError
from gristmill.shards.format import FORMAT_VERSION, ShardMeta, shard_schema
from gristmill.storage import is_local, open_binary


@dataclass(frozen=True)
class Row:
    """One training sequence: tokens int32[L + 1], doc_offsets int32 (cu_seqlens), source index."""

    tokens: np.ndarray
    doc_offsets: np.ndarray
    source: int

    @property
    def used(self) -> int:
        """Return the tokens before the padding."""
        return int(self.doc_offsets[-1])

    def documents(self) -> list[np.ndarray]:
        """Return the token ids of each document (piece) in the row."""
        return [self.tokens[a:b] for a, b in zip(self.doc_offsets[:-1], self.doc_offsets[1:])]


@dataclass(frozen=True)
class Batch:
    """A record batch as numpy: tokens int32[rows, L + 1], offsets as list parts, source uint8[rows]."""

    tokens: np.ndarray
    list_offsets: np.ndarray  # int32[rows + 1] into `offsets`
    offsets: np.ndarray  # int32: the doc_offsets of every row, one after another
    source: np.ndarray


class ShardReader:
    """One shard file: `meta`, `num_rows`, `row(i)` and `batches()`. Raises InputError naming the file when
    it is not an Arrow IPC file of the shard schema."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            if is_local(path):
                source = pa.memory_map(path.removeprefix("file://"), "r")
            else:
                with open_binary(path) as f:
                    source = pa.BufferReader(f.read())
            self._file = pa.ipc.open_file(source)
        except FileNotFoundError:
            raise InputError("shard file not found", path=path) from None
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"not an Arrow IPC file: {e}", path=path) from None
        try:
            self.meta = ShardMeta.from_schema(self._file.schema)
        except ValueError as e:
            raise InputError(str(e), path=path) from None
        if self.meta.format_version != FORMAT_VERSION:
            raise InputError(
                f"shard format version {self.meta.format_version} is not the supported {FORMAT_VERSION}",
                path=path,
            )
        expected = shard_schema(self.meta)
        if not self._file.schema.equals(expected, check_metadata=False):
            raise InputError(
                f"schema is {self._file.schema.remove_metadata()}, expected {expected.remove_metadata()}",
                path=path,
            )
        self._batch_starts = np.zeros(self._file.num_record_batches + 1, np.int64)
        for i in range(self._file.num_record_batches):
            self._batch_starts[i + 1] = self._batch_starts[i] + self._file.get_batch(i).num_rows

    @property
    def num_rows(self) -> int:
        """Return the rows in the shard."""
        return int(self._batch_starts[-1])

    @property
    def num_batches(self) -> int:
        """Return the record batches in the shard."""
        return self._file.num_record_batches

    def batch(self, i: int) -> Batch:
        """Return record batch `i` as numpy arrays (zero-copy where Arrow allows)."""
        rb = self._file.get_batch(i)
        tokens, doc_offsets, source = rb.column(0), rb.column(1), rb.column(2)
        width = self.meta.seq_len + 1
        flat = tokens.values.to_numpy(zero_copy_only=False)
        rows = flat[tokens.offset * width : (tokens.offset + len(tokens)) * width].reshape(-1, width)
        return Batch(
            tokens=rows,
            list_offsets=doc_offsets.offsets.to_numpy(),
            offsets=doc_offsets.values.to_numpy(),
            source=source.to_numpy(),
        )

    def batches(self) -> Iterator[Batch]:
        """Yield every record batch in order."""
        for i in range(self.num_batches):
            yield self.batch(i)

    def row(self, index: int) -> Row:
        """Return row `index` (0-based); raise IndexError when out of range."""
        if not 0 <= index < self.num_rows:
            raise IndexError(f"row {index} is out of range: {self.path} has {self.num_rows} rows")
        b = int(np.searchsorted(self._batch_starts, index, side="right")) - 1
        batch = self.batch(b)
        r = index - int(self._batch_starts[b])
        lo, hi = batch.list_offsets[r], batch.list_offsets[r + 1]
        return Row(tokens=batch.tokens[r], doc_offsets=batch.offsets[lo:hi], source=int(batch.source[r]))

    def read_all(self) -> pa.Table:
        """Return the whole shard as an Arrow table."""
        return self._file.read_all()
