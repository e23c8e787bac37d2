"""`recipe check` with a classifier: each profile's selection against the scores of a seeded sample of the
documents it would judge (`sampling.profile_sample`: spread over each source's files, of the subsets the
recipe reads, that the profile's rule sets keep). A `min_score` is checked to keep some of it; a
`top_fraction` is resolved on it, as the build resolves it (on a larger sample, `quality.fraction_sample`).
Each stage's `top_by_score` is shown against a sample of its source the same way (`check_stage_draws`): the
score its fraction starts at there (the build draws by the whole source's clean documents instead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gristmill.errors import ConfigError
from gristmill.pipelines.quality.model import QualityModel
from gristmill.pipelines.quality.sampling import RuleJudge, SampleCounts, profile_sample, sample_source
from gristmill.pipelines.quality.selection import top_fraction_threshold
from gristmill.pipelines.quality.training import check_training_subsets
from gristmill.pipelines.recipe import Recipe

TRAINED_IN_BUILD = (
    "the classifier is trained in the build (quality.train): its selections and stage draws can be checked "
    "against scores only once it exists (the build's quality_model step resolves each top_fraction, the plan "
    "each top_by_score; the manifest and report show the thresholds)"
)


@dataclass(frozen=True)
class SelectionCheck:
    """A profile's selection against its sample: documents scored, their median, the threshold (`min_score`,
    or what `top_fraction` resolves to on the sample) and the share of the sample it keeps."""

    profile: str
    min_score: float
    top_fraction: float | None
    documents: int
    median: float
    kept: float  # share of the sample scoring ≥ min_score

    def describe(self) -> str:
        """Return the line `recipe check` prints for it."""
        if not self.documents:
            return f"quality.select.{self.profile}: no document of the profile in the sample"
        if self.top_fraction is not None:
            return (
                f"quality.select.{self.profile}: top_fraction {self.top_fraction:g} resolves to min_score "
                f"{self.min_score:.4f} on {self.documents} sampled documents (keeps {self.kept:.1%}; median "
                f"score {self.median:.3f})"
            )
        return (
            f"quality.select.{self.profile}: min_score {self.min_score:g} keeps {self.kept:.1%} of "
            f"{self.documents} sampled documents (median score {self.median:.3f})"
        )


def check_selection(recipe: Recipe, per_source: int = 200) -> list[SelectionCheck]:
    """Score a seeded sample of each selecting profile's documents (up to `per_source` from each source) with
    the recipe's classifier and return what each selection keeps of it. Returns no check when the recipe
    selects nothing or trains its classifier in the build (nothing to score with yet: `TRAINED_IN_BUILD`).
    Raises ConfigError naming the field when a `min_score` keeps none of a sample it has documents in, or a
    `quality.train` entry names subsets its corpus does not have (InputError when the model or an input
    cannot be read)."""
    config = recipe.quality
    check_training_subsets(recipe)
    if not config.select or config.model is None:
        return []
    model = QualityModel.load(str(config.model), config.sha256)
    texts = profile_sample(
        recipe, sorted(config.select), per_source, config.sample_seed, config.sample_per_file, SampleCounts()
    )
    checks = []
    for profile, selection in config.select.items():
        sample = texts.get(profile, [])
        scores = model.score(sample) if sample else np.zeros(0, np.float32)
        if not len(scores):
            threshold = selection.min_score if selection.min_score is not None else 0.0
            checks.append(SelectionCheck(profile, threshold, selection.top_fraction, 0, 0.0, 0.0))
            continue
        if selection.top_fraction is not None:
            threshold = top_fraction_threshold(scores, selection.top_fraction)
        else:
            threshold = float(selection.min_score)
        kept = float((scores >= threshold).mean())
        median = float(np.median(scores))
        if kept == 0.0:
            raise ConfigError(
                f"min_score {threshold} keeps none of {len(scores)} sampled {profile} documents "
                f"(their scores: median {median:.3f}, highest {float(scores.max()):.3f})",
                where=f"quality.select.{profile}.min_score",
                hint="lower it, or check the classifier against your data: gristmill classifier eval",
            )
        checks.append(SelectionCheck(profile, threshold, selection.top_fraction, len(scores), median, kept))
    return checks


@dataclass(frozen=True)
class DrawCheck:
    """A stage's top fraction of a source by score against a sample of the source: documents scored, the
    score the fraction starts at on them, and their median."""

    stage: int  # its index in the recipe's stages
    source: str
    top_fraction: float
    documents: int
    min_score: float
    median: float

    def describe(self) -> str:
        """Return the line `recipe check` prints for it."""
        where = f"stages.{self.stage}.top_by_score.{self.source}"
        if not self.documents:
            return f"{where}: no document of the source in the sample"
        return (
            f"{where}: the top {self.top_fraction:.3g} of {self.documents} sampled documents score ≥ "
            f"{self.min_score:.4f} (median {self.median:.3f})"
        )


def check_stage_draws(recipe: Recipe, per_source: int = 200) -> list[DrawCheck]:
    """Score a seeded sample of each source a stage draws by score (up to `per_source` documents of the
    subsets the recipe reads, that their profiles' rule sets keep) with the recipe's classifier, and return
    the score each stage's fraction starts at on it. Returns no check without a given model
    (`quality.model`)."""
    config = recipe.quality
    draws = [
        (i, name, f) for i, stage in enumerate(recipe.stages) for name, f in stage.top_fractions().items()
    ]
    if not draws or config.model is None:
        return []
    model = QualityModel.load(str(config.model), config.sha256)
    judge = RuleJudge(recipe)
    scores: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(name for _, name, _ in draws):
        taken = sample_source(
            recipe.source(name),
            lambda subset, name=name: "kept" if judge.profile(name, subset) is not None else None,
            {"kept": per_source},
            judge,
            config.sample_seed,
            config.sample_per_file,
            SampleCounts(),
        )["kept"]
        scores[name] = model.score(taken) if taken else np.zeros(0, np.float32)
    return [
        DrawCheck(
            i,
            name,
            fraction,
            len(scores[name]),
            top_fraction_threshold(scores[name], fraction) if len(scores[name]) else 0.0,
            float(np.median(scores[name])) if len(scores[name]) else 0.0,
        )
        for i, name, fraction in draws
    ]
