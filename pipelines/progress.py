"""Live progress of a build step (tasks done, records read, rate, ETA) and the closing summary table."""

from __future__ import annotations

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

from gristmill.pipelines.layout import BuildLayout
from gristmill.shards.manifest import Manifest
from gristmill.storage import filesystem


def completed_tasks(layout: BuildLayout, step: str) -> int:
    """Return how many tasks of `step` have left a completion marker."""
    fs, inner = filesystem(layout.logs(step) + "/completions")
    try:
        return len(fs.ls(inner))
    except FileNotFoundError:
        return 0


@contextmanager
def step_progress(
    console: Console, layout: BuildLayout, step: str, tasks: int, interval: float = 0.5
) -> Iterator[None]:
    """Show a progress bar of `step`'s completed tasks while the block runs (polls completion markers)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        bar = progress.add_task(step, total=tasks, completed=completed_tasks(layout, step))
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(interval):
                progress.update(bar, completed=completed_tasks(layout, step))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            progress.update(bar, completed=completed_tasks(layout, step))
    if not console.is_terminal:
        console.print(
            f"{step}: {completed_tasks(layout, step)}/{tasks} tasks ({time.monotonic() - started:.1f}s)"
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
    return table
