"""SwiGLU kernels against the PyTorch reference: outputs and both input gradients."""

from __future__ import annotations

import pytest
import torch

from gristmill.trainer.kernels import swiglu
from gristmill.trainer.kernels.reference import swiglu_reference, tolerance

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _check(shape, dtype, device):
    gen = torch.Generator().manual_seed(0)
    gate, up, dout = (3 * torch.randn(shape, generator=gen).to(device, dtype) for _ in range(3))
    gk, uk = gate.clone().requires_grad_(), up.clone().requires_grad_()
    gr, ur = gate.float().requires_grad_(), up.float().requires_grad_()
    out = swiglu(gk, uk)
    ref = swiglu_reference(gr, ur)
    out.backward(dout)
    ref.backward(dout.float())
    tol = tolerance("swiglu", dtype)
    for got, want in [(out, ref), (gk.grad, gr.grad), (uk.grad, ur.grad)]:
        torch.testing.assert_close(got.float(), want, **tol)


@pytest.mark.parametrize("shape", [(7,), (3, 37), (2, 3, 1030), (1024,)])
def test_swiglu_matches_reference(shape, device):
    _check(shape, torch.float32, device)


def test_swiglu_rejects_mismatched_shapes(device):
    with pytest.raises(ValueError, match="same shape"):
        swiglu(torch.randn(2, 3, device=device), torch.randn(3, 2, device=device))


def test_swiglu_compiles_without_graph_breaks(device):
    def mlp(x, w_gate, w_up):
        return swiglu(x @ w_gate, x @ w_up).sum()

    x, wg, wu = (torch.randn(s, device=device) for s in [(5, 8), (8, 12), (8, 12)])
    explanation = torch._dynamo.explain(mlp)(x, wg, wu)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    xc = x.clone().requires_grad_()
    torch.compile(mlp, backend="aot_eager", fullgraph=True)(xc, wg, wu).backward()
    xe = x.clone().requires_grad_()
    mlp(xe, wg, wu).backward()
    torch.testing.assert_close(xc.grad, xe.grad)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shape", [(8192, 5632), (4097, 11)])
def test_swiglu_bf16_gpu(shape):
    _check(shape, torch.bfloat16, "cuda")
