"""The mixing and curriculum plan: which documents fill each stage's rows, in which shard, and how often a
stage's walk visits each row.

Pure functions over arrays of document lengths (tokens, framing included: bos if any, eos), one array per
source.

Each stage that uses a source asks for `stage tokens × share` of its tokens (its *target*: what training on
the stage is to see of the source); their sum is the source's demand D. With A tokens available, the source
is stored once: every document when D ≥ A, else a seeded random subset of about D tokens. Storage grows with
unique tokens, not trained tokens: a stage's rows are stored once and its walk visits them as often as its
budget needs (`SourcePacking.passes` times every row, and a seeded subset of rows, `extra`, once more), as
Megatron and Mosaic repeat epochs by index rather than by copy. A document is stored in one stage only, so a
curriculum that needs a source in several stages splits the source's documents between them (in proportion
to their targets) and each stage repeats its own share D / A times; no document is stored twice.

The stored documents are offered longest first to the source's stages, longest stage first, each packing
best-fit into about `unique target / (L + 1)` rows (`pack.RowPacker`; more only where padding leaves the
budget over half a row short): long documents train at long context and shorter ones fill the gaps. What a
stage cannot take flows on to the next; the last stage takes every stored document left when the source is
repeated (a down-sampled source leaves unstored what no stage can take). A down-sampled source's unused
documents then fill the gaps still open. Last, each stage's documents are laid out again
(`pack.pack_documents`): documents that fit a row best-fit decreasing, then the longer ones, split anyway,
spread over the gaps the short ones left, so padding is left only where no document fits. The passes of each
(stage, source) then follow from its stored tokens T and target t: `passes = t // T` and the extra rows a
seeded random subset whose tokens make up the rest, within a row.

A stage may draw a source from its top-scored documents only (a score *floor*: `StageSpec.score_floor`,
the lowest score bin it takes, from the recipe's `top_by_score` and the whole source's score histogram).
The stages that draw one source from one floor form a *pool* (`source_pools`); a source's pools are filled
highest floor first, each as above from the documents at or above its floor that the pools before it did
not store: a stage of the top-scored tenth gets those documents (repeated if it needs more), and the
stages drawing from every document share the rest, the top-scored ones the first left unused included.

A stage's tokens are the tokens stored in its rows (up to L + 1 per row), padding excluded; its trained
tokens, what its walk visits.

A large build is planned in slices, one task each (`plan_slices`): slice g of G takes the g-th G-th of every
source's documents, budgets scaled to its tokens of each source (`slice_specs`: the build's whole epochs
exactly, the partial epoch in proportion) and the g-th G-th of every stage's shards (`shard_range`), and is
planned as above on its own. Every shard still carries the mixture, and a task holds one slice's lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gristmill.shards.pack import Pieces, RowPacker, empty_pieces, longest_first, pack_documents

SHARD_BYTES = 128 << 20  # default target size of a shard file
EVERY = -1  # the score floor of a stage that draws from every document (unscored ones included)


@dataclass(frozen=True)
class StageSpec:
    """What the recipe asks of a stage: rows of `seq_len`, a budget of tokens, source name → share (sum 1)."""

    name: str
    seq_len: int
    tokens: int
    shares: dict[str, float]
    score_floor: dict[str, int] = field(default_factory=dict)  # source → lowest score bin drawn (else all)

    def floor(self, source: str) -> int:
        """Return the lowest score bin the stage draws `source` from (`EVERY`: every document)."""
        return self.score_floor.get(source, EVERY)

    @property
    def capacity(self) -> int:
        """Return the tokens a row holds (L + 1: inputs and shifted targets)."""
        return self.seq_len + 1


@dataclass(frozen=True)
class SourcePacking:
    """One source's rows in one stage: where its document pieces lie (rows counted from 0), and how the
    stage's walk visits them: every row `passes` times, the rows `extra` once more."""

    target_tokens: int  # the tokens training on the stage is to see of the source
    rows: int
    capacity: int
    pieces: Pieces
    split_documents: int
    passes: int
    extra: np.ndarray  # int64, sorted: the rows visited once more than `passes` (the partial pass)

    @property
    def tokens(self) -> int:
        """Return the tokens stored (padding excluded)."""
        return int(self.pieces.length.sum())

    @property
    def padding(self) -> int:
        """Return the padding tokens of these rows."""
        return self.rows * self.capacity - self.tokens

    def row_tokens(self) -> np.ndarray:
        """Return the tokens (padding excluded) in each row, int64[rows]."""
        return np.bincount(self.pieces.row, weights=self.pieces.length, minlength=self.rows).astype(np.int64)

    @property
    def trained_tokens(self) -> int:
        """Return the tokens the stage's walk visits: every row `passes` times, the extra rows once more."""
        return self.passes * self.tokens + int(self.row_tokens()[self.extra].sum())

    @property
    def visits(self) -> int:
        """Return the row visits of the stage's walk."""
        return self.passes * self.rows + len(self.extra)


