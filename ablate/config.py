"""An ablation's configuration: the candidates, the proxy and its token budget, the seeds, the shared
evaluation set and the decision level, pydantic-validated. One YAML file, e.g.

    name: clean-vs-junk
    output: ablations/clean-vs-junk          # builds/, runs/, eval/, results.json, report.html
    candidates:
      - {name: clean, recipe: recipes/ablate-clean.yaml}
      - {name: junk, recipe: recipes/ablate-junk.yaml}
      - {name: last-year, build: build/last-year}   # a finished build
    proxy: cpu-tiny
    tokens_per_param: 20
    seeds: [0, 1]
    eval:
      text: {clean: [ablation-sample/eval/clean.jsonl]}
      tasks: [arc_easy:rc_0shot]
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from gristmill.models import FrozenModel, apply_overrides, read_yaml, validated

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class Candidate(FrozenModel):
    """One candidate: a recipe the ablation builds (with `set` overrides), or a finished build."""

    name: str = Field(description="short identifier: lowercase letters, digits, '-' or '_'")
    recipe: str | None = Field(None, description="recipe file; built into OUTPUT/builds/<name>")
    set: dict[str, Any] = Field(
        default_factory=dict, description="recipe fields overridden for this candidate (dotted paths)"
    )
    build: str | None = Field(None, description="instead of a recipe: a finished build directory or URL")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter")
        return v

    @field_validator("recipe", "build")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        return None if v is None else os.path.expandvars(v)

    @model_validator(mode="after")
    def _one_source(self) -> Candidate:
        if (self.recipe is None) == (self.build is None):
            raise ValueError("a candidate is exactly one of recipe (to build) and build (finished)")
        if self.set and self.recipe is None:
            raise ValueError("`set` overrides a recipe's fields; a finished build has none")
        return self


class AblationEval(FrozenModel):
    """The evaluation every candidate is measured on: text sets (kept out of every build: documents with a
    word n-gram in a candidate's training documents are dropped) and tasks; and how often to evaluate
    during training for the curves."""

    text: dict[str, list[str]] = Field(
        default_factory=dict, description="name → text files (.jsonl 'text' field, or one document a file)"
    )
    tasks: list[str] = Field(default_factory=list, description="benchmark tasks as task:variant")
    task_items: int = Field(200, ge=1, description="the first this many items of each task")
    every_steps: int | None = Field(
        None, ge=1, description="evaluate during training for the curves; None: about 10 times a run"
    )
    ngram: int = Field(13, ge=1, description="word n-gram that marks an evaluation document as seen")

    @field_validator("text")
    @classmethod
    def _expand(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"text set name {name!r}: lowercase letters, digits, '-' or '_'")
        return {name: [os.path.expandvars(p) for p in paths] for name, paths in v.items()}

    @model_validator(mode="after")
    def _something(self) -> AblationEval:
        if not self.text and not self.tasks:
            raise ValueError("the ablation needs an evaluation set: text, tasks or both")
        return self


class RayConfig(FrozenModel):
    """What each training job asks of a Ray cluster (with --address)."""

    gpus_per_run: float = Field(1, ge=0, description="GPUs per training job (0: CPU training)")
    cpus_per_run: float = Field(4, gt=0, description="CPUs per training job")


class AblationConfig(FrozenModel):
    """One ablation: candidates trained alike, seeds, the shared evaluation, where everything goes."""

    name: str
    output: str = Field(description="directory of the ablation: builds/, runs/, eval/, results, report")
    candidates: list[Candidate] = Field(min_length=2)
    proxy: str = Field("cpu-tiny", description="proxy preset (ablate/proxy.py): cpu-tiny … 150m")
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the proxy model's fields")
    tokens_per_param: float = Field(20.0, gt=0, description="training tokens per proxy parameter")
    seeds: list[int] = Field(
        default=[0, 1], min_length=2, description="training seeds, the same per candidate"
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of every run's training config (optimizer, schedule, micro_batch_tokens, …)",
    )
    tokens_per_step: int | None = Field(None, ge=1, description="None: the proxy's")
    eval: AblationEval
    alpha: float = Field(0.05, gt=0, lt=1, description="level of the Welch test that decides a pair")
    ray: RayConfig = Field(default_factory=RayConfig, description="resources of a training job on a cluster")

    @field_validator("output")
    @classmethod
    def _expand(cls, v: str) -> str:
        return os.path.expandvars(v)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("proxy")
    @classmethod
    def _known_proxy(cls, v: str) -> str:
        from gristmill.ablate.proxy import PROXIES

        if v not in PROXIES:
            raise ValueError(f"unknown proxy {v!r}; proxies are {', '.join(PROXIES)}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> AblationConfig:
        names = [c.name for c in self.candidates]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"candidate names must be unique (repeated: {', '.join(repeated)})")
        return self


def load_ablation(path: str, overrides: dict[str, Any] | None = None) -> AblationConfig:
    """Read and validate an ablation file (`overrides`: dotted field path → value); raise ConfigError naming
    the file and every bad field."""
    return validated(
        AblationConfig, apply_overrides(read_yaml(path, "ablation"), overrides), path, "ablation"
    )
