"""Varlen flash attention against SDPA run document by document: GQA, ragged documents, both masks."""

from __future__ import annotations

import math

import pytest
import torch

from gristmill.trainer.kernels import flash_attention_varlen
from gristmill.trainer.kernels.attention import attention_backward, attention_forward
from gristmill.trainer.kernels.reference import attention_varlen_reference, tolerance

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cu_seqlens(doc_lengths: list[int], device) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(doc_lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)


def _qkv(n_tokens, n_heads, n_kv_heads, head_dim, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n_tokens, n_heads, head_dim, generator=gen).to(device, dtype)
    k = torch.randn(n_tokens, n_kv_heads, head_dim, generator=gen).to(device, dtype)
    v = torch.randn(n_tokens, n_kv_heads, head_dim, generator=gen).to(device, dtype)
    dout = torch.randn(n_tokens, n_heads, head_dim, generator=gen).to(device, dtype)
    return q, k, v, dout


def _forward_backward(fn, q, k, v, dout, *args, **kwargs):
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves, *args, **kwargs)
    out.backward(dout)
    return [out] + [t.grad for t in leaves]


def _check(doc_lengths, n_heads, n_kv_heads, head_dim, causal, dtype, device, softmax_scale=None):
    cu = _cu_seqlens(doc_lengths, device)
    q, k, v, dout = _qkv(sum(doc_lengths), n_heads, n_kv_heads, head_dim, dtype, device)
    max_seqlen = max(doc_lengths)
    got = _forward_backward(flash_attention_varlen, q, k, v, dout, cu, max_seqlen, causal, softmax_scale)
    want = _forward_backward(
        attention_varlen_reference, q.float(), k.float(), v.float(), dout.float(), cu, causal, softmax_scale
    )
    torch.testing.assert_close(got[0].float(), want[0], **tolerance("attention", dtype))
    for name, g, w in zip(("dq", "dk", "dv"), got[1:], want[1:]):
        tol = tolerance("attention_grad", dtype)
        torch.testing.assert_close(g.float(), w, **tol, msg=lambda m, n=name: f"{n}: {m}")


# (document lengths, n_heads, n_kv_heads, head_dim, causal): GQA ratios 1, 4 and 8, head dims 64 and 128,
# odd and ragged lengths, one-token documents, documents shorter and longer than a 16-row block.
CASES = [
    ([5, 40, 17, 1], 4, 4, 64, True),
    ([5, 40, 17, 1], 8, 2, 64, True),
    ([33, 20, 7], 8, 1, 128, True),
    ([45], 4, 1, 128, True),
    ([1, 1, 3], 8, 1, 64, True),
    ([5, 40, 17, 1], 8, 1, 64, False),
    ([31, 2, 18], 4, 4, 128, False),
]


@pytest.mark.parametrize(("doc_lengths", "n_heads", "n_kv_heads", "head_dim", "causal"), CASES)
def test_matches_sdpa_per_document(doc_lengths, n_heads, n_kv_heads, head_dim, causal, device):
    _check(doc_lengths, n_heads, n_kv_heads, head_dim, causal, torch.float32, device)


def test_custom_softmax_scale(device):
    _check([9, 24], 4, 2, 64, True, torch.float32, device, softmax_scale=0.3)


@pytest.mark.parametrize("blocks", [(32, 16), (16, 32)])
@pytest.mark.parametrize("causal", [True, False])
def test_unequal_block_sizes(blocks, causal, device):
    # The pinned CUDA configs pair unequal BLOCK_M and BLOCK_N; check the block walk for both orders.
    lengths = [37, 64, 5]
    cu = _cu_seqlens(lengths, device)
    q, k, v, dout = _qkv(sum(lengths), 4, 2, 64, torch.float32, device)
    scale = 1 / math.sqrt(64)
    out, lse = attention_forward(q, k, v, cu, max(lengths), causal, scale, blocks)
    grads = attention_backward(dout, q, k, v, out, lse, cu, max(lengths), causal, scale, blocks)
    want = _forward_backward(attention_varlen_reference, q, k, v, dout, cu, causal)
    torch.testing.assert_close(out, want[0], **tolerance("attention", torch.float32))
    for g, w in zip(grads, want[1:]):
        torch.testing.assert_close(g, w, **tolerance("attention_grad", torch.float32))


