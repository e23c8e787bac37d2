"""Pinned launch configs of the attention kernels: one per (GPU class, dtype, head dim), never autotuned.

Autotuning at the first step would time every candidate at peak activation memory, and two ranks (or a
run and its resume) could pick different configs, which changes the arithmetic and defeats exact resume.
So the config of each kernel is looked up in `TABLE`, filled by `python bench/kernels_bench.py --tune` on each
GPU class; a key missing from the table falls back to the first candidate, in a fixed order, that fits the
device's shared memory. Either way the choice depends only on the key, so every rank makes the same one.
fp32 (tests on a GPU) runs small fixed blocks; the CPU interpreter runs 16 × 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

KERNELS = ("forward", "dkdv", "dq")


@dataclass(frozen=True)
class LaunchConfig:
    """Block sizes and launch settings of one kernel: BLOCK_M (queries) × BLOCK_N (keys), warps, stages."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def _grid(pairs: list[tuple[int, int]]) -> list[LaunchConfig]:
    return [LaunchConfig(m, n, w, s) for m, n in pairs for w in (4, 8) for s in (2, 3)]


# What `--tune` times, and the fallback order (largest tiles first). The block pairs are those of Triton's
# fused-attention tutorial; none has been measured for these kernels yet.
CANDIDATES: dict[str, list[LaunchConfig]] = {
    "forward": _grid([(128, 64), (64, 64), (128, 32)]),
    "dkdv": _grid([(32, 128), (64, 64), (32, 64)]),
    "dq": _grid([(128, 32), (64, 64), (64, 32)]),
}

# (GPU class, dtype, head dim) → config per kernel. Written by `bench/kernels_bench.py --tune`; empty until a
# GPU session runs it, so today every key takes the deterministic fallback.
TABLE: dict[tuple[str, str, int], dict[str, LaunchConfig]] = {}

FP32_CONFIG = LaunchConfig(32, 32, 4, 1)  # GPU fp32 ("ieee" dots): small, cheap to compile, unmeasured
INTERPRETER_CONFIG = LaunchConfig(16, 16, 1, 1)  # the smallest tl.dot: tests span several blocks


def gpu_class(device: torch.device) -> str:
    """Returns the device's compute capability as "sm<major><minor>" (sm90: H100/H200, sm80: A100)."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm{major}{minor}"


def shared_memory_limit(device: torch.device) -> int:
    """Returns the shared memory (bytes) one program may use on the device (the opt-in maximum)."""
    props = torch.cuda.get_device_properties(device)
    return int(getattr(props, "shared_memory_per_block_optin", 0) or props.shared_memory_per_block)


def shared_memory_bytes(kernel: str, config: LaunchConfig, head_dim: int, element_bytes: int) -> int:
    """Returns an estimate of the shared memory a config needs: the tiles a program keeps (q, or k and v, and
    do for the backward) plus `num_stages` buffered copies of the tiles it streams, at the padded head dim.
    Raises KeyError for an unknown kernel."""
    d = max(16, 1 << (head_dim - 1).bit_length())
    m, n, stages = config.block_m, config.block_n, config.num_stages
    kept, streamed = {
        "forward": (m * d, 2 * n * d),  # q kept; k, v streamed
        "dq": (2 * m * d, 2 * n * d),  # q, do kept; k, v streamed
        "dkdv": (2 * n * d, 2 * m * d),  # k, v kept; q, do streamed
    }[kernel]
    return (kept + stages * streamed) * element_bytes


def select_config(kernel: str, gpu: str, dtype: torch.dtype, head_dim: int, smem_limit: int) -> LaunchConfig:
    """Returns the config of `kernel` for this key: fp32's fixed one; the table's entry when it fits the
    shared memory; else the first fitting candidate. Raises ValueError when none fits."""
    if dtype == torch.float32:
        return FP32_CONFIG
    element_bytes = torch.finfo(dtype).bits // 8
    entry = TABLE.get((gpu, str(dtype).removeprefix("torch."), head_dim))
    choices = ([entry[kernel]] if entry else []) + CANDIDATES[kernel]
    for config in choices:
        if shared_memory_bytes(kernel, config, head_dim, element_bytes) <= smem_limit:
            return config
    raise ValueError(
        f"no {kernel} attention config fits {smem_limit} bytes of shared memory at head dim "
        f"{head_dim} ({dtype})"
    )
