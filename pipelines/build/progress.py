"""Live progress of a build step (tasks done, records read, rate, ETA) and the closing summary table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.shards.manifest import Manifest
from gristmill.storage import filesystem


def completed_tasks(layout: BuildLayout, step: str) -> int:
    """Return how many tasks of `step` have left a completion marker."""
    fs, inner = filesystem(layout.logs(step) + "/completions")
    try:
        return len(fs.ls(inner))
    except FileNotFoundError:
        return 0


class StepCounters:
    """Sums the counters of the first pipeline step over finished tasks (datatrove's per-task stats files).

    Each file is read once; e.g. ingest counts records `in`, tokenize counts `documents` and `tokens`.
    """

    def __init__(self, layout: BuildLayout, step: str) -> None:
        self.directory = layout.logs(step) + "/stats"
        self.seen: set[str] = set()
        self.totals: dict[str, int] = {}

    def update(self) -> dict[str, int]:
        """Read the stats of newly finished tasks and return the running totals."""
        fs, inner = filesystem(self.directory)
        try:
            files = [f for f in fs.ls(inner, detail=False) if f not in self.seen]
        except FileNotFoundError:
            return self.totals
        for path in files:
            try:
                with fs.open(path, "r") as f:
                    first = json.load(f)[0]["stats"]
            except (ValueError, KeyError, IndexError, OSError):
                continue  # being written: read it on the next poll
            self.seen.add(path)
            for name, value in first.items():
                count = value.get("total", 0) if isinstance(value, dict) else value
                if isinstance(count, int | float):
                    self.totals[name] = self.totals.get(name, 0) + int(count)
        return self.totals

    def describe(self, elapsed: float) -> str:
        """Return e.g. "1,204 in · 310/s" for the first two counters."""
        parts = [f"{v:,} {k}" for k, v in list(self.totals.items())[:2]]
        if parts and elapsed > 0:
            first = next(iter(self.totals.values()))
            parts.append(f"{first / elapsed:,.0f}/s")
        return " · ".join(parts)


@contextmanager
def step_progress(
    console: Console, layout: BuildLayout, step: str, tasks: int, interval: float = 0.5
) -> Iterator[None]:
    """Show `step`'s progress while the block runs: tasks done, its counters and their rate, elapsed, ETA."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TextColumn("{task.fields[counters]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    counters = StepCounters(layout, step)
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        bar = progress.add_task(step, total=tasks, completed=completed_tasks(layout, step), counters="")

        def refresh() -> None:
            counters.update()
            progress.update(
                bar,
                completed=completed_tasks(layout, step),
                counters=counters.describe(time.monotonic() - started),
            )

        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(interval):
                refresh()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10 * interval)  # a daemon: a stuck read of the stats must not hold the build
            refresh()
    if not console.is_terminal:
        elapsed = time.monotonic() - started
        summary = counters.describe(elapsed)
        done = completed_tasks(layout, step)
        console.print(
            f"{step}: {done}/{tasks} tasks" + (f", {summary}" if summary else "") + f" ({elapsed:.1f}s)"
        )


def summary_table(manifest: Manifest) -> Table:
    """Return the per-source accounting (and stage sizes, when there are stages) as a rich table."""
    table = Table(title=f"build {manifest.name}: in = kept + filtered + duplicate + quarantined")
    for col in ("source", "in", "kept", "filtered", "duplicate", "quarantined"):
        table.add_column(col, justify="left" if col == "source" else "right")
    totals = manifest.source_totals()
    grand = [0, 0, 0, 0, 0]
    for source, c in totals.items():
        row = [c.records_in, c.kept, sum(c.filtered.values()), sum(c.duplicate.values()), c.quarantined]
        grand = [a + b for a, b in zip(grand, row)]
        table.add_row(source, *(f"{v:,}" for v in row))
    table.add_row("[bold]all", *(f"[bold]{v:,}" for v in grand))
    if manifest.decontamination is not None:
        table.caption = decontam_caption(manifest)
    return table


def decontam_caption(manifest: Manifest) -> str:
    """One line under the summary: the documents decontamination dropped (in `filtered`) and cut, per set."""
    d = manifest.decontamination
    assert d is not None
    dropped: dict[str, int] = {}
    cut = 0
    for name, by_source in d.found.items():
        dropped[name] = sum(c.documents_dropped for c in by_source.values())
        cut += sum(c.documents_cut for c in by_source.values())
    parts = ", ".join(f"{name} {n:,}" for name, n in dropped.items() if n)
    return (
        f"decontamination ({len(d.benchmarks)} sets): {sum(dropped.values()):,} documents dropped"
        + (f" ({parts})" if parts else "")
        + f" (counted in filtered), {cut:,} cut"
    )
