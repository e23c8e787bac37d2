"""Streaming reads of input files, shared by the build's readers and the tokenizer's file corpus: lines of
zstd, gzip or plain text files; batches of parquet rows; Git LFS pointers and size limits checked.

Nothing here loads a whole file, and nothing raises on bad data: problems come out as `StreamFault`s in
file order, between the good lines or rows around them.

What survives what:
- A truncated zstd/gzip file: every line up to the cut, then one fault naming the compressed byte where the
  file ends and the line it ends in.
- A corrupt zstd frame or gzip member: the lines decoded before the decoder noticed, one fault, then reading
  resumes at the next frame (zstd) or member (gzip) found by its magic bytes. Single-frame files (most
  SlimPajama, Pile and Dolma files) have no next frame, so the rest of the file is the fault; multi-frame
  files (`pzstd`, `zstd --adapt` over concatenated chunks, concatenated gzip members) lose only the corrupt
  frame. Line numbers after a resync count on from the broken line, since the lost lines cannot be counted.
  Data corrupted before the decoder notices (zstd checks its checksum only at a frame's end) may come out
  as garbled lines; those fail as records (invalid UTF-8 or JSON) rather than as the stream.
- A line longer than the limit: never accumulated past the limit; reported as a `Line` with `data=None`.
- A parquet row group that cannot be decoded: one fault for its rows, then the next row group.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from gristmill.storage import open_binary

CHUNK_BYTES = 1 << 20
# One runaway record (a dump on one line, a missing newline) must not take a worker's memory; real documents
# of the four corpora are far below this.
MAX_RECORD_BYTES = 32 << 20
# Compressed bytes fed to a decoder at a time: a corrupt frame loses at most the output of one slice before
# the decoder raises, and a slice's output (what a single call returns) stays a few hundred KiB for text.
DECODE_SLICE_BYTES = 64 << 10
PARQUET_BATCH_ROWS = 256
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_MAGIC = {"zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b\x08"}
_UNIT = {"zstd": "frame", "gzip": "member"}
_SUFFIXES = {".zst": "zstd", ".zstd": "zstd", ".gz": "gzip", ".gzip": "gzip"}


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a text file, without its newline; `data` is None when it was longer than the limit."""

    number: int  # 1-based
    data: bytes | None
    size: int  # bytes, without the newline


@dataclass(frozen=True, slots=True)
class StreamFault:
    """A stretch of a file that cannot be read: where (`line 12`, `rows 0-99`, `file`…) and why."""

    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class _DecodeFault:
    reason: str


def codec_for(path: str) -> str | None:
    """Return the compression a file's name promises: "zstd", "gzip", or None for plain."""
    name = path.rsplit("/", 1)[-1].lower()
    for suffix, codec in _SUFFIXES.items():
        if name.endswith(suffix):
            return codec
    return None


def lfs_pointer_reason(head: bytes) -> str | None:
    """Return the fault reason when a file's first bytes are a Git LFS pointer rather than data, else None."""
    if not head.startswith(LFS_POINTER):
        return None
    fields = dict(line.split(" ", 1) for line in head.decode("ascii", "replace").splitlines() if " " in line)
    detail = ", ".join(f"{k} {fields[k]}" for k in ("oid", "size") if k in fields)
    return (
        f"this is a Git LFS pointer ({detail or 'no oid'}), not the data: run `git lfs pull` in the "
        "dataset's clone (or download the file itself)"
    )


def _pieces(path: str, f: Any, chunk_bytes: int) -> Iterator[bytes | _DecodeFault | StreamFault]:
    """Yield a file's decompressed bytes and decoder faults, or one StreamFault when it is no data at all."""
    codec = codec_for(path)
    head = f.read(chunk_bytes)
    if not head:
        return
    lfs = lfs_pointer_reason(head)
    if lfs:
        yield StreamFault("file", lfs)
        return
    if codec and not head.startswith(_MAGIC[codec]):
        yield StreamFault(
            "file",
            f"not {codec} data although the name ends in "
            f"{path.rsplit('.', 1)[-1]!r} (the file starts with {head[:8]!r})",
        )
        return
    chunks = _chunks(f, head, chunk_bytes)
    yield from _decompress(chunks, codec) if codec else chunks


