"""The ingest step: read every source, select subsets, quarantine bad records, filter, write documents.

One task per work unit (a source's files in groups of `files_per_task`). The step is one datatrove chain,

    ReadSources → gristmill's filters and the recipe's own datatrove steps, in order → quality scores
    (when the recipe names a classifier: `steps/quality.py`) → decontamination (when the recipe has it:
    `steps/decontam.py`) → WriteDocuments

sharing one `IngestTally` per task: the reader counts records in, quarantines, and the documents of each
subset under the filter profile that judges them (`ProfileScope`, the same the filters ask); every filter
counts its drops through its exclusion writer (`CountDrops`, the hook datatrove's `BaseFilter` already
has), a recipe step that is not a filter is watched for the documents it removes (`CountRemoved`), and the
writer writes the task's ledger and dropped-document samples once the chain is drained. A document a rule
set spent too long on (`filters.max_seconds_per_document`, `filters/guard.py`) is counted as quarantined
under its subset, and written to the task's quarantine file with the reason, after its unreadable records.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from loguru import logger

from gristmill.errors import BuildError, InputError
from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.ledger import Ledger
from gristmill.pipelines.documents import DocumentFileWriter
from gristmill.pipelines.filters.datatrove import gristmill_filter_steps
from gristmill.pipelines.filters.guard import Quarantined
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.filters.text_stats import clear_batch_words
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.base import BadRecord
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.decontam import decontam_filter
from gristmill.pipelines.steps.quality import quality_scorer
from gristmill.storage import atomic_write, exists, filesystem, read_json

EXCLUDED_SUBSET = "excluded_subset"
UNREADABLE = "(unreadable)"  # the pseudo-subset of records that cannot be read, so have none
EMPTY_FILES = "(empty files)"  # the pseudo-subset counting data files that hold no record at all
STATS_STEP = "ingest"


@dataclass(frozen=True)
class WorkUnit:
    """One ingest task: files of one source, and the task's index within that source."""

    source: str
    task: int
    files: tuple[str, ...]


def plan_work_units(recipe: Recipe) -> list[WorkUnit]:
    """Split every source's files into tasks of `files_per_task` (sorted file order; deterministic); files in
    a source's folders that are not data files of its layout are listed in the build log as skipped."""
    units = []
    for source in recipe.sources:
        skipped: list[str] = []
        files = source_files(source, skipped)
        if skipped:
            listed = "\n  ".join(skipped)
            logger.warning(
                f"source {source.name!r}: skipped {len(skipped)} files that are not "
                f"{source.format} data files:\n  {listed}"
            )
        n = recipe.files_per_task
        for task, start in enumerate(range(0, len(files), n)):
            units.append(WorkUnit(source.name, task, tuple(files[start : start + n])))
    return units


@dataclass
class IngestTally:
    """One task's accounting, shared by every step of the ingest chain: the ledger, dropped samples, and the
    documents the filters quarantined."""

    samples_per_reason: int
    ledger: Ledger = field(default_factory=Ledger)
    samples: dict[str, list[dict]] = field(default_factory=dict)
    quarantined: list[dict] = field(default_factory=list)

    def reset(self) -> None:
        """Start a new task (a worker process may run several ranks of one deserialised chain)."""
        self.ledger = Ledger()
        self.samples = {}
        self.quarantined = []

    def quarantine(self, doc: Document, reason: str) -> None:
        """Count `doc` as quarantined under its subset for `reason` (a filter could not judge it)."""
        subset = doc.metadata["subset"]
        self.ledger.add(subset, "quarantined")
        self.ledger.add_reason(subset, "quarantine_reasons", str(reason))
        self.quarantined.append(
            {"id": doc.id, "subset": subset, "reason": str(reason), "excerpt": doc.text[:200]}
        )

    def drop(self, doc: Document, reason: str) -> None:
        """Count `doc` as filtered for `reason` and keep it as a sample while the reason has room."""
        subset = doc.metadata["subset"]
        self.ledger.add_reason(subset, "filtered", reason)
        bucket = self.samples.setdefault(reason, [])
        if len(bucket) < self.samples_per_reason:
            bucket.append({"reason": reason, "id": doc.id, "subset": subset, "text": doc.text[:2000]})


