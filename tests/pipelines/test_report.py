"""The build report: accounting per source × subset with profile and keep rate; padding as shards inspect."""

from __future__ import annotations

from rich.console import Console

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.report import render_report
from gristmill.shards.inspect import build_summary, stage_table
from gristmill.shards.manifest import Counts, Manifest, SourceEntry, StageEntry


def manifest() -> Manifest:
    stage = StageEntry(
        name="s",
        number=1,
        seq_len=8,
        tokens_per_step=9,
        rows=110,
        tokens=980,
        trained_rows=220,
        trained_tokens=1960,
        padding_tokens=10,
        split_documents=0,
        source_tokens={"pile": 980},
        source_trained_tokens={"pile": 1960},
        passes={"pile": 2.0},
        sampling={"pile": 1.0},
        shards=[],
    )
    counts = Counts.model_validate(
        {"in": 16, "kept": 14, "duplicate": {"exact": 2}, "profile": "code", "keep_rate": 0.875}
    )
    return Manifest(
        name="m",
        recipe={},
        recipe_hash="h",
        seed=0,
        sources=[SourceEntry(name="pile", format="pile", kind="text", priority=0)],
        accounting={"pile": {"Github": counts}},
        stages=[stage],
    )


def test_report_and_shards_inspect_show_padding_the_same_way(tmp_path):
    m = manifest()
    page = render_report(m, BuildLayout(str(tmp_path)))
    summary = build_summary(m)
    assert summary["stages"][0]["padding_rate"] == 10 / 990  # padding over every stored token
    console = Console(record=True, width=200)
    console.print(stage_table(summary))
    assert "1.010%" in console.export_text() and "<td>1.010%</td>" in page


def test_report_shows_profile_and_keep_rate_per_subset(tmp_path):
    page = render_report(manifest(), BuildLayout(str(tmp_path)))
    assert "<th>profile</th>" in page and "<th>keep rate</th>" in page
    assert "<td>pile / Github</td><td>code</td><td>16</td><td>14</td><td>87.5%</td>" in page