@dataclass(frozen=True)
class SourceSampling:
    """How one source was sampled over the whole build."""

    documents: int  # available
    tokens: int  # available
    stored_documents: int  # stored once, in one stage's rows
    stored_tokens: int
    trained_tokens: int  # what the stages' walks visit


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
class SourceBlock:
    """One source's rows in one shard: a contiguous block, visited by the stage's walk `passes` times each
    and its first `extra_rows` rows once more."""

    source: str
    rows: int
    passes: int
    extra_rows: int
    tokens: int  # stored, padding excluded
    trained_tokens: int  # visited: passes × tokens + the extra rows' tokens


@dataclass(frozen=True)
class ShardLayout:
    """One shard's rows: pieces with `row` the position in the shard, the source index of each piece (into
    the stage's packings), and the shard's source blocks in that order."""

    rows: int
    pieces: Pieces
    source: np.ndarray  # uint8 per piece
    split_documents: int  # documents split in the stage whose first piece lies in this shard
    blocks: list[SourceBlock]


Available = dict[str, int] | dict[str, dict[int, int]]  # source → tokens, or → floor → tokens at or above it


@dataclass(frozen=True)
class Pool:
    """The stages that draw one source from the same score floor, and the tokens they can draw: the
    source's tokens at or above the floor, less what pools with higher floors store first."""

    floor: int
    stages: list[int]  # indices into the specs
    demand: int  # the sum of those stages' targets of the source
    available: int


def source_pools(specs: list[StageSpec], name: str, at_or_above: int | dict[int, int]) -> list[Pool]:
    """Return the pools of source `name` over `specs`, highest floor first; `at_or_above` is the source's
    tokens (every document) or floor → its tokens at or above that floor. A pool stores about
    min(demand, available), so a lower pool can draw what a higher one leaves."""
    if not isinstance(at_or_above, dict):
        at_or_above = {EVERY: at_or_above}
    floors = sorted({spec.floor(name) for spec in specs if name in spec.shares}, reverse=True)
    pools, taken = [], 0
    for floor in floors:
        stages = [i for i, spec in enumerate(specs) if name in spec.shares and spec.floor(name) == floor]
        demand = sum(stage_targets(specs[i])[name] for i in stages)
        available = max(0, at_or_above.get(floor, 0) - taken)
        pools.append(Pool(floor, stages, demand, available))
        taken += min(demand, available)
    return pools


def stored_tokens(specs: list[StageSpec], available: Available) -> list[int]:
    """Return about how many tokens each stage stores: its targets, each source's cut to the share of the
    source's available tokens (at or above the stage's score floor) the stage takes (a source is stored
    once, whatever its stages repeat)."""
    stored = [0.0] * len(specs)
    names = dict.fromkeys(name for spec in specs for name in spec.shares)
    for name in names:
        for pool in source_pools(specs, name, available.get(name, 0)):
            scale = min(1.0, pool.available / pool.demand) if pool.demand else 0.0
            for i in pool.stages:
                stored[i] += stage_targets(specs[i])[name] * scale
    return [round(x) for x in stored]


