"""Model-based quality settings: how a classifier is trained (`ClassifierSettings`), what a build trains
it from (`TrainingConfig`), and what a recipe's `quality:` does with one (`QualityConfig`: the model to score
every document with, and each profile's selection by score)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from gristmill.models import StrictModel

REASON = "quality:min_score"  # the filter reason of a document below its profile's `min_score`
TOP_FRACTION_REASON = "quality:top_fraction"  # … below the threshold its profile's `top_fraction` resolved to


class ClassifierSettings(StrictModel):
    """A supervised fastText classifier's training settings, DCLM-like (word bigrams, a few epochs, a small
    learning rate), with the hash buckets and dimension sized so the model is tens of MB, not gigabytes.
    One training thread and a fixed seed make training deterministic (the same model bytes)."""

    dim: int = Field(32, ge=2, le=512, description="embedding dimension")
    epoch: int = Field(5, ge=1, le=100)
    lr: float = Field(0.1, gt=0, le=2)
    word_ngrams: int = Field(2, ge=1, le=5, description="word n-grams hashed into features (2: bigrams)")
    min_count: int = Field(2, ge=1, description="words seen fewer times are left out of the vocabulary")
    bucket: int = Field(2**18, ge=4096, description="hash buckets of the n-gram features")
    max_words: int = Field(3000, ge=16, description="words of a document's start that it is judged by")
    seed: int = 0
    heldout_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of the labelled documents held out (by a hash of the text)"
    )


class TrainingSet(StrictModel):
    """Documents of one side of the training: a source's subsets (read by its reader, judged by their
    profiles' rule sets) or files (read as `gristmill classifier train` reads them, taken as they are)."""

    source: str | None = Field(None, description="a source of the recipe")
    subsets: list[str] | None = Field(
        None, min_length=1, description="its subsets to take (default: every subset the source reads)"
    )
    files: list[str] | None = Field(
        None,
        min_length=1,
        description="files or globs: parquet or jsonl (a `text` field), or any other file as one document",
    )

    @field_validator("files")
    @classmethod
    def _expand_env(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [os.path.expandvars(p) for p in v]

    @model_validator(mode="after")
    def _one_kind(self) -> TrainingSet:
        if (self.source is None) == (self.files is None):
            raise ValueError("give exactly one of `source` (with optional `subsets`) or `files`")
        if self.subsets is not None and self.source is None:
            raise ValueError("`subsets` go with a `source`")
        return self


class TrainingConfig(StrictModel):
    """A classifier trained by the build (the `quality_model` step) from a seeded sample of the documents
    each side names: `real` (positives) against `junk` (negatives)."""

    real: list[TrainingSet] = Field(min_length=1, description="the positives: sources' subsets or files")
    junk: list[TrainingSet] = Field(min_length=1, description="the negatives, e.g. the web subsets")
    documents: int = Field(
        20_000, ge=2, description="documents sampled per label at most, shared evenly by the side's entries"
    )
    settings: ClassifierSettings = Field(
        default_factory=ClassifierSettings,
        description="how the classifier is trained; its seed also seeds the build's samples",
    )


class SelectionConfig(StrictModel):
    """What a profile keeps by score: the documents scoring at least `min_score`, or its `top_fraction` (the
    threshold that keeps that share of a seeded sample of the profile's documents, resolved before ingest)."""

    min_score: float | None = Field(
        None, ge=0, le=1, description="the classifier's probability of `real`, 0 to 1"
    )
    top_fraction: float | None = Field(
        None, gt=0, le=1, description="the share of the profile's documents to keep, the best scored"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SelectionConfig:
        if (self.min_score is None) == (self.top_fraction is None):
            raise ValueError("give exactly one of `min_score` or `top_fraction`")
        return self

    @property
    def reason(self) -> str:
        """The filter reason of the documents this selection drops."""
        return REASON if self.min_score is not None else TOP_FRACTION_REASON


class QualityConfig(StrictModel):
    """A classifier, trained ahead of time (`gristmill classifier train`, given as `model`) or by the build
    (`train`), scores every document the rule sets keep; the score is kept with the document, and a profile's
    `select` may drop those below a threshold (counted as filtered, reason `quality:min_score` or
    `quality:top_fraction`)."""

    model: str | None = Field(None, description="the classifier's .bin file (its .json sidecar beside it)")
    sha256: str | None = Field(None, description="the model file's expected sha256 (checked before loading)")
    train: TrainingConfig | None = Field(None, description="train the classifier in the build instead")
    select: dict[str, SelectionConfig] = Field(
        default_factory=dict, description="profile → selection by score (profiles not named keep everything)"
    )
    histogram_bins: int = Field(20, ge=2, le=1000, description="bins of [0, 1] in the manifest's histograms")
    fraction_sample: int = Field(
        2000,
        ge=10,
        description="documents per source sampled of each profile with a `top_fraction`, to resolve it to a "
        "threshold",
    )
    sample_per_file: int = Field(
        64,
        ge=1,
        description="documents a file gives a sample at most, unless the sample's size needs more of each "
        "file: samples spread over the files, visited in an order drawn from `train.settings.seed` (or 0)",
    )

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("expected 64 lowercase hexadecimal digits")
        return v

    @field_validator("model")
    @classmethod
    def _expand_env(cls, v: str | None) -> str | None:
        return None if v is None else os.path.expandvars(v)

    @model_validator(mode="after")
    def _needs_model(self) -> QualityConfig:
        if self.model is not None and self.train is not None:
            raise ValueError("give `model` (a classifier trained ahead of time) or `train`, not both")
        if self.sha256 is not None and self.model is None:
            raise ValueError("`sha256` is the checksum of a `model` file; there is none")
        if self.select and not self.enabled:
            raise ValueError(
                "`select` needs a classifier: a `model` (train one with `gristmill classifier train`) "
                "or `train` settings"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether the build scores documents."""
        return self.model is not None or self.train is not None

    @property
    def sample_seed(self) -> int:
        """The seed of the build's samples: the training settings' seed (0 for a model given by path)."""
        return self.train.settings.seed if self.train is not None else 0

    def check_sources(self, sources: Sequence[Any]) -> str | None:
        """Return what is wrong with `train`'s source entries against the recipe's `sources` (SourceConfig
        objects), as "<field path>: <message>", or None: an unknown source, or subsets the source excludes."""
        if self.train is None:
            return None
        by_name = {s.name: s for s in sources}
        for side in ("real", "junk"):
            for i, entry in enumerate(getattr(self.train, side)):
                if entry.source is None:
                    continue
                where = f"quality.train.{side}.{i}"
                source = by_name.get(entry.source)
                if source is None:
                    known = ", ".join(sorted(by_name))
                    return f"{where}.source: unknown source {entry.source!r}; expected one of {known}"
                unwanted = [s for s in entry.subsets or [] if not source.wants_subset(s)]
                if unwanted:
                    return (
                        f"{where}.subsets: {unwanted} are not read from source {source.name!r} "
                        "(its include_subsets/exclude_subsets leave them out)"
                    )
        return None