class CountDrops:
    """A filter's exclusion writer: every document the filter drops is counted in the task's tally.

    The reason is the filter's own (datatrove puts it in `metadata["filter_reason"]`), prefixed with
    `label` unless the filter already names itself (gristmill's reasons are "<rule set>:<rule>").
    """

    def __init__(self, tally: IngestTally, label: str | None) -> None:
        self.tally = tally
        self.label = label

    def __enter__(self) -> CountDrops:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, doc: Document, rank: int = 0, **kwargs: object) -> None:
        """Count one dropped document (the signature of datatrove's DiskWriter.write)."""
        reason = doc.metadata.pop("filter_reason", None)
        if isinstance(reason, Quarantined):
            self.tally.quarantine(doc, reason)
            return
        if self.label is not None:
            reason = f"{self.label}:{reason}" if reason else self.label
        self.tally.drop(doc, reason or "dropped")


class CountRemoved(PipelineStep):
    """Runs a recipe's datatrove step that is not a filter, counting each document it removes as filtered
    under `label`; documents it changes pass on. A step that makes documents of its own is refused: the
    build's accounting follows records from the input to the shards.
    """

    type = "🔢 - ACCOUNTING"

    def __init__(self, inner: PipelineStep, label: str, tally: IngestTally) -> None:
        super().__init__()
        self.inner = inner
        self.label = label
        self.tally = tally
        self.name = f"{label} (counted)"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        pending: deque[Document] = deque()

        def entering() -> Iterator[Document]:
            for doc in data or ():
                pending.append(doc)
                yield doc

        for out in self.inner(entering(), rank, world_size):
            while pending and pending[0] is not out:
                self.tally.drop(pending.popleft(), self.label)
            if not pending:
                raise BuildError(
                    f"ingest step {self.label!r} yielded a document it was not given "
                    f"({out.id!r}); steps in the ingest chain may only keep, change or drop",
                    where="ingest_steps",
                )
            pending.popleft()
            yield out
        for doc in pending:
            self.tally.drop(doc, self.label)