def shard_count(spec: StageSpec, stored: int, token_bytes: int, shard_bytes: int = SHARD_BYTES) -> int:
    """Return the number of shards of a stage storing about `stored` tokens of `token_bytes` each: shards of
    about `shard_bytes`, each of at least 4 rows."""
    by_size = -(-stored * token_bytes // shard_bytes)
    by_rows = stored // (4 * spec.capacity)
    return max(1, min(by_size, by_rows))


def plan_slices(
    documents: dict[str, int], specs: list[StageSpec], docs_per_slice: int, shards: list[int]
) -> int:
    """Return how many slices (plan tasks) plan the build: one per `docs_per_slice` documents, but no more
    than the fewest shards of a stage (`shards`: each slice writes whole shards of every stage) or the
    fewest documents of a source a stage uses (each slice holds some of every such source)."""
    wanted = -(-sum(documents.values()) // docs_per_slice)
    used = {name for spec in specs for name in spec.shares}
    caps = list(shards) + [documents.get(name, 0) for name in used]
    return max(1, min([wanted, *caps]))


def document_range(documents: int, index: int, slices: int) -> tuple[int, int]:
    """Return the [start, end) of slice `index`'s documents of a source of `documents`."""
    return documents * index // slices, documents * (index + 1) // slices


def shard_range(shards: int, index: int, slices: int) -> range:
    """Return the shard numbers of a stage of `shards` that slice `index` lays out."""
    return range(shards * index // slices, shards * (index + 1) // slices)


def slice_specs(specs: list[StageSpec], slice_tokens: Available, source_tokens: Available) -> list[StageSpec]:
    """Return one slice's stage specs: each pool's demand (a source's stages that draw from one score floor)
    scaled from the tokens it can draw in the whole source (`source_tokens`) to those in the slice
    (`slice_tokens`), so that the slice repeats its documents for exactly the build's whole epochs and draws
    the partial epoch in proportion; the demand is apportioned over the pool's stages as the recipe's targets
    are. With one slice (`slice_tokens == source_tokens`) the specs ask for exactly the recipe's targets."""
    targets = [stage_targets(spec) for spec in specs]
    per_stage: list[dict[str, int]] = [{} for _ in specs]
    for name in dict.fromkeys(name for spec in specs for name in spec.shares):
        whole = source_pools(specs, name, source_tokens.get(name, 0))
        mine = source_pools(specs, name, slice_tokens.get(name, 0))
        for pool, part in zip(whole, mine):
            if pool.available and part.available:
                full, rest = divmod(pool.demand, pool.available)
                demand = full * part.available + min(
                    part.available - 1, round(rest * part.available / pool.available)
                )
            else:  # nothing to draw, or unknown: make_plan says so
                demand = pool.demand
            for i, n in zip(pool.stages, apportion(demand, [targets[i][name] for i in pool.stages])):
                per_stage[i][name] = n
    out = []
    for spec, wanted in zip(specs, per_stage):
        tokens = sum(wanted.values())
        shares = {name: n / tokens if tokens else 0.0 for name in spec.shares for n in [wanted[name]]}
        out.append(StageSpec(spec.name, spec.seq_len, tokens, shares, spec.score_floor))
    return out


def apportion(total: int, weights: list[int]) -> list[int]:
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


def tokens_at_or_above(lengths: np.ndarray, bins: np.ndarray | None, floors: set[int]) -> dict[int, int]:
    """Return floor → the tokens of the documents whose score bin is at or above it (`EVERY`: all)."""
    lengths = np.asarray(lengths, np.int64)
    return {
        floor: int(lengths.sum()) if floor == EVERY or bins is None else int(lengths[bins >= floor].sum())
        for floor in floors
    }


def make_plan(
    lengths: dict[str, np.ndarray],
    stages: list[StageSpec],
    seed: int,
    shards: list[int] | None = None,
    shard_bytes: int = SHARD_BYTES,
    scores: dict[str, np.ndarray] | None = None,
) -> Plan:
    """Return the plan for `stages` over the documents of each source (`lengths`, in document order).

    `scores` holds each document's score bin (`pipelines.quality.percentile`) for the sources a stage draws
    by score floor: such a stage draws only documents at or above its floor. The source's pools are filled
    highest floor first, each from the documents the pools before it did not store, so a stage drawing the
    top-scored documents gets fresh ones and the rest go to the stages drawing from every document.

    Raises ValueError when a stage names a source that has no tokens, or none at or above its floor.
    """
    scores = scores or {}
    if shards is None:  # int32 ids, sized from the documents the stages store
        floors = {spec.floor(name) for spec in stages for name in spec.shares}
        available = {name: tokens_at_or_above(n, scores.get(name), floors) for name, n in lengths.items()}
        shards = [shard_count(s, n, 4, shard_bytes) for s, n in zip(stages, stored_tokens(stages, available))]
    plans = [PackedStage(i + 1, spec, count) for i, (spec, count) in enumerate(zip(stages, shards))]
    fill_order = sorted(plans, key=lambda p: (-p.spec.seq_len, p.number))
    sampling = {}
    for source_index, (name, lens) in enumerate(lengths.items()):
        lens = np.asarray(lens, np.int64)
        wanting = [p for p in fill_order if name in p.spec.shares]
        floors = sorted({p.spec.floor(name) for p in wanting}, reverse=True)
        rng = np.random.default_rng([seed, source_index])
        stored = np.zeros(len(lens), bool)
        packers: dict[int, RowPacker] = {}
        for floor in floors:
            pool = [p for p in wanting if p.spec.floor(name) == floor]
            candidates = ~stored
            if floor != EVERY:
                if name not in scores:
                    raise ValueError(
                        f"stages {[p.spec.name for p in pool]} draw {name!r} by score: no scores"
                    )
                candidates &= np.asarray(scores[name]) >= floor
            targets = [stage_targets(p.spec)[name] for p in pool]
            pool_packers, pool_stored = _sample_and_pack(name, lens, pool, targets, rng, candidates)
            packers.update((stage.number, packer) for stage, packer in zip(pool, pool_packers))
            stored |= pool_stored
        for stage in wanting:
            stage.packings[name] = _with_passes(packers[stage.number], stage_targets(stage.spec)[name], rng)
        sampling[name] = SourceSampling(
            documents=len(lens),
            tokens=int(lens.sum()),
            stored_documents=int(stored.sum()),
            stored_tokens=int(lens[stored].sum()),
            trained_tokens=sum(s.packings[name].trained_tokens for s in wanting),
        )
    for stage in plans:
        unknown = sorted(set(stage.spec.shares) - set(lengths))
        if unknown:
            raise ValueError(f"stage {stage.spec.name!r} names sources with no documents: {unknown}")
        stage.packings = {name: stage.packings[name] for name in lengths if name in stage.packings}
    return Plan(plans, sampling)


def _sample_and_pack(
    name: str,
    lengths: np.ndarray,
    stages: list[PackedStage],
    targets: list[int],
    rng: np.random.Generator,
    candidates: np.ndarray,
) -> tuple[list[RowPacker], np.ndarray]:
    """Store the `candidates` among the source's documents once over `stages` (longest first); return each
    stage's packer and which documents they store."""
    n = len(lengths)
    available = int(lengths[candidates].sum())
    demand = sum(targets)
    if demand and not available:
        floors = sorted({s.spec.floor(name) for s in stages} - {EVERY})
        what = f"no tokens at or above score bin {floors[0]} left" if floors else "no tokens"
        raise ValueError(
            f"source {name!r} has {what}, but stages {[s.spec.name for s in stages]} want {demand:,}"
        )
    order = rng.permutation(n)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    order = order[candidates[order]]
    stored = candidates.copy()  # stored once; when down-sampled, a seeded subset of about `demand` tokens
    if demand < available:
        stored[:] = False
        stored[order[: np.searchsorted(np.cumsum(lengths[order]), demand, side="right")]] = True
    # Each stage stores a share of the documents in proportion to its target, so all of the source's
    # stages repeat theirs about equally often (D / A times).
    unique = apportion(int(lengths[stored].sum()), targets)

    docs = longest_first(lengths, np.flatnonzero(stored), rank)
    packers = [
        RowPacker(s.spec.capacity, max(1, round(u / s.spec.capacity)), max_tokens=u + s.spec.capacity // 2)
        for s, u in zip(stages, unique)
    ]
    for packer, u in zip(packers[:-1], unique[:-1]):
        docs = _fill_to(packer, lengths, docs, u)
    if packers:
        last = packers[-1]
        docs = _fill_to(last, lengths, docs, unique[-1])
        if docs.size and demand >= available:  # repeated: every document is needed, in extra rows if it must
            cap = last.max_tokens
            last.max_rows = last.max_tokens = None
            last.fill(lengths, docs)
            last.max_rows, last.max_tokens = last.rows, cap
        else:  # down-sampled: what the stages cannot take is not stored
            stored[docs] = False
    # A down-sampled source's unused documents close the gaps padding left in the budgets.
    pool = longest_first(lengths, np.flatnonzero(candidates & ~stored), rank)
    for packer, u in zip(packers, unique):
        packer.max_rows = packer.rows
        packer.max_tokens = u + packer.capacity - 1  # the budget holds within a row
        pool = _take_from_pool(packer, lengths, pool, u, stored)
    # Lay each stage out again from the documents it took, long documents closing the gaps short ones
    # left; then close what is left open (mostly the last row) from the pool, opening no row.
    relaid = []
    for packer, u in zip(packers, unique):
        pieces = packer.pieces()
        packer = pack_documents(lengths, pieces.doc[pieces.start == 0], packer.capacity, rank)
        packer.max_rows, packer.max_tokens = packer.rows, u + packer.capacity - 1
        pool = _take_from_pool(packer, lengths, pool, u, stored, grow=False)
        relaid.append(packer)
    return relaid, stored


def _with_passes(packer: RowPacker, target: int, rng: np.random.Generator) -> SourcePacking:
    """Return a stage's packing of one source with the visits that make up its target: every row `passes`
    = target // stored times, and a seeded random subset of rows whose tokens come nearest to the rest (so
    the trained tokens are within half a row of the target)."""
    pieces = packer.pieces()
    row_tokens = np.bincount(pieces.row, weights=pieces.length, minlength=packer.rows).astype(np.int64)
    stored = int(row_tokens.sum())
    passes, rest = divmod(target, stored) if stored else (0, 0)
    order = rng.permutation(packer.rows)
    reached = np.cumsum(row_tokens[order])
    take = int(np.searchsorted(reached, rest, side="left"))  # the rows before the one that reaches the rest
    if rest and take < packer.rows:
        short = rest - (int(reached[take - 1]) if take else 0)
        if int(reached[take]) - rest <= short:  # taking that row overshoots less than stopping short misses
            take += 1
    if take == packer.rows:  # every row once more: a whole pass
        passes, take = passes + 1, 0
    return SourcePacking(
        target_tokens=target,
        rows=packer.rows,
        capacity=packer.capacity,
        pieces=pieces,
        split_documents=packer.split_documents,
        passes=int(passes),
        extra=np.sort(order[:take]).astype(np.int64),
    )


def _take_from_pool(
    packer: RowPacker,
    lengths: np.ndarray,
    pool: np.ndarray,
    target: int,
    stored: np.ndarray,
    grow: bool = True,
) -> np.ndarray:
    """Place pool documents (longest first), marking them `stored`; return the pool left."""
    if not pool.size:
        return pool
    left = _fill_to(packer, lengths, pool, target) if grow else packer.fill(lengths, pool)
    stored[np.setdiff1d(pool, left, assume_unique=True)] = True
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

    Each source's rows are dealt in a seeded random order; in a shard they form one block per source (in
    the stage's source order), its extra rows (the partial pass) first, each part in the dealt order. So a
    block's rows are a seeded sample of the source's, and the walk finds them by counts alone
    (`shards.visits`). `lengths` tells split documents apart.
    """
    rng = np.random.default_rng([seed, stage.number])
    names = list(stage.packings)
    dealt: dict[str, list[np.ndarray]] = {}
    counts = np.zeros((len(names), stage.shards), np.int64)
    for k, (name, packing) in enumerate(stage.packings.items()):
        extra = np.zeros(packing.rows, bool)
        extra[packing.extra] = True
        dealt[name] = []
        for shard, rows in enumerate(np.array_split(rng.permutation(packing.rows), stage.shards)):
            dealt[name].append(np.concatenate([rows[extra[rows]], rows[~extra[rows]]]))
            counts[k, shard] = len(rows)
    block_start = np.cumsum(counts, axis=0) - counts  # (source, shard): where the block starts in the shard

    parts, shard_keys, position_keys, sources, split_first = [], [], [], [], []
    blocks: list[list[SourceBlock]] = [[] for _ in range(stage.shards)]
    for k, (name, packing) in enumerate(stage.packings.items()):
        shard_of = np.empty(packing.rows, np.int64)
        position_of = np.empty(packing.rows, np.int64)
        row_tokens = packing.row_tokens()
        extra_count = np.zeros(packing.rows, np.int64)
        extra_count[packing.extra] = 1
        for shard, rows in enumerate(dealt[name]):
            shard_of[rows] = shard
            position_of[rows] = block_start[k, shard] + np.arange(len(rows))
            tokens = int(row_tokens[rows].sum())
            extra_tokens = int((row_tokens[rows] * extra_count[rows]).sum())
            blocks[shard].append(
                SourceBlock(
                    source=name,
                    rows=len(rows),
                    passes=packing.passes,
                    extra_rows=int(extra_count[rows].sum()),
                    tokens=tokens,
                    trained_tokens=packing.passes * tokens + extra_tokens,
                )
            )
        p = packing.pieces
        parts.append(p)
        shard_keys.append(shard_of[p.row])
        position_keys.append(position_of[p.row])
        sources.append(np.full(len(p), k, np.uint8))
        split_first.append((p.start == 0) & (lengths[name][p.doc] > packing.capacity))
    pieces = Pieces.concat(parts) if parts else empty_pieces()
    shard_key = np.concatenate(shard_keys) if parts else np.zeros(0, np.int64)
    position = np.concatenate(position_keys) if parts else np.zeros(0, np.int64)
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
                rows=int(counts[:, shard].sum()),
                pieces=shard_pieces,
                source=source[sl],
                split_documents=int(first_of_split[sl].sum()),
                blocks=blocks[shard],
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
