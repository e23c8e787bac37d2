"""The pack step: gather each shard's pieces into rows of its stage's length and write the shard; and the
index step: each stage's document index, from what the pack tasks left.

Pack: one task per shard ((stage, shard) from `plan.pack_jobs`). Each writes the shard
BUILD/stage-<i>-<L>/shard-<n>.arrow, its provenance sidecar shard-<n>.docs.parquet (every segment's
document: shards/provenance.py), a .json holding its manifest ShardEntry, and its index lines partitioned by
id hash (BUILD/provenance/stage-<i>/shard-<n>.arrow).
Index: one task per (stage, partition) reads its partition of every shard's index lines and writes
BUILD/stage-<i>-<L>/documents-<p>.parquet, sorted by id hash (+ .json: its manifest entry).
`collect_stages` and `tokenizer_entry` give the manifest its parts once every shard is written.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.tokenize import TokenFile, token_file_origins
from gristmill.pipelines.steps.tokenizer import load_build_tokenizer
from gristmill.pipelines.tables import read_partitions, read_table, write_partitioned
from gristmill.shards.format import ShardMeta, token_type_for
from gristmill.shards.manifest import (
    FileEntry,
    ShardEntry,
    SourceRows,
    StageEntry,
    StageScores,
    TokenizerEntry,
)
from gristmill.shards.pack import Pieces, gather_tokens, row_offsets
from gristmill.shards.provenance import (
    INDEX_ROW_GROUP,
    INDEX_SCHEMA,
    SIDECAR_ROW_GROUP,
    SIDECAR_SCHEMA,
    id_hashes,
    index_partition,
    write_parquet,
)
from gristmill.shards.writer import shard_table, write_shard
from gristmill.storage import read_json, write_json


class PackShards(WritingStep):
    """Writes shard `jobs[rank]`: gathers its pieces' tokens from the token files into rows."""

    name = "pack"
    type = "📦 - PACKER"

    def __init__(
        self,
        recipe: Recipe,
        layout: BuildLayout,
        inputs: list[tuple[str, int]],
        jobs: list[tuple[int, int]],
        partitions: list[int],
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.jobs = jobs
        self.partitions = partitions  # each stage's document index partitions

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        number, shard = self.jobs[rank]
        stage = self.recipe.stages[number - 1]
        names = [s.name for s in self.recipe.sources]
        table = read_table(self.layout.shard_layout_file(number, shard))
        rows = int(table.schema.metadata[b"rows"])
        col = {name: table.column(name).to_numpy() for name in table.column_names}
        pieces = Pieces(col["doc"], col["start"], col["length"], col["row"], col["offset"])

        block = np.zeros(len(pieces), np.int64)
        block_start = np.zeros(len(pieces), np.int64)
        blocks: list[np.ndarray] = []
        origins: list[pa.Table] = []
        for f in np.unique(col["file"]):
            mine = col["file"] == f
            tokens, begin = TokenFile.open(self.layout, *self.inputs[f]).read(col["doc"][mine])
            block[mine] = len(blocks)
            block_start[mine] = begin
            blocks.append(tokens)
            origins.append(token_file_origins(self.layout, *self.inputs[f], col["doc"][mine]))

        tokenizer = load_build_tokenizer(self.layout)
        meta = ShardMeta(
            seq_len=stage.seq_len,
            pad_id=tokenizer.pad_id,
            eos_id=tokenizer.eos_id,
            tokenizer_hash=tokenizer.content_hash,
            bos_id=tokenizer.framing.bos_id,
            token_type=token_type_for(tokenizer.vocab_size),
        )
        capacity = stage.seq_len + 1
        token_rows = gather_tokens(pieces, rows, capacity, tokenizer.pad_id, block, block_start, blocks)
        list_offsets, offsets = row_offsets(pieces, rows)
        row_source = np.zeros(rows, np.uint8)
        row_source[pieces.row] = col["source"]
        path = self.layout.shard_file(number, stage.seq_len, shard)
        written = write_shard(path, shard_table(meta, token_rows, list_offsets, offsets, row_source))
        order = np.argsort(np.concatenate([np.flatnonzero(col["file"] == f) for f in np.unique(col["file"])]))
        segments = pa.concat_tables(origins).take(pa.array(order))  # every shard holds pieces
        provenance = self._write_provenance(number, stage.seq_len, shard, pieces, col["source"], segments)

        per_source = np.bincount(col["source"], weights=pieces.length, minlength=len(names)).astype(np.int64)
        tokens = int(pieces.length.sum())
        blocks = json.loads(table.schema.metadata[b"blocks"])
        entry = ShardEntry(
            path=self.layout.relative(path),
            rows=rows,
            tokens=tokens,
            source_tokens={names[i]: int(n) for i, n in enumerate(per_source) if n},
            source_rows=[
                SourceRows(
                    source=b["source"],
                    rows=b["rows"],
                    passes=b["passes"],
                    extra_rows=b["extra_rows"],
                    trained_tokens=b["trained_tokens"],
                )
                for b in blocks
            ],
            xxh3=written.xxh3,
            bytes=written.bytes,
            padding_tokens=rows * capacity - tokens,
            split_documents=int(table.schema.metadata[b"split_documents"]),
            provenance=provenance,
        )
        write_json(
            self.layout.shard_file(number, stage.seq_len, shard, "json"), entry.model_dump(mode="json")
        )
        self.stat_update("rows", value=rows)
        self.stat_update("tokens", value=tokens)

    def _write_provenance(
        self,
        number: int,
        seq_len: int,
        shard: int,
        pieces: Pieces,
        source: np.ndarray,
        origins: pa.Table,
    ) -> FileEntry:
        """Write the shard's provenance sidecar (a line per piece, in (row, offset) order) and its index lines
        (partitioned by the id's index partition); return the sidecar's manifest entry. `origins` holds each
        piece's document's id, length, subset, file and record, in piece order."""
        names = pa.array([s.name for s in self.recipe.sources], pa.string())
        sidecar = pa.table(
            {
                "row": pa.array(pieces.row, pa.int32()),
                "id": origins.column("id"),
                "source": names.take(pa.array(source)),
                "subset": origins.column("subset"),
                "file": origins.column("file"),
                "record": origins.column("record"),
                "start": pa.array(pieces.start, pa.int32()),
                "length": pa.array(pieces.length, pa.int32()),
                "doc_length": origins.column("length"),
            },
            schema=SIDECAR_SCHEMA,
        )
        path = self.layout.shard_file(number, seq_len, shard, "docs.parquet")
        written = write_parquet(path, sidecar, SIDECAR_ROW_GROUP)

        hashes = id_hashes(origins.column("id").to_pylist())
        lines = pa.table(
            {
                "hash": pa.array(hashes, pa.uint64()),
                "id": origins.column("id"),
                "shard": pa.array(np.full(len(pieces), shard, np.int32)),
                "row": pa.array(pieces.row, pa.int32()),
                "start": pa.array(pieces.start, pa.int32()),
                "length": pa.array(pieces.length, pa.int32()),
            },
            schema=INDEX_SCHEMA,
        )
        partitions = self.partitions[number - 1]
        write_partitioned(
            self.layout.index_lines_file(number, shard),
            lines,
            index_partition(hashes, partitions),
            partitions,
        )
        return FileEntry(path=self.layout.relative(path), bytes=written.bytes, xxh3=written.xxh3)


class IndexDocuments(WritingStep):
    """Writes partition p of stage i's document index, for job `jobs[rank]` = (i, p): its part of every
    shard's index lines, sorted by id hash (then shard, row and start)."""

    name = "index"
    type = "🗂️ - INDEXER"

    def __init__(
        self, recipe: Recipe, layout: BuildLayout, shards: list[int], jobs: list[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.shards = shards
        self.jobs = jobs

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        number, partition = self.jobs[rank]
        seq_len = self.recipe.stages[number - 1].seq_len
        files = [self.layout.index_lines_file(number, k) for k in range(self.shards[number - 1])]
        lines = read_partitions(files, partition, INDEX_SCHEMA)
        col = {c: lines.column(c).to_numpy() for c in ("hash", "shard", "row", "start")}
        lines = lines.take(pa.array(np.lexsort((col["start"], col["row"], col["shard"], col["hash"]))))
        path = self.layout.index_file(number, seq_len, partition)
        written = write_parquet(path, lines.cast(INDEX_SCHEMA), INDEX_ROW_GROUP)
        entry = FileEntry(path=self.layout.relative(path), bytes=written.bytes, xxh3=written.xxh3)
        write_json(self.layout.index_file(number, seq_len, partition, "json"), entry.model_dump(mode="json"))
        self.stat_update("lines", value=lines.num_rows)


def index_partitions(recipe: Recipe, layout: BuildLayout) -> list[int]:
    """Return each stage's document index partitions: one per `plan_docs_per_task` documents it stores (from
    plan.json, after the plan step), so an index task holds about as many lines as a plan task documents."""
    plan = read_json(layout.plan_file)
    per_task = recipe.plan_docs_per_task
    return [
        max(1, -(-sum(s["documents"] for s in stage["sources"].values()) // per_task))
        for stage in plan["stages"]
    ]


def index_jobs(partitions: list[int]) -> list[tuple[int, int]]:
    """Return the index tasks as (stage number, partition), given each stage's partition count."""
    return [(i, p) for i, count in enumerate(partitions, 1) for p in range(count)]


def collect_stages(recipe: Recipe, layout: BuildLayout) -> list[StageEntry]:
    """Return the manifest's stage entries from plan.json and the shards' sidecars (after the pack step)."""
    plan = read_json(layout.plan_file)
    sampling = {name: s["sampling"] for name, s in plan["sources"].items()}
    names = [s.name for s in recipe.sources]
    partitions = index_partitions(recipe, layout)
    entries = []
    for stage, summary in zip(recipe.stages, plan["stages"]):
        number = summary["number"]
        shards = [
            ShardEntry.model_validate(read_json(layout.shard_file(number, stage.seq_len, n, "json")))
            for n in range(summary["shards"])
        ]
        index = [
            FileEntry.model_validate(read_json(layout.index_file(number, stage.seq_len, p, "json")))
            for p in range(partitions[number - 1])
        ]
        used = [name for name in names if name in summary["sources"]]
        entries.append(
            StageEntry.of_shards(
                stage.name,
                number,
                stage.seq_len,
                stage.tokens_per_step,
                shards,
                sampling={name: sampling[name] for name in used},
                document_index=index,
                scores=_stage_scores(recipe, summary),
            )
        )
    return entries


def _stage_scores(recipe: Recipe, summary: dict) -> StageScores | None:
    """Return a stage's scores from its plan.json summary (None in a build that scores no document)."""
    if not recipe.quality.enabled:
        return None
    return StageScores(
        bins=recipe.quality.histogram_bins,
        histograms={name: s.get("score_histogram", []) for name, s in summary["sources"].items()},
        draws=summary.get("score_draws", {}),
    )


def tokenizer_entry(layout: BuildLayout) -> TokenizerEntry:
    """Return the manifest's entry for the tokenizer in BUILD/tokenizer/."""
    return TokenizerEntry.of(load_build_tokenizer(layout))
