"""The visits one walk of a stage makes of its rows: epochs by reference, as pure functions over counts.

A stage's rows are stored once (shards/plan.py). Each shard holds one block of rows per source, and its
manifest entry says how often a walk visits them (`ShardEntry.source_rows`): every row of the block `passes`
times, its first `extra_rows` rows once more. So a source's visits in a stage are, shard after shard, its
block's rows `passes` times over and then its extra rows: visit k of source s is a row found from the counts
alone. The sources' visits are interleaved evenly and exactly (`interleave`), so any stretch of a walk holds
the stage's mixture, and the loader's shuffle (shards/shuffle.py) then orders the visits: a row's passes land
at independent places of the walk, each visit once.

Held-out rows: `StageVisits(…, holdout_rows=k)` holds k rows of the stage out of training, seed-independent:
each source gives its share of k (in proportion to its rows), taken from the ends of its last blocks. The
training split visits the other rows as planned; the held-out split visits each held-out row once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gristmill.shards.manifest import ShardEntry, StageEntry
from gristmill.shards.plan import apportion

# Visits per stage the exact interleave handles in int64 arithmetic ((v + 1) × n ≤ 2^63).
MAX_VISITS = 3_000_000_000


def interleave(positions: np.ndarray, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return (part, index within the part) of each position in [0, sum(counts)), spreading every part's
    positions evenly and exactly: part i holds counts[i] positions.

    The parts are split in two halves recursively; in a node of N positions whose left half holds n, the
    left half takes position v exactly when floor((v + 1) n / N) > floor(v n / N), its index there being
    floor((v + 1) n / N) − 1 (Bresenham's rule), and the right half takes the others.
    """
    v = np.asarray(positions, np.int64)
    part = np.zeros(v.shape, np.int64)
    index = v.copy()
    _split(index, part, np.ones(v.shape, bool), list(range(len(counts))), [int(c) for c in counts])
    return part, index


def _split(
    index: np.ndarray, part: np.ndarray, mine: np.ndarray, parts: list[int], counts: list[int]
) -> None:
    if len(parts) == 1:
        part[mine] = parts[0]
        return
    half = len(parts) // 2
    total, left = sum(counts), sum(counts[:half])
    v = index[mine]
    taken = (v + 1) * left // total
    in_left = taken > v * left // total
    index[mine] = np.where(in_left, taken - 1, v - taken)
    where = np.flatnonzero(mine)
    _split(index, part, _mask(mine.shape, where[in_left]), parts[:half], counts[:half])
    _split(index, part, _mask(mine.shape, where[~in_left]), parts[half:], counts[half:])


def interleaved_positions(part: np.ndarray, index: np.ndarray, counts: list[int]) -> np.ndarray:
    """Return the position (int64) of each (part, index within the part): the inverse of `interleave`.

    Up the same halving tree: in a node of N positions whose left half holds n, left index t sits at the
    smallest v with floor((v + 1) n / N) = t + 1, i.e. v = ceil((t + 1) N / n) − 1, and right index u at the
    smallest v with (v + 1) − floor((v + 1) n / N) = u + 1, i.e. v = floor(u N / (N − n)).
    """
    part = np.asarray(part, np.int64)
    out = np.asarray(index, np.int64).copy()
    _merge(out, part, np.ones(out.shape, bool), list(range(len(counts))), [int(c) for c in counts])
    return out


def _merge(
    index: np.ndarray, part: np.ndarray, mine: np.ndarray, parts: list[int], counts: list[int]
) -> None:
    if len(parts) == 1:
        return
    half = len(parts) // 2
    total, left = sum(counts), sum(counts[:half])
    in_left = mine & (part < parts[half])
    in_right = mine & (part >= parts[half])
    _merge(index, part, in_left, parts[:half], counts[:half])
    _merge(index, part, in_right, parts[half:], counts[half:])
    if left:
        index[in_left] = ((index[in_left] + 1) * total + left - 1) // left - 1
    if total - left:
        index[in_right] = index[in_right] * total // (total - left)


