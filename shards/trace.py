"""What a row holds and where a document lies: the lookups behind `gristmill shards trace` and `find`.

`row_segments` reads one row's lines of its shard's provenance sidecar (one row group) and the row itself
(one record batch of the shard), so each segment comes with its tokens. `find_document` hashes the id,
reads the one row group of each stage's document index whose hash range holds it, and returns every row
segment of a document with that id (Dolma ids are not unique: one id may name several documents). Both read
local builds and object stores alike, by ranges, never a whole shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gristmill.errors import BuildError, InputError
from gristmill.shards.format import ShardMeta
from gristmill.shards.inspect import find_stage
from gristmill.shards.manifest import Manifest, ShardEntry, StageEntry
from gristmill.shards.provenance import id_hashes, index_partition, read_where
from gristmill.shards.writer import rows_per_batch
from gristmill.storage import is_local, open_binary

NO_PROVENANCE_HINT = "this build was made without provenance: rebuild it with this version of gristmill"


@dataclass(frozen=True)
class Segment:
    """One segment of a row: its span in the row and the document it holds (id, subset, input file and
    record, and the segment's token span in the framed document)."""

    offset: int  # the segment's first token in the row
    id: str
    subset: str | None
    file: str | None
    record: int | None
    start: int  # the segment's first token in the framed document
    length: int
    doc_length: int
    tokens: np.ndarray | None = None  # the segment's token ids, as the row holds them

    def to_dict(self) -> dict:
        """Return the segment as JSON-ready data (without its tokens)."""
        return {k: v for k, v in self.__dict__.items() if k != "tokens"}


@dataclass(frozen=True)
class RowTrace:
    """A row and its segments, in order (none: its documents were all taken down)."""

    stage: str
    stage_row: int
    shard: str
    row: int  # in the shard
    source: str
    segments: list[Segment]

    def to_dict(self, decode=None) -> dict:
        """Return the row as JSON-ready data; with `decode`, each segment's text too."""
        segments = [s.to_dict() | ({"text": decode(s.tokens)} if decode else {}) for s in self.segments]
        return {k: v for k, v in self.__dict__.items() if k != "segments"} | {"segments": segments}

    def render(self, decode, excerpt: int = 160) -> str:
        """Return the row as text: a line naming each document and where it came from, then the start of the
        segment's text (`excerpt` characters, decoded with `decode`)."""
        lines = [
            f"stage {self.stage!r} row {self.stage_row} ({self.shard} row {self.row}), source {self.source}"
        ]
        if not self.segments:
            lines.append("no document: all were taken down, the row is padding")
        for k, s in enumerate(self.segments):
            origin = f"{s.file}:{s.record}" if s.file is not None else "no input file recorded"
            row_span = f"{s.offset}–{s.offset + s.length - 1}"
            lines.append(
                f"──── segment {k + 1}/{len(self.segments)}: row tokens {row_span}, "
                f"document tokens {s.start}–{s.start + s.length - 1} of {s.doc_length} ────"
            )
            lines.append(f"id {s.id}  subset {s.subset}  from {origin}")
            text = decode(s.tokens) if s.tokens is not None else ""
            lines.append(text[:excerpt] + ("…" if len(text) > excerpt else ""))
        return "\n".join(lines)


@dataclass(frozen=True)
class DocumentRow:
    """A row segment holding (part of) a document: stage, shard, row, and the document's token span there."""

    id: str
    stage: str
    shard: str
    row: int  # in the shard
    stage_row: int
    start: int
    length: int

    def to_dict(self) -> dict:
        """Return the place as JSON-ready data."""
        return dict(self.__dict__)


def shard_starts(stage: StageEntry) -> np.ndarray:
    """Return the stage row of each shard's first row, then the stage's rows (int64, shards + 1)."""
    starts = np.zeros(len(stage.shards) + 1, np.int64)
    np.cumsum([s.rows for s in stage.shards], out=starts[1:])
    return starts


def locate(stage: StageEntry, stage_row: int) -> tuple[int, int]:
    """Return (the shard's place in the stage, its row there) of a stage row; raise InputError if none."""
    if not 0 <= stage_row < stage.rows:
        raise InputError(f"stage {stage.name!r} has rows 0–{stage.rows - 1}, not {stage_row}")
    starts = shard_starts(stage)
    shard = int(np.searchsorted(starts, stage_row, side="right")) - 1
    return shard, stage_row - int(starts[shard])


def _url(build: str, path: str) -> str:
    return build.rstrip("/") + "/" + path


def read_row(build: str, entry: ShardEntry, row: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (tokens int[L + 1], doc_offsets int32, source index) of one row of a shard, reading its footer
    and the one record batch holding it (the writer's batches hold `rows_per_batch` rows each)."""
    url = _url(build, entry.path)
    try:
        source = pa.memory_map(url.removeprefix("file://")) if is_local(url) else open_binary(url)
        with source:
            reader = pa.ipc.open_file(source)
            meta = ShardMeta.from_schema(reader.schema)
            guess = min(row // rows_per_batch(meta.seq_len, meta.token_type), reader.num_record_batches - 1)
            batch = reader.get_batch(guess)
            local = row - guess * rows_per_batch(meta.seq_len, meta.token_type)
            if not 0 <= local < batch.num_rows:  # batches of another size: count them (reads them all)
                batch, local = _batch_holding(reader, row)
            tokens = batch.column("tokens")[local].values.to_numpy()
            offsets = batch.column("doc_offsets")[local].values.to_numpy()
            source = batch.column("source")[local].as_py()
    except FileNotFoundError:
        raise BuildError("shard file not found", path=url, hint="run `gristmill shards verify`") from None
    except (pa.ArrowException, OSError, ValueError) as e:
        raise BuildError(f"unreadable shard: {e}", path=url, hint="run `gristmill shards verify`") from None
    return tokens, offsets, source


def _batch_holding(reader: pa.ipc.RecordBatchFileReader, row: int) -> tuple[pa.RecordBatch, int]:
    first = 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        if row < first + batch.num_rows:
            return batch, row - first
        first += batch.num_rows
    raise ValueError(f"the shard has {first} rows, not {row + 1}")


def trace_row(build: str, manifest: Manifest, stage: str, stage_row: int) -> RowTrace:
    """Return row `stage_row` of `stage` (name or number) and its segments, in order, with their tokens.

    Raises InputError for an unknown stage or row, BuildError when the build has no provenance or its files
    disagree (a sidecar whose lines do not match the row's doc_offsets).
    """
    found = find_stage(manifest, stage)
    shard, row = locate(found, stage_row)
    entry = found.shards[shard]
    if entry.provenance is None:
        raise BuildError(
            "the shard has no provenance sidecar", path=_url(build, entry.path), hint=NO_PROVENANCE_HINT
        )
    lines = read_where(_url(build, entry.provenance.path), "row", [row]).to_pylist()
    tokens, offsets, source = read_row(build, entry, row)
    if [line["length"] for line in lines] != np.diff(offsets).tolist():
        raise BuildError(
            f"the sidecar's lines of row {row} do not match the row's doc_offsets {offsets.tolist()}",
            path=_url(build, entry.provenance.path),
            hint="run `gristmill shards verify`",
        )
    segments = [
        Segment(
            offset=int(offsets[k]),
            id=line["id"],
            subset=line["subset"],
            file=line["file"],
            record=line["record"],
            start=line["start"],
            length=line["length"],
            doc_length=line["doc_length"],
            tokens=tokens[offsets[k] : offsets[k + 1]],
        )
        for k, line in enumerate(lines)
    ]
    return RowTrace(found.name, stage_row, entry.path, row, manifest.sources[source].name, segments)


def find_document(build: str, manifest: Manifest, doc_id: str) -> list[DocumentRow]:
    """Return every row segment holding a document with id `doc_id`, by stage, shard, row and start (none:
    no such document in the build's rows). Raises BuildError when the build has no document index."""
    (digest,) = id_hashes([doc_id]).tolist()
    found = []
    for stage in manifest.stages:
        if not stage.document_index:
            raise BuildError(
                f"stage {stage.name!r} has no document index", path=build, hint=NO_PROVENANCE_HINT
            )
        part = int(index_partition(np.array([digest], np.uint64), len(stage.document_index))[0])
        lines = read_where(_url(build, stage.document_index[part].path), "hash", [digest])
        starts = shard_starts(stage)
        for line in lines.to_pylist():
            if line["id"] != doc_id:
                continue  # another id with the same 64-bit hash
            shard = stage.shards[line["shard"]]
            found.append(
                DocumentRow(
                    id=doc_id,
                    stage=stage.name,
                    shard=shard.path,
                    row=line["row"],
                    stage_row=int(starts[line["shard"]]) + line["row"],
                    start=line["start"],
                    length=line["length"],
                )
            )
    return found
