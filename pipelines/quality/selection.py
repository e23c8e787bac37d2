"""Selection by top fraction: the score threshold that keeps a profile's `top_fraction` of a seeded sample of
its documents, resolved once the classifier exists and before ingest (which streams, task by task, and so
cannot rank the whole corpus)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from gristmill.errors import BuildError
from gristmill.pipelines.quality.model import QualityModel
from gristmill.pipelines.quality.sampling import SampleCounts, profile_sample
from gristmill.pipelines.recipe import Recipe


def top_fraction_threshold(scores: np.ndarray, fraction: float) -> float:
    """Return the lowest score among the best `ceil(fraction × n)` of `scores`: the threshold that keeps
    that share of them (more when scores tie at it). Raises ValueError for no scores."""
    if not len(scores):
        raise ValueError("no scores to take a fraction of")
    ranked = np.sort(np.asarray(scores, dtype=np.float32))
    keep = max(1, math.ceil(fraction * len(ranked)))
    return float(ranked[len(ranked) - keep])


@dataclass(frozen=True)
class ResolvedSelection:
    """A profile's `top_fraction`, the threshold it resolved to, and the sample it was resolved on."""

    top_fraction: float
    min_score: float
    documents: int  # documents of the profile sampled and scored
    kept: float  # share of them scoring ≥ min_score (≥ top_fraction; above it only by ties)
    median: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a plain dict (for selection.json)."""
        return asdict(self)


def resolve_fractions(
    recipe: Recipe, model: QualityModel, per_source: int | None = None
) -> tuple[dict[str, ResolvedSelection], SampleCounts]:
    """Return profile → resolved selection for each profile whose `select` gives a `top_fraction`, scored on
    `profile_sample` (`per_source`, default `quality.fraction_sample`, documents of the profile per source),
    and the sample's counts. Raises BuildError naming the field when a profile has no document in the sample.
    """
    config = recipe.quality
    fractions = {p: s.top_fraction for p, s in config.select.items() if s.top_fraction is not None}
    counts = SampleCounts()
    if not fractions:
        return {}, counts
    per_source = per_source or config.fraction_sample
    texts = profile_sample(
        recipe, sorted(fractions), per_source, config.sample_seed, config.sample_per_file, counts
    )
    resolved = {}
    for profile, fraction in sorted(fractions.items()):
        if not texts[profile]:
            raise BuildError(
                f"no document of profile {profile!r} in the sample to resolve its top_fraction on (read "
                f"{counts.records:,} records in {counts.files} files; {counts.dropped:,} dropped by the rule "
                "sets)",
                where=f"quality.select.{profile}.top_fraction",
                hint="select a profile whose subsets the sources hold and the rule sets keep",
            )
        scores = model.score(texts[profile])
        threshold = top_fraction_threshold(scores, fraction)
        resolved[profile] = ResolvedSelection(
            top_fraction=fraction,
            min_score=threshold,
            documents=len(scores),
            kept=float((scores >= threshold).mean()),
            median=float(np.median(scores)),
        )
    return resolved, counts
