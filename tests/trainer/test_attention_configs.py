"""Attention launch configs: pinned per (GPU class, dtype, head dim), pruned by shared memory."""

from __future__ import annotations

import pytest
import torch

from gristmill.trainer.kernels import attention_configs as configs
from gristmill.trainer.kernels.attention_configs import (
    CANDIDATES,
    FP32_CONFIG,
    LaunchConfig,
    select_config,
    shared_memory_bytes,
)

H100_SMEM = 227 * 1024  # sm90's opt-in shared memory per block
A100_SMEM = 163 * 1024


@pytest.mark.parametrize("kernel", configs.KERNELS)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_same_key_same_config_and_it_fits(kernel, head_dim):
    picks = {select_config(kernel, "sm90", torch.bfloat16, head_dim, H100_SMEM) for _ in range(3)}
    assert len(picks) == 1
    assert shared_memory_bytes(kernel, picks.pop(), head_dim, 2) <= H100_SMEM


def test_table_entry_wins_when_it_fits(monkeypatch):
    entry = {k: LaunchConfig(64, 32, 4, 2) for k in configs.KERNELS}
    monkeypatch.setitem(configs.TABLE, ("sm90", "bfloat16", 128), entry)
    assert select_config("dq", "sm90", torch.bfloat16, 128, H100_SMEM) == entry["dq"]
    # another GPU class or head dim does not read it
    assert select_config("dq", "sm80", torch.bfloat16, 128, A100_SMEM) != entry["dq"]
    assert select_config("dq", "sm90", torch.bfloat16, 64, H100_SMEM) == CANDIDATES["dq"][0]


def test_configs_past_shared_memory_are_pruned(monkeypatch):
    big = LaunchConfig(128, 128, 8, 4)
    monkeypatch.setitem(configs.TABLE, ("sm80", "bfloat16", 128), {k: big for k in configs.KERNELS})
    limit = 64 * 1024
    chosen = select_config("forward", "sm80", torch.bfloat16, 128, limit)
    assert chosen != big and shared_memory_bytes("forward", chosen, 128, 2) <= limit
    # the first candidate that fits, in the fixed order
    fitting = [c for c in CANDIDATES["forward"] if shared_memory_bytes("forward", c, 128, 2) <= limit]
    assert chosen == fitting[0]
    with pytest.raises(ValueError, match="no dkdv attention config fits 1024 bytes"):
        select_config("dkdv", "sm80", torch.bfloat16, 128, 1024)


def test_shared_memory_estimate():
    # forward, 128 × 64 tiles, head dim 128 (padded 128), 2 stages, bf16: q + 2 × (k + v)
    want = (128 * 128 + 2 * 2 * 64 * 128) * 2
    assert shared_memory_bytes("forward", LaunchConfig(128, 64, 4, 2), 128, 2) == want
    # head dim 80 pads to 128
    assert shared_memory_bytes("dq", LaunchConfig(64, 64, 4, 1), 80, 2) == (2 * 64 * 128 + 2 * 64 * 128) * 2


def test_fp32_gets_small_fixed_blocks():
    assert select_config("forward", "sm90", torch.float32, 128, H100_SMEM) == FP32_CONFIG
    assert FP32_CONFIG.block_m <= 32 and FP32_CONFIG.block_n <= 32
