"""Fused linear + cross-entropy against F.cross_entropy on full logits, with ignored targets and z-loss."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

from gristmill.trainer.kernels import fused_linear_cross_entropy
from gristmill.trainer.kernels.cross_entropy import (
    default_chunk_size,
    default_slice_size,
    fused_linear_cross_entropy_forward,
    fused_linear_cross_entropy_weight_grad,
)
from gristmill.trainer.kernels.reference import linear_cross_entropy_reference, tolerance

_spec = importlib.util.spec_from_file_location("ce_live_memory", Path(__file__).with_name("live_memory.py"))
live_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live_memory)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _inputs(n, h, v, dtype, device, ignore_every=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, generator=gen).to(device, dtype)
    w = (torch.randn(v, h, generator=gen) / h**0.5).to(device, dtype)
    y = torch.randint(0, v, (n,), generator=gen)
    y[1::ignore_every] = -100
    return x, w, y.to(device)


def _run(fn, x, w, y, upstream=1.0, **kwargs):
    xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(xl, wl, y, **kwargs)
    (loss * upstream).backward()
    return loss, xl.grad, wl.grad


def _assert_matches(got, want, dtype):
    torch.testing.assert_close(got[0].float(), want[0].float(), **tolerance("cross_entropy", dtype))
    for g, r in zip(got[1:], want[1:]):
        torch.testing.assert_close(g.float(), r.float(), **tolerance("cross_entropy_grad", dtype))


# (N, H, V, chunk_size): odd sizes, one chunk or many, a vocabulary wider than one 4096-column block.
CASES = [(13, 32, 257, None), (37, 24, 5001, 8), (1, 16, 10, 1), (50, 64, 1000, 7)]


@pytest.mark.parametrize(("n", "h", "v", "chunk"), CASES)
def test_matches_torch_cross_entropy(n, h, v, chunk, device):
    x, w, y = _inputs(n, h, v, torch.float32, device)
    got = _run(fused_linear_cross_entropy, x, w, y, chunk_size=chunk)
    want = _run(lambda a, b, t: F.cross_entropy(a @ b.T, t, ignore_index=-100), x, w, y)
    _assert_matches(got, want, torch.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_z_loss_matches_reference(reduction, device):
    x, w, y = _inputs(29, 32, 700, torch.float32, device, ignore_every=3)
    kwargs = {"z_loss": 1e-3, "reduction": reduction}
    got = _run(fused_linear_cross_entropy, x, w, y, upstream=2.5, chunk_size=8, **kwargs)
    want = _run(linear_cross_entropy_reference, x, w, y, upstream=2.5, **kwargs)
    _assert_matches(got, want, torch.float32)
    # z-loss must change the loss, or this test would not test it.
    assert not torch.allclose(got[0], fused_linear_cross_entropy(x, w, y, reduction=reduction))


def test_sum_reduction_and_custom_ignore_index(device):
    x, w, y = _inputs(20, 16, 300, torch.float32, device)
    y = torch.where(y == -100, 0, y)  # 0 is now the ignored class
    got = _run(fused_linear_cross_entropy, x, w, y, ignore_index=0, reduction="sum", chunk_size=6)
    want = _run(lambda a, b, t: F.cross_entropy(a @ b.T, t, ignore_index=0, reduction="sum"), x, w, y)
    _assert_matches(got, want, torch.float32)


def test_all_ignored_gives_zero_loss_and_gradients(device):
    x, w, y = _inputs(6, 16, 50, torch.float32, device)
    loss, gx, gw = _run(fused_linear_cross_entropy, x, w, torch.full_like(y, -100))
    assert loss.item() == 0.0
    assert not gx.any() and not gw.any()


def test_chunk_size_does_not_change_the_result(device):
    x, w, y = _inputs(33, 16, 130, torch.float32, device)
    one = _run(fused_linear_cross_entropy, x, w, y, chunk_size=1)
    many = _run(fused_linear_cross_entropy, x, w, y, chunk_size=64)
    _assert_matches(one, many, torch.float32)


def test_no_grad_returns_the_same_loss(device):
    x, w, y = _inputs(9, 16, 40, torch.float32, device)
    with torch.no_grad():
        loss = fused_linear_cross_entropy(x, w, y)
    torch.testing.assert_close(loss, F.cross_entropy(x @ w.T, y), **tolerance("cross_entropy", torch.float32))


def test_second_backward_gives_the_same_gradients(device):
    # Nothing saved is scaled in place any more, so a retained graph can run its backward twice.
    x, w, y = _inputs(4, 16, 20, torch.float32, device)
    xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fused_linear_cross_entropy(xl, wl, y)
    first = torch.autograd.grad(loss * 3.0, (xl, wl), retain_graph=True)
    second = torch.autograd.grad(loss * 3.0, (xl, wl))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_weight_gradient_does_not_depend_on_chunking(device):
    # Each vocabulary slice's rows come from one GEMM over all tokens: the forward's token chunks cannot
    # change them, not even in the last bit (chunk-by-chunk accumulation would, in every chunk's rounding).
    # Inputs on a coarse grid make every logit exact, so the logsumexps do not depend on the chunking either.
    x, w, y = _inputs(48, 16, 300, torch.float32, device)
    x, w = (x * 2).round() / 2, (w * 8).round() / 8
    grads = [_run(fused_linear_cross_entropy, x, w, y, chunk_size=c)[2] for c in (1, 5, 48)]
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


def test_weight_gradient_over_many_chunks_is_as_exact_as_one_gemm(device):
    # 96 one-token chunks against the fp64 gradient: the error stays at the level of fp32 autograd on the
    # full logits (one GEMM), rather than growing with one rounding per chunk.
    x, w, y = _inputs(96, 32, 400, torch.float32, device, seed=3)
    exact = _run(lambda a, b, t: F.cross_entropy(a @ b.T, t), x.double(), w.double(), y)[2]
    fp32 = _run(lambda a, b, t: F.cross_entropy(a @ b.T, t), x, w, y)[2]
    got = _run(fused_linear_cross_entropy, x, w, y, chunk_size=1)[2]
    fp32_error = (fp32.double() - exact).abs().max().item()
    assert (got.double() - exact).abs().max().item() <= 4 * fp32_error + 1e-9


def test_out_of_range_targets_are_refused(device):
    x, w, y = _inputs(8, 16, 20, torch.float32, device)
    for bad in (20, -5):
        y_bad = y.clone()
        y_bad[3] = bad
        with pytest.raises(ValueError, match=rf"in \[0, 20\).*target 3 is {bad}"):
            fused_linear_cross_entropy(x, w, y_bad)


def test_forward_holds_one_chunk_at_a_time():
    # Peak bytes allocated by the forward: its outputs plus ONE chunk's logits (fp32 inputs: the gradient
    # overwrites them); holding the previous chunk while allocating the next would double the chunk term.
    n, h, v, chunk = 64, 8, 2000, 16
    x, w, y = _inputs(n, h, v, torch.float32, "cpu")
    with live_memory.LiveMemory() as memory:
        fused_linear_cross_entropy_forward(x, w, y, -100, 0.0, "mean", chunk, True)
    outputs = n * h * 4 + 2 * n * 4 + 8  # grad_x, per-row loss and lse, loss and scale
    chunk_bytes = chunk * v * 4
    assert chunk_bytes <= memory.peak <= outputs + chunk_bytes + 16 * n  # + the targets' masks


def test_weight_gradient_holds_one_slice_at_a_time():
    n, h, v, width = 64, 8, 2000, 256
    x, w, y = _inputs(n, h, v, torch.float32, "cpu")
    _, _, lse, scale = fused_linear_cross_entropy_forward(x, w, y, -100, 0.0, "mean", 16, False)
    with live_memory.LiveMemory() as memory:
        fused_linear_cross_entropy_weight_grad(x, w, y, lse, scale, -100, 0.0, width)
    slice_bytes = n * width * 4
    assert slice_bytes <= memory.peak <= v * h * 4 + slice_bytes + 1024


def test_backward_graph_has_no_copy_of_the_weight_gradient(device):
    # Under torch.compile the backward is functionalised: an in-place scaling of a saved (V, H) gradient
    # would become a (V, H) copy. The only (V, H) tensor the backward makes is the weight-gradient op's.
    v, h = 90, 16
    graphs = []

    def keep(gm, _inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    x, w, y = _inputs(10, h, v, torch.float32, device)
    compiled = torch.compile(
        fused_linear_cross_entropy, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep)
    )
    _run(compiled, x, w, y, upstream=2.0)
    backward = graphs[-1]
    makers = [
        n.target
        for n in backward.graph.nodes
        if n.op == "call_function" and tuple(getattr(n.meta.get("val"), "shape", ())) == (v, h)
    ]
    assert makers == [torch.ops.gristmill.fused_linear_cross_entropy_weight_grad.default]


def test_rejects_bad_arguments(device):
    x, w, y = _inputs(4, 16, 20, torch.float32, device)
    with pytest.raises(ValueError, match="reduction"):
        fused_linear_cross_entropy(x, w, y, reduction="none")
    with pytest.raises(ValueError, match="disagree"):
        fused_linear_cross_entropy(x, w[:, :8], y)
    with pytest.raises(ValueError, match="targets"):
        fused_linear_cross_entropy(x, w, y[:3])


def test_default_chunk_size_bounds_memory():
    # Fox-1: 256K vocabulary, bf16 -> 256 tokens (6 bytes a logit: 375 MiB a chunk); TinyLlama: 2048.
    assert default_chunk_size(16384, 256000, torch.bfloat16) == 256
    assert default_chunk_size(16384, 32000, torch.bfloat16) == 2048
    assert default_chunk_size(100, 32000, torch.float32) == 100


def test_default_slice_size_bounds_memory():
    # 16K tokens in bf16: slices of 4096 columns (384 MiB of logits and gradient), 63 for Fox-1's vocabulary.
    assert default_slice_size(16384, 256000, torch.bfloat16) == 4096
    assert default_slice_size(16384, 32000, torch.bfloat16) == 4096
    assert default_slice_size(10, 300, torch.float32) == 300


def test_compiles_without_graph_breaks(device):
    def lm_loss(h, w, y):
        return fused_linear_cross_entropy(torch.tanh(h), w, y, z_loss=1e-4)

    x, w, y = _inputs(10, 16, 90, torch.float32, device)
    explanation = torch._dynamo.explain(lm_loss)(x, w, y)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = _run(torch.compile(lm_loss, backend="aot_eager", fullgraph=True), x, w, y)
    eager = _run(lm_loss, x, w, y)
    _assert_matches(compiled, eager, torch.float32)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("n", "h", "v"), [(4096, 2048, 32000), (1000, 2048, 256000)])
def test_bf16_gpu(n, h, v):
    x, w, y = _inputs(n, h, v, torch.bfloat16, "cuda")
    # "sum" keeps the gradients O(0.01-1), so the bf16 tolerances bite; fp32 reference on the same inputs.
    kwargs = {"z_loss": 1e-4, "reduction": "sum"}
    got = _run(fused_linear_cross_entropy, x, w, y, **kwargs)
    want = _run(linear_cross_entropy_reference, x.float(), w.float(), y, **kwargs)
    _assert_matches(got, want, torch.bfloat16)
