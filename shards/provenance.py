"""Provenance files: for every segment of every row, the document it holds; per stage, document id → rows.

A *segment* is the k-th document piece of a row: tokens [doc_offsets[k], doc_offsets[k + 1]) of the row.

Sidecar, one per shard: BUILD/stage-<n>-<L>/shard-<k>.docs.parquet (zstd Parquet), its path, bytes and
xxh3-64 in the shard's manifest entry (`ShardEntry.provenance`), one line per segment in (row, segment) order:

  column      type     meaning
  row         int32    the row in the shard
  id          string   the document's id (native, or `<source>/<relative path>:<line or row>`)
  source      string   the build source (the row's source)
  subset      string   the document's subset (null: unknown)
  file        string   its input file, relative to the source pattern it matched (null: a recipe step made it)
  record      int64    its line in that file (JSON lines, from 1) or row (parquet, from 0)
  start       int32    the segment's first token within the framed document (bos/eos included)
  length      int32    the segment's tokens: doc_offsets[k + 1] − doc_offsets[k]
  doc_length  int32    the framed document's tokens (start + length = doc_length: its last segment)

Row groups of `SIDECAR_ROW_GROUP` lines carry statistics, so reading one row's lines reads one row group. The
sidecar is apart from the shard so that shards stay uncompressed and memory-mapped for the loader, which never
reads provenance, while ids compress well in Parquet (a few % of the shard's bytes; docs/provenance.md).

Index, per stage, in P partitions: BUILD/stage-<n>-<L>/documents-<p>.parquet (`StageEntry.document_index`),
one line per segment of the stage, partition p holding the ids whose hash h has h·P >> 64 = p, sorted by h:

  hash    uint64   xxh3-64 of the id's UTF-8 bytes
  id      string
  shard   int32    the shard's place in the stage's `shards` list
  row     int32    the row in that shard
  start   int32    as in the sidecar
  length  int32

Row groups of `INDEX_ROW_GROUP` lines carry min/max statistics of `hash`, so finding a document reads the
footer and the one row group whose range holds its hash (`find_segments`). A takedown rewrites only the
partitions of the ids it removes; the lines of other documents never change (they hold no position within
the row, which a takedown's compaction moves).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from gristmill.errors import BuildError
from gristmill.shards.shuffle import mix64
from gristmill.storage import atomic_write, open_binary

SIDECAR_SUFFIX = ".docs.parquet"
INDEX_STEM = "documents"
SIDECAR_ROW_GROUP = 8192
INDEX_ROW_GROUP = 16384
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
# dictionary-encode only the columns with few values: ids are nearly all distinct, and a dictionary of them
# costs time and bytes for nothing (measured on 60K lines: 25% smaller, 25% faster to write)
DICTIONARY_COLUMNS = ["source", "subset", "file", "shard"]

SIDECAR_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int32(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("subset", pa.string()),
        pa.field("file", pa.string()),
        pa.field("record", pa.int64()),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("doc_length", pa.int32(), nullable=False),
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        pa.field("hash", pa.uint64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
    ]
)


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """Return the xxh3-64 of each id's UTF-8 bytes (uint64): what the index is partitioned and sorted by."""
    return np.fromiter(map(xxhash.xxh3_64_intdigest, ids), np.uint64, len(ids))  # (a str hashes as UTF-8)


