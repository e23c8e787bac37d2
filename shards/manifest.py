"""manifest.json: what a build holds: recipe, tokenizer, per-source accounting, stages and their shards.

The manifest is the index the trainer's loader reads; it is written last and atomically, so a build
directory with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from gristmill.errors import BuildError, InputError
from gristmill.models import StrictModel
from gristmill.shards.paths import check_relative
from gristmill.storage import read_json, write_json

if TYPE_CHECKING:
    from gristmill.tokenizer.interface import Tokenizer

MANIFEST_VERSION = 7  # 2: the tokenizer entry records the document framing; 3: the manifest carries its
# content hash and the recipe in it has no `output`; 4: stages carry their `number` and `tokens_per_step`
# (was `tokens_per_batch`), the recipe in it leaves each source's `profiles` as written, each stage its rows
# and tokens stored and trained, each shard its source blocks (epochs by reference); shards name their
# provenance sidecar and stages their document index, accounting counts `removed` and takedowns are listed;
# 5: `decontamination`; 6: `quality`; 7: stages' `scores` (drawn by score, and their documents' scores)
MANIFEST_NAME = "manifest.json"
HASH_FIELD = "content_hash"


class Counts(StrictModel):
    """Where the records of one (source, subset) went: in = kept + filtered + duplicate + quarantined +
    removed (documents a takedown took out of the finished build; `gristmill shards takedown`)."""

    records_in: int = Field(0, alias="in")
    kept: int = 0
    quarantined: int = 0
    filtered: dict[str, int] = Field(default_factory=dict, description="reason → documents dropped")
    duplicate: dict[str, int] = Field(default_factory=dict, description="exact / near → documents removed")
    profile: str | None = Field(
        None,
        description="the filter profile the subset went through (none "
        "when every record was excluded or unreadable)",
    )
    removed: int = Field(0, description="documents taken out of the finished build by a takedown")
    keep_rate: float | None = Field(None, description="kept / in (None when nothing came in)")
    empty_files: int = Field(
        0, description="data files holding no record (under the pseudo-subset `(empty files)`)"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def add(self, other: Counts) -> None:
        """Add `other`'s counts into these."""
        self.records_in += other.records_in
        self.kept += other.kept
        self.quarantined += other.quarantined
        self.removed += other.removed
        self.empty_files += other.empty_files
        if other.profile is not None and self.profile != other.profile:
            self.profile = other.profile if self.profile is None else "mixed"
        self.keep_rate = self.kept / self.records_in if self.records_in else None
        for mine, theirs in ((self.filtered, other.filtered), (self.duplicate, other.duplicate)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    @property
    def out(self) -> int:
        """Return the records accounted for: kept + filtered + duplicate + quarantined + removed."""
        dropped = sum(self.filtered.values()) + sum(self.duplicate.values())
        return self.kept + self.quarantined + dropped + self.removed

    def balanced(self) -> bool:
        """Return True when every record in is accounted for exactly once."""
        return self.out == self.records_in


class SourceEntry(StrictModel):
    """A source as the shards know it: its position in this list is its uint8 code in the `source` column."""

    name: str
    format: str
    kind: str
    priority: int


class TokenizerEntry(StrictModel):
    """The tokenizer the shards were made with (its files are in BUILD/tokenizer/), and how the shards frame
    a document with it: "bos+eos" (bos first) or "eos" (tokenizer/framing.py)."""

    path: str
    hash: str
    vocab_size: int
    bos_id: int | None
    eos_id: int
    pad_id: int
    framing: Literal["bos+eos", "eos"]

    @classmethod
    def of(cls, tokenizer: Tokenizer, path: str = "tokenizer/") -> TokenizerEntry:
        """Return the entry describing `tokenizer`, whose files are at `path` inside the build."""
        return cls(
            path=path,
            hash=tokenizer.content_hash,
            vocab_size=tokenizer.vocab_size,
            bos_id=tokenizer.bos_id,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
            framing=tokenizer.framing.name,
        )

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative(v)


class SourceRows(StrictModel):
    """One source's block of rows in a shard, and how often the stage's walk visits them: every row
    `passes` times, the block's first `extra_rows` rows once more (the partial pass)."""

    source: str
    rows: int = Field(ge=0)
    passes: int = Field(ge=0)
    extra_rows: int = Field(0, ge=0)
    trained_tokens: int = Field(ge=0, description="tokens the visits train on (padding excluded)")

    @model_validator(mode="after")
    def _extra_within(self) -> SourceRows:
        if self.extra_rows > self.rows:
            raise ValueError(f"extra_rows {self.extra_rows} exceeds the block's {self.rows} rows")
        return self

    @property
    def visits(self) -> int:
        """Return the row visits the stage's walk makes of the block."""
        return self.passes * self.rows + self.extra_rows


class FileEntry(StrictModel):
    """A file of the build beside the shards (a provenance sidecar, a stage's document index): its path
    (relative to the build), bytes and xxh3-64."""

    path: str
    bytes: int = Field(ge=0)
    xxh3: str = Field(pattern=r"^[0-9a-f]{1,16}$", description="xxh3-64 of the whole file, lowercase hex")

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative(v)


class ShardEntry(StrictModel):
    """One shard file: relative path, size in rows and tokens, tokens per source, its source blocks, and its
    xxh3-64 checksum; and its provenance sidecar (the documents of every row: shards/provenance.py).

    `tokens` counts the tokens stored in rows, padding excluded; `padding_tokens` = rows × (L + 1) − tokens.
    `source_rows` lists the shard's blocks in the order they are stored (the manifest's source order): its
    rows are the blocks' rows one after another.
    """

    path: str
    rows: int
    tokens: int
    source_tokens: dict[str, int]
    source_rows: list[SourceRows]
    xxh3: str = Field(pattern=r"^[0-9a-f]{1,16}$", description="xxh3-64 of the whole file, lowercase hex")
    bytes: int
    padding_tokens: int = 0
    split_documents: int = Field(0, description="documents split across rows whose first piece is here")
    provenance: FileEntry | None = Field(
        None, description="the sidecar naming every segment's document (None: built without provenance)"
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative(v)

    @model_validator(mode="after")
    def _blocks_fill_the_shard(self) -> ShardEntry:
        blocks = sum(b.rows for b in self.source_rows)
        if blocks != self.rows:
            raise ValueError(f"source_rows hold {blocks} rows, the shard {self.rows}")
        names = [b.source for b in self.source_rows]
        if len(set(names)) != len(names):
            raise ValueError(f"source_rows names a source twice: {names}")
        return self

    def block(self, source: str) -> tuple[int, SourceRows | None]:
        """Return (the shard row where `source`'s block starts, the block, or None when it has none)."""
        first = 0
        for block in self.source_rows:
            if block.source == source:
                return first, block
            first += block.rows
        return first, None

    @property
    def trained_tokens(self) -> int:
        """Return the tokens the stage's walk visits in this shard."""
        return sum(b.trained_tokens for b in self.source_rows)

    @property
    def visits(self) -> int:
        """Return the row visits the stage's walk makes of this shard."""
        return sum(b.visits for b in self.source_rows)


class ScoreDraw(StrictModel):
    """A stage's draw of one source by quality score: the top fraction asked for, and what it came to over
    the whole source (the documents at or above the lowest score drawn)."""

    top_fraction: float
    floor: int = Field(description="the lowest fine score bin drawn (pipelines/quality/percentile.py)")
    min_score: float = Field(description="the lowest score drawn (the lower edge of the floor's score bin)")
    documents: int = Field(description="the source's documents at or above `min_score`")
    tokens: int
    share: float = Field(description="documents / the source's scored documents (≥ top_fraction: ties)")


class StageScores(StrictModel):
    """The quality scores of the documents a stage stores, and the sources it draws by score."""

    bins: int = Field(description="equal bins of [0, 1]")
    histograms: dict[str, list[int]] = Field(description="source → the stored documents per score bin")
    draws: dict[str, ScoreDraw] = Field(default_factory=dict, description="source → its draw by score")


class StageEntry(StrictModel):
    """One curriculum stage as built: its name and number (from 1, its place in `Manifest.stages` and its
    directory `stage-<number>-<seq_len>/`), the tokens per optimizer step training takes, its rows (stored
    once) and what one walk of it visits: `trained_rows` row visits holding `trained_tokens` tokens."""

    name: str
    number: int = Field(ge=1)
    seq_len: int
    tokens_per_step: int = Field(description="tokens per optimizer step (all devices) on this stage")
    rows: int = Field(description="rows stored, each once")
    tokens: int = Field(description="tokens stored, padding excluded")
    trained_rows: int = Field(description="row visits of one walk of the stage (its epochs by reference)")
    trained_tokens: int = Field(description="tokens one walk of the stage trains on, padding excluded")
    padding_tokens: int
    split_documents: int
    source_tokens: dict[str, int] = Field(description="source → tokens stored")
    source_trained_tokens: dict[str, int] = Field(description="source → tokens one walk trains on")
    passes: dict[str, float] = Field(description="source → trained / stored tokens (how often it repeats)")
    sampling: dict[str, float] = Field(description="source → trained / available tokens (<1 down-sampled)")
    shards: list[ShardEntry]
    document_index: list[FileEntry] = Field(
        default_factory=list,
        description="the stage's document index (id → rows), one file per hash partition, in order",
    )
    scores: StageScores | None = Field(None, description="in a build that scores documents")

    @classmethod
    def of_shards(
        cls,
        name: str,
        number: int,
        seq_len: int,
        tokens_per_step: int,
        shards: list[ShardEntry],
        sampling: dict[str, float],
        document_index: list[FileEntry] | None = None,
        scores: StageScores | None = None,
    ) -> StageEntry:
        """Return the stage whose totals are the sums over its `shards` (what `shards verify` checks), its
        sources those of `sampling` (source → trained / available tokens), in that order."""
        stored = {s: sum(shard.source_tokens.get(s, 0) for shard in shards) for s in sampling}
        trained = {
            s: sum(b.trained_tokens for sh in shards for b in sh.source_rows if b.source == s)
            for s in sampling
        }
        return cls(
            name=name,
            number=number,
            seq_len=seq_len,
            tokens_per_step=tokens_per_step,
            rows=sum(s.rows for s in shards),
            tokens=sum(s.tokens for s in shards),
            trained_rows=sum(s.visits for s in shards),
            trained_tokens=sum(trained.values()),
            padding_tokens=sum(s.padding_tokens for s in shards),
            split_documents=sum(s.split_documents for s in shards),
            source_tokens=stored,
            source_trained_tokens=trained,
            passes={s: trained[s] / n if n else 0.0 for s, n in stored.items()},
            sampling=dict(sampling),
            shards=shards,
            document_index=list(document_index or []),
            scores=scores,
        )


class BenchmarkEntry(StrictModel):
    """An evaluation set in the build's decontamination index: what it is, and how much of it is indexed."""

    name: str
    version: str = Field(description="where its items came from (package version and files, or yours)")
    checksum: str = Field(description="sha256 of its items' text (ids and segments, in order)")
    items: int
    matchable_items: int = Field(description="items with at least one key in the index")
    keys: int = Field(description="(item, key) pairs in the index")
    common_keys: int = Field(description="(item, key) pairs left out: the key is shared by too many items")


class DecontamCounts(StrictModel):
    """What decontamination found and did in one source for one evaluation set."""

    items: int = Field(0, description="distinct items of the set found in the source's documents")
    documents_dropped: int = 0
    documents_cut: int = 0
    chars_removed: int = 0
    tokens_removed: int | None = Field(None, description="with the build's tokenizer (None without one)")


class DecontamEntry(StrictModel):
    """The build's benchmark decontamination: settings, the sets indexed, and what was found per set and
    source. Documents dropped are also in the accounting, as filter reasons "decontam:<set>"."""

    settings: dict[str, Any]
    index: str = Field(description="the index folder, relative to the build")
    index_bytes: int = Field(description="the index's arrays: what each ingest task maps")
    benchmarks: list[BenchmarkEntry]
    found: dict[str, dict[str, DecontamCounts]] = Field(description="set → source → counts")
    matches: str = Field(description="the folder of every match's record, relative to the build")

    @field_validator("index", "matches")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative(v)


class QualityScores(StrictModel):
    """The quality scores of one source × subset: every document the rule sets kept, scored, and what its
    profile's selection kept of them."""

    scored: list[int] = Field(description="documents per score bin (equal bins of [0, 1])")
    selected: list[int] = Field(description="of those, the documents the profile's selection kept, per bin")
    min_score: float | None = Field(None, description="the profile's selection threshold (None: keeps all)")
    top_fraction: float | None = Field(
        None, description="the profile's `top_fraction`, when min_score is the threshold it resolved to"
    )


class QualitySelection(StrictModel):
    """A profile's `top_fraction` and the threshold it resolved to on a sample of the profile's documents
    before ingest (the share it then kept of the build's documents is in `scores`)."""

    top_fraction: float
    min_score: float = Field(description="the score at or above which the sample's top fraction lies")
    documents: int = Field(description="documents of the profile sampled and scored")
    kept: float = Field(description="share of the sample scoring ≥ min_score (above top_fraction by ties)")
    median: float = Field(description="the sample's median score")


class QualityEntry(StrictModel):
    """The build's quality classifier and its scores. Documents below a profile's threshold are also in
    the accounting, as filter reason "quality:min_score" (or "quality:top_fraction"); every kept document's
    score is in the documents files' `quality` column."""

    model: str = Field(description="the classifier's copy in the build, relative to it")
    sha256: str = Field(description="sha256 of the model file")
    bytes: int
    settings: dict[str, Any] = Field(description="how the classifier was trained")
    trained_on: dict[str, int] = Field(description="training documents by label: real, junk")
    trained_in_build: bool = Field(False, description="trained by the build (`quality.train`), not given")
    heldout: dict[str, float] | None = Field(
        None, description="figures on held-out documents: precision, recall (at threshold), roc_auc, counts"
    )
    selection: dict[str, QualitySelection] = Field(
        default_factory=dict, description="profile → the threshold its top_fraction resolved to"
    )
    bins: int
    scores: dict[str, dict[str, QualityScores]] = Field(description="source → subset → scores")

    @field_validator("model")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative(v)


class Removal(StrictModel):
    """One takedown: how many documents it took out, and their ids as hashes only (never in the clear), so
    `shards verify` can check that none of them remains."""

    documents: int = Field(ge=0, description="documents taken out (one id may name several)")
    ids: int = Field(ge=0, description="ids asked for that the build held")
    ids_sha256: str = Field(description="sha256 of those ids, sorted and joined by newlines")
    id_sha256: list[str] = Field(description="sha256 of each of those ids, sorted")
    segments: int = Field(ge=0, description="row segments removed")
    tokens: int = Field(ge=0, description="tokens removed from rows")
    rows: int = Field(ge=0, description="rows rewritten")
    emptied_rows: int = Field(0, ge=0, description="rows left with no document (all padding)")
    shards: list[str] = Field(description="the shards rewritten (their new paths)")


class Manifest(StrictModel):
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
    decontamination: DecontamEntry | None = None
    quality: QualityEntry | None = None
    stages: list[StageEntry] = Field(default_factory=list)
    artifacts: dict[str, Any] = Field(default_factory=dict, description="where each build step left output")
    removals: list[Removal] = Field(default_factory=list, description="the takedowns, in the order they ran")
    content_hash: str | None = Field(
        None,
        description="sha256 of the manifest without this field; set by "
        "write_manifest, checked by read_manifest",
    )

    @model_validator(mode="after")
    def _numbered(self) -> Manifest:
        numbers = [s.number for s in self.stages]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"stages must be numbered 1, 2, … in order (got {numbers})")
        return self

    def source_totals(self) -> dict[str, Counts]:
        """Return the accounting summed over subsets, per source."""
        totals: dict[str, Counts] = {}
        for source, subsets in self.accounting.items():
            total = totals.setdefault(source, Counts())
            for counts in subsets.values():
                total.add(counts)
        return totals

    def computed_hash(self) -> str:
        """Return the sha256 of the manifest's content, all but `content_hash` (what a loader state pins).

        The manifest holds no absolute path, so the same build has the same hash wherever it lies.
        """
        return content_hash_of(self.model_dump(mode="json", by_alias=True))

    def walk_hash(self) -> str:
        """Return the sha256 of what a stage's walk depends on (what a loader state pins): the build's
        recipe hash, seed and tokenizer, the sources in order, and every stage's name, number, length and
        shards' rows and source blocks (rows, passes, extra rows). Checksums, paths and token counts are
        left out, so a takedown, which rewrites shards but keeps every row where it was, keeps it."""
        walk = {
            "build": [self.recipe_hash, self.seed, self.tokenizer.hash if self.tokenizer else None],
            "sources": [s.name for s in self.sources],
            "stages": [
                {
                    "name": stage.name,
                    "number": stage.number,
                    "seq_len": stage.seq_len,
                    "shards": [
                        [shard.rows, [[b.source, b.rows, b.passes, b.extra_rows] for b in shard.source_rows]]
                        for shard in stage.shards
                    ],
                }
                for stage in self.stages
            ],
        }
        blob = json.dumps(walk, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def content_hash_of(data: dict[str, Any]) -> str:
    """Return the sha256 (hex) of manifest JSON data, leaving out its own `content_hash` field."""
    body = {k: v for k, v in data.items() if k != HASH_FIELD}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def manifest_path(build: str) -> str:
    """Return the manifest's path inside a build directory or URL."""
    return build.rstrip("/") + "/" + MANIFEST_NAME


def write_manifest(build: str, manifest: Manifest) -> Manifest:
    """Write the manifest atomically with its content hash (the last step of a build); return it hashed."""
    manifest = manifest.model_copy(update={HASH_FIELD: manifest.computed_hash()})
    write_json(manifest_path(build), manifest.model_dump(mode="json", by_alias=True))
    return manifest


def read_manifest(build: str, *, check_hash: bool = True, **storage_options: Any) -> Manifest:
    """Read and validate a build's manifest; raise BuildError when it is missing, malformed, too new, names
    a path outside the build, or (with `check_hash`) its content no longer matches its content hash."""
    try:
        data = read_json(manifest_path(build), **storage_options)
    except InputError as e:
        if e.message == "file not found":
            raise BuildError(
                "no build here (manifest.json is missing)",
                path=build,
                hint="run `gristmill build RECIPE.yaml` first (or let it finish), or check the build path",
            ) from None
        raise BuildError(e.message, path=e.path, where=e.where, hint="is the build finished?") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != MANIFEST_VERSION:
        raise BuildError(
            f"manifest format version {version!r} is not the supported {MANIFEST_VERSION}",
            path=manifest_path(build),
            hint="rebuild with this version of gristmill",
        )
    try:
        manifest = Manifest.model_validate(data)
    except Exception as e:
        raise BuildError(f"malformed manifest: {e}", path=manifest_path(build)) from None
    if check_hash:
        problem = hash_problem(manifest)
        if problem is not None:
            raise BuildError(
                problem,
                path=manifest_path(build),
                where=HASH_FIELD,
                hint="the manifest was edited or damaged; rebuild, or restore it from the build",
            )
    return manifest


def hash_problem(manifest: Manifest) -> str | None:
    """Return what is wrong with the manifest's own content hash (None when it matches its content)."""
    if manifest.content_hash is None:
        return "the manifest carries no content hash"
    actual = manifest.computed_hash()
    if manifest.content_hash != actual:
        return f"the manifest's content hashes to {actual}, it says {manifest.content_hash}"
    return None
