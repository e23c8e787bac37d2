"""Epochs by reference: a stage's visits from its source blocks' counts, interleaved evenly and exactly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import read_manifest
from gristmill.shards.visits import StageVisits, interleave


@pytest.mark.parametrize("counts", [[5], [3, 7], [1, 1, 1], [10, 0, 4, 25, 1], [997, 3, 250, 40, 8, 1, 1]])
def test_interleave_is_exact_even_and_one_to_one(counts):
    total = sum(counts)
    part, index = interleave(np.arange(total), counts)
    for i, n in enumerate(counts):
        mine = np.flatnonzero(part == i)
        assert len(mine) == n and np.array_equal(index[mine], np.arange(n))  # exact, in order
        if n:  # evenly: every prefix holds its share of part i, within one position per level of the tree
            held = np.cumsum(part == i)
            share = np.arange(1, total + 1) * n / total
            assert np.abs(held - share).max() <= np.ceil(np.log2(len(counts))) + 1


def test_interleave_of_a_slice_equals_the_interleave_of_the_whole():
    counts = [11, 6, 29]
    whole = interleave(np.arange(46), counts)
    part = interleave(np.arange(17, 33), counts)
    assert np.array_equal(part[0], whole[0][17:33]) and np.array_equal(part[1], whole[1][17:33])


def test_each_row_is_visited_as_its_block_says(stream_repeated_build):
    manifest = read_manifest(stream_repeated_build.root)
    names = [s.name for s in manifest.sources]
    for stage in manifest.stages:
        visits = StageVisits(stage, names)
        assert visits.size == stage.trained_rows == sum(s.visits for s in stage.shards)
        counted = Counter(visits.rows_at(np.arange(visits.size)).tolist())
        expected, first = Counter(), 0
        for shard in stage.shards:
            for block in shard.source_rows:
                for r in range(block.rows):
                    visits_of_row = block.passes + (r < block.extra_rows)
                    if visits_of_row:
                        expected[first + r] = visits_of_row
                first += block.rows
        assert counted == expected


def test_held_out_rows_come_from_every_source_and_never_train(stream_repeated_build):
    manifest = read_manifest(stream_repeated_build.root)
    stage = manifest.stages[0]
    curriculum = Curriculum(manifest, {stage.name: 10})
    held = curriculum.held_out_rows(stage.name)
    assert len(held) == 10 == len(set(held.tolist()))
    training = curriculum.visits(stage.name)
    assert not set(training.rows_at(np.arange(training.size)).tolist()) & set(held.tolist())
    walked = curriculum.visits(stage.name, held_out=True)
    assert sorted(walked.rows_at(np.arange(walked.size)).tolist()) == held.tolist()  # each once
    sources = np.concatenate(
        [
            np.repeat([b.source for b in shard.source_rows], [b.rows for b in shard.source_rows])
            for shard in stage.shards
        ]
    )
    share = Counter(sources[held].tolist())
    assert share == {"web": 5, "code": 3, "books": 2}  # in proportion to the stored rows
    again = Curriculum(manifest, {stage.name: 10}).held_out_rows(stage.name)
    assert np.array_equal(held, again)  # fixed by the build alone
