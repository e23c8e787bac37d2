"""Open a shard: the one way to read a shard file, with every check, for the loader, `verify` and `show`.

`open_shard` opens the Arrow IPC file (memory-mapped when local, read whole when remote, or any Arrow file
object handed in), checks its schema metadata, format version and schema, and, when the caller knows them
from the manifest, its sequence length and row count. It returns a `ShardFile`: the columns of every record
batch as numpy views (zero-copy over a memory map), one row or a batch at a time, or rows gathered into a
training batch (`take`). Every problem raises BuildError naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gristmill.errors import BuildError
from gristmill.shards.checksum import VERIFY_HINT
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
    list_offsets: np.ndarray  # int64[rows + 1] into `offsets`
    offsets: np.ndarray  # int32: the doc_offsets of every row, one after another
    source: np.ndarray


@dataclass(frozen=True)
class ShardFile:
    """An opened shard: its metadata and each record batch's columns as numpy views."""

    path: str
    meta: ShardMeta
    chunk_starts: np.ndarray  # (batches + 1,) first row of each record batch, then the row count
    chunks: list[Batch]

    @property
    def rows(self) -> int:
        """Return the number of rows in the shard."""
        return int(self.chunk_starts[-1])

    def batches(self) -> Iterator[Batch]:
        """Yield every record batch in order."""
        yield from self.chunks

    def row(self, index: int) -> Row:
        """Return row `index` (0-based); raise IndexError when out of range."""
        if not 0 <= index < self.rows:
            raise IndexError(f"row {index} is out of range: {self.path} has {self.rows} rows")
        chunk = int(np.searchsorted(self.chunk_starts, index, side="right")) - 1
        batch, r = self.chunks[chunk], index - int(self.chunk_starts[chunk])
        lo, hi = batch.list_offsets[r], batch.list_offsets[r + 1]
        return Row(tokens=batch.tokens[r], doc_offsets=batch.offsets[lo:hi], source=int(batch.source[r]))

    def take(
        self,
        local: np.ndarray,
        tokens_out: np.ndarray,
        slots: np.ndarray,
        offsets_out: list[tuple[int, np.ndarray]],
    ) -> None:
        """Copy rows `local` into tokens_out[slots]; append (slot, doc_offsets) per row to offsets_out."""
        chunk = np.searchsorted(self.chunk_starts, local, side="right") - 1
        for c in np.unique(chunk):
            sel = chunk == c
            batch, rows = self.chunks[c], local[sel] - self.chunk_starts[c]
            tokens_out[slots[sel]] = batch.tokens[rows]
            lo, hi = batch.list_offsets[rows], batch.list_offsets[rows + 1]
            for slot, a, b in zip(slots[sel].tolist(), lo.tolist(), hi.tolist()):
                offsets_out.append((slot, batch.offsets[a:b]))


def open_shard(
    path: str, source: pa.NativeFile | None = None, *, seq_len: int | None = None, rows: int | None = None
) -> ShardFile:
    """Open the shard at `path` (or read it from `source`, an Arrow file object of it) and check it: an
    Arrow IPC file of the shard schema and format version, with `seq_len` and `rows` when given.

    Raises BuildError naming the file when it is missing, unreadable or not what the manifest says.
    """
    try:
        if source is None:
            source = _open(path)
        reader = pa.ipc.open_file(source)
        meta = ShardMeta.from_schema(reader.schema)
    except FileNotFoundError:
        raise BuildError("shard file not found", path=path, hint=VERIFY_HINT) from None
    except (pa.ArrowInvalid, OSError) as e:
        raise BuildError(f"not an Arrow IPC file: {e}", path=path, hint=VERIFY_HINT) from None
    except ValueError as e:
        raise BuildError(str(e), path=path, hint=VERIFY_HINT) from None
    if meta.format_version != FORMAT_VERSION:
        raise BuildError(
            f"shard format version {meta.format_version} is not the supported {FORMAT_VERSION}",
            path=path,
            hint="rebuild with this version of gristmill",
        )
    expected = shard_schema(meta)
    if not reader.schema.equals(expected, check_metadata=False):
        raise BuildError(
            f"schema is {reader.schema.remove_metadata()}, expected {expected.remove_metadata()}",
            path=path,
            hint=VERIFY_HINT,
        )
    if seq_len is not None and meta.seq_len != seq_len:
        raise BuildError(
            f"shard has sequence length {meta.seq_len}, its stage expects {seq_len}",
            path=path,
            hint="the manifest and the shards come from different builds",
        )
    try:
        chunks = [_numpy_batch(reader.get_batch(i), meta.seq_len) for i in range(reader.num_record_batches)]
    except (pa.ArrowInvalid, ValueError) as e:
        raise BuildError(f"unreadable shard: {e}", path=path, hint=VERIFY_HINT) from None
    starts = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c.source) for c in chunks], out=starts[1:])
    if rows is not None and starts[-1] != rows:
        raise BuildError(
            f"shard has {starts[-1]} rows, the manifest says {rows}", path=path, hint=VERIFY_HINT
        )
    return ShardFile(path, meta, starts, chunks)


def _open(path: str) -> pa.NativeFile:
    if is_local(path):
        return pa.memory_map(path.removeprefix("file://"), "r")
    with open_binary(path) as f:
        return pa.BufferReader(f.read())


def _numpy_batch(batch: pa.RecordBatch, seq_len: int) -> Batch:
    tokens, docs = batch.column("tokens"), batch.column("doc_offsets")
    return Batch(
        tokens=tokens.flatten().to_numpy(zero_copy_only=True).reshape(-1, seq_len + 1),
        list_offsets=docs.offsets.to_numpy(zero_copy_only=True).astype(np.int64),
        offsets=docs.values.to_numpy(zero_copy_only=True),
        source=batch.column("source").to_numpy(zero_copy_only=True),
    )
