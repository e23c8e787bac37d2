"""The kernels package surface: what it exports, when kernels are available, what it refuses."""

from __future__ import annotations

import pytest
import torch

import gristmill.trainer.kernels as kernels
from gristmill.trainer.kernels._launch import row_settings


def test_exports_every_op():
    expected = {"apply_rope", "flash_attention_varlen", "fused_linear_cross_entropy", "kernels_available",
                "rms_norm", "rms_norm_residual", "swiglu"}  # fmt: skip
    assert set(kernels.__all__) == expected
    assert all(callable(getattr(kernels, name)) for name in expected)


def test_kernels_available_here():
    # The conftest sets TRITON_INTERPRET=1 without a GPU, so kernels run either way.
    assert kernels.kernels_available()


def test_kernels_available_false_without_backend(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not kernels.kernels_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="interpreter-only behaviour")
def test_interpreter_refuses_bf16():
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="fp32 only"):
        kernels.rms_norm(x, torch.ones(8, dtype=torch.bfloat16))


def test_row_settings_limits():
    assert row_settings(2048) == (2048, 8)
    assert row_settings(33)[0] == 64
    with pytest.raises(ValueError, match="fused limit"):
        row_settings(70000)
