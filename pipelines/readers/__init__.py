"""Source readers: one per native layout, each turning files into datatrove Documents (and BadRecords)."""

from __future__ import annotations

from gristmill.errors import InputError
from gristmill.pipelines.readers.base import BadRecord, FormatReader
from gristmill.pipelines.readers.dolma import DolmaReader
from gristmill.pipelines.readers.generic import GenericJsonlReader, GenericParquetReader
from gristmill.pipelines.readers.pile import PileReader
from gristmill.pipelines.readers.slimpajama import SlimPajamaReader
from gristmill.pipelines.readers.starcoder import StarcoderReader
from gristmill.pipelines.recipe import MAX_DOCUMENT_BYTES, Recipe, SourceConfig
from gristmill.storage import expand, filesystem

READERS: dict[str, type[FormatReader]] = {
    "slimpajama": SlimPajamaReader,
    "starcoder": StarcoderReader,
    "dolma": DolmaReader,
    "pile": PileReader,
    "jsonl": GenericJsonlReader,
    "parquet": GenericParquetReader,
}

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "READERS",
    "BadRecord",
    "FormatReader",
    "excluded_subset_warnings",
    "reader_for",
    "source_files",
]


def reader_for(source: SourceConfig, max_document_bytes: int | None = None) -> FormatReader:
    """Return the reader of the source's format (size limit: the argument, else the source's own)."""
    return READERS[source.format](source, max_document_bytes or source.max_document_bytes)


def source_files(source: SourceConfig, skipped: list[str] | None = None) -> list[str]:
    """Return the source's files: every path and glob expanded, without repeats, sorted.

    A folder gives only the layout's data files (names ending in one of its reader's `data_suffixes`,
    outside hidden folders such as `.git/`); the files passed over are appended to `skipped` when given.
    Raises InputError naming the path when one matches nothing, or a folder holds no data file.
    """
    suffixes = READERS[source.format].data_suffixes
    files: set[str] = set()
    for pattern in source.paths:
        found = expand(pattern, **source.storage_options)
        fs, inner = filesystem(pattern, **source.storage_options)
        if fs.isdir(inner):
            root = len(inner.rstrip("/")) + 1
            data = [
                f for f in found if _is_data_file(filesystem(f, **source.storage_options)[1][root:], suffixes)
            ]
            if skipped is not None:
                skipped += sorted(set(found) - set(data))
            if not data:
                raise InputError(
                    f"the folder holds no {source.format} data files (names ending in {', '.join(suffixes)})",
                    path=pattern,
                )
            found = data
        files.update(found)
    return sorted(files)


def _is_data_file(relative: str, suffixes: tuple[str, ...]) -> bool:
    parts = relative.split("/")
    return not any(p.startswith(".") for p in parts) and parts[-1].endswith(suffixes)


def excluded_subset_warnings(recipe: Recipe) -> list[str]:
    """Return a warning for each source whose `exclude_subsets` names subsets its corpus is not known to have
    (only corpora whose subsets are a fixed list, `known_subsets`, can be checked before the build)."""
    out = []
    for i, source in enumerate(recipe.sources):
        known = READERS[source.format].known_subsets
        unknown = [] if known is None else [s for s in source.exclude_subsets if s not in known]
        if unknown:
            out.append(
                f"sources.{i}.exclude_subsets: {unknown} are not subsets of the {source.format} "
                "corpus; the build fails after ingest if no file has them"
            )
    return out
