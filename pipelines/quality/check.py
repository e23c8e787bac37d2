"""`recipe check` with a classifier: each profile's `min_score` against the scores of a sample of the
documents it would judge (the first documents of each source's files that its rule sets keep)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gristmill.errors import ConfigError
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.quality.model import QualityModel
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.base import BadRecord
from gristmill.pipelines.recipe import Recipe


@dataclass(frozen=True)
class SelectionCheck:
    """A profile's selection against its sample: documents scored, their median, the share it keeps."""

    profile: str
    min_score: float
    documents: int
    median: float
    kept: float  # share of the sample scoring ≥ min_score


def _sample(recipe: Recipe, per_source: int) -> dict[str, list[str]]:
    """Return profile → texts: up to `per_source` documents of each source, read in file order, of the
    subsets the recipe wants, that their profile's rule sets keep."""
    scope = ProfileScope.of_recipe(recipe)
    rule_sets = {name: make_filters(recipe.filters, name) for name in recipe.filters.profiles}
    texts: dict[str, list[str]] = {}
    for source in recipe.sources:
        taken = 0
        for path in source_files(source):
            for record in reader_for(source).iter_file(path):
                if isinstance(record, BadRecord) or not source.wants_subset(record.metadata["subset"]):
                    continue
                profile = scope.profile(source.name, record.metadata["subset"]) or "none"
                if all(rules.check_batch([record.text])[0] is None for rules in rule_sets.get(profile, [])):
                    texts.setdefault(profile, []).append(record.text)
                taken += 1
                if taken >= per_source:
                    break
            if taken >= per_source:
                break
    return texts


def check_selection(recipe: Recipe, per_source: int = 200) -> list[SelectionCheck]:
    """Score a sample of each selecting profile's documents with the recipe's classifier and return what
    each `min_score` keeps of it. Raises ConfigError naming the field when a selection keeps none of a
    sample it has documents in (InputError when the model or an input cannot be read)."""
    config = recipe.quality
    if not config.select:
        return []
    model = QualityModel.load(str(config.model), config.sha256)
    texts = _sample(recipe, per_source)
    checks = []
    for profile, selection in config.select.items():
        sample = texts.get(profile, [])
        scores = model.score(sample) if sample else np.zeros(0, np.float32)
        kept = float((scores >= selection.min_score).mean()) if len(scores) else 0.0
        median = float(np.median(scores)) if len(scores) else 0.0
        if len(scores) and kept == 0.0:
            raise ConfigError(
                f"min_score {selection.min_score} keeps none of {len(scores)} sampled {profile} documents "
                f"(their scores: median {median:.3f}, highest {float(scores.max()):.3f})",
                where=f"quality.select.{profile}.min_score",
                hint="lower it, or check the classifier against your data: gristmill classifier eval",
            )
        checks.append(SelectionCheck(profile, selection.min_score, len(scores), median, kept))
    return checks
