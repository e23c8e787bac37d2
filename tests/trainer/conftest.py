"""Trainer test setup: without a GPU, Triton kernels run in the CPU interpreter (fp32 only).

TRITON_INTERPRET must be set before any ``@triton.jit`` function is defined, so this runs at import, before
the test modules import the kernels. With a GPU it is left alone and the kernels compile for CUDA.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def device() -> str:
    """The device the kernels run on here: "cuda" with a GPU, else "cpu" (interpreter)."""
    return "cuda" if torch.cuda.is_available() else "cpu"
