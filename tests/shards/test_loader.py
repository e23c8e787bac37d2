"""What a micro-batch holds (targets, loss mask, positions, cu_seqlens), curriculum, workers, bad shards."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gristmill.errors import BuildError, ConfigError
from gristmill.shards.batch import IGNORE_INDEX, micro_batch
from gristmill.shards.loader import ShardStream
from gristmill.shards.torch_dataset import ShardDataset


def reference_row(tokens: np.ndarray, offsets: np.ndarray, cross_document_targets: bool):
    """The micro-batch fields of one row, position by position (slow and obvious)."""
    seq_len, used = len(tokens) - 1, int(offsets[-1])
    starts = [int(o) for o in offsets[:-1] if o < seq_len] + ([used] if used < seq_len else [])
    positions, mask, targets = [], [], []
    for j in range(seq_len):
        positions.append(j - max(s for s in starts if s <= j))
        keep = j + 1 < used and (cross_document_targets or j + 1 not in offsets[1:-1])
        mask.append(keep)
        targets.append(int(tokens[j + 1]) if keep else IGNORE_INDEX)
    lengths = np.diff([*starts, seq_len])
    return positions, mask, targets, starts, lengths


@pytest.mark.parametrize("cross", [False, True])
def test_fields_match_the_row_by_row_reference(stream_build, cross):
    stream = ShardStream(stream_build.root, micro_batch_tokens=96, seed=3, cross_document_targets=cross)
    checked = 0
    for batch in stream:
        name, seq_len = batch["stage"], batch["seq_len"]
        cu, expected_cu, max_len = batch["cu_seqlens"], [], 0
        for i, row in enumerate(batch["row_ids"]):
            tokens, offsets = stream_build.tokens[name][row], stream_build.offsets[name][row]
            positions, mask, targets, starts, lengths = reference_row(tokens, offsets, cross)
            assert batch["input_ids"][i].tolist() == tokens[:-1].tolist()
            assert batch["position_ids"][i].tolist() == positions
            assert batch["loss_mask"][i].tolist() == mask
            assert batch["targets"][i].tolist() == targets
            expected_cu += [i * seq_len + s for s in starts]
            max_len = max(max_len, int(lengths.max()))
            checked += 1
        assert cu.dtype == np.int32 and cu.tolist() == [*expected_cu, len(batch["row_ids"]) * seq_len]
        assert batch["max_seqlen"] == max_len
    assert checked == 36 + 33  # s1: 6 rows a batch, 6 batches of its 40 rows; s2: 3 a batch, 11 of its 35


def test_eos_target_is_masked_unless_asked(stream_build):
    tokens = stream_build.tokens["s1-16"][:2]
    offsets = [np.array([0, 5, 17], np.int32), np.array([0, 9], np.int32)]
    out = micro_batch(tokens, np.concatenate(offsets), np.array([3, 2]))
    assert not out["loss_mask"][0, 4] and out["targets"][0, 4] == IGNORE_INDEX  # eos → next document
    assert out["loss_mask"][0, 15]  # row fully used: the last input still has a real target
    assert out["loss_mask"][1].tolist() == [True] * 8 + [False] * 8  # padding from 9 on
    assert out["cu_seqlens"].tolist() == [0, 5, 16, 25, 32]  # row 2's padding is its own segment
    assert out["position_ids"][1, 9] == 0
    kept = micro_batch(tokens, np.concatenate(offsets), np.array([3, 2]), cross_document_targets=True)
    assert kept["loss_mask"][0, 4] and kept["targets"][0, 4] == tokens[0, 5]


def test_bad_doc_offsets_are_refused():
    tokens = np.zeros((2, 9), np.int32)
    with pytest.raises(ValueError, match="row 1"):
        micro_batch(tokens, np.array([0, 8, 0, 4, 4]), np.array([2, 3]))
    with pytest.raises(ValueError, match="row 0"):
        micro_batch(tokens, np.array([0, 10, 0, 4]), np.array([2, 2]))


def test_curriculum_switches_at_the_manifest_budget(stream_build):
    stream = ShardStream(stream_build.root, micro_batch_tokens=64, world_size=1)
    stages = [b["stage"] for b in stream]
    # s1: 40 rows, 4 per batch → 10 batches; s2: 35 rows, 2 per batch → 17 batches (1 row dropped)
    assert stages == ["s1-16"] * 10 + ["s2-32"] * 17


def test_curriculum_override_in_tokens_with_epochs(stream_build):
    curriculum = [("s2-32", 32 * 8), ("s1-16", 16 * 100)]  # 8 rows of s2, then 2.5 epochs of s1
    stream = ShardStream(stream_build.root, micro_batch_tokens=64, seed=4, curriculum=curriculum)
    batches = list(stream)
    assert [b["stage"] for b in batches] == ["s2-32"] * 4 + ["s1-16"] * 25
    assert {b["input_ids"].size for b in batches} == {64}  # tokens per batch kept across stages
    s1 = np.concatenate([b["row_ids"] for b in batches if b["stage"] == "s1-16"])
    assert sorted(s1[:40]) == list(range(40)) and sorted(s1[40:80]) == list(range(40))
    assert not np.array_equal(s1[:40], s1[40:80])  # each epoch is shuffled anew
    assert len(set(s1[80:].tolist())) == 20


def test_bad_curriculum_and_batch_size_are_config_errors(stream_build):
    with pytest.raises(ConfigError, match="no-such"):
        ShardStream(stream_build.root, micro_batch_tokens=64, curriculum=[("no-such", 100)])
    with pytest.raises(ConfigError, match="micro_batch_tokens"):
        ShardStream(stream_build.root, micro_batch_tokens=20)
    with pytest.raises(ConfigError, match="rank"):
        ShardStream(stream_build.root, micro_batch_tokens=64, rank=2, world_size=2)


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_dataloader_order_equals_single_process(stream_build, workers):
    kwargs = dict(micro_batch_tokens=64, rank=1, world_size=3, seed=11)
    expected = [b["row_ids"].tolist() for b in ShardStream(stream_build.root, **kwargs)]
    loader = DataLoader(ShardDataset(stream_build.root, **kwargs), batch_size=None, num_workers=workers)
    got = []
    for batch in loader:
        assert batch["input_ids"].dtype == torch.int64 and batch["cu_seqlens"].dtype == torch.int32
        assert batch["loss_mask"].dtype == torch.bool
        got.append(batch["row_ids"].tolist())
    assert got == expected


def test_rank_and_world_size_default_to_a_single_process(stream_build):
    dataset = ShardDataset(stream_build.root, micro_batch_tokens=64)
    assert (dataset.stream.rank, dataset.stream.world_size) == (0, 1)


def test_the_first_batch_opens_only_its_own_shards(stream_make_build):
    build = stream_make_build([("tiny", 8, [2] * 300)])
    stream = ShardStream(build.root, micro_batch_tokens=32, seed=2)
    first = next(iter(stream))
    expected = {f"tiny/shard-{r // 2:05d}.arrow" for r in first["row_ids"].tolist()}
    assert set(stream.source.open_shards) == expected  # nothing scales with the number of shards or rows


def test_corrupt_shard_is_named(stream_build_copy):
    path = Path(stream_build_copy.root) / "s1-16" / "shard-00001.arrow"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BuildError, match="checksum mismatch") as err:
        list(ShardStream(stream_build_copy.root, micro_batch_tokens=64))
    assert err.value.path.endswith("s1-16/shard-00001.arrow")


def test_missing_shard_is_named(stream_build_copy):
    os.remove(os.path.join(stream_build_copy.root, "s2-32", "shard-00002.arrow"))
    with pytest.raises(BuildError, match="missing") as err:
        list(ShardStream(stream_build_copy.root, micro_batch_tokens=64))
    assert err.value.path.endswith("s2-32/shard-00002.arrow")


def test_held_out_stream_walks_exactly_the_rows_training_never_sees(stream_build):
    holdout = {"s1-16": 12}
    # three epochs of s1: every epoch is reshuffled, none may reach a held-out row
    train = ShardStream(
        stream_build.root,
        micro_batch_tokens=64,
        seed=4,
        holdout_rows=holdout,
        curriculum=[("s1-16", 16 * 28 * 3), ("s2-32", 32 * 35)],
    )
    trained = [b["row_ids"].tolist() for b in train if b["stage"] == "s1-16"]
    epochs = np.array(trained).reshape(3, 28)
    evaluate = ShardStream(
        stream_build.root, micro_batch_tokens=64, seed=4, holdout_rows=holdout, held_out=True
    )
    held = [b for b in evaluate]
    assert {b["stage"] for b in held} == {"s1-16"} and len(held) == 3  # 12 rows, 4 a batch
    held_rows = sorted(r for b in held for r in b["row_ids"].tolist())
    assert held_rows == train.curriculum.held_out_rows("s1-16").tolist()
    for epoch in epochs:
        assert sorted(epoch.tolist() + held_rows) == list(range(40))
    assert not np.array_equal(epochs[0], epochs[1])
    for batch in held:  # the rows really are those rows
        assert np.array_equal(batch["input_ids"][:, 0] - 1000, batch["row_ids"])


def test_holdout_is_the_same_for_every_seed_and_world_size(stream_build):
    def held(seed: int, world: int) -> list[int]:
        rows = []
        for rank in range(world):
            stream = ShardStream(
                stream_build.root,
                micro_batch_tokens=32,
                rank=rank,
                world_size=world,
                seed=seed,
                holdout_rows=8,
                held_out=True,
            )
            rows += [r for b in stream if b["stage"] == "s1-16" for r in b["row_ids"].tolist()]
        return sorted(rows)

    assert held(0, 1) == held(9, 2) == held(3, 4)
    assert len(held(0, 1)) == 8


def test_bad_holdouts_are_config_errors(stream_build):
    with pytest.raises(ConfigError, match="cannot hold out 40"):
        ShardStream(stream_build.root, micro_batch_tokens=64, holdout_rows={"s1-16": 40})
    with pytest.raises(ConfigError, match="no-such"):
        ShardStream(stream_build.root, micro_batch_tokens=64, holdout_rows={"no-such": 3})
    with pytest.raises(ConfigError, match="holds none out"):
        ShardStream(stream_build.root, micro_batch_tokens=64, held_out=True)
    with pytest.raises(ConfigError, match="no held-out rows"):
        ShardStream(
            stream_build.root,
            micro_batch_tokens=64,
            holdout_rows={"s1-16": 4},
            held_out=True,
            curriculum=[("s2-32", 32 * 4)],
        )


def test_resume_keeps_the_holdout_and_refuses_another(stream_build):
    kwargs = dict(micro_batch_tokens=64, seed=2, holdout_rows={"s2-32": 5})
    whole = [b["row_ids"].tolist() for b in ShardStream(stream_build.root, **kwargs)]
    first = ShardStream(stream_build.root, **kwargs)
    state = first.state_at(13)  # mid-way through s2
    resumed = ShardStream(stream_build.root, **kwargs)
    resumed.load_state_dict(state)
    assert [b["row_ids"].tolist() for b in resumed] == whole[13:]
    for other in (dict(kwargs, holdout_rows={"s2-32": 6}), dict(kwargs, holdout_rows=0)):
        with pytest.raises(BuildError, match="holding out"):
            ShardStream(stream_build.root, **other).load_state_dict(state)
    plain = ShardStream(stream_build.root, micro_batch_tokens=64, seed=2).state_at(3)
    with pytest.raises(BuildError, match="holding out"):
        ShardStream(stream_build.root, **kwargs).load_state_dict(plain)