def read_lines(
    path: str, storage_options: dict[str, Any], max_line_bytes: int, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Line | StreamFault]:
    """Yield the lines of a plain, zstd or gzip text file (by its name), and faults where it is unreadable."""
    with open_binary(path, **storage_options) as f:
        pieces = _pieces(path, f, chunk_bytes)
        first = next(pieces, None)
        if first is None:
            return
        if isinstance(first, StreamFault):
            yield first
            return
        yield from split_lines(itertools.chain([first], pieces), max_line_bytes)


def read_whole(
    path: str, storage_options: dict[str, Any], max_bytes: int, chunk_bytes: int = CHUNK_BYTES
) -> bytes | StreamFault:
    """Return the whole decompressed content of a plain, zstd or gzip file, or a fault: not data, corrupt,
    or larger than `max_bytes` (never buffered past it)."""
    parts: list[bytes] = []
    size = 0
    with open_binary(path, **storage_options) as f:
        for piece in _pieces(path, f, chunk_bytes):
            if isinstance(piece, StreamFault):
                return piece
            if isinstance(piece, _DecodeFault):
                return StreamFault(f"byte {size}", piece.reason)
            size += len(piece)
            if size > max_bytes:
                return StreamFault("file", f"larger than the {max_bytes:,}-byte limit")
            parts.append(piece)
    return b"".join(parts)


def split_lines(pieces: Iterable[bytes | _DecodeFault], max_line_bytes: int) -> Iterator[Line | StreamFault]:
    """Split a stream of byte chunks (and decoder faults) into numbered lines, never buffering past the limit.

    A line longer than `max_line_bytes` is dropped as it streams in and comes out with `data=None`. A fault
    mid-line swallows the incomplete line (it is the fault's `where`); numbering then goes on after it.
    """
    number = 1
    parts: list[bytes] = []
    size = 0

    def finish(last: bytes) -> Line:
        total = size + len(last)
        if total > max_line_bytes:
            return Line(number, None, total)
        return Line(number, b"".join((*parts, last)) if parts else last, total)

    for piece in pieces:
        if isinstance(piece, _DecodeFault):
            if size:
                yield StreamFault(f"line {number}", f"{piece.reason}; line {number} is incomplete")
                number += 1
            else:
                yield StreamFault(f"before line {number}", piece.reason)
            parts, size = [], 0
            continue
        lines = piece.split(b"\n")
        if len(lines) == 1:
            size += len(piece)
            if size <= max_line_bytes:
                parts.append(piece)
            elif parts:
                parts = []  # over the limit: stop keeping the line, only count its length
            continue
        yield finish(lines[0])
        number += 1
        parts, size = [], 0
        for line in lines[1:-1]:
            length = len(line)
            yield Line(number, line if length <= max_line_bytes else None, length)
            number += 1
        tail = lines[-1]
        if tail:
            size = len(tail)
            parts = [tail] if size <= max_line_bytes else []
    if size:
        yield finish(b"")


def _chunks(f: Any, head: bytes, chunk_bytes: int) -> Iterator[bytes]:
    yield head
    while chunk := f.read(chunk_bytes):
        yield chunk


def _new_decoder(codec: str) -> Any:
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    return zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer around deflate data