class ReadSources(PipelineStep):
    """Reads a work unit's files; quarantines unreadable records (or stops at the first under `strict`)."""

    name = "read sources"
    type = "📖 - READER"

    def __init__(
        self,
        recipe: Recipe,
        layout: BuildLayout,
        units: list[WorkUnit],
        tally: IngestTally,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.units = units
        self.tally = tally
        self.strict = strict
        self.scope = ProfileScope.of_recipe(recipe)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        source = self.recipe.source(unit.source)
        reader = reader_for(source)
        self.tally.reset()
        ledger = self.tally.ledger
        with atomic_write(self.layout.quarantine_file(unit.source, unit.task), "w") as qfile:
            for path in unit.files:
                empty = True
                for record in reader.iter_file(path):
                    empty = False
                    if isinstance(record, BadRecord):
                        self._quarantine(record, ledger, qfile, rank)
                        continue
                    subset = record.metadata["subset"]
                    ledger.add(subset, "in")
                    self.stat_update("in")
                    if not source.wants_subset(subset):
                        ledger.add_reason(subset, "filtered", EXCLUDED_SUBSET)
                        continue
                    # the manifest shows which profile's rule sets each subset went through
                    ledger.add_reason(subset, "profile", self.scope.profile(source.name, subset) or "none")
                    yield record
                if empty:  # 0 bytes, or only blank lines: counted in the manifest, never passed over silently
                    ledger.add(EMPTY_FILES, "empty_files")
                    logger.warning(f"ingest: {path} holds no records (counted under {EMPTY_FILES!r})")

    def _quarantine(self, record: BadRecord, ledger: Ledger, qfile, rank: int) -> None:
        if self.strict:
            error = InputError(
                record.reason,
                path=record.path,
                where=record.where,
                hint="run without --strict to quarantine bad records and go on",
            )
            with atomic_write(self.layout.task_error_file(STATS_STEP, rank), "w") as f:
                f.write(str(error))  # a Ray task's exception is only in its log: leave it for the driver
            raise error
        ledger.add(UNREADABLE, "in")
        ledger.add(UNREADABLE, "quarantined")
        self.stat_update("quarantined")
        qfile.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


class WriteDocuments(WritingStep):
    """Writes a work unit's surviving documents to BUILD/documents/<source>/<task>.parquet, then the task's
    ledger and dropped-document samples (the chain is drained by then, so every count is in)."""

    name = "write documents"
    type = "💽 - WRITER"

    def __init__(self, layout: BuildLayout, units: list[WorkUnit], tally: IngestTally) -> None:
        super().__init__()
        self.layout = layout
        self.units = units
        self.tally = tally

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        unit = self.units[rank]
        writer = DocumentFileWriter(self.layout.documents_file(unit.source, unit.task))
        try:
            for doc in data:
                writer.write(doc)
                self.tally.ledger.add(doc.metadata["subset"], "written")
        except BaseException as e:
            writer.abort(e)
            raise
        writer.close()
        if self.tally.quarantined:  # after the reader's unreadable records, in the same file
            path = self.layout.quarantine_file(unit.source, unit.task)
            fs, inner = filesystem(path)
            with fs.open(inner, "r", encoding="utf-8") as f:  # the reader wrote it (maybe empty)
                unreadable = f.read()
            with atomic_write(path, "w") as f:
                f.write(unreadable)
                for record in self.tally.quarantined:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.tally.ledger.write(self.layout.stats_file(STATS_STEP, unit.source, unit.task))
        with atomic_write(self.layout.dropped_file(unit.source, unit.task), "w") as f:
            for reason in sorted(self.tally.samples):
                for sample in self.tally.samples[reason]:
                    f.write(json.dumps(sample, ensure_ascii=False) + "\n")
        self.stat_update("written", value=writer.count)
        clear_batch_words()  # the filters' memo of split words is released with the task


def ingest_chain(
    recipe: Recipe, layout: BuildLayout, units: list[WorkUnit], strict: bool = False
) -> list[PipelineStep]:
    """Return the ingest pipeline: reader, gristmill's filters with the recipe's steps at their places,
    writer; every step that can drop a document counts its drops in one shared tally."""
    tally = IngestTally(recipe.filters.samples_per_reason)
    middle: list[PipelineStep] = []
    placed = {extra.after for extra in recipe.ingest_steps}
    for name, flt in gristmill_filter_steps(recipe):
        flt.exclusion_writer = CountDrops(tally, label=None)
        middle.append(flt)
        middle += [_counted(e.build(), e.label, tally) for e in recipe.ingest_steps if e.after == name]
        placed.discard(name)
    middle += [_counted(e.build(), e.label, tally) for e in recipe.ingest_steps if e.after in placed]
    scorer = quality_scorer(recipe, layout, units)
    if scorer is not None:  # scores what the rule sets and the recipe's steps kept, before any cut
        scorer.exclusion_writer = CountDrops(tally, label=None)
        middle.append(scorer)
    decontam = decontam_filter(recipe, layout, units)
    if decontam is not None:  # last: it scans only what the quality filters kept
        decontam.exclusion_writer = CountDrops(tally, label=None)
        middle.append(decontam)
    return [
        ReadSources(recipe, layout, units, tally, strict=strict),
        *middle,
        WriteDocuments(layout, units, tally),
    ]


def _counted(step: PipelineStep, label: str, tally: IngestTally) -> PipelineStep:
    if isinstance(step, BaseFilter):
        if step.exclusion_writer is not None:
            raise BuildError(
                f"ingest step {label!r} has an exclusion writer of its own; the build "
                "counts and samples drops itself (BUILD/dropped/)",
                where="ingest_steps",
            )
        step.exclusion_writer = CountDrops(tally, label)
        return step
    return CountRemoved(step, label, tally)


def check_excluded_subsets(recipe: Recipe, layout: BuildLayout, units: list[WorkUnit]) -> None:
    """Raise BuildError when a source's `exclude_subsets` names a subset none of its records had, naming
    the subsets that were seen (a misspelt name would otherwise let the subset through unnoticed)."""
    for i, source in enumerate(recipe.sources):
        if not source.exclude_subsets:
            continue
        seen: set[str] = set()
        for unit in units:
            path = layout.stats_file(STATS_STEP, unit.source, unit.task)
            if unit.source == source.name and exists(path):
                seen.update(read_json(path))
        seen -= {UNREADABLE, EMPTY_FILES}
        missing = [s for s in source.exclude_subsets if s not in seen]
        if missing:
            raise BuildError(
                f"exclude_subsets names {missing}, but no record of source {source.name!r} is in such a "
                f"subset; its subsets are {sorted(seen)}",
                where=f"sources.{i}.exclude_subsets",
                hint="subset names are case-sensitive: correct or remove them",
            )


def ingest_step(recipe: Recipe, layout: BuildLayout, units: list[WorkUnit], strict: bool = False) -> Step:
    """Return the step that reads, selects, filters and writes every source's documents; once it has run,
    every `exclude_subsets` name must have been seen (`check_excluded_subsets`)."""
    return Step(
        "ingest",
        ingest_chain(recipe, layout, units, strict),
        tasks=len(units),
        after=lambda: check_excluded_subsets(recipe, layout, units),
    )
