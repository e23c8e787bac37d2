"""Helpers shared by the kernel launchers: backend checks, launch settings, dot precision; no triton."""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

# Liger-Kernel's limit on a row kept whole in one program (elements).
MAX_FUSED_SIZE = 65536


def interpreting() -> bool:
    """Returns True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in {"1", "true", "on", "y", "yes"}


# The kernel modules import this one before defining their kernels, and triton decides at definition time
# whether a kernel is interpreted: this records that decision.
_INTERPRETED_AT_IMPORT = interpreting()


def kernels_available() -> bool:
    """Returns True when the Triton kernels can run here: triton is installed, and there is a CUDA device or
    ``TRITON_INTERPRET=1`` is set (CPU, fp32 only)."""
    if importlib.util.find_spec("triton") is None:
        return False
    return interpreting() or torch.cuda.is_available()


def require_backend(*tensors: torch.Tensor) -> None:
    """Raises RuntimeError unless every tensor is on CUDA, or on CPU under the Triton interpreter."""
    for t in tensors:
        if t.is_cuda:
            continue
        if t.device.type == "cpu" and interpreting():
            if not _INTERPRETED_AT_IMPORT:
                raise RuntimeError(
                    "TRITON_INTERPRET=1 was set after gristmill.trainer.kernels was imported, so its kernels "
                    "are compiled for CUDA; set it before the first import (tests: in the root conftest)"
                )
            if t.dtype in (torch.bfloat16, torch.float16):
                raise RuntimeError(f"the Triton interpreter computes in fp32 only; got a {t.dtype} tensor")
            continue
        raise RuntimeError(
            f"gristmill Triton kernels need CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set before "
            f"triton is imported); got a tensor on {t.device}. Without either, use "
            f"gristmill.trainer.kernels.reference."
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
    block = 1 << max(0, n_cols - 1).bit_length()  # next power of two
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
