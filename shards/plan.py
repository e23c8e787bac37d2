"""The mixing and curriculum plan: which copies of which documents fill each stage's rows, and in which shard.

Pure functions over arrays of document lengths (tokens, framing included: bos if any, eos), one array per
source.

Each stage that uses a source asks for `stage tokens × share` of its tokens; their sum is the source's
demand D. With A tokens available, the source is sampled by D / A: every document goes in
`full_epochs = D // A` times, and a seeded random subset of documents once more (the partial epoch).

The copies are offered longest first to the source's stages, longest stage first, each packing best-fit
into about `target / (L + 1)` rows (`pack.RowPacker`; more only where padding leaves the budget over half a
row short): long documents train at long context and shorter ones fill the gaps. What a stage cannot
take flows on to the next. The last stage takes every full-epoch copy left (in extra rows if it must),
then partial-epoch copies where they fit; the others are dropped. The gaps still open are then filled
from documents not yet in the partial epoch. Last, each stage's copies are laid out again
(`pack.pack_documents`): documents that fit a row best-fit decreasing, then the longer ones, split anyway,
spread over the gaps the short ones left, so padding is left only where no document fits.

A stage's tokens are the tokens stored in its rows (up to L + 1 per row), padding excluded.

A large build is planned in slices, one task each (`plan_slices`): slice g of G takes the g-th G-th of every
source's documents, budgets scaled to its tokens of each source (`slice_specs`: the build's whole epochs
exactly, the partial epoch in proportion) and the g-th G-th of every stage's shards (`shard_range`), and is
planned as above on its own. Every shard still carries the mixture, and a task holds one slice's lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gristmill.shards.pack import Pieces, RowPacker, empty_pieces, longest_first, pack_documents

TOKEN_BYTES = 4  # int32 token ids
SHARD_BYTES = 128 << 20  # default target size of a shard file


@dataclass(frozen=True)
class StageSpec:
    """What the recipe asks of a stage: rows of `seq_len`, a budget of tokens, source name → share (sum 1)."""

    name: str
    seq_len: int
    tokens: int
    shares: dict[str, float]

    @property
    def capacity(self) -> int:
        """Return the tokens a row holds (L + 1: inputs and shifted targets)."""
        return self.seq_len + 1


@dataclass(frozen=True)
class SourcePacking:
    """One source's rows in one stage: where its document pieces lie (rows counted from 0)."""

    target_tokens: int
    rows: int
    capacity: int
    pieces: Pieces
    split_documents: int

    @property
    def tokens(self) -> int:
        """Return the tokens placed (padding excluded)."""
        return int(self.pieces.length.sum())

    @property
    def padding(self) -> int:
        """Return the padding tokens of these rows."""
        return self.rows * self.capacity - self.tokens


@dataclass(frozen=True)
class SourceSampling:
    """How one source was sampled over the whole build."""

    documents: int
    tokens: int  # available
    used_tokens: int  # placed in rows, all copies counted
    full_epochs: int  # every document appears this many times …
    extra_copies: int  # … and this many documents once more


@dataclass
class PackedStage:
    """One stage: its spec, number (from 1, its place in the recipe), shard count and every source's
    packing."""

    number: int
    spec: StageSpec
    shards: int
    packings: dict[str, SourcePacking] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Return the stage's rows over all sources."""
        return sum(p.rows for p in self.packings.values())


@dataclass
class Plan:
    """The whole build's plan: stages in recipe order and each source's sampling."""

    stages: list[PackedStage]
    sampling: dict[str, SourceSampling]


@dataclass(frozen=True)
class ShardLayout:
    """One shard's rows: pieces with `row` the position in the shard, and the source index of each piece."""

    rows: int
    pieces: Pieces
    source: np.ndarray  # uint8 per piece
    split_documents: int  # documents split in the stage whose first piece lies in this shard


