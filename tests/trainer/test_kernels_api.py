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


def test_saved_statistics_are_not_differentiable(device):
    # rstd and lse are outputs of the custom ops but carry no gradient: autograd must not track them.
    x = torch.randn(6, 16, device=device, requires_grad=True)
    w = torch.ones(16, device=device, requires_grad=True)
    assert not torch.ops.gristmill.rms_norm(x, w, 1e-5)[1].requires_grad
    assert not torch.ops.gristmill.rms_norm_residual(x, x, w, 1e-5)[2].requires_grad
    q = torch.randn(6, 2, 16, device=device, requires_grad=True)
    cu = torch.tensor([0, 6], dtype=torch.int32, device=device)
    out, lse = torch.ops.gristmill.flash_attention_varlen(q, q, q, cu, 6, True, 0.25)
    assert out.requires_grad and not lse.requires_grad
    targets = torch.tensor([1, 2, -100, 3, 4, 5], device=device)
    loss, grad_x, lse, scale = torch.ops.gristmill.fused_linear_cross_entropy(
        x, w.expand(7, 16), targets, -100, 0.0, "mean", 4, True
    )
    assert loss.requires_grad and not (grad_x.requires_grad or lse.requires_grad or scale.requires_grad)


def test_rope_frequencies_are_computed_once(device):
    from gristmill.trainer.kernels.rope import _inv_freq

    a = _inv_freq(64, 10000.0, torch.device(device))
    assert _inv_freq(64, 10000.0, torch.device(device)) is a
    assert _inv_freq(64, 500000.0, torch.device(device)) is not a
