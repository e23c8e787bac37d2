"""Decontamination in the build: the index, the ingest chain's filter, and the tokens it removed.

    decontam_index    one task, before ingest: read the recipe's evaluation sets (packaged, and the user's
                      files), build the index once, write BUILD/decontamination/index/ (every task shares it)
    ingest … DecontamFilter   the last step of each ingest task's chain, after the quality filters: each
                      document is matched in one pass; `drop` drops it (filter reason "decontam:<set>",
                      counted like every filter's), `cut` takes the matched spans out and keeps the rest
                      (or drops it when too little is left); the task writes every match
                      (BUILD/decontamination/matches/), the text it took out (…/removed/) and its counts per
                      set (BUILD/stats/decontam/)
    decontam_tokens   one task per ingest task, after the tokenizer: the tokens of the text taken out
                      (BUILD/stats/decontam_tokens/)

`collect_decontamination` sums the counts into the manifest, per set × source, and checks that the
documents it dropped are the ones the accounting's filter reasons count.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from gristmill.errors import BuildError
from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.decontam import DecontamConfig
from gristmill.pipelines.decontam import REASON_PREFIX, decontam_enabled, load_sets
from gristmill.pipelines.decontam.index import META_FILE, DecontamIndex
from gristmill.pipelines.decontam.match import Decontaminator, Verdict
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import JudgingFilter, WritingStep
from gristmill.pipelines.tables import ParquetRowWriter
from gristmill.shards.manifest import BenchmarkEntry, DecontamCounts, DecontamEntry
from gristmill.storage import atomic_write, exists, open_binary, read_json, write_json

STATS_STEP = "decontam"
TOKENS_STEP = "decontam_tokens"
REMOVED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),  # drop | cut
        pa.field("text", pa.large_string(), nullable=False),  # the whole document, or the cut spans
    ]
)
_BATCH = 256
_INDEX_GB = 3.0  # the index step holds every set's text and keys while it builds: 1.4 GB peak RSS for all 23


class BuildDecontamIndex(WritingStep):
    """Reads the recipe's evaluation sets and writes the index into BUILD/decontamination/index/."""

    name = "decontam index"
    type = "🦠 - DECONT"

    def __init__(self, config: DecontamConfig, layout: BuildLayout) -> None:
        super().__init__()
        self.config = config
        self.layout = layout

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        index = DecontamIndex.build(load_sets(self.config), self.config)
        index.write(self.layout.decontam_index_dir)
        self.stat_update("items", value=len(index.item_ids))


def decontam_index_step(recipe: Recipe, layout: BuildLayout) -> Step:
    """Return the one-task step that builds the build's decontamination index."""
    return Step(
        "decontam_index", [BuildDecontamIndex(recipe.decontam, layout)], tasks=1, mem_per_cpu_gb=_INDEX_GB
    )


@dataclass
class TaskRecord:
    """One ingest task's decontamination: what it found and did per set (the text it took out: `removed`)."""

    removed: ParquetRowWriter  # BUILD/decontamination/removed/<source>/<task>.parquet
    items: dict[str, set[str]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    chars: dict[str, int] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)

    def add(self, doc: Document, verdict: Verdict) -> None:
        """Count one document's verdict, keep its matches, and write the text taken out of it."""
        benchmark = verdict.benchmark
        if benchmark is None:  # nothing found: nothing to count
            return
        for found in verdict.found:
            self.items.setdefault(found.benchmark, set()).add(found.item_id)
            self.matches.append(
                {
                    "document": doc.id,
                    "source": doc.metadata.get("source"),
                    "subset": doc.metadata.get("subset"),
                    "benchmark": found.benchmark,
                    "item": found.item_id,
                    "action": verdict.action,
                    "text": found.matched_text(doc.text),
                }
            )
        counts = self.dropped if verdict.action == "drop" else self.cut
        counts[benchmark] = counts.get(benchmark, 0) + 1
        self.chars[benchmark] = self.chars.get(benchmark, 0) + verdict.removed_chars
        text = doc.text if verdict.action == "drop" else "\n".join(doc.text[a:b] for a, b in verdict.removed)
        self.removed.write({"id": doc.id, "benchmark": benchmark, "action": verdict.action, "text": text})

    def stats(self) -> dict[str, dict[str, Any]]:
        """The task's counts per set (BUILD/stats/decontam/<source>/<task>.json)."""
        names = sorted(set(self.items) | set(self.dropped) | set(self.cut))
        return {
            name: {
                "items": sorted(self.items.get(name, ())),
                "documents_dropped": self.dropped.get(name, 0),
                "documents_cut": self.cut.get(name, 0),
                "chars_removed": self.chars.get(name, 0),
            }
            for name in names
        }


