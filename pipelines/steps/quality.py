"""Model-based quality in the build: the classifier, each document's score, selection by profile.

    quality_model   one task, before ingest: the recipe's classifier, either trained ahead of time (`gristmill
                    classifier train`), checked against its card and the recipe's sha256 and copied, or
                    trained here from a seeded sample of the documents `quality.train` names
                    (`quality/training.py`), into BUILD/quality/ (model.bin, model.bin.json); then each
                    profile's `select.top_fraction` is resolved to a threshold on a seeded sample of its
                    documents (`quality/selection.py`, BUILD/quality/selection.json)
    ingest … QualityScorer   after the rule sets and the recipe's steps, before decontamination: every
                    document is scored (metadata `quality`, the documents files' `quality` column); a
                    profile's selection drops those below its threshold (filter reason "quality:min_score" or
                    "quality:top_fraction", counted like every filter's); the task writes its score
                    histograms per subset (BUILD/stats/quality/)

`collect_quality` sums the histograms into the manifest's `quality` entry, per source × subset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from gristmill.errors import BuildError
from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.documents import SCORE_KEY
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.quality.model import QualityModel, card_path, file_sha256
from gristmill.pipelines.quality.selection import resolve_fractions
from gristmill.pipelines.quality.training import check_training_subsets, train_from_recipe, training_sha256
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import JudgingFilter, WritingStep
from gristmill.shards.manifest import QualityEntry, QualityScores, QualitySelection
from gristmill.storage import atomic_write, download_tree, exists, is_local, read_json, write_json

STATS_STEP = "quality"
_BATCH = 256


def _install(model_path: str, layout: BuildLayout) -> None:
    """Copy a local model file and its card into the build (each atomically; the card last)."""
    for source, target in (
        (model_path, layout.quality_model_file),
        (card_path(model_path), card_path(layout.quality_model_file)),
    ):
        with open(source, "rb") as src, atomic_write(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 22)


class _QualityStep(WritingStep):
    """A step of the `quality_model` task, over the recipe and the build's layout."""

    type = "🎯 - QUALITY"

    def __init__(self, recipe: Recipe, layout: BuildLayout) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout


class CopyClassifier(_QualityStep):
    """Checks the recipe's classifier (card, checksum, fastText header, labels), copies it into the build."""

    name = "quality model"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        config = self.recipe.quality
        model = QualityModel.load(str(config.model), config.sha256)
        _install(model.path, self.layout)
        self.stat_update("bytes", value=model.card.bytes)


class TrainClassifier(_QualityStep):
    """Trains the recipe's classifier (`quality.train`) on a seeded sample of the documents it names and
    puts it into the build with its card (held-out figures, what it was trained from). A model the build
    already trained from the same `quality.train` is kept."""

    name = "quality train"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        held = card_path(self.layout.quality_model_file)
        if exists(held) and read_json(held).get("train_sha256") == training_sha256(self.recipe):
            return  # trained by an earlier run whose task died after it (the step guard checked the hash)
        with tempfile.TemporaryDirectory(prefix="gristmill-quality-train-") as work:
            out = os.path.join(work, "model.bin")
            with self.track_time("train"):
                card = train_from_recipe(self.recipe, out)
            _install(out, self.layout)
        self.stat_update("bytes", value=card.bytes)
        self.stat_update("documents", value=sum(card.documents.values()))


class ResolveSelection(_QualityStep):
    """Resolves each profile's `select.top_fraction` to a score threshold on a seeded sample of the profile's
    documents, scored with the build's classifier: BUILD/quality/selection.json."""

    name = "quality selection"

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        model = build_model(self.layout, self.recipe.quality.sha256)
        resolved, counts = resolve_fractions(self.recipe, model)
        write_json(
            self.layout.quality_selection_file,
            {
                "profiles": {profile: r.to_dict() for profile, r in resolved.items()},
                "sample": counts.to_dict(),
            },
        )


def _check_resume(recipe: Recipe, layout: BuildLayout) -> None:
    """Raise BuildError when the build holds a classifier other than the one the recipe gives now: another
    model file (its sha256), or one trained from another `quality.train` (its `training_sha256`)."""
    held_card = card_path(layout.quality_model_file)
    if not exists(held_card):
        return
    held = read_json(held_card)
    config = recipe.quality
    if config.model is not None:
        if not os.path.isfile(str(config.model)):
            return  # CopyClassifier says what is missing
        given, copied = file_sha256(str(config.model)), held.get("sha256")
        if copied != given:
            raise BuildError(
                f"the build's classifier has sha256 {copied}, the recipe's model file now {given}",
                path=str(config.model),
                where="quality.model",
                hint="rebuild with --fresh to score every document with the new model",
            )
        return
    wanted = training_sha256(recipe)
    if held.get("train_sha256") != wanted:
        trained = held.get("train_sha256")
        what = "a model file given by path" if trained is None else f"another quality.train ({trained[:16]}…)"
        raise BuildError(
            f"the build's classifier was trained from {what}, the recipe's quality.train (with the settings "
            f"of the sources and rule sets it reads) is now {wanted[:16]}…",
            where="quality.train",
            hint="rebuild with --fresh to train the classifier again and score every document with it",
        )


