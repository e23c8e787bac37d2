"""The pack step: gather each shard's pieces into rows of its stage's length and write the shard.

One task per shard ((stage, shard) from `plan.pack_jobs`). Each writes BUILD/stage-<i>-<L>/shard-<n>.arrow
and a sidecar .json holding its manifest ShardEntry; `collect_stages` and `tokenizer_entry` give the manifest
its parts once every shard is written.
"""

from __future__ import annotations

import json

import numpy as np
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.tokenize import TokenFile
from gristmill.pipelines.steps.tokenizer import load_build_tokenizer
from gristmill.pipelines.tables import read_table
from gristmill.shards.format import ShardMeta, token_type_for
from gristmill.shards.manifest import ShardEntry, SourceRows, StageEntry, TokenizerEntry
from gristmill.shards.pack import Pieces, gather_tokens, row_offsets
from gristmill.shards.writer import shard_table, write_shard
from gristmill.storage import read_json, write_json


class PackShards(WritingStep):
    """Writes shard `jobs[rank]`: gathers its pieces' tokens from the token files into rows."""

    name = "pack"
    type = "📦 - PACKER"

    def __init__(
        self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], jobs: list[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.jobs = jobs

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
        for f in np.unique(col["file"]):
            mine = col["file"] == f
            tokens, begin = TokenFile.open(self.layout, *self.inputs[f]).read(col["doc"][mine])
            block[mine] = len(blocks)
            block_start[mine] = begin
            blocks.append(tokens)

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
        )
        write_json(
            self.layout.shard_file(number, stage.seq_len, shard, "json"), entry.model_dump(mode="json")
        )
        self.stat_update("rows", value=rows)
        self.stat_update("tokens", value=tokens)


def collect_stages(recipe: Recipe, layout: BuildLayout) -> list[StageEntry]:
    """Return the manifest's stage entries from plan.json and the shards' sidecars (after the pack step)."""
    plan = read_json(layout.plan_file)
    sampling = {name: s["sampling"] for name, s in plan["sources"].items()}
    names = [s.name for s in recipe.sources]
    entries = []
    for stage, summary in zip(recipe.stages, plan["stages"]):
        number = summary["number"]
        shards = [
            ShardEntry.model_validate(read_json(layout.shard_file(number, stage.seq_len, n, "json")))
            for n in range(summary["shards"])
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
            )
        )
    return entries


def tokenizer_entry(layout: BuildLayout) -> TokenizerEntry:
    """Return the manifest's entry for the tokenizer in BUILD/tokenizer/."""
    return TokenizerEntry.of(load_build_tokenizer(layout))
