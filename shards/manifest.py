"""manifest.json: what a build holds: recipe, tokenizer, per-source accounting, stages and their shards.

The manifest is the index the trainer's loader reads; it is written last and atomically, so a build
directory with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gristmill.errors import BuildError, InputError
from gristmill.storage import read_json, write_json

MANIFEST_VERSION = 2  # 2: the tokenizer entry records the document framing
MANIFEST_NAME = "manifest.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Counts(_Model):
    """Where the records of one (source, subset) went: in = kept + filtered + duplicate + quarantined."""

    records_in: int = Field(0, alias="in")
    kept: int = 0
    quarantined: int = 0
    filtered: dict[str, int] = Field(default_factory=dict, description="reason → documents dropped")
    duplicate: dict[str, int] = Field(default_factory=dict, description="exact / near → documents removed")
    profile: str | None = Field(None, description="the filter profile the subset went through (none "
                                                  "when every record was excluded or unreadable)")
    keep_rate: float | None = Field(None, description="kept / in (None when nothing came in)")
    empty_files: int = Field(0, description="data files holding no record (under the pseudo-subset "
                                            "`(empty files)`)")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def add(self, other: Counts) -> None:
        """Add `other`'s counts into these."""
        self.records_in += other.records_in
        self.kept += other.kept
        self.quarantined += other.quarantined
        self.empty_files += other.empty_files
        if other.profile is not None and self.profile != other.profile:
            self.profile = other.profile if self.profile is None else "mixed"
        self.keep_rate = self.kept / self.records_in if self.records_in else None
        for mine, theirs in ((self.filtered, other.filtered), (self.duplicate, other.duplicate)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def balanced(self) -> bool:
        """Return True when every record in is accounted for exactly once."""
        out = self.kept + self.quarantined + sum(self.filtered.values()) + sum(self.duplicate.values())
        return out == self.records_in


class SourceEntry(_Model):
    """A source as the shards know it: its position in this list is its uint8 code in the `source` column."""

    name: str
    format: str
    kind: str
    priority: int


class TokenizerEntry(_Model):
    """The tokenizer the shards were made with (its files are in BUILD/tokenizer/), and how the shards frame
    a document with it: "bos+eos" (bos first) or "eos" (tokenizer/framing.py)."""

    path: str
    hash: str
    vocab_size: int
    bos_id: int | None
    eos_id: int
    pad_id: int
    framing: Literal["bos+eos", "eos"]


class ShardEntry(_Model):
    """One shard file: relative path, size in rows and tokens, tokens per source, and its xxh3-64 checksum.

    `tokens` counts the tokens stored in rows, padding excluded; `padding_tokens` = rows × (L + 1) − tokens.
    """

    path: str
    rows: int
    tokens: int
    source_tokens: dict[str, int]
    xxh3: str
    bytes: int
    padding_tokens: int = 0
    split_documents: int = Field(0, description="documents split across rows whose first piece is here")


class StageEntry(_Model):
    """One curriculum stage as built."""

    name: str
    seq_len: int
    tokens_per_batch: int
    rows: int
    tokens: int
    padding_tokens: int
    split_documents: int
    source_tokens: dict[str, int]
    sampling: dict[str, float] = Field(description="source → sampling factor (<1 down-sampled, >1 epochs)")
    shards: list[ShardEntry]


class Manifest(_Model):
    """The whole build index."""

    format_version: int = MANIFEST_VERSION
    name: str
    recipe: dict[str, Any]
    recipe_hash: str
    seed: int
    sources: list[SourceEntry]
    accounting: dict[str, dict[str, Counts]] = Field(description="source → subset → counts")
    overlap: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="removed source → kept source → duplicates"
    )
    tokenizer: TokenizerEntry | None = None
    stages: list[StageEntry] = Field(default_factory=list)
    artifacts: dict[str, Any] = Field(default_factory=dict, description="where each build step left output")

    def source_totals(self) -> dict[str, Counts]:
        """Return the accounting summed over subsets, per source."""
        totals: dict[str, Counts] = {}
        for source, subsets in self.accounting.items():
            total = totals.setdefault(source, Counts())
            for counts in subsets.values():
                total.add(counts)
        return totals

    def content_hash(self) -> str:
        """Return a hash of the manifest's content (what a loader's resume state pins)."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def manifest_path(build: str) -> str:
    """Return the manifest's path inside a build directory or URL."""
    return build.rstrip("/") + "/" + MANIFEST_NAME


def write_manifest(build: str, manifest: Manifest) -> None:
    """Write the manifest atomically (the last step of a build)."""
    write_json(manifest_path(build), manifest.model_dump(mode="json", by_alias=True))


def read_manifest(build: str, **storage_options: Any) -> Manifest:
    """Read and validate a build's manifest; raise BuildError when it is missing, malformed or too new."""
    try:
        data = read_json(manifest_path(build), **storage_options)
    except InputError as e:
        if e.message == "file not found":
            raise BuildError("no build here (manifest.json is missing)", path=build,
                             hint="run `gristmill build RECIPE.yaml` first (or let it finish), or check the "
                             "build path") from None
        raise BuildError(e.message, path=e.path, where=e.where, hint="is the build finished?") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != MANIFEST_VERSION:
        raise BuildError(
            f"manifest format version {version!r} is not the supported {MANIFEST_VERSION}",
            path=manifest_path(build),
            hint="rebuild with this version of gristmill",
        )
    try:
        return Manifest.model_validate(data)
    except Exception as e:
        raise BuildError(f"malformed manifest: {e}", path=manifest_path(build)) from None
