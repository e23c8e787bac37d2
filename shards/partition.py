"""Which shuffled positions each global batch, rank and dataloader worker gets: pure functions.

The global sequence of samples is defined once, independent of the world size: within stage s the
samples are the shuffled positions 0, 1, 2, … of the stage's stream (position q is row
`shuffled_rows(q mod N_s)` of epoch q // N_s). A global batch is the next G = micro_batch_rows × world_size
positions; rank r takes the r-th run of micro_batch_rows of them. Hence a resume state is just
(stage, positions consumed in it): on another world size the stream goes on at the same position, only cut
into batches of a different size.

A stage ends when fewer than G positions of its budget are left: those positions (the tail of the last
epoch's permutation) are skipped, and the next global batch is the first of the next stage, so batches
never mix sequence lengths. Within one rank, micro-batch k (counted from where the iterator started)
belongs to dataloader worker k mod W, so round-robin reading of the workers restores the order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StagePlan:
    """One curriculum stage as the loader walks it: its rows, budget and micro-batch size."""

    index: int
    name: str
    seq_len: int
    rows: int  # rows in one epoch of the stage
    budget_rows: int  # positions of the stage's stream the curriculum asks for (may exceed `rows`)
    micro_batch_rows: int  # rows per rank per batch: tokens per rank batch // seq_len

    def global_rows(self, world_size: int) -> int:
        """Return the rows in one global batch (all ranks) of this stage."""
        return self.micro_batch_rows * world_size

    def batches(self, world_size: int, start: int = 0) -> int:
        """Return how many whole global batches fit in the budget from position `start`."""
        return max(0, self.budget_rows - start) // self.global_rows(world_size)


@dataclass(frozen=True, order=True)
class Position:
    """A place in the curriculum: `rows` positions consumed in stage `stage` (len(plans): the end)."""

    stage: int
    rows: int


def normalise(plans: list[StagePlan], pos: Position, world_size: int) -> Position:
    """Return `pos` moved past stages whose budget has no whole global batch left."""
    stage, rows = pos.stage, pos.rows
    while stage < len(plans) and plans[stage].batches(world_size, rows) == 0:
        stage, rows = stage + 1, 0
    return Position(stage, rows)


def advance(plans: list[StagePlan], pos: Position, batches: int, world_size: int) -> Position:
    """Return the position after `batches` more global batches from `pos` (clamped at the end)."""
    if batches < 0:
        raise ValueError(f"cannot advance by a negative number of batches ({batches})")
    pos = normalise(plans, pos, world_size)
    while batches and pos.stage < len(plans):
        plan = plans[pos.stage]
        take = min(batches, plan.batches(world_size, pos.rows))
        batches -= take
        pos = Position(pos.stage, pos.rows + take * plan.global_rows(world_size))
        pos = normalise(plans, pos, world_size)
    return pos


def global_batches(plans: list[StagePlan], pos: Position, world_size: int) -> Iterator[Position]:
    """Yield the start position of every global batch from `pos` to the end of the curriculum."""
    pos = normalise(plans, pos, world_size)
    while pos.stage < len(plans):
        yield pos
        pos = advance(plans, pos, 1, world_size)


def rank_positions(plan: StagePlan, batch_start: int, rank: int) -> range:
    """Return the stage-stream positions of `rank`'s micro-batch in the global batch starting there."""
    first = batch_start + rank * plan.micro_batch_rows
    return range(first, first + plan.micro_batch_rows)


def owned_by_worker(batch_index: int, worker: int, num_workers: int) -> bool:
    """Return True when the rank's micro-batch number `batch_index` is read by dataloader worker `worker`."""
    return batch_index % num_workers == worker


def dropped_positions(plan: StagePlan, start: int, world_size: int) -> range:
    """Return the stage-stream positions skipped at the end of the stage when walked from `start`."""
    used = start + plan.batches(world_size, start) * plan.global_rows(world_size)
    return range(used, max(used, plan.budget_rows))
