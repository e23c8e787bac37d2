"""Source readers: one per native layout, each turning files into datatrove Documents (and BadRecords)."""

from __future__ import annotations

from gristmill.pipelines.readers.base import BadRecord, FormatReader
from gristmill.pipelines.readers.dolma import DolmaReader
from gristmill.pipelines.readers.generic import GenericJsonlReader, GenericParquetReader
from gristmill.pipelines.readers.pile import PileReader
from gristmill.pipelines.readers.slimpajama import SlimPajamaReader
from gristmill.pipelines.readers.starcoder import StarcoderReader
from gristmill.pipelines.recipe import MAX_DOCUMENT_BYTES, SourceConfig
from gristmill.storage import expand

READERS: dict[str, type[FormatReader]] = {
    "slimpajama": SlimPajamaReader,
    "starcoder": StarcoderReader,
    "dolma": DolmaReader,
    "pile": PileReader,
    "jsonl": GenericJsonlReader,
    "parquet": GenericParquetReader,
}

__all__ = ["MAX_DOCUMENT_BYTES", "READERS", "BadRecord", "FormatReader", "reader_for", "source_files"]


def reader_for(source: SourceConfig, max_document_bytes: int | None = None) -> FormatReader:
    """Return the reader of the source's format (size limit: the argument, else the source's own)."""
    return READERS[source.format](source, max_document_bytes or source.max_document_bytes)


def source_files(source: SourceConfig) -> list[str]:
    """Return the source's files: every path and glob expanded, without repeats, sorted.

    Raises InputError naming the path when one matches nothing.
    """
    files: set[str] = set()
    for pattern in source.paths:
        files.update(expand(pattern, **source.storage_options))
    return sorted(files)
