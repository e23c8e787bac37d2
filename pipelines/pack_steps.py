"""The build's last steps: tokenize the clean documents, plan the mixture and curriculum, pack the shards.

`shard_steps` returns three Steps to run in order: **tokenize** (one task per clean file), **plan** (one
task: reads every document length, computes `shards.plan.make_plan`, writes BUILD/plan/stage-<i>/shard-<n>
.arrow, the pieces of each shard, and BUILD/plan.json last) and **pack** (one task per shard: gathers the
pieces' tokens into rows and writes BUILD/stage-<i>-<L>/shard-<n>.arrow with a sidecar .json holding its
manifest ShardEntry). Task counts come from the inputs and the recipe only, so the outputs are byte-identical
whatever the number of workers. `collect_stages` and `tokenizer_entry` give the manifest its parts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gristmill.errors import BuildError
from gristmill.pipelines.engine import Step
from gristmill.pipelines.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.tokenize import TokenFile, TokenizeDocuments, token_file, write_source_histograms
from gristmill.shards.format import ShardMeta
from gristmill.shards.manifest import ShardEntry, StageEntry, TokenizerEntry
from gristmill.shards.pack import Pieces, gather_tokens, row_offsets
from gristmill.shards.plan import (
    SHARD_BYTES,
    StagePlan,
    StageSpec,
    layout_shards,
    log2_histogram,
    make_plan,
    shard_count,
)
from gristmill.shards.writer import shard_table, write_shard
from gristmill.storage import atomic_write, read_json, write_json
from gristmill.tokenizer.interface import Tokenizer

PLAN_FILE = "plan.json"
_LAYOUT_SCHEMA = pa.schema([
    ("row", pa.int32()), ("offset", pa.int32()), ("length", pa.int32()), ("start", pa.int32()),
    ("source", pa.uint8()), ("file", pa.int32()), ("doc", pa.int64()),
])


def stage_specs(recipe: Recipe) -> list[StageSpec]:
    """Return the recipe's stages as plan specs."""
    return [StageSpec(s.name, s.seq_len, s.tokens, s.shares()) for s in recipe.stages]


def pack_jobs(recipe: Recipe, shard_bytes: int = SHARD_BYTES) -> list[tuple[int, int]]:
    """Return the pack tasks as (1-based stage index, shard number), from the recipe alone."""
    specs = stage_specs(recipe)
    return [(i, n) for i, spec in enumerate(specs, 1) for n in range(shard_count(spec, shard_bytes))]


def shard_path(layout: BuildLayout, stage: int, seq_len: int, shard: int, ext: str = "arrow") -> str:
    """Return BUILD/stage-<i>-<L>/shard-<n>.<ext>."""
    return f"{layout.stage_dir(stage, seq_len)}/shard-{shard:05d}.{ext}"


def _layout_file(layout: BuildLayout, stage: int, shard: int) -> str:
    return layout.path("plan", f"stage-{stage}", f"shard-{shard:05d}.arrow")


def shard_steps(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], *,
                shard_bytes: int = SHARD_BYTES) -> list[Step]:
    """Return the tokenize, plan and pack steps for the clean files `inputs` ((source, task) pairs)."""
    inputs = sorted(inputs)
    jobs = pack_jobs(recipe, shard_bytes)
    return [
        Step("tokenize", [TokenizeDocuments(layout, inputs)], tasks=len(inputs),
             after=lambda: write_source_histograms(layout, inputs)),
        Step("plan", [PlanShards(recipe, layout, inputs, shard_bytes)], tasks=1, mem_per_cpu_gb=4.0),
        Step("pack", [PackShards(recipe, layout, inputs, jobs)], tasks=len(jobs), mem_per_cpu_gb=2.0),
    ]


