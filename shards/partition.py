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

Held-out rows: a stage may hold k of its N rows out of training. `Holdout` fixes a seed-independent
bijection of the stage's rows onto *slots* 0..N-1; slots [0, N-k) are the training rows and [N-k, N) the
held-out ones. A stream over either split shuffles positions within its own slot range and maps slots to
rows, so everything above holds unchanged with `rows` = the split's size: an epoch of the training stream
is every non-held-out row exactly once, and no training position can ever reach a held-out row. The
bijection moves whole runs of HOLDOUT_BLOCK_ROWS rows (shuffled within the run), so reads stay sequential
and a document packed across neighbouring rows is seldom split between training and evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gristmill.shards.shuffle import derive_key, shuffled_rows

HOLDOUT_BLOCK_ROWS = 64
_HOLDOUT_SALT = 0x486F6C644F7574  # keeps holdout keys apart from the (seed, stage, epoch) shuffle keys


@dataclass(frozen=True)
class Holdout:
    """The held-out rows of one build stage: the last `rows` slots of a fixed permutation of its rows."""

    stage_rows: int  # rows in the build stage
    rows: int  # rows held out of training
    key: int

    @classmethod
    def of_stage(cls, stage_rows: int, rows: int, stage_number: int) -> Holdout:
        """Return the holdout of `rows` rows of the build's stage `stage_number` (from 1; any seed)."""
        if not 0 < rows < stage_rows:
            raise ValueError(f"cannot hold out {rows} of {stage_rows} rows: need 0 < holdout < rows")
        return cls(stage_rows, rows, derive_key(_HOLDOUT_SALT, stage_number))

    @property
    def training_rows(self) -> int:
        """Return the rows left for training."""
        return self.stage_rows - self.rows

    def rows_at(self, slots: np.ndarray) -> np.ndarray:
        """Return the stage row (int64) in each slot; slots ≥ training_rows hold the held-out rows."""
        return shuffled_rows(slots, self.stage_rows, self.key, block_rows=HOLDOUT_BLOCK_ROWS, window_blocks=1)

    def held_out_rows(self) -> np.ndarray:
        """Return every held-out row, sorted."""
        return np.sort(self.rows_at(np.arange(self.training_rows, self.stage_rows)))


@dataclass(frozen=True)
class StageWalk:
    """One leg of a run's curriculum: a build stage as the loader walks it, its rows, budget and micro-batch
    size. A run may walk a stage more than once; `index` is the walk's place in the run's curriculum."""

    index: int  # this walk's position in the run's curriculum (it keys the walk's shuffle)
    name: str  # the build stage walked
    seq_len: int
    rows: int  # rows in one epoch of the stage
    budget_rows: int  # positions of the stage's stream the curriculum asks for (may exceed `rows`)
    micro_batch_rows: int  # rows per rank per micro-batch: micro_batch_tokens // seq_len
    holdout: Holdout | None = None  # None: the stream walks every row of the stage
    held_out: bool = False  # with a holdout: walk the held-out rows (True) or the training rows (False)

    @property
    def first_slot(self) -> int:
        """Return the holdout slot of this stream's epoch position 0 (0 without a holdout)."""
        return self.holdout.training_rows if self.held_out and self.holdout else 0

    def slot_rows(self, slots: np.ndarray) -> np.ndarray:
        """Return the stage rows in holdout `slots` (the slots themselves without a holdout)."""
        return slots if self.holdout is None else self.holdout.rows_at(slots)

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