def _decompress(chunks: Iterable[bytes], codec: str) -> Iterator[bytes | _DecodeFault]:
    """Decompress concatenated zstd frames / gzip members; on corruption, resync at the next frame's magic."""
    magic, unit = _MAGIC[codec], _UNIT[codec]
    errors = (zstandard.ZstdError, zlib.error)
    decoder: Any = None
    frame_start = 0  # compressed offset where the current frame began
    position = 0  # compressed offset of the first byte of `data`
    bad_since: int | None = None  # start of a corrupt stretch, until a later frame decodes
    message = ""
    seeking = False  # looking for the next frame's magic
    carry = b""  # the end of the last chunk, in case a magic straddles two chunks
    for chunk in _slices(chunks, DECODE_SLICE_BYTES):
        data = carry + chunk
        position -= len(carry)
        carry = b""
        while data:
            if seeking:
                found = data.find(magic)
                if found < 0:
                    carry = data[-(len(magic) - 1) :]
                    position += len(data) - len(carry)
                    break
                data, position = data[found:], position + found
                seeking = False
                decoder = None
            if decoder is None:
                decoder, frame_start = _new_decoder(codec), position
            try:
                out = decoder.decompress(data)
            except errors as e:
                if bad_since is None:
                    bad_since, message = frame_start, str(e).removeprefix("zstd decompressor error: ")
                # Search from the next byte when the failed frame began here, or its own magic is found again.
                skip = 1 if frame_start >= position else 0
                data, position = data[skip:], position + skip
                decoder, seeking = None, True
                continue
            if bad_since is not None and (out or decoder.eof):
                yield _DecodeFault(
                    f"corrupt {codec} data ({message}) in the {unit} starting at compressed "
                    f"byte {bad_since:,}; skipped to the next {unit} at byte {frame_start:,}"
                )
                bad_since = None
            if out:
                yield out
            if decoder.eof:
                rest = decoder.unused_data
                position += len(data) - len(rest)
                data, decoder = rest, None
            else:
                position += len(data)
                data = b""
    if bad_since is not None:
        yield _DecodeFault(
            f"corrupt {codec} data ({message}) in the {unit} starting at compressed byte "
            f"{bad_since:,}; no later {unit} to resume at, so the rest of the file is lost"
        )
    elif decoder is not None and position > frame_start:
        yield _DecodeFault(
            f"truncated {codec} stream: the file ends at compressed byte {position:,}, inside "
            f"the {unit} that starts at byte {frame_start:,}"
        )


def _slices(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
        else:
            view = memoryview(chunk)
            for start in range(0, len(chunk), size):
                yield bytes(view[start : start + size])


@dataclass(frozen=True, slots=True)
class RowBatch:
    """Consecutive parquet rows: `first` is the 0-based index of the first row in the file."""

    first: int
    batch: pa.RecordBatch


def read_parquet(
    path: str,
    storage_options: dict[str, Any],
    required: list[str],
    text_column: str | None = None,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> Iterator[RowBatch | StreamFault]:
    """Yield a parquet file's rows in batches, row group by row group, and faults for what cannot be read.

    A file that is not parquet, is a Git LFS pointer, lacks a `required` column or has a `text_column` that
    is not a string is one fault for the whole file; an undecodable row group is one fault for its rows.
    An empty (0-byte) file yields nothing.
    """
    with open_binary(path, **storage_options) as f:
        head = f.read(len(LFS_POINTER))
        if not head:
            return
        lfs = lfs_pointer_reason(head + f.read(256))
        if lfs:
            yield StreamFault("file", lfs)
            return
        f.seek(0)
        try:
            parquet = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            yield StreamFault("file", f"not a readable parquet file ({e}; starts with {head[:8]!r})")
            return
        names = parquet.schema_arrow.names
        missing = [c for c in required if c not in names]
        if missing:
            yield StreamFault(
                "file",
                f"missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(f'`{c}`' for c in missing)}; the file has columns: "
                f"{', '.join(names) or '(none)'}",
            )
            return
        if text_column in names:
            kind = parquet.schema_arrow.field(text_column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                yield StreamFault("file", f"column `{text_column}` has type {kind}, expected string")
                return
        first = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            start = first
            try:
                for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group]):
                    yield RowBatch(start, batch)
                    start += batch.num_rows
            except (pa.ArrowException, OSError) as e:
                yield StreamFault(
                    f"rows {start}-{first + rows - 1}", f"unreadable parquet data in row group {group} ({e})"
                )
            first += rows
