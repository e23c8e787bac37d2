"""A run's data order both ways: the rows each optimizer step reads (as the loader yields them, rank by rank),
and for any row the steps that read it (the exact inverse)."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.errors import ConfigError
from gristmill.shards.loader import ShardStream
from gristmill.shards.manifest import read_manifest
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.curriculum import loader_curriculum
from gristmill.trainer.data_steps import RunSchedule


def config(builds, **overrides):
    base = dict(
        build=str(builds.train),
        model="llama-tiny",
        output_dir="unused",
        micro_batch_tokens=256,
        seed=3,
        stages=[
            {"name": "stage-1-64", "tokens_per_step": 1024, "tokens": 220 * 1024},  # over two epochs
            {"name": "stage-2-128", "tokens_per_step": 2048},
        ],
    )
    return parse_train_config({**base, **overrides})


@pytest.mark.parametrize("world_size", [1, 2])
def test_step_rows_are_what_each_rank_reads(builds, world_size):
    cfg = config(builds, eval={"holdout_rows": 6, "every_steps": 5})
    manifest = read_manifest(str(builds.train))
    schedule = RunSchedule.of(cfg, manifest, world_size)
    streams = [
        ShardStream(
            cfg.build,
            micro_batch_tokens=cfg.micro_batch_tokens,
            rank=rank,
            world_size=world_size,
            seed=cfg.seed,
            curriculum=loader_curriculum(schedule.stages),
            holdout_rows={"stage-1-64": 6},
        )
        for rank in range(world_size)
    ]
    yielded = [iter(s) for s in streams]
    for step in range(1, schedule.total_steps + 1):
        rows = schedule.step_rows(step)
        for batch in rows.micro_batches:  # in the order the trainer draws them on each rank
            got = next(yielded[batch.rank])
            assert got["stage"] == rows.stage and np.array_equal(got["row_ids"], batch.rows), (step, batch)
    for s in streams:
        assert next(iter(s.iterate()), None) is not None  # (a fresh iteration starts over)
        s.close()


def test_row_steps_is_the_inverse_of_step_rows(builds):
    manifest = read_manifest(str(builds.train))
    schedule = RunSchedule.of(config(builds), manifest, world_size=2)
    reads: dict = {}
    for step in range(1, schedule.total_steps + 1):
        rows = schedule.step_rows(step)
        for batch in rows.micro_batches:
            for row in batch.rows.tolist():
                reads.setdefault((rows.stage, row), []).append((step, batch.micro_batch, batch.rank))
    for stage in manifest.stages:
        inverse: dict = {}
        for read in schedule.row_steps(stage.name, np.arange(stage.rows)):
            inverse.setdefault((stage.name, read.row), []).append((read.step, read.micro_batch, read.rank))
        assert inverse == {k: v for k, v in reads.items() if k[0] == stage.name}
    assert max(len(v) for v in reads.values()) > 1  # the first stage is walked more than once


def test_a_step_outside_the_run_is_refused(builds):
    schedule = RunSchedule.of(config(builds), read_manifest(str(builds.train)))
    with pytest.raises(ConfigError, match="not in the run's steps"):
        schedule.step_rows(schedule.total_steps + 1)