def test_documents_are_isolated(device):
    # NaN in one document must not reach another: the kernels never load another document's rows.
    lengths = [20, 13, 30]
    cu = _cu_seqlens(lengths, device)
    q, k, v, dout = _qkv(sum(lengths), 4, 2, 64, torch.float32, device)
    clean = _forward_backward(flash_attention_varlen, q, k, v, dout, cu, max(lengths))
    for t in (q, k, v, dout):
        t[20:33] = float("nan")
    poisoned = _forward_backward(flash_attention_varlen, q, k, v, dout, cu, max(lengths))
    keep = torch.ones(sum(lengths), dtype=torch.bool)
    keep[20:33] = False
    for c, p in zip(clean, poisoned):
        torch.testing.assert_close(p[keep], c[keep], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # the interpreter's max over NaN rows
def test_fully_masked_blocks_are_skipped(device):
    # One 64-token document in 16-token blocks. NaN in rows a program must not visit shows up in its output
    # (NaN · 0 is NaN) if it visits them anyway.
    cu = _cu_seqlens([64], device)
    q, k, v, dout = _qkv(64, 2, 1, 64, torch.float32, device)
    scale, blocks = 0.125, (16, 16)
    out, lse = attention_forward(q, k, v, cu, 64, True, scale, blocks)
    dq, dk, dv = attention_backward(dout, q, k, v, out, lse, cu, 64, True, scale, blocks)
    # Queries 0..15 see only key block 0: their output and dq ignore keys and values 16..63.
    k_bad, v_bad = k.clone(), v.clone()
    k_bad[16:], v_bad[16:] = float("nan"), float("nan")
    out_bad, _ = attention_forward(q, k_bad, v_bad, cu, 64, True, scale, blocks)
    dq_bad, _, _ = attention_backward(dout, q, k_bad, v_bad, out, lse, cu, 64, True, scale, blocks)
    torch.testing.assert_close(out_bad[:16], out[:16], rtol=0, atol=0)
    torch.testing.assert_close(dq_bad[:16], dq[:16], rtol=0, atol=0)
    # Keys 48..63 are seen only by queries 48..63: their dk and dv ignore queries 0..47.
    q_bad, dout_bad = q.clone(), dout.clone()
    q_bad[:48], dout_bad[:48] = float("nan"), float("nan")
    _, dk_bad, dv_bad = attention_backward(dout_bad, q_bad, k, v, out, lse, cu, 64, True, scale, blocks)
    torch.testing.assert_close(dk_bad[48:], dk[48:], rtol=0, atol=0)
    torch.testing.assert_close(dv_bad[48:], dv[48:], rtol=0, atol=0)


def test_rejects_bad_shapes(device):
    q, k, v, _ = _qkv(8, 6, 4, 64, torch.float32, device)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        flash_attention_varlen(q, k, v, _cu_seqlens([8], device), 8)
    q, k, v, _ = _qkv(8, 4, 2, 64, torch.float32, device)
    with pytest.raises(ValueError, match="share a dtype"):
        flash_attention_varlen(q, k.double(), v, _cu_seqlens([8], device), 8)


def test_grid_limits_are_checked_before_launch(device):
    # Documents go on the grid's first axis (2^31 - 1); blocks of one document on the second (65535).
    q, k, v, _ = _qkv(8, 4, 2, 64, torch.float32, device)
    with pytest.raises(ValueError, match="exceeds CUDA's 65535 per axis"):
        attention_forward(q, k, v, _cu_seqlens([8], device), 16 * 65536, True, 0.125, (16, 16))


def test_gqa_backward_is_deterministic(device):
    # dK/dV: one program per query head, the group's fp32 shares summed in a fixed order, no atomics.
    lengths = [21, 34]
    q, k, v, dout = _qkv(sum(lengths), 8, 2, 64, torch.float32, device, seed=5)
    cu = _cu_seqlens(lengths, device)
    runs = [_forward_backward(flash_attention_varlen, q, k, v, dout, cu, 34) for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_compiles_without_graph_breaks(device):
    def attend(q, k, v, cu, max_seqlen):
        return flash_attention_varlen(q * 0.5, k, v, cu, max_seqlen).square().sum()

    lengths = [7, 12]
    cu = _cu_seqlens(lengths, device)
    q, k, v, _ = _qkv(19, 4, 1, 64, torch.float32, device)
    explanation = torch._dynamo.explain(attend)(q, k, v, cu, 12)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(attend, backend="aot_eager", fullgraph=True)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    compiled(*leaves, cu, 12).backward()
    eager = [t.clone().requires_grad_() for t in (q, k, v)]
    attend(*eager, cu, 12).backward()
    for c, e in zip(leaves, eager):
        torch.testing.assert_close(c.grad, e.grad)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("n_heads", "n_kv_heads", "head_dim"), [(32, 4, 64), (16, 4, 128)])
@pytest.mark.parametrize("causal", [True, False])
def test_bf16_gpu(n_heads, n_kv_heads, head_dim, causal):
    _check([1, 2048, 777, 3000, 2366], n_heads, n_kv_heads, head_dim, causal, torch.bfloat16, "cuda")
