"""The reader contract: a format reader turns a file into Documents, BadRecords for what it cannot read."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from datatrove.data import Document
from fsspec.core import split_protocol

from gristmill.pipelines.recipe import MAX_DOCUMENT_BYTES, SourceConfig
from gristmill.streams import StreamFault, read_lines, read_parquet

EXCERPT_CHARS = 300
ORIGIN_FILE, ORIGIN_RECORD = "file", "record"  # the metadata keys of a document's origin (`with_origin`)
_GLOB_CHARS = re.compile(r"[*?\[]")
# A JSON escape of a UTF-16 surrogate; only records containing one need the (slower) valid-Unicode check.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class BadRecord:
    """A record (or a stretch of a file) that could not be read, and why.

    `where` locates it in the file: "line 12", "row 40" (rows count from 0), "rows 64-127" (a parquet row
    group), "before line 7" (a corrupt compressed stretch between lines), or "file" for the whole file.
    `excerpt` holds at most a few hundred characters of the raw input, for a person to look at.
    """

    path: str
    where: str
    reason: str
    excerpt: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the record as a JSON-ready dict."""
        return asdict(self)


class FormatReader(ABC):
    """Reads the files of one native layout. Never loads a whole file in memory; never raises on bad data.

    `iter_file` yields a Document per good record (metadata holds at least `source` and `subset`, and the id
    is stable: from the data where it has one, else derived from path and line/row) and a BadRecord per bad
    one, in file order, and carries on after a bad record wherever the format allows it. Every Document
    also says where it came from (`with_origin`): metadata `file`, the input file's path relative to its
    source pattern (as derived ids use it, so a build stays relocatable), and `record`, its line (JSON
    lines, from 1) or row (parquet, from 0) — what a segment's provenance names, and what reading the file
    again with this reader finds.

    `default_profiles` maps the corpus's subsets (names or globs) to the filter profile its makers' own
    processing calls for; a recipe's `profiles` come first. `known_subsets` lists every subset the corpus
    has, where that is a fixed list (None otherwise).
    """

    default_profiles: ClassVar[dict[str, str]] = {}
    known_subsets: ClassVar[frozenset[str] | None] = None
    data_suffixes: ClassVar[tuple[str, ...]] = ()  # the file names a folder of this layout is read for

    def __init__(self, source: SourceConfig, max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self.source = source
        self.max_document_bytes = max_document_bytes
        self._roots = sorted((r for r in map(_static_root, source.paths) if r), key=len, reverse=True)

    @abstractmethod
    def iter_file(self, path: str) -> Iterator[Document | BadRecord]:
        """Yield the file's records in order: Documents for good ones, BadRecords for bad ones."""

    def relative_path(self, path: str) -> str:
        """Return `path` relative to the fixed part (before any glob) of the source pattern it matches.

        Derived ids use it, so the same files copied to another directory or bucket keep their ids. It works
        on the path strings alone (a relative pattern matches wherever its folders appear in the path), so
        the answer does not depend on the current directory of the process. A path outside every pattern
        falls back to its last three components.
        """
        parts = _parts(path)
        for root in self._roots:
            for start in range(len(parts) - len(root), -1, -1):
                if parts[start : start + len(root)] == root:
                    rest = parts[start + len(root) :]
                    return "/".join(rest) if rest else parts[-1]
        return "/".join(parts[-3:])

    @staticmethod
    def with_origin(doc: Document, relative: str, position: int) -> Document:
        """Return `doc` with its origin in its metadata: `file` (relative path) and `record` (line or row)."""
        doc.metadata[ORIGIN_FILE] = relative
        doc.metadata[ORIGIN_RECORD] = position
        return doc

    def derived_id(self, relative: str, position: int) -> str:
        """Return the id of a record that has none in the data: `<source>/<relative path>:<line or row>`."""
        return f"{self.source.name}/{relative}:{position}"

    def too_large(self, size: int) -> str:
        """Return the quarantine reason for a record of `size` bytes over `max_document_bytes`."""
        return f"document larger than max_document_bytes={self.max_document_bytes:,} ({size:,} bytes)"


class RecordError(ValueError):
    """A record that is readable but cannot become a Document; the message is the quarantine reason."""


def checked_text(value: Any, field: str = "text") -> str:
    """Return `value` if it is usable document text; raise RecordError saying what is wrong with it."""
    if value is None:
        raise RecordError(f"missing `{field}`")
    if not isinstance(value, str):
        raise RecordError(f"`{field}` is {type(value).__name__}, expected a string")
    if "\x00" in value:
        # NULs do not occur in real prose or source code; they mark binary data or a botched conversion.
        raise RecordError(f"`{field}` contains NUL bytes (U+0000): corrupt or binary data")
    return value


def native_id(value: Any, field: str = "id") -> str | None:
    """Return a record's own id as a string: a string as it is, an integer in decimal; None when it has none
    (missing, null or ""). Raise RecordError for any other type (true/false, a number with a fraction, a list
    or an object), which is no id a corpus means, so the record is quarantined rather than given one."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = "boolean" if isinstance(value, bool) else type(value).__name__
    raise RecordError(f"`{field}` is a {kind} ({json.dumps(value)[:40]}), expected a string or an integer")


def dig(record: dict[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path (`meta.subset`) in nested dicts, or None where it is absent."""
    node: Any = record
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def subset_from_meta(record: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    """Return (`meta[key]`, `meta`) of a record whose `meta` is an object or a JSON string of one."""
    meta = record.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as e:
            raise RecordError(f"`meta` is a string but not JSON ({e.msg})") from None
    if not isinstance(meta, dict):
        raise RecordError(f"`meta` is {type(meta).__name__}, expected an object with `{key}`")
    subset = meta.get(key)
    if not isinstance(subset, str) or not subset:
        raise RecordError(f"missing `meta.{key}` (the subset)")
    return subset, meta


def excerpt(raw: bytes | str) -> str:
    """Return the start of a raw record, decoded leniently, for a person to look at."""
    if isinstance(raw, bytes):
        raw = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:EXCERPT_CHARS]


def has_surrogate_escape(raw: bytes) -> bool:
    """Return True when a raw JSON line holds a \\uD800–\\uDFFF escape (which may be unpaired)."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def _parts(path: str) -> list[str]:
    inner = split_protocol(path)[1]
    return [p for p in inner.split("/") if p not in ("", ".", "..")]


def _static_root(pattern: str) -> list[str]:
    parts = _parts(pattern)
    for i, part in enumerate(parts):
        if _GLOB_CHARS.search(part):
            return parts[:i]
    return parts


class JsonLinesReader(FormatReader):
    """Reads JSON-lines files (plain, .zst or .gz); a subclass turns each parsed object into a Document."""

    data_suffixes: ClassVar[tuple[str, ...]] = tuple(
        f"{ext}{compression}" for ext in (".jsonl", ".json", ".ndjson") for compression in ("", ".zst", ".gz")
    )

    @abstractmethod
    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document for one parsed line; raise RecordError with the reason when it has none."""

    def iter_file(self, path: str) -> Iterator[Document | BadRecord]:
        """Yield a Document per good line, a BadRecord per bad line or unreadable stretch, in file order."""
        relative = self.relative_path(path)
        for item in read_lines(path, self.source.storage_options, self.max_document_bytes):
            if isinstance(item, StreamFault):
                yield BadRecord(path, item.where, item.reason)
            elif item.data is None:
                yield BadRecord(path, f"line {item.number}", self.too_large(item.size))
            elif item.data and not item.data.isspace():
                try:
                    yield self.with_origin(
                        self._parse(item.data, relative, item.number), relative, item.number
                    )
                except RecordError as e:
                    yield BadRecord(path, f"line {item.number}", str(e), excerpt(item.data))

    def _parse(self, raw: bytes, relative: str, number: int) -> Document:
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a byte-order mark some Windows tools write: on any line of concatenated files
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise RecordError(f"invalid UTF-8 at byte {e.start} of the line") from None
        except json.JSONDecodeError as e:
            raise RecordError(f"invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {type(record).__name__}")
        if has_surrogate_escape(raw):
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise RecordError(
                    "a \\u escape in the record is a lone UTF-16 surrogate, not a character"
                ) from None
        return self.make_document(record, relative, number)


class ParquetRowsReader(FormatReader):
    """Reads parquet files batch by batch; a subclass turns each row (a dict of columns) into a Document."""

    data_suffixes: ClassVar[tuple[str, ...]] = (".parquet",)

    def __init__(self, source: SourceConfig, max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        super().__init__(source, max_document_bytes)
        self.required_columns: list[str] = []
        self.text_column: str | None = None  # a top-level string column: checked for type and size

    @abstractmethod
    def make_document(self, row: dict[str, Any], path: str, relative: str, index: int) -> Document:
        """Return the Document for one row (0-based `index`); raise RecordError with the reason if none."""

    def iter_file(self, path: str) -> Iterator[Document | BadRecord]:
        """Yield a Document per good row, a BadRecord per bad row or unreadable stretch, in file order."""
        relative = self.relative_path(path)
        items = read_parquet(path, self.source.storage_options, self.required_columns, self.text_column)
        for item in items:
            if isinstance(item, StreamFault):
                yield BadRecord(path, item.where, item.reason)
                continue
            rows, problems = self._rows(item.batch)
            for offset, row in enumerate(rows):
                index = item.first + offset
                if offset in problems:
                    yield BadRecord(path, f"row {index}", problems[offset])
                    continue
                try:
                    yield self.with_origin(self.make_document(row, path, relative, index), relative, index)
                except RecordError as e:
                    text = row.get(self.text_column or "")
                    yield BadRecord(path, f"row {index}", str(e), excerpt(str(text)))

    def _rows(self, batch: pa.RecordBatch) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """Return the batch as row dicts, and the reasons of rows too large or not valid UTF-8 (by offset)."""
        problems: dict[int, str] = {}
        columns: dict[str, list[Any]] = {}
        for name, array in zip(batch.schema.names, batch.columns):
            if name == self.text_column:
                sizes = pc.binary_length(array).to_pylist()
                too_big = [i for i, n in enumerate(sizes) if n is not None and n > self.max_document_bytes]
                for i in too_big:
                    problems[i] = self.too_large(sizes[i])
                if too_big:  # drop them before converting, so a huge value is not copied into Python
                    array = pc.if_else(pa.array([i in problems for i in range(len(array))]), None, array)
            columns[name] = _to_python(array, name, problems)
        return [dict(zip(columns, values)) for values in zip(*columns.values())], problems


def _to_python(array: pa.Array, name: str, problems: dict[int, str]) -> list[Any]:
    try:
        return array.to_pylist()
    except UnicodeDecodeError:
        pass
    # Arrow does not validate UTF-8 when reading parquet: find the bad values one by one.
    values: list[Any] = []
    for i in range(len(array)):
        try:
            values.append(array[i].as_py())
        except UnicodeDecodeError as e:
            problems.setdefault(i, f"invalid UTF-8 in column `{name}` at byte {e.start}")
            values.append(None)
    return values
