"""The exact inverses behind `shards find`: each undoes its forward function, checked as a property on random
shapes (visits → interleave position, row → shuffled position, stage row → its visits, stage row → walk
positions); and the walk hash that loader states pin, which a takedown keeps."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.shards.batch import micro_batch
from gristmill.shards.manifest import ShardEntry, SourceRows, StageEntry, read_manifest
from gristmill.shards.partition import StageWalk, walk_positions, walk_rows
from gristmill.shards.shuffle import shuffled_positions, shuffled_rows
from gristmill.shards.visits import StageVisits, interleave, interleaved_positions

SEEDS = range(25)


@pytest.mark.parametrize("seed", SEEDS)
def test_interleaved_positions_undoes_interleave(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 60, size=int(rng.integers(1, 9))).tolist()
    counts[int(rng.integers(len(counts)))] += 1  # at least one position
    positions = np.arange(sum(counts))
    part, index = interleave(positions, counts)
    assert np.array_equal(interleaved_positions(part, index, counts), positions)


@pytest.mark.parametrize(
    ("n", "block_rows", "window_blocks"),
    [(1, 256, 8), (2, 1, 1), (255, 256, 8), (257, 256, 8), (5000, 256, 8), (4099, 7, 5), (100, 3, 2)],
)
def test_shuffled_positions_undoes_shuffled_rows(n, block_rows, window_blocks):
    for key in (0, 17, 2**63 + 11):
        positions = np.arange(n)
        rows = shuffled_rows(positions, n, key, block_rows=block_rows, window_blocks=window_blocks)
        back = shuffled_positions(rows, n, key, block_rows=block_rows, window_blocks=window_blocks)
        assert np.array_equal(back, positions)
    with pytest.raises(ValueError, match="rows must lie"):
        shuffled_positions(np.array([n]), n, 0)


def random_stage(rng: np.random.Generator, sources: list[str]) -> StageEntry:
    """A stage of random shards, each with a random block per source (some empty, some repeated)."""
    shards = []
    for k in range(int(rng.integers(1, 6))):
        blocks = []
        for name in sources:
            rows = int(rng.integers(0, 12))
            if rows or rng.random() < 0.5:
                passes = int(rng.integers(0, 4))
                extra = int(rng.integers(0, rows + 1))
                blocks.append(
                    SourceRows(source=name, rows=rows, passes=passes, extra_rows=extra, trained_tokens=0)
                )
        rows = sum(b.rows for b in blocks)
        shards.append(
            ShardEntry(
                path=f"s/shard-{k}.arrow",
                rows=rows,
                tokens=0,
                source_tokens={},
                source_rows=blocks,
                xxh3="0",
                bytes=0,
            )
        )
    return StageEntry.of_shards("s", 1, 16, 64, shards, {name: 1.0 for name in sources})


@pytest.mark.parametrize("seed", SEEDS)
def test_visits_of_undoes_rows_at(seed):
    rng = np.random.default_rng(seed)
    sources = ["a", "b", "c"][: int(rng.integers(1, 4))]
    stage = random_stage(rng, sources)
    for holdout, held_out in ((0, False), (min(3, stage.rows // 2), False), (min(3, stage.rows // 2), True)):
        if held_out and not holdout:
            continue
        visits = StageVisits(stage, sources, holdout, held_out)
        rows = visits.rows_at(np.arange(visits.size))
        which, visit = visits.visits_of(np.arange(stage.rows))
        # every visit appears once, and is a visit of the row it names
        assert np.array_equal(np.sort(visit), np.arange(visits.size))
        assert np.array_equal(rows[visit], which)
        assert (np.diff(visit) > 0).all()


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_walk_positions_undoes_walk_rows_over_several_epochs(seed):
    rng = np.random.default_rng(seed)
    stage = random_stage(rng, ["a", "b"])
    visits = StageVisits(stage, ["a", "b"])
    if not visits.size:
        pytest.skip("a stage with no visits")
    budget = int(visits.size * rng.uniform(0.5, 3.5)) + 1
    walk = StageWalk(
        index=int(rng.integers(3)),
        name="s",
        seq_len=16,
        rows=visits.size,
        budget_rows=budget,
        micro_batch_rows=2,
        visits=visits,
    )
    positions = np.arange(budget)
    rows = walk_rows(walk, positions, seed=seed, block_rows=3, window_blocks=2)
    which, at = walk_positions(walk, np.arange(stage.rows), seed=seed, block_rows=3, window_blocks=2)
    assert np.array_equal(at, positions)  # every position of the budget, once, in order
    assert np.array_equal(which, rows)  # naming the row read there


def test_a_taken_down_row_is_all_padding_and_trains_nothing():
    tokens = np.array([[5, 6, 2, 7, 2], [0, 0, 0, 0, 0]])  # row 1: doc_offsets [0], pad id 0
    batch = micro_batch(tokens, np.array([0, 3, 5, 0]), np.array([3, 1]))
    assert not batch["loss_mask"][1].any() and batch["loss_mask"][0].sum() == 3
    assert batch["cu_seqlens"].tolist() == [0, 3, 4, 8]  # the empty row is one padding segment
    with pytest.raises(ValueError, match="row 1"):
        micro_batch(tokens, np.array([0, 3, 5]), np.array([3, 0]))  # no offsets at all


def test_the_walk_hash_ignores_files_and_tokens_but_not_rows(stream_repeated_build):
    manifest = read_manifest(stream_repeated_build.root)
    shard = manifest.stages[0].shards[0]
    moved = shard.model_copy(update={"path": "elsewhere.arrow", "xxh3": "1", "tokens": 0, "bytes": 1})
    same = manifest.model_copy(update={"stages": [manifest.stages[0].model_copy(update={"shards": [moved]})]})
    resized = shard.model_copy(
        update={"source_rows": [b.model_copy(update={"passes": b.passes + 1}) for b in shard.source_rows]}
    )
    other = manifest.model_copy(
        update={"stages": [manifest.stages[0].model_copy(update={"shards": [resized]})]}
    )
    base = manifest.model_copy(update={"stages": [manifest.stages[0].model_copy(update={"shards": [shard]})]})
    assert same.walk_hash() == base.walk_hash() != other.walk_hash()
    assert base.computed_hash() != same.computed_hash()
