"""Attention launch configs: the runtime picks the table's pin per (GPU class, dtype, head dim), and a key the
table lacks gets the fallback (compiled spill-free at every padded head dim by test_kernels_aot.py), never
a spilling candidate. The GPU queries are monkeypatched: no GPU is needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gristmill.trainer.kernels import aot, attention
from gristmill.trainer.kernels import attention_configs as configs
from gristmill.trainer.kernels.attention_configs import (
    FALLBACK,
    KERNELS,
    TABLE,
    LaunchConfig,
    Pinned,
    fallback_dtype,
    padded_head_dim,
    rank_key,
    resident_warps,
    select_config,
)

A100 = (8, 0), 163 * 1024
H100 = (9, 0), 227 * 1024
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@pytest.fixture
def fake_gpu(monkeypatch):
    """`fake_gpu(capability, shared_limit)`: the attention launcher sees a CUDA device of that class."""

    def install(capability: tuple[int, int], shared_limit: int) -> None:
        props = SimpleNamespace(shared_memory_per_block_optin=shared_limit, shared_memory_per_block=48 * 1024)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
        monkeypatch.setattr(attention, "interpreting", lambda: False)

    return install


def runtime_pick(kernel: str, dtype: torch.dtype, head_dim: int, n_heads: int = 8) -> LaunchConfig:
    """The config attention.py's launcher takes for q of this dtype and head dim on the (fake) device."""
    q = torch.empty(4, n_heads, head_dim, dtype=dtype)
    return attention._config(kernel, q, None)


def test_table_covers_both_targets_and_every_preset_head_dim():
    head_dims = {model.head_dim for model in aot.preset_shapes()}
    assert {64, 128} <= head_dims
    for target in ("sm80", "sm90"):
        for d in head_dims:
            entry = TABLE[(target, "bfloat16", d)]
            assert set(entry) == set(KERNELS)
            for pinned in entry.values():
                assert pinned.shared_bytes <= aot.TARGETS[target].shared_limit
                assert pinned.source in ("ranked", "tuned")


@pytest.mark.parametrize("key", sorted(TABLE), ids=lambda k: f"{k[0]}-{k[1]}-d{k[2]}")
def test_runtime_picks_the_table_config(key, fake_gpu):
    gpu, dtype, head_dim = key
    limit = aot.TARGETS[gpu].shared_limit if gpu in aot.TARGETS else 227 * 1024
    fake_gpu((int(gpu[2]), int(gpu[3:])), limit)
    for kernel in KERNELS:
        assert runtime_pick(kernel, DTYPES[dtype], head_dim) == TABLE[key][kernel].config


# Keys the table lacks: other GPU classes (with their shared memory), fp16, head dims no preset has.
LACKING = [
    ("sm86", (8, 6), 99 * 1024, torch.bfloat16, 64),  # A10, RTX 3090
    ("sm89", (8, 9), 99 * 1024, torch.bfloat16, 128),  # L4, L40S, RTX 4090
    ("sm100", (10, 0), 227 * 1024, torch.bfloat16, 128),  # B200
    ("sm120", (12, 0), 99 * 1024, torch.bfloat16, 256),  # RTX 5090
    ("sm90 fp16", (9, 0), 227 * 1024, torch.float16, 128),
    ("sm80 head dim 96", (8, 0), 163 * 1024, torch.bfloat16, 96),
    ("sm90 head dim 32", (9, 0), 227 * 1024, torch.bfloat16, 32),
    ("sm80 head dim 256", (8, 0), 163 * 1024, torch.bfloat16, 256),
]


@pytest.mark.parametrize(
    ("name", "capability", "limit", "dtype", "head_dim"), LACKING, ids=[k[0] for k in LACKING]
)
def test_a_key_the_table_lacks_takes_the_compiled_fallback(
    name, capability, limit, dtype, head_dim, fake_gpu
):
    fake_gpu(capability, limit)
    # test_kernels_aot.py compiles the fallbacks at these head dims, or at one of the same width
    assert padded_head_dim(head_dim) in {padded_head_dim(d) for d in aot.FALLBACK_HEAD_DIMS}
    for kernel in KERNELS:
        fallback = FALLBACK[("bfloat16", kernel, padded_head_dim(head_dim))]
        assert runtime_pick(kernel, dtype, head_dim) == fallback.config
        assert fallback.shared_bytes <= limit


