"""The plan step: mix, epoch and length-bucket every stage from the token files' document lengths.

One task per plan slice (`shards.plan.plan_slices`: a large build is planned in slices so no task holds every
document's length). Slice g reads the lengths (not the tokens) of its range of each source's documents,
computes `shards.plan.make_plan` for its budgets and writes, for each shard of each stage it owns,
BUILD/plan/stage-<i>/shard-<n>.arrow (the pieces the pack step gathers), then BUILD/plan/slice-<g>.json.
Once every slice is done, `write_plan` merges those into BUILD/plan.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline

from gristmill.errors import BuildError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.quality.percentile import bin_score, dense, floor_for_top, score_bins
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.tokenize import TokenFile, add_histograms, token_counts
from gristmill.pipelines.steps.tokenizer import load_build_tokenizer
from gristmill.shards.format import token_dtype, token_type_for
from gristmill.shards.plan import (
    EVERY,
    PackedStage,
    StageSpec,
    document_range,
    layout_shards,
    log2_histogram,
    make_plan,
    plan_slices,
    shard_count,
    shard_range,
    slice_specs,
    stored_tokens,
    tokens_at_or_above,
)
from gristmill.storage import atomic_write, read_json, write_json

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


def stage_specs(recipe: Recipe, layout: BuildLayout) -> list[StageSpec]:
    """Return the recipe's stages as plan specs, each top fraction by score (`top_by_score`) turned into its
    source's score floor (from the token files' score histograms: after tokenize)."""
    specs = []
    for stage in recipe.stages:
        floors = {
            name: floor_for_top(score_histogram(layout, name, "score_documents"), fraction)
            for name, fraction in stage.top_fractions().items()
        }
        specs.append(StageSpec(stage.name, stage.seq_len, stage.tokens, stage.shares(), floors))
    return specs


def score_histogram(layout: BuildLayout, source: str, key: str) -> np.ndarray:
    """Return a source's documents (`score_documents`) or tokens (`score_tokens`) per fine score bin, from
    its token files' histogram.json (zeros when none was scored)."""
    return dense([read_json(layout.histogram_file(source)).get(key, {"bin": [], "count": []})])


def available_tokens(
    layout: BuildLayout, inputs: list[tuple[str, int]], specs: list[StageSpec]
) -> dict[str, dict[int, int]]:
    """Return source → score floor → the source's tokens at or above it, for the floors `specs` draw from."""
    available: dict[str, dict[int, int]] = {}
    for (source, _), (_, tokens) in token_counts(layout, sorted({s for s, _ in inputs})).items():
        available.setdefault(source, {EVERY: 0})[EVERY] += tokens
    for spec in specs:
        for name, floor in spec.score_floor.items():
            if name in available and floor not in available[name]:
                available[name][floor] = int(score_histogram(layout, name, "score_tokens")[floor:].sum())
    return available


def stage_shards(
    recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], shard_bytes: int
) -> list[int]:
    """Return each stage's shard count, from the tokens it will store (each source's available tokens, from
    the token files) and the bytes of a token id (the build tokenizer's vocabulary): after tokenize."""
    token_bytes = token_dtype(token_type_for(load_build_tokenizer(layout).vocab_size)).itemsize
    specs = stage_specs(recipe, layout)
    available = available_tokens(layout, inputs, specs)
    return [
        shard_count(s, n, token_bytes, shard_bytes) for s, n in zip(specs, stored_tokens(specs, available))
    ]


def pack_jobs(shards: list[int]) -> list[tuple[int, int]]:
    """Return the pack tasks as (stage number, shard number), given each stage's shard count."""
    return [(i, n) for i, count in enumerate(shards, 1) for n in range(count)]


def slice_count(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], shards: list[int]) -> int:
    """Return the number of plan tasks, from the token files' document counts (after the tokenize step)."""
    documents: dict[str, int] = {}
    for (source, _), (docs, _) in token_counts(layout, sorted({s for s, _ in inputs})).items():
        documents[source] = documents.get(source, 0) + docs
    return plan_slices(documents, stage_specs(recipe, layout), recipe.plan_docs_per_task, shards)


def slice_seed(seed: int, index: int, slices: int) -> int:
    """Return the seed of one slice's plan (the recipe's own when there is one slice)."""
    return seed if slices == 1 else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass(frozen=True)
