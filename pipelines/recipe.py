"""The recipe: a YAML file, validated by pydantic, that says everything a build does.

The top of the config layer (`gristmill.pipelines.config`): it imports no step, rule set or reader. What
depends on the readers — each subset's resolved filter profile (`filters.profiles.resolved_profiles`),
warnings about subsets a corpus does not have (`readers.excluded_subset_warnings`) — is resolved by functions
outside it, never inside a validator.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gristmill.models import Name, StrictModel, apply_overrides, read_yaml, validated
from gristmill.pipelines.config.decontam import DecontamConfig
from gristmill.pipelines.config.dedupe import DedupeConfig
from gristmill.pipelines.config.filters import RULE_SETS, FiltersConfig
from gristmill.pipelines.config.quality import QualityConfig
from gristmill.streams import MAX_RECORD_BYTES
from gristmill.tokenizer.config import TokenizerConfig

SourceFormat = Literal["slimpajama", "starcoder", "dolma", "pile", "jsonl", "parquet"]
MAX_DOCUMENT_BYTES = MAX_RECORD_BYTES


class FieldMapping(StrictModel):
    """Where a generic jsonl/parquet source keeps each field (dotted paths into nested objects)."""

    text: str = "text"
    id: str | None = None
    subset: str | None = None


class SourceConfig(StrictModel):
    """One input corpus: its native layout, where its files are, which subsets to take."""

    name: Name = Field(description="short identifier used in weights, manifests and shards")
    format: SourceFormat
    paths: list[str] = Field(min_length=1, description="files, folders or globs; local or fsspec URLs")
    kind: Literal["text", "code"] | None = Field(
        None,
        description="what the source mostly is (default: code for starcoder, else text): subsets that "
        "neither `profiles` nor the reader's defaults name get the `web` (text) or `code` profile",
    )
    profiles: dict[str, str] = Field(
        default_factory=dict,
        description="subset name or glob → filter profile (a name in `filters.profiles`), first match wins; "
        "the reader's defaults follow, then `*` for the rest by `kind`",
    )
    include_subsets: list[str] | None = None
    exclude_subsets: list[str] = Field(default_factory=list)
    priority: int = Field(0, description="in a duplicate cluster the copy from the highest priority survives")
    fields: FieldMapping | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    max_document_bytes: int = Field(
        MAX_DOCUMENT_BYTES, ge=1, description="records larger than this are quarantined, never buffered whole"
    )

    @field_validator("paths")
    @classmethod
    def _expand_env(cls, v: list[str]) -> list[str]:
        return [os.path.expandvars(p) for p in v]

    @model_validator(mode="after")
    def _kind(self) -> SourceConfig:
        if self.kind is None:
            self.kind = "code" if self.format == "starcoder" else "text"
        if self.fields is not None and self.format not in ("jsonl", "parquet"):
            raise ValueError(f"`fields` applies to the generic formats jsonl/parquet, not {self.format!r}")
        return self

    def wants_subset(self, subset: str) -> bool:
        """Return True when documents of `subset` are to be read."""
        if subset in self.exclude_subsets:
            return False
        return self.include_subsets is None or subset in self.include_subsets


class StageRecipe(StrictModel):
    """One curriculum stage: rows of `seq_len` tokens, a token budget, and the mixture of sources."""

    name: str
    seq_len: int = Field(ge=16, le=1 << 20)
    tokens: int = Field(gt=0, description="token budget of the stage")
    tokens_per_step: int = Field(
        gt=0, description="tokens per optimizer step (all devices) while training on this stage"
    )
    weights: dict[str, float] = Field(min_length=1, description="source name → share of the stage's tokens")
    top_by_score: float | dict[str, float] | None = Field(
        None,
        description="draw each source (a number), or the sources named (source → fraction), from its "
        "top-scored fraction of documents by the quality classifier (docs/quality.md); the rest draw from "
        "every document",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tokens_per_batch" in data:
            raise ValueError("`tokens_per_batch` is now called `tokens_per_step` (tokens per optimizer step)")
        return data

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in v.items() if not w > 0]
        if bad:
            raise ValueError(f"weights must be > 0 (got {', '.join(f'{k}={v[k]}' for k in bad)})")
        return v

    @field_validator("top_by_score")
    @classmethod
    def _fractions(cls, v: float | dict[str, float] | None) -> float | dict[str, float] | None:
        values = v.values() if isinstance(v, dict) else [] if v is None else [v]
        bad = [f for f in values if not 0 < f <= 1]
        if bad:
            raise ValueError(f"a top fraction is in (0, 1] (got {', '.join(map(str, bad))})")
        return v

    @model_validator(mode="after")
    def _step(self) -> StageRecipe:
        if self.tokens_per_step % self.seq_len:
            raise ValueError(
                f"tokens_per_step ({self.tokens_per_step}) must be a multiple of seq_len ({self.seq_len})"
            )
        if isinstance(self.top_by_score, dict):
            unweighted = sorted(set(self.top_by_score) - set(self.weights))
            if unweighted:
                raise ValueError(f"top_by_score names sources the stage does not weight: {unweighted}")
        return self

    def shares(self) -> dict[str, float]:
        """Return the weights normalised to sum to 1."""
        total = sum(self.weights.values())
        return {k: w / total for k, w in self.weights.items()}

    def top_fractions(self) -> dict[str, float]:
        """Return source → the top fraction by score the stage draws it from (sources drawn from every
        document are absent)."""
        if self.top_by_score is None:
            return {}
        if isinstance(self.top_by_score, dict):
            return dict(self.top_by_score)
        return dict.fromkeys(self.weights, float(self.top_by_score))


class IngestStepConfig(StrictModel):
    """A datatrove PipelineStep put into the ingest chain: a language filter, a PII formatter, a regex filter.

    Its drops are counted in the manifest's accounting under `label` (its name, else its class name), like
    gristmill's own; it must only keep, change or drop documents.
    """

    step: str = Field(
        description="import path of a datatrove PipelineStep, e.g. datatrove.pipeline.filters.RegexFilter"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of its constructor")
    name: str | None = Field(None, description="the reason its drops are counted under; default: class name")
    after: str | None = Field(
        None,
        description=f"the rule set it runs after, one of {', '.join(RULE_SETS)}; "
        "default: after all of gristmill's filters",
    )

    @field_validator("after")
    @classmethod
    def _known_rule_set(cls, v: str | None) -> str | None:
        if v is not None and v not in RULE_SETS:
            raise ValueError(f"unknown rule set {v!r}; expected one of {', '.join(RULE_SETS)}")
        return v

    @model_validator(mode="after")
    def _constructs(self) -> IngestStepConfig:
        self.build()  # a bad path or argument fails at recipe check, not in a task
        return self

    @property
    def label(self) -> str:
        """The name its drops are counted under."""
        return self.name or self.step.rpartition(".")[2]

    def step_class(self) -> type:
        """Import and return the step's class; raise ValueError when it is not a datatrove PipelineStep."""
        from datatrove.pipeline.base import PipelineStep

        module, _, attr = self.step.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr) if module else None
        except ImportError as e:
            raise ValueError(f"cannot import {self.step!r}: {e}") from None
        except AttributeError:
            cls = None
        if cls is None:
            raise ValueError(f"{self.step!r} names nothing importable (expected package.module.Class)")
        if not (inspect.isclass(cls) and issubclass(cls, PipelineStep)):
            raise ValueError(f"{self.step!r} is not a datatrove PipelineStep class")
        return cls

    def build(self) -> Any:
        """Return a new instance of the step; raise ValueError naming what is wrong with its arguments."""
        cls = self.step_class()
        try:
            inspect.signature(cls).bind(**self.kwargs)
        except TypeError as e:
            raise ValueError(f"{self.step}: {e}") from None
        try:
            return cls(**self.kwargs)
        except Exception as e:  # the step's own validation of its arguments
            arguments = ", ".join(self.kwargs)
            raise ValueError(f"{self.step}({arguments}) failed: {type(e).__name__}: {e}") from None