class PlanShards(PipelineStep):
    """Plans every stage from the token files' document lengths; writes the shard layouts and plan.json."""

    name = "plan"
    type = "🗺️ - PLANNER"

    def __init__(self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]],
                 shard_bytes: int) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.shard_bytes = shard_bytes

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        names = [s.name for s in self.recipe.sources]
        per_file = [TokenFile.open(token_file(self.layout, s, t)).lengths for s, t in self.inputs]
        files_of = {name: [i for i, (s, _) in enumerate(self.inputs) if s == name] for name in names}
        lengths = {name: np.concatenate([per_file[i] for i in files_of[name]] or [np.zeros(0, np.int64)])
                   for name in names}
        try:
            plan = make_plan(lengths, stage_specs(self.recipe), self.recipe.seed, self.shard_bytes)
        except ValueError as e:
            raise BuildError(f"cannot plan the stages: {e}", path=self.layout.path("tokens"),
                             hint="check the recipe's stage weights against the sources that kept documents"
                             ) from None
        # source-global document index → (input file index, document index in the file)
        file_base = {name: np.cumsum([0] + [len(per_file[i]) for i in files_of[name]]) for name in names}

        stages = []
        for stage in plan.stages:
            for shard, shard_layout in enumerate(layout_shards(stage, lengths, self.recipe.seed)):
                p, sources = shard_layout.pieces, shard_layout.source
                file = np.zeros(len(p), np.int32)
                doc = np.zeros(len(p), np.int64)
                for code in np.unique(sources):
                    name = list(stage.packings)[code]
                    mine = sources == code
                    k = np.searchsorted(file_base[name], p.doc[mine], side="right") - 1
                    file[mine] = np.asarray(files_of[name], np.int32)[k]
                    doc[mine] = p.doc[mine] - file_base[name][k]
                codes = np.asarray([names.index(n) for n in stage.packings] or [0], np.uint8)[sources]
                table = pa.Table.from_arrays(
                    [p.row, p.offset, p.length, p.start, codes, file, doc], schema=_LAYOUT_SCHEMA
                ).replace_schema_metadata({"rows": str(shard_layout.rows),
                                           "split_documents": str(shard_layout.split_documents)})
                with atomic_write(_layout_file(self.layout, stage.index, shard)) as f, \
                        pa.ipc.new_file(f, table.schema) as writer:
                    writer.write_table(table)
            stages.append(_stage_summary(stage, lengths))
        write_json(self.layout.path(PLAN_FILE), {
            "seed": self.recipe.seed, "shard_bytes": self.shard_bytes,
            "inputs": [[s, t, len(n)] for (s, t), n in zip(self.inputs, per_file)],
            "sources": {name: {"documents": s.documents, "tokens": s.tokens, "used_tokens": s.used_tokens,
                               "full_epochs": s.full_epochs, "extra_copies": s.extra_copies,
                               "sampling": s.factor} for name, s in plan.sampling.items()},
            "stages": stages,
        })
        return
        yield


def _stage_summary(stage: StagePlan, lengths: dict[str, np.ndarray]) -> dict:
    sources = {}
    for name, packing in stage.packings.items():
        first = packing.pieces.doc[packing.pieces.start == 0]
        doc_lengths = lengths[name][first]
        sources[name] = {
            "target_tokens": packing.target_tokens, "tokens": packing.tokens, "rows": packing.rows,
            "padding_tokens": packing.padding, "split_documents": packing.split_documents,
            "documents": len(first),
            "length_range": [int(doc_lengths.min()), int(doc_lengths.max())] if len(first) else [0, 0],
            "log2_histogram": log2_histogram(doc_lengths),
        }
    return {"index": stage.index, "name": stage.spec.name, "seq_len": stage.spec.seq_len,
            "budget_tokens": stage.spec.tokens, "shares": stage.spec.shares, "shards": stage.shards,
            "rows": stage.rows, "tokens": sum(s["tokens"] for s in sources.values()),
            "padding_tokens": sum(s["padding_tokens"] for s in sources.values()),
            "split_documents": sum(s["split_documents"] for s in sources.values()), "sources": sources}