# Per worker process: the last index read, shared by the ranks it runs, known by its folder and meta.json (a
# build started afresh in the same folder writes another index).
_INDEXES: dict[tuple[str, bytes], DecontamIndex] = {}


def _index(directory: str) -> DecontamIndex:
    with open_binary(f"{directory}/{META_FILE}") as f:
        key = (directory, f.read())
    if key not in _INDEXES:
        _INDEXES.clear()
        _INDEXES[key] = DecontamIndex.read(directory)
    return _INDEXES[key]


class DecontamFilter(JudgingFilter):
    """The ingest chain's decontamination: drops or cuts the documents holding evaluation items.

    A drop's reason is "decontam:<set>" (the set with the most items found in the document), counted through
    the exclusion writer like every filter's. Statistics are datatrove's (`total`, `forwarded`, `dropped`,
    `dropped_<reason>`) and `cut`.
    """

    name = "decontaminate"
    type = "🦠 - DECONT"

    def __init__(self, config: DecontamConfig, layout: BuildLayout, units: list[Any]) -> None:
        super().__init__(None, batch_size=_BATCH)
        self.config = config
        self.layout = layout
        self.units = units

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        checker = Decontaminator(_index(self.layout.decontam_index_dir), self.config)
        record = TaskRecord(
            ParquetRowWriter(self.layout.decontam_removed_file(unit.source, unit.task), REMOVED_SCHEMA)
        )
        try:
            yield from self._judge(data, rank, checker, record)
        except BaseException as e:
            record.removed.abort(e)
            raise
        record.removed.close()
        with atomic_write(self.layout.decontam_matches_file(unit.source, unit.task), "w") as f:
            f.writelines(json.dumps(match, ensure_ascii=False) + "\n" for match in record.matches)
        write_json(self.layout.stats_file(STATS_STEP, unit.source, unit.task), record.stats())

    def _judge(
        self, data: DocumentsPipeline, rank: int, checker: Decontaminator, record: TaskRecord
    ) -> DocumentsPipeline:
        with self.excluded() as writer:
            for batch in batched(data or (), self.batch_size):
                self.stat_update("batches")
                with self.track_time("batch"):
                    verdicts = [checker.check(doc.text) for doc in batch]
                self.stat_update(StatHints.total, value=len(batch))
                for doc, verdict in zip(batch, verdicts):
                    if verdict.action != "keep":
                        record.add(doc, verdict)
                    if verdict.action == "drop":
                        self.drop(doc, REASON_PREFIX + str(verdict.benchmark), writer, rank)
                        continue
                    if verdict.action == "cut":
                        doc.text = verdict.text
                        self.stat_update("cut")
                    self.stat_update(StatHints.forwarded)
                    yield doc


def decontam_filter(recipe: Recipe, layout: BuildLayout, units: list[Any]) -> DecontamFilter | None:
    """Return the ingest chain's decontamination step, or None when the recipe does not decontaminate."""
    return DecontamFilter(recipe.decontam, layout, units) if decontam_enabled(recipe.decontam) else None


