"""Model-based quality settings: how a classifier is trained (`ClassifierSettings`), and what a recipe's
`quality:` does with one (`QualityConfig`: the model to score every document with, and each profile's
selection by score)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from gristmill.models import StrictModel

REASON = "quality:min_score"  # the filter reason of a document its profile's selection drops


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


class SelectionConfig(StrictModel):
    """What a profile keeps by score: the documents scoring at least `min_score`."""

    min_score: float = Field(ge=0, le=1, description="the classifier's probability of `real`, 0 to 1")


class QualityConfig(StrictModel):
    """A classifier trained ahead of time (`gristmill classifier train`) scores every document the rule sets
    keep; the score is kept with the document, and a profile's `select` may drop those below a threshold
    (counted as filtered, reason `quality:min_score`)."""

    model: str | None = Field(None, description="the classifier's .bin file (its .json sidecar beside it)")
    sha256: str | None = Field(None, description="the model file's expected sha256 (checked before loading)")
    select: dict[str, SelectionConfig] = Field(
        default_factory=dict, description="profile → selection by score (profiles not named keep everything)"
    )
    histogram_bins: int = Field(20, ge=2, le=1000, description="bins of [0, 1] in the manifest's histograms")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("expected 64 lowercase hexadecimal digits")
        return v

    @model_validator(mode="after")
    def _needs_model(self) -> QualityConfig:
        if self.model is None and (self.select or self.sha256):
            raise ValueError(
                "`select` and `sha256` need a `model` (train one with `gristmill classifier train`)"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether the build scores documents."""
        return self.model is not None
