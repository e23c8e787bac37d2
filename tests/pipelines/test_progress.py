"""Build progress: counters summed from finished tasks' stats, shown with their rate."""

from __future__ import annotations

import json

from rich.console import Console

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.progress import StepCounters, step_progress


def write_stats(layout: BuildLayout, step: str, rank: int, stats: dict) -> None:
    path = layout.logs(step) + f"/stats/{rank:05d}.json"
    with open(path, "w") as f:
        json.dump([{"name": "first", "stats": stats}, {"name": "second", "stats": {"ignored": 5}}], f)


def test_counters_sum_finished_tasks_once(tmp_path):
    layout = BuildLayout(str(tmp_path))
    (tmp_path / "logs" / "tokenize" / "stats").mkdir(parents=True)
    counters = StepCounters(layout, "tokenize")
    assert counters.update() == {}
    write_stats(layout, "tokenize", 0, {"documents": {"total": 3, "mean": 3.0}, "tokens": {"total": 30}})
    write_stats(layout, "tokenize", 1, {"documents": {"total": 2}, "tokens": {"total": 20}})
    assert counters.update() == {"documents": 5, "tokens": 50}
    assert counters.update() == {"documents": 5, "tokens": 50}  # each file counted once
    assert counters.describe(2.0) == "5 documents · 50 tokens · 2/s"


def test_step_progress_prints_a_closing_line_off_a_terminal(tmp_path):
    layout = BuildLayout(str(tmp_path))
    (tmp_path / "logs" / "ingest" / "stats").mkdir(parents=True)
    (tmp_path / "logs" / "ingest" / "completions").mkdir(parents=True)
    console = Console(record=True, force_terminal=False, width=120)
    with step_progress(console, layout, "ingest", tasks=2, interval=0.01):
        write_stats(layout, "ingest", 0, {"in": 7})
        (tmp_path / "logs" / "ingest" / "completions" / "00000").touch()
    assert "ingest: 1/2 tasks, 7 in" in console.export_text()