class SourceSlice:
    """One source's documents in a slice: their lengths, and where they come from."""

    lengths: np.ndarray  # int64 per document of the slice, in document order
    scores: np.ndarray | None  # float32 per document (NaN: unscored), in a build that scores documents
    first: int  # the source-global index of its first document
    files: list[int]  # the source's token files, as indices into the step's inputs, in order
    file_base: np.ndarray  # source-global index of each of those files' first document (and the total)

    def origin(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (input file index, document in that file) of slice documents `docs`."""
        source_doc = docs + self.first
        k = np.searchsorted(self.file_base, source_doc, side="right") - 1
        return np.asarray(self.files, np.int32)[k], source_doc - self.file_base[k]


class PlanShards(WritingStep):
    """Plans slice `rank` of `slices`: writes its shards' layouts and its summary."""

    name = "plan"
    type = "🗺️ - PLANNER"

    def __init__(
        self,
        recipe: Recipe,
        layout: BuildLayout,
        inputs: list[tuple[str, int]],
        shards: list[int],
        slices: int = 1,
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs
        self.shards = shards
        self.slices = slices

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        names = [s.name for s in self.recipe.sources]
        counts = token_counts(self.layout, sorted({s for s, _ in self.inputs}))
        parts = {name: self._source_slice(name, counts, rank) for name in names}
        lengths = {name: part.lengths for name, part in parts.items()}
        bins = {name: score_bins(p.scores) for name, p in parts.items() if p.scores is not None}
        specs = stage_specs(self.recipe, self.layout)
        floors = {spec.floor(name) for spec in specs for name in spec.shares}
        mine = slice_specs(
            specs,
            {name: tokens_at_or_above(n, bins.get(name), floors) for name, n in lengths.items()},
            available_tokens(self.layout, self.inputs, specs),
        )
        seed = slice_seed(self.recipe.seed, rank, self.slices)
        try:
            plan = make_plan(lengths, mine, seed, self.shards, scores=bins)
        except ValueError as e:
            raise BuildError(
                f"cannot plan the stages: {e}",
                path=self.layout.tokens_dir,
                hint="check the recipe's stage weights against the sources that kept documents",
            ) from None

        stages = []
        for stage, spec, count in zip(plan.stages, specs, self.shards):
            owned = shard_range(count, rank, self.slices)
            stage.shards = len(owned)
            if stage.rows < stage.shards:
                raise BuildError(
                    f"plan slice {rank}: stage {spec.name!r} has {stage.rows} rows for {stage.shards} shards",
                    path=self.layout.plan_slice_file(rank),
                    hint="raise plan_docs_per_task (fewer, larger plan slices)",
                )
            for shard, shard_layout in zip(owned, layout_shards(stage, lengths, seed)):
                self._write_layout(stage, shard, shard_layout, parts, names)
            stages.append(_stage_summary(stage, parts, self.recipe.quality.histogram_bins))
        write_json(
            self.layout.plan_slice_file(rank),
            {
                "sources": {name: asdict(s) for name, s in plan.sampling.items()},
                "stages": stages,
            },
        )

    def _source_slice(self, name: str, counts: dict, rank: int) -> SourceSlice:
        """Read the lengths of this slice's documents of source `name` (only the token files it overlaps)."""
        files = [i for i, (s, _) in enumerate(self.inputs) if s == name]
        file_base = np.cumsum([0] + [counts[self.inputs[i]][0] for i in files]).astype(np.int64)
        first, end = document_range(int(file_base[-1]), rank, self.slices)
        scored = self.recipe.quality.enabled
        lengths_of, scores_of = [], []
        for i, lo, hi in zip(files, file_base[:-1].tolist(), file_base[1:].tolist()):
            if hi > first and lo < end:
                tokens = TokenFile.open(self.layout, *self.inputs[i], with_scores=scored)
                mine = slice(max(first - lo, 0), min(end, hi) - lo)
                lengths_of.append(tokens.lengths[mine])
                if scored:
                    scores_of.append(tokens.scores[mine])
        lengths = np.concatenate(lengths_of) if lengths_of else np.zeros(0, np.int64)
        scores = (np.concatenate(scores_of) if scores_of else np.zeros(0, np.float32)) if scored else None
        return SourceSlice(lengths, scores, first, files, file_base)

    def _write_layout(self, stage: PackedStage, shard: int, shard_layout, parts: dict, names: list[str]):
        p, sources = shard_layout.pieces, shard_layout.source
        file = np.zeros(len(p), np.int32)
        doc = np.zeros(len(p), np.int64)
        packed_names = list(stage.packings)
        for code in np.unique(sources):
            chosen = sources == code
            file[chosen], doc[chosen] = parts[packed_names[code]].origin(p.doc[chosen])
        codes = np.asarray([names.index(n) for n in packed_names] or [0], np.uint8)[sources]
        table = pa.Table.from_arrays(
            [p.row, p.offset, p.length, p.start, codes, file, doc], schema=SHARD_LAYOUT_SCHEMA
        ).replace_schema_metadata(
            {
                "rows": str(shard_layout.rows),
                "split_documents": str(shard_layout.split_documents),
                "blocks": json.dumps([asdict(b) for b in shard_layout.blocks]),
            }
        )
        with (
            atomic_write(self.layout.shard_layout_file(stage.number, shard)) as f,
            pa.ipc.new_file(f, table.schema) as writer,
        ):
            writer.write_table(table)


def _stage_summary(stage: PackedStage, parts: dict[str, SourceSlice], bins: int) -> dict:
    """Return one slice's figures of a stage, per source: with scores, the histogram of its stored
    documents' scores over `bins` equal bins of [0, 1]."""
    sources = {}
    for name, packing in stage.packings.items():
        first = packing.pieces.doc[packing.pieces.start == 0]
        doc_lengths = parts[name].lengths[first]
        sources[name] = {
            "target_tokens": packing.target_tokens,
            "tokens": packing.tokens,
            "trained_tokens": packing.trained_tokens,
            "rows": packing.rows,
            "visits": packing.visits,
            "padding_tokens": packing.padding,
            "split_documents": packing.split_documents,
            "documents": len(first),
            "length_range": [int(doc_lengths.min()), int(doc_lengths.max())] if len(first) else [0, 0],
            "log2_histogram": log2_histogram(doc_lengths),
        }
        scores = parts[name].scores
        if scores is not None:
            chosen = scores[first][~np.isnan(scores[first])]
            sources[name]["score_histogram"] = np.histogram(chosen, bins=bins, range=(0.0, 1.0))[0].tolist()
    return {"rows": stage.rows, "visits": sum(p.visits for p in stage.packings.values()), "sources": sources}


def write_plan(
    recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], shards: list[int], slices: int
) -> None:
    """Merge the slices' summaries into BUILD/plan.json (after every plan task)."""
    parts = [read_json(layout.plan_slice_file(g)) for g in range(slices)]
    counts = token_counts(layout, sorted({s for s, _ in inputs}))
    write_json(
        layout.plan_file,
        {
            "seed": recipe.seed,
            "shards": shards,
            "slices": slices,
            "inputs": [[s, t, counts[(s, t)][0]] for s, t in inputs],
            "sources": {
                name: _merged_sampling([p["sources"][name] for p in parts]) for name in parts[0]["sources"]
            },
            "stages": [
                _merged_stage(
                    i, spec, count, [p["stages"][i - 1] for p in parts], layout, stage.top_fractions()
                )
                for i, (spec, count, stage) in enumerate(
                    zip(stage_specs(recipe, layout), shards, recipe.stages), 1
                )
            ],
        },
    )


def _merged_sampling(slices: list[dict]) -> dict:
    """A source's sampling over the build: its documents and tokens available, stored and trained on."""
    merged = {key: sum(s[key] for s in slices) for key in slices[0]}
    tokens, stored = merged["tokens"], merged["stored_tokens"]
    return {
        **merged,
        "sampling": merged["trained_tokens"] / tokens if tokens else 0.0,
        "passes": merged["trained_tokens"] / stored if stored else 0.0,
    }


_SUMMED = (
    "target_tokens",
    "tokens",
    "trained_tokens",
    "rows",
    "visits",
    "padding_tokens",
    "split_documents",
    "documents",
)


def _merged_stage(
    number: int, spec: StageSpec, shards: int, slices: list[dict], layout: BuildLayout, tops: dict[str, float]
) -> dict:
    """A stage's figures over the build, from each slice's; `tops`: the top fractions it draws by score."""
    sources = {}
    for name in dict.fromkeys(n for s in slices for n in s["sources"]):
        mine = [s["sources"][name] for s in slices if name in s["sources"]]
        ranges = [m["length_range"] for m in mine if m["documents"]]
        sources[name] = {
            **{key: sum(m[key] for m in mine) for key in _SUMMED},
            "length_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else [0, 0],
            "log2_histogram": add_histograms([m["log2_histogram"] for m in mine]),
        }
        if any("score_histogram" in m for m in mine):
            sources[name]["score_histogram"] = add_histograms([m.get("score_histogram", []) for m in mine])
    return {
        "number": number,
        "name": spec.name,
        "seq_len": spec.seq_len,
        "budget_tokens": spec.tokens,
        "shares": spec.shares,
        "shards": shards,
        "rows": sum(s["rows"] for s in slices),
        "visits": sum(s["visits"] for s in slices),
        "tokens": sum(s["tokens"] for s in sources.values()),
        "trained_tokens": sum(s["trained_tokens"] for s in sources.values()),
        "padding_tokens": sum(s["padding_tokens"] for s in sources.values()),
        "split_documents": sum(s["split_documents"] for s in sources.values()),
        "sources": sources,
        "score_draws": {
            name: {"top_fraction": tops[name], **_score_draw(layout, name, floor)}
            for name, floor in spec.score_floor.items()
        },
    }


def _score_draw(layout: BuildLayout, source: str, floor: int) -> dict:
    """What a stage's top fraction of `source` by score came to over the whole source: its floor (a fine
    score bin), the lowest score drawn, and the documents and tokens at or above it."""
    documents = score_histogram(layout, source, "score_documents")
    tokens = score_histogram(layout, source, "score_tokens")
    scored = int(documents.sum())
    return {
        "floor": floor,
        "min_score": bin_score(floor),
        "documents": int(documents[floor:].sum()),
        "tokens": int(tokens[floor:].sum()),
        "share": int(documents[floor:].sum()) / scored if scored else 0.0,
    }