def shard_count(spec: StageSpec, shard_bytes: int = SHARD_BYTES) -> int:
    """Return the number of shards of a stage, from its budget alone: about `shard_bytes`, ≥ 4 rows each."""
    by_size = -(-spec.tokens * TOKEN_BYTES // shard_bytes)
    by_rows = spec.tokens // (4 * spec.capacity)
    return max(1, min(by_size, by_rows))


def plan_slices(
    documents: dict[str, int], specs: list[StageSpec], docs_per_slice: int, shard_bytes: int
) -> int:
    """Return how many slices (plan tasks) plan the build: one per `docs_per_slice` documents, but no more
    than the fewest shards of a stage (each slice writes whole shards of every stage) or the fewest
    documents of a source a stage uses (each slice holds some of every such source)."""
    wanted = -(-sum(documents.values()) // docs_per_slice)
    used = {name for spec in specs for name in spec.shares}
    caps = [shard_count(spec, shard_bytes) for spec in specs] + [documents.get(name, 0) for name in used]
    return max(1, min([wanted, *caps]))


def document_range(documents: int, index: int, slices: int) -> tuple[int, int]:
    """Return the [start, end) of slice `index`'s documents of a source of `documents`."""
    return documents * index // slices, documents * (index + 1) // slices


def shard_range(shards: int, index: int, slices: int) -> range:
    """Return the shard numbers of a stage of `shards` that slice `index` lays out."""
    return range(shards * index // slices, shards * (index + 1) // slices)


def slice_specs(
    specs: list[StageSpec], slice_tokens: dict[str, int], source_tokens: dict[str, int]
) -> list[StageSpec]:
    """Return one slice's stage specs: each source's demand scaled from its `source_tokens` to the slice's
    `slice_tokens`, so that the slice repeats its documents for exactly the build's whole epochs and draws
    the partial epoch in proportion; the demand is apportioned over the stages as the recipe's targets are.
    With one slice (`slice_tokens == source_tokens`) the specs ask for exactly the recipe's targets."""
    targets = [stage_targets(spec) for spec in specs]
    per_stage: list[dict[str, int]] = [{} for _ in specs]
    named = {name: 0 for spec in specs for name in spec.shares} | source_tokens
    for name, available in named.items():
        wanting = [i for i, spec in enumerate(specs) if name in spec.shares]
        if not wanting:
            continue
        demand = sum(targets[i][name] for i in wanting)
        mine = slice_tokens.get(name, 0)
        if available and mine:
            full, rest = divmod(demand, available)
            slice_demand = full * mine + min(mine - 1, round(rest * mine / available))
        else:  # a source without tokens, or unknown: make_plan says so
            slice_demand = demand
        for i, n in zip(wanting, _apportion(slice_demand, [targets[i][name] for i in wanting])):
            per_stage[i][name] = n
    out = []
    for spec, wanted in zip(specs, per_stage):
        tokens = sum(wanted.values())
        shares = {name: n / tokens if tokens else 0.0 for name, n in wanted.items()}
        out.append(StageSpec(spec.name, spec.seq_len, tokens, shares))
    return out


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights` into integers summing to it (largest remainders first)."""
    if not sum(weights):
        return [total if i == 0 else 0 for i in range(len(weights))]
    exact = np.asarray(weights, np.float64) * (total / sum(weights))
    parts = np.floor(exact).astype(np.int64)
    parts[np.argsort(parts - exact, kind="stable")[: total - int(parts.sum())]] += 1
    return parts.tolist()


def stage_targets(spec: StageSpec) -> dict[str, int]:
    """Return the tokens each source is to have in a stage."""
    return {s: round(spec.tokens * share) for s, share in spec.shares.items()}


def make_plan(
    lengths: dict[str, np.ndarray], stages: list[StageSpec], seed: int, shard_bytes: int = SHARD_BYTES
) -> Plan:
    """Return the plan for `stages` over the documents of each source (`lengths`, in document order).

    Raises ValueError when a stage names a source that has no tokens.
    """
    plans = [PackedStage(i + 1, spec, shard_count(spec, shard_bytes)) for i, spec in enumerate(stages)]
    fill_order = sorted(plans, key=lambda p: (-p.spec.seq_len, p.number))
    sampling = {}
    for source_index, (name, lens) in enumerate(lengths.items()):
        wanting = [p for p in fill_order if name in p.spec.shares]
        targets = [stage_targets(p.spec)[name] for p in wanting]
        rng = np.random.default_rng([seed, source_index])
        packers, sampling[name] = _sample_and_pack(name, np.asarray(lens, np.int64), wanting, targets, rng)
        for stage, packer, target in zip(wanting, packers, targets):
            stage.packings[name] = SourcePacking(
                target_tokens=target,
                rows=packer.rows,
                capacity=stage.spec.capacity,
                pieces=packer.pieces(),
                split_documents=packer.split_documents,
            )
    for stage in plans:
        unknown = sorted(set(stage.spec.shares) - set(lengths))
        if unknown:
            raise ValueError(f"stage {stage.spec.name!r} names sources with no documents: {unknown}")
        stage.packings = {name: stage.packings[name] for name in lengths if name in stage.packings}
    return Plan(plans, sampling)


def _sample_and_pack(
    name: str, lengths: np.ndarray, stages: list[PackedStage], targets: list[int], rng: np.random.Generator
) -> tuple[list[RowPacker], SourceSampling]:
    n = len(lengths)
    available = int(lengths.sum())
    demand = sum(targets)
    if demand and not available:
        raise ValueError(
            f"source {name!r} has no tokens, but stages {[s.spec.name for s in stages]} want {demand:,}"
        )
    full, rest = divmod(demand, available) if available else (0, 0)
    order = rng.permutation(n)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    extra = np.zeros(n, bool)  # in the partial epoch: one copy more than `full`
    extra[order[: np.searchsorted(np.cumsum(lengths[order]), rest, side="right")]] = True

    docs = longest_first(lengths, np.repeat(np.arange(n), full + extra), rank)
    packers = [
        RowPacker(
            s.spec.capacity, max(1, round(target / s.spec.capacity)), max_tokens=target + s.spec.capacity // 2
        )
        for s, target in zip(stages, targets)
    ]
    for packer, target in zip(packers[:-1], targets[:-1]):
        docs = _fill_to(packer, lengths, docs, target)
    if packers:
        # The last stage must take every full-epoch copy left; partial-epoch copies only where they fit.
        owed, optional = _split_partial_epoch(docs, extra)
        last = packers[-1]
        owed = _fill_to(last, lengths, owed, targets[-1])
        if owed.size:
            cap = last.max_tokens
            last.max_rows = last.max_tokens = None
            last.fill(lengths, owed)
            last.max_rows, last.max_tokens = last.rows, cap
        extra[_fill_to(last, lengths, optional, targets[-1])] = False
    # Make up budgets left short by padding, with documents that may appear once more.
    pool = longest_first(lengths, np.flatnonzero(~extra), rank)
    for packer, target in zip(packers, targets):
        packer.max_rows = packer.rows
        packer.max_tokens = target + packer.capacity - 1  # the budget holds within a row
        pool = _take_from_pool(packer, lengths, pool, target, extra)
    # Lay each stage out again from the copies it took, long documents closing the gaps short ones left;
    # then close what is left open (mostly the last row) from the pool, opening no row.
    relaid = []
    for packer, target in zip(packers, targets):
        pieces = packer.pieces()
        packer = pack_documents(lengths, pieces.doc[pieces.start == 0], packer.capacity, rank)
        packer.max_rows, packer.max_tokens = packer.rows, target + packer.capacity - 1
        pool = _take_from_pool(packer, lengths, pool, target, extra, grow=False)
        relaid.append(packer)
    copies = full + extra.astype(np.int64)
    return relaid, SourceSampling(
        documents=n,
        tokens=available,
        used_tokens=int(copies @ lengths),
        full_epochs=full,
        extra_copies=int(extra.sum()),
    )


def _split_partial_epoch(docs: np.ndarray, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split copies (longest first) into full-epoch ones and the partial-epoch copy of each `extra` doc
    (its first copy), both in their order in `docs`."""
    first = np.zeros(docs.size, bool)
    first[np.unique(docs, return_index=True)[1]] = True
    optional = first & extra[docs]
    return docs[~optional], docs[optional]


def _take_from_pool(
    packer: RowPacker,
    lengths: np.ndarray,
    pool: np.ndarray,
    target: int,
    extra: np.ndarray,
    grow: bool = True,
) -> np.ndarray:
    """Place pool documents (longest first) as a partial-epoch copy each; return the pool left."""
    if not pool.size:
        return pool
    left = _fill_to(packer, lengths, pool, target) if grow else packer.fill(lengths, pool)
    extra[np.setdiff1d(pool, left, assume_unique=True)] = True
    return left


def _fill_to(packer: RowPacker, lengths: np.ndarray, docs: np.ndarray, target: int) -> np.ndarray:
    """Fill the packer's rows from `docs`; while it is over half a row short of `target` tokens (padding,
    documents too long for the rows left), allow more rows. Return the documents not placed."""
    docs = packer.fill(lengths, docs)
    while docs.size and target - packer.tokens > packer.capacity // 2:
        # Rows enough to reach the budget; `max_tokens` keeps a long document from overshooting it far.
        packer.max_rows = packer.rows + -(-(target - packer.tokens) // packer.capacity)
        before = packer.tokens
        docs = packer.fill(lengths, docs)
        if packer.tokens == before:
            break
    return docs


def layout_shards(stage: PackedStage, lengths: dict[str, np.ndarray], seed: int) -> list[ShardLayout]:
    """Deal a stage's rows into its shards, each source's rows evenly, so every shard carries the mixture.

    Each source's rows are dealt in a seeded random order and each shard's rows are shuffled (seeded), so
    the rows of a long document's pieces and the sources interleave. `lengths` tells split documents apart.
    """
    rng = np.random.default_rng([seed, stage.number])
    shard_of: dict[str, np.ndarray] = {}
    position_of: dict[str, np.ndarray] = {}
    next_position = np.zeros(stage.shards, np.int64)
    for name, packing in stage.packings.items():
        shard_of[name] = np.empty(packing.rows, np.int64)
        position_of[name] = np.empty(packing.rows, np.int64)
        for shard, rows in enumerate(np.array_split(rng.permutation(packing.rows), stage.shards)):
            shard_of[name][rows] = shard
            position_of[name][rows] = next_position[shard] + np.arange(len(rows))
            next_position[shard] += len(rows)
    shuffles = [rng.permutation(int(n)) for n in next_position]

    parts, shard_keys, position_keys, sources, split_first = [], [], [], [], []
    names = list(stage.packings)
    for name, packing in stage.packings.items():
        p = packing.pieces
        parts.append(p)
        shard_keys.append(shard_of[name][p.row])
        position_keys.append(position_of[name][p.row])
        sources.append(np.full(len(p), names.index(name), np.uint8))
        split_first.append((p.start == 0) & (lengths[name][p.doc] > packing.capacity))
    pieces = Pieces.concat(parts) if parts else empty_pieces()
    shard_key = np.concatenate(shard_keys) if parts else np.zeros(0, np.int64)
    position = np.concatenate(position_keys) if parts else np.zeros(0, np.int64)
    for shard, shuffle in enumerate(shuffles):
        mine = shard_key == shard
        position[mine] = shuffle[position[mine]]
    source = np.concatenate(sources) if parts else np.zeros(0, np.uint8)
    first_of_split = np.concatenate(split_first) if parts else np.zeros(0, bool)

    order = np.lexsort((pieces.offset, position, shard_key))
    pieces, shard_key, position = pieces.take(order), shard_key[order], position[order]
    source, first_of_split = source[order], first_of_split[order]
    bounds = np.searchsorted(shard_key, np.arange(stage.shards + 1))
    layouts = []
    for shard in range(stage.shards):
        sl = slice(bounds[shard], bounds[shard + 1])
        shard_pieces = Pieces(
            pieces.doc[sl],
            pieces.start[sl],
            pieces.length[sl],
            position[sl].astype(np.int32),
            pieces.offset[sl],
        )
        layouts.append(
            ShardLayout(
                rows=int(next_position[shard]),
                pieces=shard_pieces,
                source=source[sl],
                split_documents=int(first_of_split[sl].sum()),
            )
        )
    return layouts


def log2_histogram(lengths: np.ndarray) -> list[int]:
    """Return document counts by length bucket [2^b, 2^(b+1)) for b = 0, 1, …, the last non-empty bucket."""
    lengths = np.asarray(lengths, np.int64)
    lengths = lengths[lengths > 0]
    if not lengths.size:
        return []
    return np.bincount(np.log2(lengths).astype(np.int64)).tolist()
