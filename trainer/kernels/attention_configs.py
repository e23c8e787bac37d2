"""Pinned launch configs of the attention kernels: one per (GPU class, dtype, head dim), never autotuned.

Autotuning at the first step would time every candidate at peak activation memory, and two ranks (or a
run and its resume) could pick different configs, which changes the arithmetic and defeats exact resume.
So each kernel's config is looked up in TABLE, whose entries come from ahead-of-time compiles, no GPU
needed (`python bench/kernels_aot.py --write`): for each target and head dim every candidate is compiled,
those that spill registers or pass the GPU's shared memory are dropped, and the rest are ordered by
`rank_key`, a model of what makes these kernels fast, until a GPU times them: `bench/kernels_bench.py
--tune` prints timed entries (source "tuned") that replace the ranked ones, and the generator keeps them.

A key the table lacks (another GPU class, fp16, a head dim no preset has, and fp32, which has no entries)
takes the FALLBACK of its dtype, kernel and padded head dim: small tiles that compile spill-free for sm_80
and sm_90 at every head dim of that width and fit 99 KB of shared memory (sm_86, sm_89, sm_120), so no key
gets a spilling config. Either way the choice depends only on the key, so every rank makes the same one.
The runtime compares the shared memory recorded with each config (its compile's) with the device's. The
CPU interpreter runs 16 × 16.
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

    def __str__(self) -> str:
        return f"{self.block_m}×{self.block_n}, {self.num_warps} warps, {self.num_stages} stage(s)"


@dataclass(frozen=True)
class Pinned:
    """A TABLE entry: the config, what its compile uses per program (registers per thread, shared memory in
    bytes, from the compiled kernel), and where its rank came from: "ranked" (rank_key over compiles) or
    "tuned" (timed on a GPU by bench/kernels_bench.py --tune)."""

    config: LaunchConfig
    registers: int
    shared_bytes: int
    source: str = "ranked"


def _grid(pairs: list[tuple[int, int]]) -> list[LaunchConfig]:
    return [LaunchConfig(m, n, w, s) for m, n in pairs for w in (4, 8) for s in (2, 3)]


# What the generator compiles and `--tune` times. The kept tile (BLOCK_M for forward and dQ, BLOCK_N for
# dK/dV) ranges over 32-128 rows, the streamed one over 32-128.
CANDIDATES: dict[str, list[LaunchConfig]] = {
    "forward": _grid([(128, 128), (128, 64), (128, 32), (64, 64), (64, 32)]),
    "dkdv": _grid([(64, 128), (32, 128), (64, 64), (32, 64), (32, 32)]),
    "dq": _grid([(128, 64), (128, 32), (64, 64), (64, 32), (32, 32)]),
}

# fp32 runs "ieee" dots on CUDA cores, their operands and accumulators in registers: small tiles, one stage.
FP32_CANDIDATES: list[LaunchConfig] = [
    LaunchConfig(m, n, w, 1) for m, n in [(32, 32), (32, 16), (16, 16)] for w in (4, 8)
]
INTERPRETER_CONFIG = LaunchConfig(16, 16, 1, 1)  # the smallest tl.dot: tests span several blocks

# Warps and registers of an SM on sm_80 and sm_90 (CUDA's occupancy limits).
_SM_REGISTERS = 65536
_SM_WARPS = 64
_SM_PROGRAMS = 32


def kept_rows(kernel: str, config: LaunchConfig) -> int:
    """Rows of the tile a program keeps while it streams the other operand: BLOCK_N for dK/dV (keys),
    BLOCK_M for forward and dQ (queries)."""
    return config.block_n if kernel == "dkdv" else config.block_m


def resident_warps(config: LaunchConfig, registers: int, shared_bytes: int, sm_shared: int) -> int:
    """Warps one SM holds at once for this compile: programs limited by registers (allocated per warp in
    units of 256), by shared memory, and by CUDA's 64 warps and 32 programs per SM."""
    per_warp = -(-registers * 32 // 256) * 256
    by_registers = _SM_REGISTERS // (per_warp * config.num_warps)
    by_shared = sm_shared // max(1, shared_bytes + 1024)  # the runtime reserves 1 KB per program
    programs = min(by_registers, by_shared, _SM_WARPS // config.num_warps, _SM_PROGRAMS)
    return programs * config.num_warps


def rank_key(kernel: str, config: LaunchConfig, registers: int, shared_bytes: int, sm_shared: int) -> tuple:
    """Orders spill-free candidates, best first when sorted in reverse, until a GPU times them:
    1. kept rows (`kept_rows`): a program re-reads the streamed operands once per kept tile, so their
       traffic goes as T² · D / kept rows (FlashAttention-2's reason for 128-row query tiles);
    2. streamed rows: larger MMAs and fewer loop iterations per kept tile;
    3. resident warps per SM (`resident_warps`): latency hiding, from registers and shared memory;
    4. stages: a deeper prefetch of the streamed tiles;
    5. fewer warps, all else equal (less synchronisation per tile)."""
    streamed = config.block_m if kernel == "dkdv" else config.block_n
    warps = resident_warps(config, registers, shared_bytes, sm_shared)
    return kept_rows(kernel, config), streamed, warps, config.num_stages, -config.num_warps


def padded_head_dim(head_dim: int) -> int:
    """The kernels' BLOCK_D: the head dim rounded up to a power of two, at least 16."""
    return max(16, 1 << (head_dim - 1).bit_length())


# --- generated by bench/kernels_aot.py --write: begin ---
# (GPU class, dtype, head dim) → kernel → Pinned(config, registers, shared bytes); triton 3.9.0.
TABLE: dict[tuple[str, str, int], dict[str, Pinned]] = {
    ("sm80", "bfloat16", 16): {
        "forward": Pinned(LaunchConfig(128, 128, 4, 3), 238, 20480),
        "dkdv": Pinned(LaunchConfig(64, 128, 8, 2), 128, 12800),
        "dq": Pinned(LaunchConfig(128, 64, 8, 3), 107, 16384),
    },
    ("sm80", "bfloat16", 64): {
        "forward": Pinned(LaunchConfig(128, 64, 8, 3), 184, 49152),
        "dkdv": Pinned(LaunchConfig(32, 128, 8, 3), 222, 49664),
        "dq": Pinned(LaunchConfig(128, 64, 8, 3), 180, 65536),
    },
    ("sm80", "bfloat16", 128): {
        "forward": Pinned(LaunchConfig(128, 32, 8, 3), 188, 65536),
        "dkdv": Pinned(LaunchConfig(64, 64, 8, 3), 229, 107520),
        "dq": Pinned(LaunchConfig(128, 32, 8, 3), 255, 98304),
    },
    ("sm90", "bfloat16", 16): {
        "forward": Pinned(LaunchConfig(128, 128, 4, 3), 250, 29696),
        "dkdv": Pinned(LaunchConfig(64, 128, 4, 3), 255, 22528),
        "dq": Pinned(LaunchConfig(128, 64, 8, 3), 107, 21504),
    },
    ("sm90", "bfloat16", 64): {
        "forward": Pinned(LaunchConfig(128, 128, 8, 3), 190, 115712),
        "dkdv": Pinned(LaunchConfig(64, 128, 8, 3), 241, 83968),
        "dq": Pinned(LaunchConfig(128, 64, 8, 3), 166, 82944),
    },
    ("sm90", "bfloat16", 128): {
        "forward": Pinned(LaunchConfig(128, 128, 8, 3), 238, 230400),
        "dkdv": Pinned(LaunchConfig(32, 128, 8, 3), 248, 116224),
        "dq": Pinned(LaunchConfig(128, 64, 8, 2), 244, 132096),
    },
}

# (fallback dtype, kernel, padded head dim) → the config for keys the table lacks; "bfloat16"
# also serves fp16 (the same 16-bit MMAs and tiles). Registers and shared memory: the most of any
# compiled target and head dim of that width.
FALLBACK: dict[tuple[str, str, int], Pinned] = {
    ("bfloat16", "forward", 16): Pinned(LaunchConfig(64, 64, 8, 3), 90, 15360),
    ("bfloat16", "forward", 32): Pinned(LaunchConfig(64, 64, 4, 3), 128, 29696),
    ("bfloat16", "forward", 64): Pinned(LaunchConfig(64, 64, 4, 3), 193, 58368),
    ("bfloat16", "forward", 128): Pinned(LaunchConfig(64, 64, 8, 2), 177, 82944),
    ("bfloat16", "forward", 256): Pinned(LaunchConfig(64, 32, 8, 2), 240, 99328),
    ("bfloat16", "dkdv", 16): Pinned(LaunchConfig(64, 64, 4, 3), 136, 18432),
    ("bfloat16", "dkdv", 32): Pinned(LaunchConfig(64, 64, 4, 3), 168, 34816),
    ("bfloat16", "dkdv", 64): Pinned(LaunchConfig(64, 64, 4, 3), 255, 67584),
    ("bfloat16", "dkdv", 128): Pinned(LaunchConfig(64, 64, 8, 2), 255, 100352),
    ("bfloat16", "dkdv", 256): Pinned(LaunchConfig(32, 32, 8, 2), 189, 68864),
    ("bfloat16", "dq", 16): Pinned(LaunchConfig(64, 64, 4, 3), 114, 17408),
    ("bfloat16", "dq", 32): Pinned(LaunchConfig(64, 64, 8, 3), 128, 33792),
    ("bfloat16", "dq", 64): Pinned(LaunchConfig(64, 64, 4, 3), 198, 66560),
    ("bfloat16", "dq", 128): Pinned(LaunchConfig(64, 64, 8, 2), 205, 99328),
    ("bfloat16", "dq", 256): Pinned(LaunchConfig(32, 32, 8, 3), 164, 101376),
    ("float32", "forward", 16): Pinned(LaunchConfig(32, 32, 4, 1), 80, 9344),
    ("float32", "forward", 32): Pinned(LaunchConfig(32, 32, 8, 1), 69, 13312),
    ("float32", "forward", 64): Pinned(LaunchConfig(32, 32, 8, 1), 70, 21632),
    ("float32", "forward", 128): Pinned(LaunchConfig(32, 16, 8, 1), 80, 27776),
    ("float32", "forward", 256): Pinned(LaunchConfig(16, 16, 8, 1), 91, 34880),
    ("float32", "dkdv", 16): Pinned(LaunchConfig(32, 32, 4, 1), 96, 13312),
    ("float32", "dkdv", 32): Pinned(LaunchConfig(32, 32, 8, 1), 80, 21504),
    ("float32", "dkdv", 64): Pinned(LaunchConfig(32, 32, 8, 1), 104, 37888),
    ("float32", "dkdv", 128): Pinned(LaunchConfig(32, 16, 8, 1), 148, 52224),
    ("float32", "dkdv", 256): Pinned(LaunchConfig(16, 16, 8, 1), 128, 67584),
    ("float32", "dq", 16): Pinned(LaunchConfig(32, 32, 4, 1), 80, 11264),
    ("float32", "dq", 32): Pinned(LaunchConfig(32, 32, 8, 1), 80, 17408),
    ("float32", "dq", 64): Pinned(LaunchConfig(32, 32, 4, 1), 128, 33792),
    ("float32", "dq", 128): Pinned(LaunchConfig(32, 16, 8, 1), 80, 50176),
    ("float32", "dq", 256): Pinned(LaunchConfig(16, 16, 4, 1), 150, 66560),
}
# --- generated by bench/kernels_aot.py --write: end ---


def gpu_class(device: torch.device) -> str:
    """Returns the device's compute capability as "sm<major><minor>" (sm90: H100/H200, sm80: A100)."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm{major}{minor}"


def shared_memory_limit(device: torch.device) -> int:
    """Returns the shared memory (bytes) one program may use on the device (the opt-in maximum)."""
    props = torch.cuda.get_device_properties(device)
    return int(getattr(props, "shared_memory_per_block_optin", 0) or props.shared_memory_per_block)


def fallback_dtype(dtype: torch.dtype) -> str:
    """The FALLBACK a dtype takes: "float32", or "bfloat16" for the 16-bit dtypes."""
    return "float32" if dtype == torch.float32 else "bfloat16"


def select_config(kernel: str, gpu: str, dtype: torch.dtype, head_dim: int, smem_limit: int) -> LaunchConfig:
    """Returns the config of `kernel` for this key: the table's entry when it fits the shared memory, else
    the dtype's FALLBACK. Raises ValueError when neither fits, KeyError for an unknown kernel."""
    if kernel not in KERNELS:
        raise KeyError(f"no attention kernel {kernel!r}; kernels are {KERNELS}")
    entry = TABLE.get((gpu, str(dtype).removeprefix("torch."), head_dim))
    if entry is not None and entry[kernel].shared_bytes <= smem_limit:
        return entry[kernel].config
    fallback = FALLBACK.get((fallback_dtype(dtype), kernel, padded_head_dim(head_dim)))
    if fallback is not None and fallback.shared_bytes <= smem_limit:
        return fallback.config
    raise ValueError(
        f"no {kernel} attention config fits {smem_limit} bytes of shared memory at head dim "
        f"{head_dim} ({dtype}) on {gpu}"
    )
