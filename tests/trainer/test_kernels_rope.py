"""RoPE kernels against the PyTorch reference, on packed documents whose positions restart at 0."""

from __future__ import annotations

import pytest
import torch

from gristmill.trainer.kernels import apply_rope
from gristmill.trainer.kernels.reference import rope_reference, tolerance

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _positions(doc_lengths: list[int], device) -> torch.Tensor:
    """(T,) int32 positions restarting at 0 at every document."""
    return torch.cat([torch.arange(n, dtype=torch.int32) for n in doc_lengths]).to(device)


def _check(doc_lengths, n_heads, n_kv_heads, head_dim, dtype, device, theta=10000.0, offset=0):
    gen = torch.Generator().manual_seed(0)
    pos = _positions(doc_lengths, device) + offset
    t = pos.numel()
    q = torch.randn(t, n_heads, head_dim, generator=gen).to(device, dtype)
    k = torch.randn(t, n_kv_heads, head_dim, generator=gen).to(device, dtype)
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    qk, kk = q.clone().requires_grad_(), k.clone().requires_grad_()
    qr, kr = q.float().requires_grad_(), k.float().requires_grad_()
    q_out, k_out = apply_rope(qk, kk, pos, theta)
    q_ref, k_ref = rope_reference(qr, kr, pos, theta)
    torch.autograd.backward([q_out, k_out], [dq, dk])
    torch.autograd.backward([q_ref, k_ref], [dq.float(), dk.float()])
    tol = tolerance("rope", dtype)
    for got, want in [(q_out, q_ref), (k_out, k_ref), (qk.grad, qr.grad), (kk.grad, kr.grad)]:
        torch.testing.assert_close(got.float(), want, **tol)


@pytest.mark.parametrize(
    ("doc_lengths", "n_heads", "n_kv_heads", "head_dim"),
    [([5, 1, 11], 4, 1, 64), ([17], 8, 2, 128), ([3, 9], 3, 3, 16), ([7, 2], 32, 4, 64)],
)
def test_rope_matches_reference(doc_lengths, n_heads, n_kv_heads, head_dim, device):
    _check(doc_lengths, n_heads, n_kv_heads, head_dim, torch.float32, device)


def test_rope_far_positions_and_theta(device):
    # Positions near 8K (Fox-1's longest stage) and a larger theta.
    _check([6], 2, 1, 64, torch.float32, device, theta=500000.0, offset=8185)


def test_rope_is_relative(device):
    # <rope(q, m), rope(k, n)> depends on m - n only; position 0 is the identity.
    q, k = torch.randn(1, 1, 32, device=device), torch.randn(1, 1, 32, device=device)

    def score(m: int, n: int) -> torch.Tensor:
        qm, _ = apply_rope(q, q, torch.tensor([m], dtype=torch.int32, device=device))
        kn, _ = apply_rope(k, k, torch.tensor([n], dtype=torch.int32, device=device))
        return (qm * kn).sum()

    torch.testing.assert_close(score(7, 3), score(104, 100), rtol=1e-5, atol=1e-5)
    q0, _ = apply_rope(q, q, torch.zeros(1, dtype=torch.int32, device=device))
    torch.testing.assert_close(q0, q)


def test_rope_non_contiguous_inputs(device):
    # q and k as views into a fused qkv projection: (T, H + 2 * H_kv, D) split along heads.
    qkv = torch.randn(9, 4 + 2 * 2, 16, device=device)
    q, k = qkv[:, :4], qkv[:, 4:6]
    pos = _positions([4, 5], device)
    q_out, k_out = apply_rope(q, k, pos)
    q_ref, k_ref = rope_reference(q, k, pos)
    torch.testing.assert_close(q_out, q_ref, **tolerance("rope", torch.float32))
    torch.testing.assert_close(k_out, k_ref, **tolerance("rope", torch.float32))


def test_rope_rejects_bad_positions(device):
    q = torch.randn(4, 2, 16, device=device)
    with pytest.raises(ValueError, match="position_ids"):
        apply_rope(q, q, torch.arange(3, device=device))


def test_rope_compiles_without_graph_breaks(device):
    def attend_prep(q, k, pos):
        q_out, k_out = apply_rope(q * 1.5, k, pos)
        return (q_out.sum(1) * k_out.sum(1)).sum()

    q, k = torch.randn(6, 4, 16, device=device), torch.randn(6, 2, 16, device=device)
    pos = _positions([2, 4], device)
    explanation = torch._dynamo.explain(attend_prep)(q, k, pos)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    qc, kc = q.clone().requires_grad_(), k.clone().requires_grad_()
    torch.compile(attend_prep, backend="aot_eager", fullgraph=True)(qc, kc, pos).backward()
    qe, ke = q.clone().requires_grad_(), k.clone().requires_grad_()
    attend_prep(qe, ke, pos).backward()
    torch.testing.assert_close(qc.grad, qe.grad)
    torch.testing.assert_close(kc.grad, ke.grad)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("n_heads", "n_kv_heads", "head_dim"), [(32, 4, 64), (16, 4, 128)])
def test_rope_bf16_gpu(n_heads, n_kv_heads, head_dim):
    _check([2048, 1000, 3000, 2144], n_heads, n_kv_heads, head_dim, torch.bfloat16, "cuda")
