"""The build's document files: parquet with id, text, source, subset, origin (file and record), quality score
and metadata (JSON), atomic.

`file` and `record` say where a document came from (`FormatReader.with_origin`: the input file relative to
its source pattern, and the line or row in it); a document with no origin in its metadata (one a recipe step
made) has them null."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document

from gristmill.pipelines.readers.base import ORIGIN_FILE, ORIGIN_RECORD
from gristmill.pipelines.tables import ParquetRowWriter
from gristmill.storage import filesystem

SCORE_KEY = "quality"  # a document's quality score: its metadata key and its column

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
        pa.field("file", pa.string()),
        pa.field("record", pa.int64()),
        pa.field("quality", pa.float32()),  # the quality classifier's score (null when the build has none)
    ]
)


class DocumentFileWriter:
    """Streams Documents into one parquet file in row groups of about 32 MiB; the file appears on close."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._rows = ParquetRowWriter(path, DOCUMENT_SCHEMA)

    @property
    def count(self) -> int:
        """Documents written so far."""
        return self._rows.count

    def write(self, doc: Document) -> None:
        """Append one document."""
        meta = dict(doc.metadata)
        row = {
            "id": doc.id,
            "text": doc.text,
            "source": meta.pop("source"),
            "subset": meta.pop("subset"),
            "file": meta.pop(ORIGIN_FILE, None),
            "record": meta.pop(ORIGIN_RECORD, None),
            "quality": meta.pop(SCORE_KEY, None),
        }
        row["metadata"] = json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)
        self._rows.write(row)

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._rows.close()

    def abort(self, exc: BaseException) -> None:
        """Drop the partial file."""
        self._rows.abort(exc)


def read_documents(path: str, columns: list[str] | None = None) -> Iterator[Document]:
    """Yield the Documents of one document file, in order (metadata restored with source and subset)."""
    fs, inner = filesystem(path)
    with fs.open(inner, "rb") as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=columns):
            for row in batch.to_pylist():
                meta = json.loads(row.get("metadata") or "{}")
                meta["source"], meta["subset"] = row["source"], row["subset"]
                if row.get(SCORE_KEY) is not None:
                    meta[SCORE_KEY] = row[SCORE_KEY]
                if row.get("file") is not None:
                    meta[ORIGIN_FILE], meta[ORIGIN_RECORD] = row["file"], row["record"]
                yield Document(text=row.get("text", ""), id=row.get("id", ""), metadata=meta)