def index_partition(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """Return the index partition (int64) of each hash: floor(hash × partitions / 2^64), so the partitions
    are consecutive ranges of hashes and laid end to end stay sorted."""
    h = np.asarray(hashes, np.uint64)
    return (((h >> np.uint64(32)) * np.uint64(partitions)) >> np.uint64(32)).astype(np.int64)


def removal_hash(doc_id: str) -> str:
    """Return the sha256 (hex) of a document id: how a takedown records an id without keeping it."""
    return hashlib.sha256(doc_id.encode()).hexdigest()


def id_list_hash(ids: Sequence[str]) -> str:
    """Return the sha256 (hex) of a list of ids, sorted and joined by newlines (a takedown's id list)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


@dataclass(frozen=True)
class WrittenFile:
    """A provenance file as written: its bytes and xxh3-64 (hex)."""

    bytes: int
    xxh3: str


def write_parquet(path: str, table: pa.Table, row_group_size: int) -> WrittenFile:
    """Write `table` to `path` as zstd Parquet with statistics, atomically; return its size and xxh3-64."""
    buffer = io.BytesIO()
    dictionary = [c for c in DICTIONARY_COLUMNS if c in table.column_names]
    pq.write_table(table, buffer, row_group_size=row_group_size, use_dictionary=dictionary, **PARQUET_OPTIONS)
    data = buffer.getvalue()
    with atomic_write(path) as f:
        f.write(data)
    return WrittenFile(len(data), xxhash.xxh3_64_hexdigest(data))


def sidecar_path(shard_path: str) -> str:
    """Return the sidecar's path beside a shard's (`shard-00003.arrow` → `shard-00003.docs.parquet`)."""
    return shard_path.removesuffix(".arrow") + SIDECAR_SUFFIX


_HINT = "run `gristmill shards verify` on the build"


@contextlib.contextmanager
def _reading(path: str) -> Iterator[pq.ParquetFile]:
    """Open a provenance file (local or URL) as a ParquetFile; raise BuildError naming it when it is missing
    or not Parquet."""
    try:
        with open_binary(path) as f:
            yield pq.ParquetFile(f)
    except FileNotFoundError:
        raise BuildError("provenance file not found", path=path, hint=_HINT) from None
    except (pa.ArrowException, OSError) as e:
        raise BuildError(f"unreadable provenance file: {e}", path=path, hint=_HINT) from None


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read a whole provenance file (local or URL); raise BuildError naming it when it is missing or bad."""
    with _reading(path) as parquet:
        return parquet.read(columns=columns)


def read_where(path: str, column: str, values: Sequence[int], columns: list[str] | None = None) -> pa.Table:
    """Return the lines of a provenance file whose `column` (sorted, with statistics) is one of `values`,
    reading only the footer and the row groups whose min/max range holds one of them."""
    wanted = np.unique(np.asarray(values, np.uint64 if column == "hash" else np.int64))
    with _reading(path) as parquet:
        position = parquet.schema_arrow.get_field_index(column)
        groups = []
        for g in range(parquet.metadata.num_row_groups):
            stats = parquet.metadata.row_group(g).column(position).statistics
            if stats is None or not stats.has_min_max:
                groups.append(g)
                continue
            i = int(np.searchsorted(wanted, stats.min))
            if i < len(wanted) and wanted[i] <= stats.max:
                groups.append(g)
        names = columns or parquet.schema_arrow.names
        if not groups:
            return parquet.schema_arrow.empty_table().select(names)
        table = parquet.read_row_groups(groups, columns=names if column in names else [*names, column])
    mask = np.isin(table.column(column).to_numpy(), wanted)
    return table.filter(pa.array(mask)).select(names)


def fingerprint(
    hashes: np.ndarray, shard: np.ndarray, row: np.ndarray, start: np.ndarray, length: np.ndarray
) -> int:
    """Return an order-free fingerprint of segments (id hash, shard, row, start, length): the sum modulo 2^64
    of a mix of each; a stage's sidecars and its index hold the same segments exactly when they agree (up to
    a 2^-64 chance)."""
    u = np.uint64
    place = (np.asarray(shard, np.int64).astype(u) << u(32)) | np.asarray(row, np.int64).astype(u)
    span = (np.asarray(start, np.int64).astype(u) << u(32)) | np.asarray(length, np.int64).astype(u)
    mixed = mix64(np.asarray(hashes, u) ^ mix64(place) ^ mix64(span ^ u(0x9E3779B97F4A7C15)))
    return int(mixed.sum(dtype=u))
