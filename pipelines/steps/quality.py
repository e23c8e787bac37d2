"""Model-based quality in the build: the classifier's copy, each document's score, selection by profile.

    quality_model   one task, before ingest: the recipe's classifier (trained ahead of time by `gristmill
                    classifier train`) checked against its card and the recipe's sha256, copied into
                    BUILD/quality/ (model.bin, model.bin.json)
    ingest … QualityScorer   after the rule sets and the recipe's steps, before decontamination: every
                    document is scored (metadata `quality`, the documents files' `quality` column); a
                    profile's `select.min_score` drops those below it (filter reason "quality:min_score",
                    counted like every filter's); the task writes its score histograms per subset
                    (BUILD/stats/quality/)

`collect_quality` sums the histograms into the manifest's `quality` entry, per source × subset.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from gristmill.errors import BuildError
from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.quality import REASON, QualityConfig
from gristmill.pipelines.documents import SCORE_KEY
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.quality.model import QualityModel, card_path, file_sha256
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import JudgingFilter, WritingStep
from gristmill.shards.manifest import QualityEntry, QualityScores
from gristmill.storage import atomic_write, download_tree, exists, is_local, read_json, write_json

STATS_STEP = "quality"
_BATCH = 256


class CopyClassifier(WritingStep):
    """Checks the recipe's classifier (card, checksum, fastText header, labels), copies it into the build."""

    name = "quality model"
    type = "🎯 - QUALITY"

    def __init__(self, config: QualityConfig, layout: BuildLayout) -> None:
        super().__init__()
        self.config = config
        self.layout = layout

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        model = QualityModel.load(str(self.config.model), self.config.sha256)
        for source, target in (
            (model.path, self.layout.quality_model_file),
            (card_path(model.path), card_path(self.layout.quality_model_file)),
        ):
            with open(source, "rb") as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        self.stat_update("bytes", value=model.card.bytes)


def quality_model_step(recipe: Recipe, layout: BuildLayout) -> Step:
    """Return the one-task step that checks the recipe's classifier and copies it into the build.

    Raises BuildError when the build already holds a copy of another model file (the recipe's file was
    changed since the build started: resuming would score its documents with two models)."""
    copied = card_path(layout.quality_model_file)
    if exists(copied):
        held = read_json(copied).get("sha256")
        given = file_sha256(str(recipe.quality.model))
        if held != given:
            raise BuildError(
                f"the build's classifier has sha256 {held}, the recipe's model file now {given}",
                path=str(recipe.quality.model),
                where="quality.model",
                hint="rebuild with --fresh to score every document with the new model",
            )
    return Step("quality_model", [CopyClassifier(recipe.quality, layout)], tasks=1)


_MODELS: dict[tuple[str, str | None], QualityModel] = {}
_LOCAL_COPIES: dict[str, tempfile.TemporaryDirectory] = {}


def build_model(layout: BuildLayout, sha256: str | None) -> QualityModel:
    """Load the build's classifier once per process (from an object store, through a local copy), checked
    against its card and `sha256`."""
    key = (layout.quality_model_file, sha256)
    if key not in _MODELS:
        path = layout.quality_model_file
        if not is_local(path):
            copy = _LOCAL_COPIES.setdefault(path, tempfile.TemporaryDirectory(prefix="gristmill-quality-"))
            download_tree(layout.quality_dir, copy.name)
            path = os.path.join(copy.name, os.path.basename(path))
        _MODELS.clear()
        _MODELS[key] = QualityModel.load(path.removeprefix("file://"), sha256)
    return _MODELS[key]


class QualityScorer(JudgingFilter):
    """Scores every document with the build's classifier and drops those below their profile's `min_score`.

    A document's score is its metadata's `quality` (the probability the classifier gives it of being real).
    Statistics are datatrove's (`total`, `forwarded`, `dropped`, `dropped_quality:min_score`).
    """

    name = "quality score"
    type = "🎯 - QUALITY"

    def __init__(self, recipe: Recipe, layout: BuildLayout, units: list[Any]) -> None:
        super().__init__(None, batch_size=_BATCH)
        self.config = recipe.quality
        self.layout = layout
        self.units = units
        self.scope = ProfileScope.of_recipe(recipe)

    def min_score(self, doc: Document) -> float | None:
        """Return the selection threshold of `doc`'s profile (None: its profile keeps every score)."""
        profile = self.scope.profile(doc.metadata.get("source"), doc.metadata.get("subset"))
        selection = self.config.select.get(profile) if profile is not None else None
        return None if selection is None else selection.min_score

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        model = build_model(self.layout, self.config.sha256)
        bins = self.config.histogram_bins
        scored: dict[str, np.ndarray] = {}
        selected: dict[str, np.ndarray] = {}
        thresholds: dict[str, float | None] = {}
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for batch in batched(data or (), self.batch_size):
                self.stat_update("batches")
                with self.track_time("batch"):
                    scores = model.score([doc.text for doc in batch])
                self.stat_update(StatHints.total, value=len(batch))
                for doc, score in zip(batch, scores.tolist()):
                    subset = doc.metadata["subset"]
                    where = min(int(score * bins), bins - 1)
                    if subset not in scored:
                        scored[subset], selected[subset] = np.zeros(bins, np.int64), np.zeros(bins, np.int64)
                        thresholds[subset] = self.min_score(doc)
                    scored[subset][where] += 1
                    doc.metadata[SCORE_KEY] = score
                    threshold = thresholds[subset]
                    if threshold is not None and score < threshold:
                        self.stat_update(StatHints.dropped)
                        self.stat_update(f"dropped_{REASON}")
                        if self.exclusion_writer:
                            doc.metadata["filter_reason"] = REASON
                            writer.write(doc, rank)
                        continue
                    selected[subset][where] += 1
                    self.stat_update(StatHints.forwarded)
                    yield doc
        write_json(
            self.layout.stats_file(STATS_STEP, unit.source, unit.task),
            {
                subset: {
                    "scored": scored[subset].tolist(),
                    "selected": selected[subset].tolist(),
                    "min_score": thresholds[subset],
                }
                for subset in sorted(scored)
            },
        )


def quality_scorer(recipe: Recipe, layout: BuildLayout, units: list[Any]) -> QualityScorer | None:
    """Return the ingest chain's scoring step, or None when the recipe names no classifier."""
    return QualityScorer(recipe, layout, units) if recipe.quality.enabled else None


def collect_quality(
    recipe: Recipe, layout: BuildLayout, tasks_by_source: dict[str, list[int]]
) -> QualityEntry:
    """Return the manifest's quality entry: the build's classifier and its score histograms per source ×
    subset, summed over the ingest tasks."""
    card = read_json(card_path(layout.quality_model_file))
    bins = recipe.quality.histogram_bins
    scores: dict[str, dict[str, QualityScores]] = {}
    for source, tasks in tasks_by_source.items():
        subsets: dict[str, QualityScores] = {}
        for task in tasks:
            for subset, entry in read_json(layout.stats_file(STATS_STEP, source, task)).items():
                empty = QualityScores(scored=[0] * bins, selected=[0] * bins, min_score=entry["min_score"])
                into = subsets.setdefault(subset, empty)
                into.scored = [a + b for a, b in zip(into.scored, entry["scored"])]
                into.selected = [a + b for a, b in zip(into.selected, entry["selected"])]
        scores[source] = dict(sorted(subsets.items()))
    return QualityEntry(
        model=layout.relative(layout.quality_model_file),
        sha256=card["sha256"],
        bytes=card["bytes"],
        settings=card["settings"],
        trained_on=card["documents"],
        bins=bins,
        scores=scores,
    )