def quality_model_step(recipe: Recipe, layout: BuildLayout) -> Step:
    """Return the one-task step that puts the recipe's classifier into the build (copied, or trained from
    `quality.train`) and resolves its selections' top fractions.

    Raises BuildError when the build already holds another classifier (the recipe's model file was changed,
    or its `quality.train` was, since the build started: resuming would score its documents with two
    models)."""
    _check_resume(recipe, layout)
    check_training_subsets(recipe)
    make = CopyClassifier(recipe, layout) if recipe.quality.model else TrainClassifier(recipe, layout)
    pipeline: list[WritingStep] = [make]
    if any(s.top_fraction is not None for s in recipe.quality.select.values()):
        pipeline.append(ResolveSelection(recipe, layout))
    # training holds the sample (up to 2 × documents × max_words words) and fastText's matrices
    return Step("quality_model", pipeline, tasks=1, mem_per_cpu_gb=1.0 if recipe.quality.model else 4.0)


_MODELS: dict[tuple[str, str | None], QualityModel] = {}
_LOCAL_COPIES: dict[str, tempfile.TemporaryDirectory] = {}


def build_model(layout: BuildLayout, sha256: str | None) -> QualityModel:
    """Load the build's classifier once per process (from an object store, through a local copy), checked
    against its card and `sha256`."""
    held = read_json(card_path(layout.quality_model_file)).get("sha256")  # a build made again: another model
    key = (layout.quality_model_file, sha256, held)
    if key not in _MODELS:
        path = layout.quality_model_file
        if not is_local(path):
            copy = _LOCAL_COPIES.setdefault(path, tempfile.TemporaryDirectory(prefix="gristmill-quality-"))
            download_tree(layout.quality_dir, copy.name)
            path = os.path.join(copy.name, os.path.basename(path))
        _MODELS.clear()
        _MODELS[key] = QualityModel.load(path.removeprefix("file://"), sha256)
    return _MODELS[key]


def resolved_thresholds(recipe: Recipe, layout: BuildLayout) -> dict[str, tuple[float, float | None, str]]:
    """Return profile → (threshold, top_fraction or None, drop reason) of every profile the recipe selects
    in: its `min_score`, or the threshold its `top_fraction` resolved to (BUILD/quality/selection.json)."""
    config = recipe.quality
    resolved: dict[str, Any] = {}
    if any(s.top_fraction is not None for s in config.select.values()):
        resolved = read_json(layout.quality_selection_file)["profiles"]
    out = {}
    for profile, selection in config.select.items():
        if selection.min_score is not None:
            out[profile] = (selection.min_score, None, selection.reason)
        else:
            out[profile] = (float(resolved[profile]["min_score"]), selection.top_fraction, selection.reason)
    return out


class QualityScorer(JudgingFilter):
    """Scores every document with the build's classifier and drops those below their profile's threshold.

    A document's score is its metadata's `quality` (the probability the classifier gives it of being real).
    Statistics are datatrove's (`total`, `forwarded`, `dropped`, `dropped_quality:min_score`,
    `dropped_quality:top_fraction`).
    """

    name = "quality score"
    type = "🎯 - QUALITY"

    def __init__(self, recipe: Recipe, layout: BuildLayout, units: list[Any]) -> None:
        super().__init__(None, batch_size=_BATCH)
        self.recipe = recipe
        self.config = recipe.quality
        self.layout = layout
        self.units = units
        self.scope = ProfileScope.of_recipe(recipe)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        model = build_model(self.layout, self.config.sha256)
        by_profile = resolved_thresholds(self.recipe, self.layout)
        bins = self.config.histogram_bins
        scored: dict[str, np.ndarray] = {}
        selected: dict[str, np.ndarray] = {}
        selection: dict[str, tuple[float, float | None, str] | None] = {}
        with self.excluded() as writer:
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
                        profile = self.scope.profile(doc.metadata.get("source"), subset)
                        selection[subset] = by_profile.get(profile) if profile is not None else None
                    scored[subset][where] += 1
                    doc.metadata[SCORE_KEY] = score
                    chosen = selection[subset]
                    if chosen is not None and score < chosen[0]:
                        self.drop(doc, chosen[2], writer, rank)
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
                    "min_score": None if selection[subset] is None else selection[subset][0],
                    "top_fraction": None if selection[subset] is None else selection[subset][1],
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
    """Return the manifest's quality entry: the build's classifier (how it was trained, its held-out figures),
    the thresholds top fractions resolved to, and its score histograms per source × subset, summed over the
    ingest tasks."""
    card = read_json(card_path(layout.quality_model_file))
    bins = recipe.quality.histogram_bins
    scores: dict[str, dict[str, QualityScores]] = {}
    for source, tasks in tasks_by_source.items():
        subsets: dict[str, QualityScores] = {}
        for task in tasks:
            for subset, entry in read_json(layout.stats_file(STATS_STEP, source, task)).items():
                empty = QualityScores(
                    scored=[0] * bins,
                    selected=[0] * bins,
                    min_score=entry["min_score"],
                    top_fraction=entry.get("top_fraction"),
                )
                into = subsets.setdefault(subset, empty)
                into.scored = [a + b for a, b in zip(into.scored, entry["scored"])]
                into.selected = [a + b for a, b in zip(into.selected, entry["selected"])]
        scores[source] = dict(sorted(subsets.items()))
    selection = {}
    if exists(layout.quality_selection_file):
        profiles = read_json(layout.quality_selection_file)["profiles"]
        selection = {profile: QualitySelection(**entry) for profile, entry in sorted(profiles.items())}
    return QualityEntry(
        model=layout.relative(layout.quality_model_file),
        sha256=card["sha256"],
        bytes=card["bytes"],
        settings=card["settings"],
        trained_on=card["documents"],
        trained_in_build=recipe.quality.train is not None,
        heldout=card.get("heldout"),
        selection=selection,
        bins=bins,
        scores=scores,
    )
