"""FlashAttention-2 for packed documents (varlen), with GQA and causal masking within each document.

Tokens of all documents are concatenated along T; ``cu_seqlens`` gives the document offsets. Programs are
launched per (document, block of the document, query head) and loop only over the key (or query) blocks of
their own document up to the diagonal, so fully masked blocks cost nothing; only blocks that straddle the
diagonal or a document's end apply a mask. The grid's first axis is the document (up to 2^31 - 1 of them),
and the block axis is walked heaviest first: every document's last query blocks (the most keys under the
causal mask) launch before its first ones, its first key blocks before its last.

dK/dV run one program per query head, as FlashAttention-2 does for GQA, rather than one per KV head looping
over its group: GROUP times the parallelism. With GROUP > 1 each program writes its head's share to an fp32
buffer and the group is summed afterwards in a fixed order (deterministic; no atomics). Launch configs are
pinned per GPU class, dtype and head dim (attention_configs.py), never autotuned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import dot_precision, interpreting, require_backend
from gristmill.trainer.kernels.attention_configs import (
    INTERPRETER_CONFIG,
    LaunchConfig,
    gpu_class,
    padded_head_dim,
    select_config,
    shared_memory_limit,
)

_LOG2E = 1.4426950408889634


@triton.jit
def _attention_forward_inner(
    acc, l_i, m_i, q, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, lo, hi, seqlen, qk_scale,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Online-softmax update of (acc, l_i, m_i) over the key blocks [lo, hi) of one document."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n  # key positions within the document
        kv_mask = (cols < seqlen)[:, None] & d_mask[None, :] if MASKED else d_mask[None, :]
        kv_rows = cols[:, None].to(tl.int64)
        k = tl.load(K_doc + kv_rows * stride_kt + offs_d[None, :], mask=kv_mask, other=0.0)  # (BN, BD)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale  # (BM, BN), log2 units
        if MASKED:
            valid = cols[None, :] < seqlen
            if CAUSAL:
                valid = valid & (rows[:, None] >= cols[None, :])
            # Finite, so a row masked in a whole block gives no inf - inf.
            qk = tl.where(valid, qk, -1.0e6)
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.exp2(qk - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(V_doc + kv_rows * stride_vt + offs_d[None, :], mask=kv_mask, other=0.0)  # (BN, BD)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attention_forward_kernel(
    O, LSE, Q, K, V, CU_SEQLENS,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    n_tokens, qk_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program (document, query block counted from the document's end, head).  For query i and keys j ≤ i
    of its document (all of the document's keys when not causal), with s_ij = scale · q_i·k_j:
    o_i = Σ_j softmax_j(s_ij) · v_j, and lse_i = log2 Σ_j 2^(s_ij · log2 e) is saved for the backward.
    Head h reads key/value head h // GROUP."""
    doc = tl.program_id(0)
    head = tl.program_id(2)
    doc_start = tl.load(CU_SEQLENS + doc).to(tl.int64)
    seqlen = (tl.load(CU_SEQLENS + doc + 1) - doc_start).to(tl.int32)
    n_blocks = tl.cdiv(seqlen, BLOCK_M)
    if tl.program_id(1) >= n_blocks:
        return
    start_m = (n_blocks - 1 - tl.program_id(1)) * BLOCK_M  # heaviest (last) query block first
    rows = start_m + tl.arange(0, BLOCK_M)  # query positions within the document
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < seqlen
    tok = doc_start + rows.to(tl.int64)
    q = tl.load(
        Q + tok[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
        mask=row_mask[:, None] & d_mask[None, :], other=0.0,
    )  # fmt: skip
    kv_head = head // GROUP
    K_doc = K + doc_start * stride_kt + kv_head * stride_kh
    V_doc = V + doc_start * stride_vt + kv_head * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    if CAUSAL:
        full_end = (start_m // BLOCK_N) * BLOCK_N  # key blocks wholly left of this query block
        masked_end = tl.minimum(start_m + BLOCK_M, seqlen)
    else:
        full_end = (seqlen // BLOCK_N) * BLOCK_N
        masked_end = seqlen
    acc, l_i, m_i = _attention_forward_inner(
        acc, l_i, m_i, q, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, 0, full_end, seqlen,
        qk_scale, CAUSAL, False, BLOCK_N, DOT_PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _attention_forward_inner(
        acc, l_i, m_i, q, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, full_end, masked_end,
        seqlen, qk_scale, CAUSAL, True, BLOCK_N, DOT_PRECISION,
    )  # fmt: skip
    acc = acc / l_i[:, None]
    tl.store(
        O + tok[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
        acc.to(O.dtype.element_ty), mask=row_mask[:, None] & d_mask[None, :],
    )  # fmt: skip
    tl.store(LSE + head * n_tokens + tok, m_i + tl.log2(l_i), mask=row_mask)


@triton.jit
def _attention_backward_preprocess_kernel(
    DELTA, O, DO, stride_ot, stride_oh, stride_dot, stride_doh, n_tokens,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """delta_i = Σ_d o_id · do_id (fp32), per token and head: the Σ_j p_ij · dp_ij of the softmax backward."""
    tok = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    head = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (tok < n_tokens)[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(O + tok[:, None] * stride_ot + head * stride_oh + offs_d[None, :], mask=mask, other=0.0)
    do = tl.load(DO + tok[:, None] * stride_dot + head * stride_doh + offs_d[None, :], mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + head * n_tokens + tok, delta, mask=tok < n_tokens)


@triton.jit
def _attention_backward_dkdv_inner(
    dk, dv, k, v, Q_head, DO_head, LSE_head, DELTA_head, stride_qt, stride_dot, cols, offs_d, d_mask,
    lo, hi, seqlen, qk_scale,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr, BLOCK_M: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulates dk and dv of one key block over the query blocks [lo, hi) of one head."""
    offs_m = tl.arange(0, BLOCK_M)
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + offs_m
        tok = rows[:, None].to(tl.int64)
        if MASKED:
            row_mask = rows < seqlen
            q_mask = row_mask[:, None] & d_mask[None, :]
            lse = tl.load(LSE_head + rows, mask=row_mask, other=0.0)
            delta = tl.load(DELTA_head + rows, mask=row_mask, other=0.0)
        else:
            q_mask = d_mask[None, :]
            lse = tl.load(LSE_head + rows)
            delta = tl.load(DELTA_head + rows)
        q = tl.load(Q_head + tok * stride_qt + offs_d[None, :], mask=q_mask, other=0.0)  # (BM, BD)
        do = tl.load(DO_head + tok * stride_dot + offs_d[None, :], mask=q_mask, other=0.0)
        qk_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale  # (BN, BM)
        p_t = tl.exp2(qk_t - lse[None, :])
        if MASKED:
            valid = rows[None, :] < seqlen
            if CAUSAL:
                valid = valid & (rows[None, :] >= cols[:, None])
            p_t = tl.where(valid, p_t, 0.0)
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=DOT_PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (BN, BM)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q, input_precision=DOT_PRECISION)
    return dk, dv


@triton.jit
def _attention_backward_dkdv_kernel(
    DK, DV, Q, K, V, DO, LSE, DELTA, CU_SEQLENS,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dkt, stride_dkh, stride_dvt, stride_dvh,
    n_tokens, qk_scale, sm_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program (document, key block, query head h), reading key/value head h // GROUP.  With
    p_ij = 2^(s_ij · log2 e − lse_i) and ds_ij = p_ij · (do_i·v_j − delta_i), head h's share of
    dv_j = Σ_i p_ij · do_i and dk_j = scale · Σ_i ds_ij · q_i, over queries i ≥ j of the document, is
    written at head h of DK and DV (shaped like q): the caller sums each group (nothing when GROUP is 1)."""
    doc = tl.program_id(0)
    start_n = tl.program_id(1) * BLOCK_N  # key block 0, the heaviest under the causal mask, first
    head = tl.program_id(2)
    kv_head = head // GROUP
    doc_start = tl.load(CU_SEQLENS + doc).to(tl.int64)
    seqlen = (tl.load(CU_SEQLENS + doc + 1) - doc_start).to(tl.int32)
    if start_n >= seqlen:
        return
    cols = start_n + tl.arange(0, BLOCK_N)  # key positions within the document
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    kv_mask = (cols < seqlen)[:, None] & d_mask[None, :]
    tok = doc_start + cols[:, None].to(tl.int64)
    k = tl.load(K + tok * stride_kt + kv_head * stride_kh + offs_d[None, :], mask=kv_mask, other=0.0)
    v = tl.load(V + tok * stride_vt + kv_head * stride_vh + offs_d[None, :], mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    # Query blocks: [lo, diag_end) straddle the diagonal (masked), [diag_end, full_end) see the whole key
    # block, [full_end, seqlen) hold the document's end (masked).
    if CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M
        diag_end = tl.minimum(lo + tl.cdiv(start_n + BLOCK_N - lo, BLOCK_M) * BLOCK_M, seqlen)
        full_end = tl.maximum(diag_end, (seqlen // BLOCK_M) * BLOCK_M)
    else:
        lo = 0
        diag_end = 0
        full_end = (seqlen // BLOCK_M) * BLOCK_M
    Q_head = Q + doc_start * stride_qt + head * stride_qh
    DO_head = DO + doc_start * stride_dot + head * stride_doh
    LSE_head = LSE + head * n_tokens + doc_start
    DELTA_head = DELTA + head * n_tokens + doc_start
    dk, dv = _attention_backward_dkdv_inner(
        dk, dv, k, v, Q_head, DO_head, LSE_head, DELTA_head, stride_qt, stride_dot, cols, offs_d, d_mask,
        lo, diag_end, seqlen, qk_scale, CAUSAL, True, BLOCK_M, DOT_PRECISION,
    )  # fmt: skip
    dk, dv = _attention_backward_dkdv_inner(
        dk, dv, k, v, Q_head, DO_head, LSE_head, DELTA_head, stride_qt, stride_dot, cols, offs_d, d_mask,
        diag_end, full_end, seqlen, qk_scale, CAUSAL, False, BLOCK_M, DOT_PRECISION,
    )  # fmt: skip
    dk, dv = _attention_backward_dkdv_inner(
        dk, dv, k, v, Q_head, DO_head, LSE_head, DELTA_head, stride_qt, stride_dot, cols, offs_d, d_mask,
        full_end, seqlen, seqlen, qk_scale, CAUSAL, True, BLOCK_M, DOT_PRECISION,
    )  # fmt: skip
    tl.store(DK + tok * stride_dkt + head * stride_dkh + offs_d[None, :], (dk * sm_scale).to(
        DK.dtype.element_ty), mask=kv_mask)  # fmt: skip
    tl.store(DV + tok * stride_dvt + head * stride_dvh + offs_d[None, :], dv.to(DV.dtype.element_ty),
             mask=kv_mask)  # fmt: skip


@triton.jit
def _attention_backward_dq_inner(
    dq, q, do, lse, delta, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, lo, hi, seqlen, qk_scale,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulates dq of one query block over the key blocks [lo, hi)."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        kv_mask = (cols < seqlen)[:, None] & d_mask[None, :] if MASKED else d_mask[None, :]
        kv_rows = cols[:, None].to(tl.int64)
        k = tl.load(K_doc + kv_rows * stride_kt + offs_d[None, :], mask=kv_mask, other=0.0)  # (BN, BD)
        v = tl.load(V_doc + kv_rows * stride_vt + offs_d[None, :], mask=kv_mask, other=0.0)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale  # (BM, BN)
        p = tl.exp2(qk - lse[:, None])
        if MASKED:
            valid = cols[None, :] < seqlen
            if CAUSAL:
                valid = valid & (rows[:, None] >= cols[None, :])
            p = tl.where(valid, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)  # (BM, BN)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)
    return dq


@triton.jit
def _attention_backward_dq_kernel(
    DQ, Q, K, V, DO, LSE, DELTA, CU_SEQLENS,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dqt, stride_dqh,
    n_tokens, qk_scale, sm_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program (document, query block counted from the document's end, head): dq_i = scale · Σ_j ds_ij · k_j
    over the document's keys j ≤ i, with ds as in the dk/dv kernel; the same block walk as the forward."""
    doc = tl.program_id(0)
    head = tl.program_id(2)
    doc_start = tl.load(CU_SEQLENS + doc).to(tl.int64)
    seqlen = (tl.load(CU_SEQLENS + doc + 1) - doc_start).to(tl.int32)
    n_blocks = tl.cdiv(seqlen, BLOCK_M)
    if tl.program_id(1) >= n_blocks:
        return
    start_m = (n_blocks - 1 - tl.program_id(1)) * BLOCK_M  # heaviest (last) query block first
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < seqlen
    mask = row_mask[:, None] & d_mask[None, :]
    tok = doc_start + rows.to(tl.int64)
    q = tl.load(Q + tok[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=mask, other=0.0)
    do = tl.load(DO + tok[:, None] * stride_dot + head * stride_doh + offs_d[None, :], mask=mask, other=0.0)
    lse = tl.load(LSE + head * n_tokens + tok, mask=row_mask, other=0.0)
    delta = tl.load(DELTA + head * n_tokens + tok, mask=row_mask, other=0.0)
    kv_head = head // GROUP
    K_doc = K + doc_start * stride_kt + kv_head * stride_kh
    V_doc = V + doc_start * stride_vt + kv_head * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    if CAUSAL:
        full_end = (start_m // BLOCK_N) * BLOCK_N
        masked_end = tl.minimum(start_m + BLOCK_M, seqlen)
    else:
        full_end = (seqlen // BLOCK_N) * BLOCK_N
        masked_end = seqlen
    dq = _attention_backward_dq_inner(
        dq, q, do, lse, delta, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, 0, full_end, seqlen,
        qk_scale, CAUSAL, False, BLOCK_N, DOT_PRECISION,
    )  # fmt: skip
    dq = _attention_backward_dq_inner(
        dq, q, do, lse, delta, K_doc, V_doc, stride_kt, stride_vt, rows, offs_d, d_mask, full_end, masked_end,
        seqlen, qk_scale, CAUSAL, True, BLOCK_N, DOT_PRECISION,
    )  # fmt: skip
    tl.store(DQ + tok[:, None] * stride_dqt + head * stride_dqh + offs_d[None, :], (dq * sm_scale).to(
        DQ.dtype.element_ty), mask=mask)  # fmt: skip


_GRID_AXIS_LIMIT = 65535  # CUDA's limit on a grid's second and third axes
PREPROCESS_BLOCK = 64  # tokens per program of the delta kernel on CUDA (unmeasured; 16 under the interpreter)


Blocks = tuple[int, int] | Mapping[str, LaunchConfig] | None


def _config(kernel: str, q: torch.Tensor, blocks: Blocks) -> LaunchConfig:
    """The launch config: (BLOCK_M, BLOCK_N) when given (tests), a given config per kernel name (tuning),
    the interpreter's, or the one pinned for the device."""
    if isinstance(blocks, tuple):
        return LaunchConfig(blocks[0], blocks[1], 4, 1)
    if blocks is not None and kernel in blocks:
        return blocks[kernel]
    if interpreting():
        return INTERPRETER_CONFIG
    return select_config(kernel, gpu_class(q.device), q.dtype, q.shape[2], shared_memory_limit(q.device))


def _launch(
    kernel, name: str, config: LaunchConfig, n_docs: int, blocks_of: int, heads: int, *args, **meta
) -> None:
    """Launches kernel on the grid (document, block, head); blocks_of: the longest document's length, tiled
    by BLOCK_N for the dk/dv kernel and BLOCK_M for the others. Raises ValueError past the grid's limits."""
    tile = config.block_n if name == "dkdv" else config.block_m
    n_blocks = triton.cdiv(blocks_of, tile)
    if n_blocks > _GRID_AXIS_LIMIT or heads > _GRID_AXIS_LIMIT:
        raise ValueError(
            f"attention grid of {n_blocks} blocks × {heads} heads exceeds CUDA's "
            f"{_GRID_AXIS_LIMIT} per axis (max_seqlen {blocks_of}, blocks of {tile})"
        )
    kernel[(n_docs, n_blocks, heads)](
        *args,
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
        **meta,
    )


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor) -> None:
    if q.dim() != 3 or k.dim() != 3 or k.shape != v.shape:
        raise ValueError(f"need q (T, H, D), k and v (T, H_kv, D); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")  # fmt: skip
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in T or head_dim")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"n_heads ({q.shape[1]}) must be a multiple of n_kv_heads ({k.shape[1]})")
    if not 16 <= q.shape[2] <= 256:
        raise ValueError(f"head_dim must be in [16, 256], got {q.shape[2]}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens must be (n_docs + 1,), got shape {tuple(cu_seqlens.shape)}")


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def launch_meta(n_heads: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype, causal: bool) -> dict:
    """The constexprs every attention kernel but the preprocess takes, besides its blocks."""
    return {
        "GROUP": n_heads // n_kv_heads,
        "CAUSAL": causal,
        "HEAD_DIM": head_dim,
        "BLOCK_D": padded_head_dim(head_dim),
        "DOT_PRECISION": dot_precision(dtype),
    }


def _meta(q: torch.Tensor, k: torch.Tensor, causal: bool) -> dict:
    return launch_meta(q.shape[1], k.shape[1], q.shape[2], q.dtype, causal)


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    causal: bool,
    softmax_scale: float,
    blocks: Blocks = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches the forward kernel. Returns (out (T, H, D) in q's dtype, lse (H, T) fp32 in log2 units).
    blocks: (BLOCK_M, BLOCK_N), or {kernel name: LaunchConfig}, instead of the pinned configs (tests,
    tuning). Raises ValueError on bad shapes."""
    require_backend(q, k, v)
    _check(q, k, v, cu_seqlens)
    q, k, v = _unit_last_stride(q), _unit_last_stride(k), _unit_last_stride(v)
    cu_seqlens = cu_seqlens.to(torch.int32)
    n_tokens, n_heads, _ = q.shape
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((n_heads, n_tokens), dtype=torch.float32, device=q.device)
    if n_tokens and max_seqlen > 0:
        _launch(
            _attention_forward_kernel, "forward", _config("forward", q, blocks), cu_seqlens.numel() - 1,
            max_seqlen, n_heads, out, lse, q, k, v, cu_seqlens,
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
            out.stride(0), out.stride(1),
            n_tokens, softmax_scale * _LOG2E, **_meta(q, k, causal),
        )  # fmt: skip
    return out, lse


def attention_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    causal: bool,
    softmax_scale: float,
    blocks: Blocks = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launches the backward kernels (delta, then dk/dv and dq). Returns (dq, dk, dv) shaped like q, k, v.
    With GQA, dk and dv are summed over each group from per-query-head fp32 shares."""
    dout, q, k, v = (_unit_last_stride(t) for t in (dout, q, k, v))
    cu_seqlens = cu_seqlens.to(torch.int32)
    n_tokens, n_heads, head_dim = q.shape
    meta = _meta(q, k, causal)
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    if not n_tokens or max_seqlen <= 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    delta = torch.empty((n_heads, n_tokens), dtype=torch.float32, device=q.device)
    block_pre = 16 if interpreting() else PREPROCESS_BLOCK
    _attention_backward_preprocess_kernel[(triton.cdiv(n_tokens, block_pre), n_heads)](
        delta, out, dout, out.stride(0), out.stride(1), dout.stride(0), dout.stride(1), n_tokens,
        HEAD_DIM=head_dim, BLOCK_D=meta["BLOCK_D"], BLOCK_M=block_pre,
    )  # fmt: skip
    n_docs = cu_seqlens.numel() - 1
    strides = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
               dout.stride(0), dout.stride(1))  # fmt: skip
    scales = (n_tokens, softmax_scale * _LOG2E, softmax_scale)
    group = meta["GROUP"]
    # per query head; fp32 shares summed below when heads share a KV head, else dk and dv themselves
    dk_heads = dk if group == 1 else torch.empty(q.shape, dtype=torch.float32, device=q.device)
    dv_heads = dv if group == 1 else torch.empty(q.shape, dtype=torch.float32, device=q.device)
    _launch(
        _attention_backward_dkdv_kernel, "dkdv", _config("dkdv", q, blocks), n_docs, max_seqlen, n_heads,
        dk_heads, dv_heads, q, k, v, dout, lse, delta, cu_seqlens, *strides,
        dk_heads.stride(0), dk_heads.stride(1), dv_heads.stride(0), dv_heads.stride(1), *scales, **meta,
    )  # fmt: skip
    if group > 1:  # head h belongs to KV head h // group: heads (T, n_kv, group, D), summed over the group
        dk.copy_(dk_heads.view(n_tokens, k.shape[1], group, head_dim).sum(dim=2))
        dv.copy_(dv_heads.view(n_tokens, k.shape[1], group, head_dim).sum(dim=2))
    _launch(
        _attention_backward_dq_kernel, "dq", _config("dq", q, blocks), n_docs, max_seqlen, n_heads,
        dq, q, k, v, dout, lse, delta, cu_seqlens, *strides, dq.stride(0), dq.stride(1), *scales, **meta,
    )  # fmt: skip
    return dq, dk, dv


@torch.library.custom_op("gristmill::flash_attention_varlen", mutates_args=())
def _attention_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    causal: bool,
    softmax_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    return attention_forward(q, k, v, cu_seqlens, max_seqlen, causal, softmax_scale)


@_attention_op.register_fake
def _(q, k, v, cu_seqlens, max_seqlen, causal, softmax_scale):
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    return out, q.new_empty((q.shape[1], q.shape[0]), dtype=torch.float32)


@torch.library.custom_op("gristmill::flash_attention_varlen_backward", mutates_args=())
def _attention_backward_op(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    causal: bool,
    softmax_scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return attention_backward(dout, q, k, v, out, lse, cu_seqlens, max_seqlen, causal, softmax_scale)


@_attention_backward_op.register_fake
def _(dout, q, k, v, out, lse, cu_seqlens, max_seqlen, causal, softmax_scale):
    return tuple(torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))


def _setup(ctx, inputs, output) -> None:
    q, k, v, cu_seqlens, max_seqlen, causal, softmax_scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens)
    ctx.mark_non_differentiable(lse)
    ctx.max_seqlen, ctx.causal, ctx.softmax_scale = max_seqlen, causal, softmax_scale


def _backward(ctx, dout, _dlse):
    q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
    dq, dk, dv = _attention_backward_op(
        dout, q, k, v, out, lse, cu_seqlens, ctx.max_seqlen, ctx.causal, ctx.softmax_scale
    )
    return dq, dk, dv, None, None, None, None


_attention_op.register_autograd(_backward, setup_context=_setup)


def flash_attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    causal: bool = True,
    softmax_scale: float | None = None,
) -> torch.Tensor:
    """Returns attention of packed documents, (T, n_heads, D) in q's dtype.

    q: (T, n_heads, D); k, v: (T, n_kv_heads, D), n_heads a multiple of n_kv_heads; cu_seqlens: (n_docs + 1,)
    int32 offsets, first 0 and last T; max_seqlen: at least the longest document (not checked, to avoid a
    device sync: a smaller value leaves rows unwritten). Tokens attend only within their document, causally
    when ``causal``. softmax_scale defaults to 1/sqrt(D). Raises ValueError on inconsistent shapes,
    RuntimeError where no kernel backend exists.
    """
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(q.shape[-1])
    return _attention_op(q, k, v, cu_seqlens, max_seqlen, causal, float(softmax_scale))[0]