def _mask(shape: tuple[int, ...], where: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[where] = True
    return out


@dataclass(frozen=True)
class SourceVisits:
    """One source's visits in one split of a stage, per shard: the block's first row in the stage, where the
    split's rows start in the block, how many there are, and how often each is visited."""

    source: str
    block_start: np.ndarray  # int64 per shard: the stage row of the block's first row
    first: np.ndarray  # int64 per shard: the split's first row within the block
    rows: np.ndarray  # int64 per shard: the split's rows of the block
    passes: np.ndarray  # int64 per shard: visits of every one of those rows …
    extra: np.ndarray  # int64 per shard: … and of this many of them (the first) once more
    ends: np.ndarray  # int64 (shards + 1,): the visits before each shard's, then the total

    @property
    def size(self) -> int:
        """Return the visits."""
        return int(self.ends[-1])

    def rows_at(self, k: np.ndarray) -> np.ndarray:
        """Return the stage row of each visit k in [0, size)."""
        shard = np.searchsorted(self.ends, k, side="right") - 1
        local = k - self.ends[shard]
        rows = self.rows[shard]
        full = self.passes[shard] * rows
        within = np.where(local < full, local % np.maximum(rows, 1), local - full)
        return self.block_start[shard] + self.first[shard] + within

    def visits_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (which of `rows` each visit is of, the visit k) for every visit of the stage rows `rows`
        in this split: the inverse of `rows_at`. A row outside the split (another source's, or held out of
        it) has none."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        lo = self.block_start + self.first  # non-decreasing: the split's first row of each block
        shard = np.maximum(np.searchsorted(lo, rows, side="right") - 1, 0)
        within = rows - lo[shard]
        inside = (within >= 0) & (within < self.rows[shard])
        # a row's visits: one per pass, and one more when it is among the block's first `extra` rows
        count = np.where(inside, self.passes[shard] + (within < self.extra[shard]), 0)
        which = np.repeat(np.arange(len(rows)), count)
        j = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        shard, within = shard[which], within[which]
        return which, self.ends[shard] + j * self.rows[shard] + within


class StageVisits:
    """The visits one walk of a build stage makes: the training split (every row but the held-out ones, as
    the plan repeats them), or the held-out split (each of the `holdout_rows` held-out rows once).

    Raises ValueError when the shards' source blocks do not add up to the stage's rows, or a stage has more
    visits than `MAX_VISITS`.
    """

    def __init__(
        self, stage: StageEntry, sources: list[str], holdout_rows: int = 0, held_out: bool = False
    ) -> None:
        self.stage = stage
        shard_starts = np.zeros(len(stage.shards), np.int64)
        np.cumsum([s.rows for s in stage.shards[:-1]], out=shard_starts[1:])
        parts: list[SourceVisits] = []
        held = apportion(holdout_rows, [sum(_block(e, s)[1] for e in stage.shards) for s in sources])
        for source, hold in zip(sources, held):
            part = self._source(source, shard_starts, hold, held_out)
            if part.size:
                parts.append(part)
        self.parts = parts
        self.size = sum(p.size for p in parts)
        if self.size > MAX_VISITS:
            raise ValueError(f"stage {stage.name!r} has {self.size} visits, more than {MAX_VISITS}")

    def _source(self, source: str, shard_starts: np.ndarray, hold: int, held_out: bool) -> SourceVisits:
        blocks = [_block(entry, source) for entry in self.stage.shards]
        start = shard_starts + np.array([b[0] for b in blocks], np.int64)
        rows = np.array([b[1] for b in blocks], np.int64)
        passes = np.array([b[2] for b in blocks], np.int64)
        extra = np.array([b[3] for b in blocks], np.int64)
        kept = rows.copy()  # the held-out rows come off the ends of the last blocks
        for shard in range(len(kept) - 1, -1, -1):
            if hold <= 0:
                break
            take = min(hold, int(kept[shard]))
            kept[shard] -= take
            hold -= take
        if held_out:
            rows, first, passes, extra = rows - kept, kept, np.ones_like(rows), np.zeros_like(rows)
        else:
            rows, first, extra = kept, np.zeros_like(rows), np.minimum(extra, kept)
        visits = passes * rows + extra
        ends = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(visits, out=ends[1:])
        return SourceVisits(source, start, first, rows, passes, extra, ends)

    def visits_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (which of `rows` each visit is of, the visit in [0, size)) for every visit the split makes
        of the stage rows `rows`, sorted by visit: the inverse of `rows_at` (a row repeated by the plan has
        several visits; a held-out row none in the training split)."""
        counts = [p.size for p in self.parts]
        found, visits = [], []
        for i, p in enumerate(self.parts):
            which, k = p.visits_of(rows)
            found.append(which)
            visits.append(interleaved_positions(np.full(k.shape, i), k, counts))
        which = np.concatenate(found) if found else np.zeros(0, np.int64)
        visit = np.concatenate(visits) if visits else np.zeros(0, np.int64)
        order = np.argsort(visit, kind="stable")
        return which[order], visit[order]

    def rows_at(self, visits: np.ndarray) -> np.ndarray:
        """Return the stage row (int64) of each visit in [0, size)."""
        visits = np.asarray(visits, np.int64)
        part, k = interleave(visits, [p.size for p in self.parts])
        out = np.empty(visits.shape, np.int64)
        for i, p in enumerate(self.parts):
            mine = part == i
            out[mine] = p.rows_at(k[mine])
        return out


def _block(entry: ShardEntry, source: str) -> tuple[int, int, int, int]:
    """Return (first row in the shard, rows, passes, extra rows) of `source`'s block in a shard entry."""
    first, block = entry.block(source)
    return (first, 0, 0, 0) if block is None else (first, block.rows, block.passes, block.extra_rows)
