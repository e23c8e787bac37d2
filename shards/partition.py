"""Which shuffled positions each global batch, rank and dataloader worker gets: pure functions.

A run walks its curriculum's stages in order; each leg is a `StageWalk`. The global sequence of samples is
defined once, independent of the world size: within walk w the samples are the shuffled positions 0, 1, 2,
… of its stage's stream (position q is row `shuffled_rows(q mod N_w)` of epoch q // N_w). A global batch is
the next G = micro_batch_rows × world_size positions; rank r takes the r-th run of micro_batch_rows of
them. Hence a resume state is just (walk, positions consumed in it): on another world size the stream goes
on at the same position, only cut into batches of a different size.

A walk ends when fewer than G positions of its budget are left: those positions (the tail of the last
epoch's permutation) are skipped, and the next global batch is the first of the next walk, so batches
never mix sequence lengths. Within one rank, micro-batch k (counted from where the iterator started)
belongs to dataloader worker k mod W, so round-robin reading of the workers restores the order.

An epoch of a walk is one pass over its stage's *visits* (shards/visits.py: the stage's rows stored once,
each visited as often as the plan repeats it), or over the held-out split's visits (each held-out row
once); no training position can ever reach a held-out row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gristmill.shards.shuffle import derive_key, shuffled_positions, shuffled_rows
from gristmill.shards.visits import StageVisits

SHUFFLE_BLOCK_ROWS, SHUFFLE_WINDOW_BLOCKS = 256, 8  # the loader's default shuffle shape (shards/shuffle.py)


@dataclass(frozen=True)
class StageWalk:
    """One leg of a run's curriculum: a build stage as the loader walks it, its rows, budget and micro-batch
    size. A run may walk a stage more than once; `index` is the walk's place in the run's curriculum."""

    index: int  # this walk's position in the run's curriculum (it keys the walk's shuffle)
    name: str  # the build stage walked
    seq_len: int
    rows: int  # positions in one epoch of the walk: the visits of the stage's split (shards/visits.py)
    budget_rows: int  # positions the curriculum asks for (past `rows`: more epochs, each reshuffled)
    micro_batch_rows: int  # rows per rank per micro-batch: micro_batch_tokens // seq_len
    visits: StageVisits | None = None  # epoch position → stage row; None: the positions are the rows
    held_out: bool = False  # whether `visits` is the stage's held-out split

    def stage_rows(self, epoch_positions: np.ndarray) -> np.ndarray:
        """Return the stage row (int64) visited at each position in [0, rows) of an epoch of the walk."""
        positions = np.asarray(epoch_positions, np.int64)
        return positions if self.visits is None else self.visits.rows_at(positions)

    def global_rows(self, world_size: int) -> int:
        """Return the rows in one global batch (all ranks) of this stage."""
        return self.micro_batch_rows * world_size

    def batches(self, world_size: int, start: int = 0) -> int:
        """Return how many whole global batches fit in the budget from position `start`."""
        return max(0, self.budget_rows - start) // self.global_rows(world_size)


@dataclass(frozen=True, order=True)
class Position:
    """A place in a run's curriculum: `rows` positions consumed in walk `walk` (len(walks): the end)."""

    walk: int
    rows: int


def normalise(walks: list[StageWalk], pos: Position, world_size: int) -> Position:
    """Return `pos` moved past walks whose budget has no whole global batch left."""
    walk, rows = pos.walk, pos.rows
    while walk < len(walks) and walks[walk].batches(world_size, rows) == 0:
        walk, rows = walk + 1, 0
    return Position(walk, rows)


def advance(walks: list[StageWalk], pos: Position, batches: int, world_size: int) -> Position:
    """Return the position after `batches` more global batches from `pos` (clamped at the end)."""
    if batches < 0:
        raise ValueError(f"cannot advance by a negative number of batches ({batches})")
    pos = normalise(walks, pos, world_size)
    while batches and pos.walk < len(walks):
        walk = walks[pos.walk]
        take = min(batches, walk.batches(world_size, pos.rows))
        batches -= take
        pos = Position(pos.walk, pos.rows + take * walk.global_rows(world_size))
        pos = normalise(walks, pos, world_size)
    return pos


def global_batches(walks: list[StageWalk], pos: Position, world_size: int) -> Iterator[Position]:
    """Yield the start position of every global batch from `pos` to the end of the curriculum."""
    pos = normalise(walks, pos, world_size)
    while pos.walk < len(walks):
        yield pos
        pos = advance(walks, pos, 1, world_size)


def rank_positions(walk: StageWalk, batch_start: int, rank: int) -> range:
    """Return the stage-stream positions of `rank`'s micro-batch in the global batch starting there."""
    first = batch_start + rank * walk.micro_batch_rows
    return range(first, first + walk.micro_batch_rows)


def walk_rows(
    walk: StageWalk,
    positions: np.ndarray,
    seed: int,
    *,
    block_rows: int = SHUFFLE_BLOCK_ROWS,
    window_blocks: int = SHUFFLE_WINDOW_BLOCKS,
) -> np.ndarray:
    """Return the stage row (int64) at each of a walk's positions: epoch e = position // walk.rows shuffles
    the walk's visits with the key (seed, walk index, e), and each visit names a stage row."""
    positions = np.asarray(positions, dtype=np.int64)
    epoch = positions // walk.rows
    out = np.empty_like(positions)
    for e in np.unique(epoch):
        sel = epoch == e
        key = derive_key(seed, walk.index, int(e))
        out[sel] = shuffled_rows(
            positions[sel] - e * walk.rows, walk.rows, key, block_rows=block_rows, window_blocks=window_blocks
        )
    return walk.stage_rows(out)


def walk_positions(
    walk: StageWalk,
    rows: np.ndarray,
    seed: int,
    *,
    block_rows: int = SHUFFLE_BLOCK_ROWS,
    window_blocks: int = SHUFFLE_WINDOW_BLOCKS,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (which of the stage rows `rows` each is, the walk position) for every position of the walk's
    budget at which one of `rows` is read, sorted by position: the inverse of `walk_rows` (a row has one
    position per visit per epoch; none when the walk's split does not hold it)."""
    rows = np.asarray(rows, np.int64).reshape(-1)
    if walk.visits is None:
        which, visits = np.flatnonzero((rows >= 0) & (rows < walk.rows)), rows
        visits = visits[which]
    else:
        which, visits = walk.visits.visits_of(rows)
    found, positions = [], []
    for e in range(-(-walk.budget_rows // walk.rows)):
        key = derive_key(seed, walk.index, e)
        at = e * walk.rows + shuffled_positions(
            visits, walk.rows, key, block_rows=block_rows, window_blocks=window_blocks
        )
        inside = at < walk.budget_rows
        found.append(which[inside])
        positions.append(at[inside])
    which = np.concatenate(found) if found else np.zeros(0, np.int64)
    at = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    order = np.argsort(at, kind="stable")
    return which[order], at[order]
