"""The ingest step: read every source, select subsets, quarantine bad records, filter, write documents.

One task per work unit (a source's files in groups of `files_per_task`). The pipeline is three datatrove
steps: ReadSources → FilterDocuments → WriteDocuments; each keeps its own per-subset ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gristmill.errors import InputError
from gristmill.pipelines.documents import DocumentFileWriter
from gristmill.pipelines.layout import BuildLayout
from gristmill.pipelines.ledger import Ledger
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.base import BadRecord
from gristmill.pipelines.recipe import Recipe
from gristmill.storage import atomic_write

EXCLUDED_SUBSET = "excluded_subset"
_FILTER_BATCH = 256


@dataclass(frozen=True)
class WorkUnit:
    """One ingest task: files of one source, and the task's index within that source."""

    source: str
    task: int
    files: tuple[str, ...]


def plan_work_units(recipe: Recipe) -> list[WorkUnit]:
    """Split every source's files into tasks of `files_per_task` (sorted file order; deterministic)."""
    units = []
    for source in recipe.sources:
        files = source_files(source)
        n = recipe.files_per_task
        for task, start in enumerate(range(0, len(files), n)):
            units.append(WorkUnit(source.name, task, tuple(files[start : start + n])))
    return units


class _UnitStep(PipelineStep):
    """A step that knows which work unit each rank is."""

    def __init__(self, recipe: Recipe, layout: BuildLayout, units: list[WorkUnit]) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.units = units


class ReadSources(_UnitStep):
    """Reads a work unit's files; quarantines unreadable records (or stops at the first under `strict`)."""

    name = "read sources"
    type = "📖 - READER"

    def __init__(
        self, recipe: Recipe, layout: BuildLayout, units: list[WorkUnit], strict: bool = False
    ) -> None:
        super().__init__(recipe, layout, units)
        self.strict = strict

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        source = self.recipe.source(unit.source)
        reader = reader_for(source)
        ledger = Ledger()
        quarantine = self.layout.task_file("quarantine", unit.source, unit.task, "jsonl")
        with atomic_write(quarantine, "w") as qfile:
            for path in unit.files:
                for record in reader.iter_file(path):
                    if isinstance(record, BadRecord):
                        self._quarantine(record, ledger, qfile, rank)
                        continue
                    subset = record.metadata["subset"]
                    ledger.add(subset, "in")
                    self.stat_update("in")
                    if not source.wants_subset(subset):
                        ledger.add_reason(subset, "filtered", EXCLUDED_SUBSET)
                        continue
                    yield record
        ledger.write(self.layout.stats_file("read", unit.source, unit.task))

    def _quarantine(self, record: BadRecord, ledger: Ledger, qfile, rank: int) -> None:
        if self.strict:
            error = InputError(
                record.reason,
                path=record.path,
                where=record.where,
                hint="run without --strict to quarantine bad records and go on",
            )
            self.layout_error(rank, error)
            raise error
        # A bad record has no readable subset; it is counted under the pseudo-subset "(unreadable)".
        ledger.add("(unreadable)", "in")
        ledger.add("(unreadable)", "quarantined")
        self.stat_update("quarantined")
        qfile.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")

    def layout_error(self, rank: int, error: InputError) -> None:
        """Leave the error where the driver can show it (a Ray task's exception is only in its log)."""
        with atomic_write(self.layout.path("logs", "errors", f"ingest-{rank:05d}.txt"), "w") as f:
            f.write(str(error))


class FilterDocuments(_UnitStep):
    """Applies the recipe's filters for the source's kind in batches; counts and samples what it drops."""

    name = "filter"
    type = "🔻 - FILTER"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        config = self.recipe.filters
        source = self.recipe.source(unit.source)
        filters = []
        if config.enabled:
            from gristmill.pipelines.filters import make_filters

            filters = make_filters(config, source.kind)
        ledger = Ledger()
        samples: dict[str, list[dict]] = {}
        batch: list[Document] = []
        for doc in data:
            batch.append(doc)
            if len(batch) >= _FILTER_BATCH:
                yield from self._filter(batch, filters, ledger, samples, config.samples_per_reason)
                batch = []
        yield from self._filter(batch, filters, ledger, samples, config.samples_per_reason)
        ledger.write(self.layout.stats_file("filter", unit.source, unit.task))
        with atomic_write(self.layout.task_file("dropped", unit.source, unit.task, "jsonl"), "w") as f:
            for reason in sorted(samples):
                for sample in samples[reason]:
                    f.write(json.dumps(sample, ensure_ascii=False) + "\n")

    def _filter(self, batch, filters, ledger, samples, per_reason) -> Iterator[Document]:
        alive = batch
        for flt in filters:
            if not alive:
                break
            verdicts = flt.check_batch([d.text for d in alive], [d.metadata.get("repo_path") for d in alive])
            kept = []
            for doc, reason in zip(alive, verdicts):
                if reason is None:
                    kept.append(doc)
                    continue
                ledger.add_reason(doc.metadata["subset"], "filtered", reason)
                self.stat_update(reason)
                bucket = samples.setdefault(reason, [])
                if len(bucket) < per_reason:
                    bucket.append(
                        {
                            "reason": reason,
                            "id": doc.id,
                            "subset": doc.metadata["subset"],
                            "text": doc.text[:2000],
                        }
                    )
            alive = kept
        yield from alive


class WriteDocuments(_UnitStep):
    """Writes the surviving documents of a work unit to BUILD/documents/<source>/<task>.parquet."""

    name = "write documents"
    type = "💽 - WRITER"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        ledger = Ledger()
        writer = DocumentFileWriter(self.layout.task_file("documents", unit.source, unit.task, "parquet"))
        try:
            for doc in data:
                writer.write(doc)
                ledger.add(doc.metadata["subset"], "written")
        except BaseException as e:
            writer.abort(e)
            raise
        writer.close()
        ledger.write(self.layout.stats_file("write", unit.source, unit.task))
        self.stat_update("written", value=writer.count)
        return
        yield  # a generator that yields nothing: this is the pipeline's last step