class Recipe(StrictModel):
    """A whole build: sources, cleaning, tokenizer, curriculum, seed and output directory."""

    name: str
    seed: int = 0
    output: str = Field(description="build directory, local or fsspec URL")
    output_storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options of the output (endpoint, credentials); not recorded, like `output`",
    )
    sources: list[SourceConfig] = Field(min_length=1)
    filters: FiltersConfig = FiltersConfig()
    ingest_steps: list[IngestStepConfig] = Field(
        default_factory=list, description="datatrove steps added to the ingest chain, at their `after` places"
    )
    quality: QualityConfig = QualityConfig()
    decontam: DecontamConfig = DecontamConfig()
    dedupe: DedupeConfig = DedupeConfig()
    tokenizer: TokenizerConfig | None = None
    stages: list[StageRecipe] = Field(default_factory=list)
    files_per_task: int = Field(1, ge=1, description="input files per Ray task (the unit of resume)")
    plan_docs_per_task: int = Field(
        2_000_000,
        ge=1,
        description="documents per plan task: sets the plan's task count and memory (≈ 100 B per document)",
    )

    def content(self) -> dict[str, Any]:
        """Return the recipe as the build records and hashes it: what decides the content, not where data
        lives or the credentials to reach it (`output`, and every storage option)."""
        return self.model_dump(
            mode="json",
            exclude={
                "output": True,
                "output_storage_options": True,
                "sources": {"__all__": {"storage_options"}},
            },
        )

    @field_validator("output")
    @classmethod
    def _expand_output(cls, v: str) -> str:
        return os.path.expandvars(v)

    @model_validator(mode="after")
    def _cross_check(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique (repeated: {', '.join(dupes)})")
        if len(names) > 255:
            raise ValueError("at most 255 sources (shards store the source as uint8)")
        stage_names = [s.name for s in self.stages]
        if len(set(stage_names)) != len(stage_names):
            raise ValueError("stage names must be unique")
        for i, stage in enumerate(self.stages):
            unknown = sorted(set(stage.weights) - set(names))
            if unknown:
                raise ValueError(f"stages.{i}.weights names unknown sources {unknown}; known: {names}")
        for i, source in enumerate(self.sources):
            for pattern, profile in source.profiles.items():
                if profile not in self.filters.profiles:
                    raise ValueError(
                        f"sources.{i}.profiles.{pattern}: unknown profile {profile!r}; "
                        f"expected one of {', '.join(self.filters.profiles)} "
                        "(or define it under filters.profiles)"
                    )
        unknown = sorted(set(self.quality.select) - set(self.filters.profiles))
        if unknown:
            raise ValueError(
                f"quality.select names unknown profiles {unknown}; "
                f"expected any of {', '.join(self.filters.profiles)}"
            )
        problem = self.quality.check_sources(self.sources)
        if problem is not None:
            raise ValueError(problem)
        drawing = [s.name for s in self.stages if s.top_fractions()]
        if drawing and not self.quality.enabled:
            raise ValueError(
                f"stages {drawing} draw by `top_by_score`, which needs a quality classifier "
                "(`quality.model` or `quality.train`; docs/quality.md)"
            )
        if self.stages and self.tokenizer is None:
            raise ValueError("stages need a `tokenizer` (a path to one, or `train` settings)")
        return self

    def source(self, name: str) -> SourceConfig:
        """Return the source called `name`."""
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


def parse_recipe(data: Any, path: str = "<recipe>", overrides: dict[str, Any] | None = None) -> Recipe:
    """Validate a parsed recipe mapping; raise ConfigError naming each bad field and what was expected."""
    return validated(Recipe, apply_overrides(data, overrides), path, "recipe")


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file; `overrides` maps dotted field paths (e.g. `output`) to values."""
    return parse_recipe(read_yaml(str(path), "recipe"), str(path), overrides)