class CountRemovedTokens(WritingStep):
    """Encodes the text decontamination took out of ingest task `rank`'s documents with the build's tokenizer
    (a dropped document framed as the shards frame one) and writes its tokens per set."""

    name = "decontam tokens"
    type = "🦠 - DECONT"

    def __init__(self, layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
        super().__init__()
        self.layout = layout
        self.inputs = inputs

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        from gristmill.pipelines.steps.tokenizer import load_build_tokenizer

        source, task = self.inputs[rank]
        tokens: dict[str, int] = {}
        batches = _removed_batches(self.layout.decontam_removed_file(source, task))
        first = next(batches, None)
        if first is None:  # nothing removed (most tasks): no tokenizer to load
            write_json(self.layout.stats_file(TOKENS_STEP, source, task), tokens)
            return
        tokenizer = load_build_tokenizer(self.layout)
        for batch in itertools.chain([first], batches):
            rows = batch.to_pylist()
            for row, ids in zip(rows, tokenizer.encode_batch([r["text"] for r in rows])):
                framed = tokenizer.framing.frame(ids) if row["action"] == "drop" else ids
                tokens[row["benchmark"]] = tokens.get(row["benchmark"], 0) + len(framed)
        write_json(self.layout.stats_file(TOKENS_STEP, source, task), tokens)


def _removed_batches(path: str) -> Iterator[pa.RecordBatch]:
    with open_binary(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
            if batch.num_rows:
                yield batch


def decontam_tokens_step(layout: BuildLayout, inputs: list[tuple[str, int]]) -> Step:
    """Return the step that counts the tokens of the removed text, one task per ingest task."""
    return Step(TOKENS_STEP, [CountRemovedTokens(layout, sorted(inputs))], tasks=len(inputs))


def collect_decontamination(
    recipe: Recipe, layout: BuildLayout, tasks_by_source: dict[str, list[int]], filtered: dict[str, int]
) -> DecontamEntry:
    """Return the manifest's decontamination entry: the settings, each set in the index (name, version,
    checksum, counts), and per set × source the items found, documents dropped and cut, characters and
    tokens removed. `filtered` is each source's documents filtered for a "decontam:" reason in the
    accounting; raises BuildError when the counts disagree (a document lost or counted twice)."""
    meta = read_json(f"{layout.decontam_index_dir}/meta.json")
    config = recipe.decontam
    found: dict[str, dict[str, DecontamCounts]] = {}
    items: dict[tuple[str, str], set[str]] = {}
    with_tokens = recipe.tokenizer is not None
    for source, tasks in tasks_by_source.items():
        for task in tasks:
            path = layout.stats_file(STATS_STEP, source, task)
            if not exists(path):
                continue
            tokens_path = layout.stats_file(TOKENS_STEP, source, task)
            tokens = read_json(tokens_path) if with_tokens and exists(tokens_path) else {}
            for name, c in read_json(path).items():
                counts = found.setdefault(name, {}).setdefault(source, DecontamCounts())
                items.setdefault((name, source), set()).update(c["items"])
                counts.documents_dropped += c["documents_dropped"]
                counts.documents_cut += c["documents_cut"]
                counts.chars_removed += c["chars_removed"]
                if with_tokens:
                    counts.tokens_removed = (counts.tokens_removed or 0) + tokens.get(name, 0)
    for (name, source), ids in items.items():
        found[name][source].items = len(ids)
    for source in tasks_by_source:
        dropped = sum(by.get(source, DecontamCounts()).documents_dropped for by in found.values())
        if dropped != filtered.get(source, 0):
            raise BuildError(
                f"decontamination dropped {dropped} documents of source {source!r}, the accounting's "
                f"decontam reasons count {filtered.get(source, 0)}",
                path=layout.root,
                hint="this is a bug in gristmill; please report it with the build's stats/",
            )
    return DecontamEntry(
        settings={
            **meta["settings"],
            "action": config.action,
            "margin": config.margin,
            "min_chars_left": config.min_chars_left,
        },
        index=layout.relative(layout.decontam_index_dir) + "/",
        index_bytes=meta["bytes"],
        benchmarks=[BenchmarkEntry(**entry) for entry in meta["sets"]],
        found={name: dict(sorted(by.items())) for name, by in sorted(found.items())},
        matches=layout.relative(layout.decontam("matches")) + "/",
    )
