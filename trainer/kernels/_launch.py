"""Helpers shared by the kernel launchers: backend checks, launch settings, dot precision."""

from __future__ import annotations

import functools
import os

import torch
import triton

# Liger-Kernel's limit for a row kept whole in registers (64 KiB of fp32 per program).
MAX_FUSED_SIZE = 65536


def interpreting() -> bool:
    """Returns True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def kernels_available() -> bool:
    """Returns True when the Triton kernels can run here: a CUDA device, or ``TRITON_INTERPRET=1`` (fp32)."""
    return interpreting() or torch.cuda.is_available()


def require_backend(*tensors: torch.Tensor) -> None:
    """Raises RuntimeError unless every tensor is on CUDA, or on CPU under the Triton interpreter."""
    for t in tensors:
        if t.is_cuda:
            continue
        if t.device.type == "cpu" and interpreting():
            if t.dtype in (torch.bfloat16, torch.float16):
                raise RuntimeError("the Triton interpreter computes in fp32 only; got a %s tensor" % t.dtype)
            continue
        raise RuntimeError(
            f"gristmill Triton kernels need CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set before "
            f"triton is imported); got a tensor on {t.device}. On CPU use gristmill.trainer.kernels.reference."
        )


def dot_precision(dtype: torch.dtype) -> str:
    """The ``tl.dot`` input precision: exact ("ieee") for fp32 inputs, so fp32 matches the reference; bf16 and
    fp16 ignore it."""
    return "ieee" if dtype == torch.float32 else "tf32"


def row_settings(n_cols: int) -> tuple[int, int]:
    """Returns (BLOCK_SIZE, num_warps) for a kernel that keeps one row of ``n_cols`` in registers.

    Raises ValueError when the row is too long to fuse. The warp counts are Liger-Kernel's
    ``calculate_settings`` (not re-measured here).
    """
    block = triton.next_power_of_2(n_cols)
    if block > MAX_FUSED_SIZE:
        raise ValueError(f"rows of {n_cols} elements exceed the fused limit of {MAX_FUSED_SIZE}")
    num_warps = 4
    if block >= 32768:
        num_warps = 32
    elif block >= 8192:
        num_warps = 16
    elif block >= 2048:
        num_warps = 8
    return block, num_warps


@functools.lru_cache(maxsize=8)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def num_persistent_programs(device: torch.device, n_rows: int) -> int:
    """Programs for a grid-stride kernel: one per SM on CUDA, a few under the interpreter; at most n_rows."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        programs = _sm_count(index)
    else:
        programs = 4
    return max(1, min(programs, n_rows))