@pytest.mark.parametrize("head_dim", [16, 64, 128, 256])
def test_fp32_takes_its_fallback(head_dim, fake_gpu):
    fake_gpu((9, 0), 227 * 1024)
    for kernel in KERNELS:
        assert runtime_pick(kernel, torch.float32, head_dim) == FALLBACK[("float32", kernel, head_dim)].config


def test_fallbacks_cover_every_dtype_kernel_and_padded_head_dim():
    widths = {padded_head_dim(d) for d in aot.FALLBACK_HEAD_DIMS}
    assert widths == {16, 32, 64, 128, 256}
    want = {(dtype, k, w) for dtype in ("bfloat16", "float32") for k in KERNELS for w in widths}
    assert set(FALLBACK) == want
    assert all(p.shared_bytes <= 99 * 1024 for p in FALLBACK.values())
    assert fallback_dtype(torch.float16) == fallback_dtype(torch.bfloat16) == "bfloat16"


def test_an_entry_that_does_not_fit_the_device_falls_back(monkeypatch, fake_gpu):
    big = Pinned(LaunchConfig(128, 128, 8, 3), 200, 150 * 1024)
    monkeypatch.setitem(TABLE, ("sm80", "bfloat16", 128), {k: big for k in KERNELS})
    fake_gpu((8, 0), 100 * 1024)  # an A100-class key on a device with less shared memory
    assert runtime_pick("forward", torch.bfloat16, 128) == FALLBACK[("bfloat16", "forward", 128)].config
    fake_gpu((8, 0), 163 * 1024)
    assert runtime_pick("forward", torch.bfloat16, 128) == big.config


def test_no_config_fits_raises():
    with pytest.raises(ValueError, match="no dkdv attention config fits 1024 bytes"):
        select_config("dkdv", "sm80", torch.bfloat16, 128, 1024)
    with pytest.raises(KeyError):
        select_config("backward", "sm80", torch.bfloat16, 128, 163 * 1024)


def test_same_key_same_config():
    picks = {select_config("dq", "sm90", torch.bfloat16, 128, 227 * 1024) for _ in range(3)}
    assert len(picks) == 1


def test_interpreter_gets_its_config():
    q = torch.empty(4, 2, 16)
    assert attention._config("dq", q, None) == configs.INTERPRETER_CONFIG


def test_resident_warps():
    config = LaunchConfig(128, 64, 8, 2)
    # 255 registers → 256 per thread, 64K per 8-warp program: one program by registers
    assert resident_warps(config, 255, 64 * 1024, 164 * 1024) == 8
    # 128 registers: two programs by registers; 100 KB of shared memory: one by shared memory
    assert resident_warps(config, 128, 10 * 1024, 164 * 1024) == 16
    assert resident_warps(config, 128, 100 * 1024, 164 * 1024) == 8
    # tiny programs: capped at 32 programs per SM
    assert resident_warps(LaunchConfig(16, 16, 1, 1), 16, 0, 228 * 1024) == 32


def test_rank_key_orders_by_the_model():
    def key(kernel, m, n, warps, stages, registers=128, shared=32 * 1024):
        return rank_key(kernel, LaunchConfig(m, n, warps, stages), registers, shared, 164 * 1024)

    # kept rows first: BLOCK_M for forward and dQ, BLOCK_N for dK/dV
    assert key("forward", 128, 32, 4, 2) > key("forward", 64, 64, 8, 3)
    assert key("dkdv", 32, 128, 4, 2) > key("dkdv", 64, 64, 8, 3)
    # then streamed rows
    assert key("dq", 128, 64, 4, 2) > key("dq", 128, 32, 8, 3)
    # then resident warps (registers), then stages, then fewer warps
    assert key("forward", 64, 64, 4, 2, registers=96) > key("forward", 64, 64, 4, 2, registers=200)
    assert key("forward", 64, 64, 8, 3) > key("forward", 64, 64, 8, 2)
    assert key("forward", 64, 64, 4, 2, registers=128) > key("forward", 64, 64, 8, 2, registers=128)