class PackShards(PipelineStep):
    """Writes shard `jobs[rank]`: gathers its pieces' tokens from the token files into rows."""

    name = "pack"
    type = "📦 - PACKER"

    def __init__(self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]],
                 jobs: list[tuple[int, int]]) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.jobs = jobs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stage_index, shard = self.jobs[rank]
        stage = self.recipe.stages[stage_index - 1]
        names = [s.name for s in self.recipe.sources]
        reader = pa.ipc.open_file(pa.memory_map(_layout_file(self.layout, stage_index, shard), "r"))
        table = reader.read_all()
        rows = int(reader.schema.metadata[b"rows"])
        col = {name: table.column(name).to_numpy() for name in table.column_names}
        pieces = Pieces(col["doc"], col["start"], col["length"], col["row"], col["offset"])

        block = np.zeros(len(pieces), np.int64)
        block_start = np.zeros(len(pieces), np.int64)
        blocks: list[np.ndarray] = []
        for f in np.unique(col["file"]):
            mine = col["file"] == f
            tokens = TokenFile.open(token_file(self.layout, *self.inputs[f]))
            block[mine] = len(blocks) + tokens.block[col["doc"][mine]]
            block_start[mine] = tokens.start[col["doc"][mine]]
            blocks.extend(tokens.blocks)

        tokenizer = Tokenizer.load(self.layout.path("tokenizer"))
        meta = ShardMeta(seq_len=stage.seq_len, pad_id=tokenizer.pad_id, eos_id=tokenizer.eos_id,
                         tokenizer_hash=tokenizer.content_hash, bos_id=tokenizer.framing.bos_id)
        capacity = stage.seq_len + 1
        token_rows = gather_tokens(pieces, rows, capacity, tokenizer.pad_id, block, block_start, blocks)
        list_offsets, offsets = row_offsets(pieces, rows)
        row_source = np.zeros(rows, np.uint8)
        row_source[pieces.row] = col["source"]
        path = shard_path(self.layout, stage_index, stage.seq_len, shard)
        written = write_shard(path, shard_table(meta, token_rows, list_offsets, offsets, row_source))

        per_source = np.bincount(col["source"], weights=pieces.length, minlength=len(names)).astype(np.int64)
        tokens = int(pieces.length.sum())
        entry = ShardEntry(
            path=path.removeprefix(self.layout.root.rstrip("/") + "/"), rows=rows, tokens=tokens,
            source_tokens={names[i]: int(n) for i, n in enumerate(per_source) if n},
            xxh3=written.xxh3, bytes=written.bytes, padding_tokens=rows * capacity - tokens,
            split_documents=int(reader.schema.metadata[b"split_documents"]))
        write_json(shard_path(self.layout, stage_index, stage.seq_len, shard, "json"),
                   entry.model_dump(mode="json"))
        self.stat_update("rows", value=rows)
        self.stat_update("tokens", value=tokens)
        return
        yield


def collect_stages(recipe: Recipe, layout: BuildLayout) -> list[StageEntry]:
    """Return the manifest's stage entries from plan.json and the shards' sidecars (after the pack step)."""
    plan = read_json(layout.path(PLAN_FILE))
    sampling = {name: s["sampling"] for name, s in plan["sources"].items()}
    entries = []
    for stage, summary in zip(recipe.stages, plan["stages"]):
        index = summary["index"]
        shards = [ShardEntry.model_validate(read_json(shard_path(layout, index, stage.seq_len, n, "json")))
                  for n in range(summary["shards"])]
        source_tokens = {name: s["tokens"] for name, s in summary["sources"].items()}
        entries.append(StageEntry(
            name=stage.name, seq_len=stage.seq_len, tokens_per_batch=stage.tokens_per_batch,
            rows=sum(s.rows for s in shards), tokens=sum(s.tokens for s in shards),
            padding_tokens=sum(s.padding_tokens for s in shards),
            split_documents=sum(s.split_documents for s in shards), source_tokens=source_tokens,
            sampling={name: sampling[name] for name in source_tokens}, shards=shards))
    return entries


def tokenizer_entry(layout: BuildLayout) -> TokenizerEntry:
    """Return the manifest's entry for the tokenizer in BUILD/tokenizer/."""
    tokenizer = Tokenizer.load(layout.path("tokenizer"))
    return TokenizerEntry(path="tokenizer/", hash=tokenizer.content_hash, vocab_size=tokenizer.vocab_size,
                          bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                          framing=tokenizer.framing.name)
