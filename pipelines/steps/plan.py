"""The plan step: mix, epoch and length-bucket every stage from the token files' document lengths.

One task. It reads each document's length (not its tokens), computes `shards.plan.make_plan` and writes, per
shard, BUILD/plan/stage-<i>/shard-<n>.arrow (the pieces the pack step gathers), then BUILD/plan.json last.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline

from gristmill.errors import BuildError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.tokenize import TokenFile
from gristmill.shards.plan import (
    SHARD_BYTES,
    PackedStage,
    StageSpec,
    layout_shards,
    log2_histogram,
    make_plan,
    shard_count,
)
from gristmill.storage import atomic_write, write_json

SHARD_LAYOUT_SCHEMA = pa.schema(
    [
        ("row", pa.int32()),
        ("offset", pa.int32()),
        ("length", pa.int32()),
        ("start", pa.int32()),
        ("source", pa.uint8()),
        ("file", pa.int32()),
        ("doc", pa.int64()),
    ]
)


def stage_specs(recipe: Recipe) -> list[StageSpec]:
    """Return the recipe's stages as plan specs."""
    return [StageSpec(s.name, s.seq_len, s.tokens, s.shares()) for s in recipe.stages]


def pack_jobs(recipe: Recipe, shard_bytes: int = SHARD_BYTES) -> list[tuple[int, int]]:
    """Return the pack tasks as (1-based stage index, shard number), from the recipe alone."""
    specs = stage_specs(recipe)
    return [(i, n) for i, spec in enumerate(specs, 1) for n in range(shard_count(spec, shard_bytes))]


class PlanShards(WritingStep):
    """Plans every stage from the token files' document lengths; writes the shard layouts and plan.json."""

    name = "plan"
    type = "🗺️ - PLANNER"

    def __init__(
        self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], shard_bytes: int
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.shard_bytes = shard_bytes

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        names = [s.name for s in self.recipe.sources]
        per_file = [TokenFile.open(self.layout, s, t).lengths for s, t in self.inputs]
        files_of = {name: [i for i, (s, _) in enumerate(self.inputs) if s == name] for name in names}
        lengths = {
            name: np.concatenate([per_file[i] for i in files_of[name]] or [np.zeros(0, np.int64)])
            for name in names
        }
        counts = [len(n) for n in per_file]
        del per_file  # the plan holds every document's length once, in `lengths`
        try:
            plan = make_plan(lengths, stage_specs(self.recipe), self.recipe.seed, self.shard_bytes)
        except ValueError as e:
            raise BuildError(
                f"cannot plan the stages: {e}",
                path=self.layout.tokens_dir,
                hint="check the recipe's stage weights against the sources that kept documents",
            ) from None
        # source-global document index → (input file index, document index in the file)
        file_base = {name: np.cumsum([0] + [counts[i] for i in files_of[name]]) for name in names}

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
                    [p.row, p.offset, p.length, p.start, codes, file, doc], schema=SHARD_LAYOUT_SCHEMA
                ).replace_schema_metadata(
                    {"rows": str(shard_layout.rows), "split_documents": str(shard_layout.split_documents)}
                )
                with (
                    atomic_write(self.layout.shard_layout_file(stage.index, shard)) as f,
                    pa.ipc.new_file(f, table.schema) as writer,
                ):
                    writer.write_table(table)
            stages.append(_stage_summary(stage, lengths))
        write_json(
            self.layout.plan_file,
            {
                "seed": self.recipe.seed,
                "shard_bytes": self.shard_bytes,
                "inputs": [[s, t, n] for (s, t), n in zip(self.inputs, counts)],
                "sources": {
                    name: {
                        "documents": s.documents,
                        "tokens": s.tokens,
                        "used_tokens": s.used_tokens,
                        "full_epochs": s.full_epochs,
                        "extra_copies": s.extra_copies,
                        "sampling": s.factor,
                    }
                    for name, s in plan.sampling.items()
                },
                "stages": stages,
            },
        )


def _stage_summary(stage: PackedStage, lengths: dict[str, np.ndarray]) -> dict:
    sources = {}
    for name, packing in stage.packings.items():
        first = packing.pieces.doc[packing.pieces.start == 0]
        doc_lengths = lengths[name][first]
        sources[name] = {
            "target_tokens": packing.target_tokens,
            "tokens": packing.tokens,
            "rows": packing.rows,
            "padding_tokens": packing.padding,
            "split_documents": packing.split_documents,
            "documents": len(first),
            "length_range": [int(doc_lengths.min()), int(doc_lengths.max())] if len(first) else [0, 0],
            "log2_histogram": log2_histogram(doc_lengths),
        }
    return {
        "index": stage.index,
        "name": stage.spec.name,
        "seq_len": stage.spec.seq_len,
        "budget_tokens": stage.spec.tokens,
        "shares": stage.spec.shares,
        "shards": stage.shards,
        "rows": stage.rows,
        "tokens": sum(s["tokens"] for s in sources.values()),
        "padding_tokens": sum(s["padding_tokens"] for s in sources.values()),
        "split_documents": sum(s["split_documents"] for s in sources.values()),
        "sources": sources,
    }
