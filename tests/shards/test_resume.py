"""Resume continues the exact global sequence of samples: any step, other world sizes, workers, torchdata."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from gristmill.errors import BuildError
from gristmill.shards.loader import ShardStream
from gristmill.shards.torch_dataset import ShardDataset

OPTS = dict(micro_batch_tokens=64, seed=7, shuffle_block_rows=4, shuffle_window_blocks=2)


def global_sequence(root: str, world: int, state: dict | None = None) -> list[tuple[str, list[int]]]:
    """Return every global batch as (stage, rows of rank 0, then rank 1, …)."""
    per_rank = []
    for rank in range(world):
        stream = ShardStream(root, rank=rank, world_size=world, **OPTS)
        if state is not None:
            stream.load_state_dict(state)
        per_rank.append(list(stream))
    return [
        (parts[0]["stage"], [r for p in parts for r in p["row_ids"].tolist()]) for parts in zip(*per_rank)
    ]


def by_stage(batches: list[tuple[str, list[int]]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for stage, rows in batches:
        out.setdefault(stage, []).extend(rows)
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("build", ["stream_build", "stream_repeated_build"])
def test_resume_at_every_step_gives_the_uninterrupted_rows(request, build, world):
    stream_build = request.getfixturevalue(build)
    full = global_sequence(stream_build.root, world)
    head = ShardStream(stream_build.root, world_size=world, **OPTS)
    for step in range(len(full) + 1):
        assert global_sequence(stream_build.root, world, head.state_at(step)) == full[step:]


@pytest.mark.parametrize(("before", "after"), [(1, 2), (2, 3), (3, 8), (8, 1), (3, 2)])
@pytest.mark.parametrize("build", ["stream_build", "stream_repeated_build"])
def test_resume_on_another_world_size_continues_the_same_samples(request, build, before, after):
    stream_build = request.getfixturevalue(build)
    reference = ShardStream(stream_build.root, **OPTS)
    first = global_sequence(stream_build.root, before)
    for step in range(len(first) + 1):
        state = ShardStream(stream_build.root, world_size=before, **OPTS).state_at(step)
        rest = global_sequence(stream_build.root, after, state)
        seen = by_stage(first[:step] + rest)
        for plan in reference.walks:
            rows = seen.get(plan.name, [])
            # the samples are the stage's stream, in order, with no gap and no repeat; only the tail that
            # does not fill a whole global batch of the new world size is left out
            assert rows == reference.rows_at(plan, np.arange(len(rows))).tolist()
            assert plan.rows - len(rows) < plan.micro_batch_rows * max(before, after)


def test_state_dict_tracks_what_was_yielded(stream_build):
    stream = ShardStream(stream_build.root, world_size=2, rank=1, **OPTS)
    it = iter(stream)
    for step in range(12):
        assert stream.state_dict() == stream.state_at(step)
        next(it)
    state = stream.state_dict()
    assert state["stage"] == "s2-32" and state["rows"] == 7 * 4  # 5 batches of 8 rows in s1, then 7 of 4


def test_dataloader_workers_resume_from_the_step_count(stream_build):
    make = lambda: ShardDataset(stream_build.root, world_size=2, rank=0, **OPTS)  # noqa: E731
    full = [b["row_ids"].tolist() for b in DataLoader(make(), batch_size=None, num_workers=2)]
    for step in (0, 3, 7, len(full)):
        dataset = make()
        dataset.load_state_dict(make().state_at(step))
        rest = [b["row_ids"].tolist() for b in DataLoader(dataset, batch_size=None, num_workers=3)]
        assert rest == full[step:]


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_stateful_dataloader_resumes_mid_epoch(stream_build, workers):
    make = lambda: ShardDataset(stream_build.root, world_size=3, rank=2, **OPTS)  # noqa: E731
    full = [b["row_ids"].tolist() for b in StatefulDataLoader(make(), batch_size=None, num_workers=workers)]
    for step in (1, 5, len(full) - 1):
        loader = StatefulDataLoader(make(), batch_size=None, num_workers=workers)
        it = iter(loader)
        got = [next(it)["row_ids"].tolist() for _ in range(step)]
        saved = loader.state_dict()
        del it, loader
        resumed = StatefulDataLoader(make(), batch_size=None, num_workers=workers)
        resumed.load_state_dict(saved)
        got += [b["row_ids"].tolist() for b in resumed]
        assert got == full


def test_a_state_from_another_build_or_seed_is_refused(stream_build, stream_make_build):
    state = ShardStream(stream_build.root, **OPTS).state_at(3)
    other = stream_make_build([("s1-16", 16, [40]), ("s2-32", 32, [35])], seed=1)
    with pytest.raises(BuildError, match="walks hash to"):
        ShardStream(other.root, **OPTS).load_state_dict(state)
    with pytest.raises(BuildError, match="seed 7"):
        ShardStream(stream_build.root, micro_batch_tokens=64, seed=8).load_state_dict(state)
    with pytest.raises(BuildError, match="stage"):
        ShardStream(
            stream_build.root, micro_batch_tokens=64, seed=7, curriculum=[("s2-32", 32 * 35)]
        ).load_state_dict(state)
