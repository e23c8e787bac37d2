"""Every row of an epoch is yielded exactly once over ranks and workers; the rest is the documented tail."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gristmill.shards.loader import ShardStream
from gristmill.shards.partition import (
    Position,
    StageWalk,
    advance,
    global_batches,
    rank_positions,
)


def skipped(walk: StageWalk, world_size: int) -> range:
    """The positions a walk from its start skips at its end: less than one global batch of its budget."""
    used = walk.batches(world_size) * walk.global_rows(world_size)
    return range(used, max(used, walk.budget_rows))


PLANS = [
    StageWalk(0, "a", 16, rows=40, budget_rows=40, micro_batch_rows=4),
    StageWalk(1, "b", 32, rows=35, budget_rows=35, micro_batch_rows=2),
]


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_global_batches_cover_whole_batches_of_each_stage(world):
    starts = list(global_batches(PLANS, Position(0, 0), world))
    for plan in PLANS:
        mine = [p.rows for p in starts if p.walk == plan.index]
        g = plan.global_rows(world)
        assert mine == list(range(0, plan.rows // g * g, g))
        assert skipped(plan, world) == range(plan.rows // g * g, plan.rows)


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_advance_matches_walking(world):
    starts = list(global_batches(PLANS, Position(0, 0), world))
    end = Position(len(PLANS), 0)
    for k in range(len(starts) + 3):
        assert advance(PLANS, Position(0, 0), k, world) == (starts[k] if k < len(starts) else end)


def test_ranks_split_a_global_batch_into_disjoint_runs():
    plan = PLANS[0]
    runs = [rank_positions(plan, 8, r) for r in range(2)]
    assert list(runs[0]) + list(runs[1]) == list(range(8, 16))


def test_a_walk_with_less_than_a_global_batch_left_is_over():
    assert advance(PLANS, Position(0, 36), 0, 2) == Position(1, 0)  # 4 rows left < 8: next walk


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("holdout", [0, 7])
@pytest.mark.parametrize("build", ["stream_build", "stream_repeated_build"])
def test_every_row_visited_as_often_as_the_plan_says(request, build, world, workers, holdout):
    """workers=0 is the plain iterator; W ≥ 1 are dataloader workers (DataLoader order: test_loader).

    In `stream_build` every row is stored for one visit; in `stream_repeated_build` the source blocks say
    how often (shards/visits.py). Over ranks and workers, each row is yielded exactly as often as its
    visits in the epoch say, but for the documented tail; no held-out row is ever yielded."""
    stream_build = request.getfixturevalue(build)
    seen: dict[str, Counter] = {name: Counter() for name in stream_build.tokens}
    reference = None
    for rank in range(world):
        stream = ShardStream(
            stream_build.root,
            micro_batch_tokens=64,
            rank=rank,
            world_size=world,
            seed=5,
            shuffle_block_rows=4,
            shuffle_window_blocks=3,
            holdout_rows=holdout,
        )
        parts = [iter(stream)] if workers == 0 else [stream.iterate(w, workers) for w in range(workers)]
        for part in parts:
            for batch in part:
                seen[batch["stage"]].update(batch["row_ids"].tolist())
                assert batch["input_ids"].shape == (64 // batch["seq_len"], batch["seq_len"])
                # the marker token says which row this really is
                assert np.array_equal(batch["input_ids"][:, 0] - 1000, batch["row_ids"])
        reference = stream
    for plan in reference.walks:
        rows = seen[plan.name]
        planned = Counter(plan.visits.rows_at(np.arange(plan.visits.size)).tolist())
        dropped = skipped(plan, world)
        expected_dropped = Counter(reference.rows_at(plan, np.arange(dropped.start, dropped.stop)).tolist())
        held_out = set(reference.curriculum.held_out_rows(plan.name).tolist())
        assert len(held_out) == holdout
        assert rows + expected_dropped == planned  # each row, as often as planned
        assert not (set(rows) | set(expected_dropped)) & held_out
        assert sum(expected_dropped.values()) == plan.rows % plan.global_rows(world)
        stored = set(range(len(stream_build.tokens[plan.name])))
        if build == "stream_build":
            assert set(planned) | held_out == stored and max(planned.values()) == 1
