"""RMSNorm kernels against the PyTorch reference: outputs and gradients, odd shapes, torch.compile."""

from __future__ import annotations

import pytest
import torch

from gristmill.trainer.kernels import rms_norm, rms_norm_residual
from gristmill.trainer.kernels.reference import rms_norm_reference, rms_norm_residual_reference, tolerance

SHAPES = [(1, 8), (7, 33), (2, 5, 96), (3, 256)]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


def _check_rms_norm(shape, dtype, device, eps=1e-5):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device, dtype)
    w = (1 + 0.1 * torch.randn(shape[-1], generator=gen)).to(device, dtype)
    dy = torch.randn(shape, generator=gen).to(device, dtype)
    xk, wk = _leaves(x, w)
    xr, wr = _leaves(x.float(), w.float())
    y = rms_norm(xk, wk, eps)
    y_ref = rms_norm_reference(xr, wr, eps)
    y.backward(dy)
    y_ref.backward(dy.float())
    torch.testing.assert_close(y.float(), y_ref, **tolerance("rms_norm", dtype))
    torch.testing.assert_close(xk.grad.float(), xr.grad, **tolerance("rms_norm_grad", dtype))
    torch.testing.assert_close(wk.grad.float(), wr.grad, **tolerance("rms_norm_grad", dtype))


def _check_rms_norm_residual(shape, dtype, device, eps=1e-6):
    gen = torch.Generator().manual_seed(1)
    x, r, dy, dh = (torch.randn(shape, generator=gen).to(device, dtype) for _ in range(4))
    w = torch.randn(shape[-1], generator=gen).to(device, dtype)
    xk, rk, wk = _leaves(x, r, w)
    xr, rr, wr = _leaves(x.float(), r.float(), w.float())
    y, h = rms_norm_residual(xk, rk, wk, eps)
    y_ref, h_ref = rms_norm_residual_reference(xr, rr, wr, eps)
    # Both outputs carry gradient: h feeds the next residual add in a transformer block.
    torch.autograd.backward([y, h], [dy, dh])
    torch.autograd.backward([y_ref, h_ref], [dy.float(), dh.float()])
    torch.testing.assert_close(y.float(), y_ref, **tolerance("rms_norm", dtype))
    torch.testing.assert_close(h.float(), h_ref, **tolerance("rms_norm", dtype))
    for got, want in [(xk.grad, xr.grad), (rk.grad, rr.grad), (wk.grad, wr.grad)]:
        torch.testing.assert_close(got.float(), want, **tolerance("rms_norm_grad", dtype))


@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_matches_reference(shape, device):
    _check_rms_norm(shape, torch.float32, device)


@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_residual_matches_reference(shape, device):
    _check_rms_norm_residual(shape, torch.float32, device)


def test_rms_norm_non_contiguous_input(device):
    x = torch.randn(24, 10, device=device).T.requires_grad_()  # (10, 24), last-dim stride 10
    w = torch.randn(24, device=device)
    y = rms_norm(x, w)
    y.sum().backward()
    xr = x.detach().clone().requires_grad_()
    rms_norm_reference(xr, w).sum().backward()
    torch.testing.assert_close(y, rms_norm_reference(x.detach(), w), **tolerance("rms_norm", torch.float32))
    torch.testing.assert_close(x.grad, xr.grad, **tolerance("rms_norm_grad", torch.float32))


def test_rms_norm_rejects_wrong_weight(device):
    with pytest.raises(ValueError, match="weight must have shape"):
        rms_norm(torch.randn(4, 8, device=device), torch.randn(7, device=device))


def test_rms_norm_compiles_without_graph_breaks(device):
    def block(x, r, w):
        y, h = rms_norm_residual(x * 2, r, w)
        return rms_norm(y, w) + h

    x, r, w = (torch.randn(s, device=device) for s in [(4, 32), (4, 32), (32,)])
    explanation = torch._dynamo.explain(block)(x, r, w)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    xs, ws = _leaves(x, w)
    out = torch.compile(block, backend="aot_eager", fullgraph=True)(xs, r, ws)
    out.sum().backward()
    xe, we = _leaves(x, w)
    expected = block(xe, r, we)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(xs.grad, xe.grad)
    torch.testing.assert_close(ws.grad, we.grad)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shape", [(4096, 2048), (2, 2047, 2048), (513, 5632)])
def test_rms_norm_bf16_gpu(shape):
    _check_rms_norm(shape, torch.bfloat16, "cuda")
    _check_rms_norm_residual(shape, torch.bfloat16, "cuda")
