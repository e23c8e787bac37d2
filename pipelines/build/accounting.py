"""Sums the per-task ledgers of every step into the manifest's accounting, and checks that it balances."""

from __future__ import annotations

from gristmill.errors import BuildError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.decontam import REASON_PREFIX
from gristmill.shards.manifest import Counts
from gristmill.storage import exists, read_json


def _ledgers(layout: BuildLayout, step: str, source: str, tasks: list[int]) -> list[dict]:
    out = []
    for task in tasks:
        path = layout.stats_file(step, source, task)
        if exists(path):
            out.append(read_json(path))
    return out


def collect_accounting(
    layout: BuildLayout, tasks_by_source: dict[str, list[int]]
) -> dict[str, dict[str, Counts]]:
    """Return source → subset → Counts from the ledgers of the ingest and dedupe steps.

    kept = written by ingest − removed by dedupe; each subset has the filter profile it went through and its
    keep rate (kept / in). Raises BuildError if any (source, subset) fails to balance,
    which would mean a record was lost or counted twice.
    """
    accounting: dict[str, dict[str, Counts]] = {}
    for source, tasks in tasks_by_source.items():
        subsets: dict[str, Counts] = {}
        written: dict[str, int] = {}

        def at(subset: str, subsets=subsets) -> Counts:
            return subsets.setdefault(subset, Counts())

        for ledger in _ledgers(layout, "ingest", source, tasks):
            for subset, c in ledger.items():
                at(subset).add(
                    Counts.model_validate(
                        {
                            "in": c.get("in", 0),
                            "quarantined": c.get("quarantined", 0),
                            "empty_files": c.get("empty_files", 0),
                            "filtered": c.get("filtered", {}),
                        }
                    )
                )
                written[subset] = written.get(subset, 0) + c.get("written", 0)
                if c.get("profile"):
                    at(subset).profile = min(c["profile"])  # one profile per (source, subset)
        for ledger in _ledgers(layout, "dedupe", source, tasks):
            for subset, c in ledger.items():
                at(subset).add(Counts(duplicate={k: v for k, v in c.items() if v}))
        for subset, counts in subsets.items():
            counts.kept = written.get(subset, 0) - sum(counts.duplicate.values())
            counts.keep_rate = round(counts.kept / counts.records_in, 6) if counts.records_in else None
            if not counts.balanced():
                raise BuildError(
                    f"accounting does not balance for {source}/{subset}: {counts.model_dump(by_alias=True)}",
                    path=layout.root,
                    hint="this is a bug in gristmill; please report it with the build's stats/",
                )
        accounting[source] = dict(sorted(subsets.items()))
    return accounting


def decontam_drops(accounting: dict[str, dict[str, Counts]]) -> dict[str, int]:
    """Return source → documents filtered for a decontamination reason ("decontam:<set>")."""
    return {
        source: sum(n for c in subsets.values() for r, n in c.filtered.items() if r.startswith(REASON_PREFIX))
        for source, subsets in accounting.items()
    }
