"""Rotary position embedding (Llama's rotate_half convention) for packed tokens, as Triton kernels."""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import require_backend
from gristmill.trainer.kernels.reference import rope_inv_freq


@triton.jit
def _rope_rotate(
    OUT,
    X,
    stride_ot,
    stride_oh,
    stride_xt,
    stride_xh,
    token,
    cos,
    sin,
    n_heads,
    half,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    """out[:, :half] = x1·cos − x2·sin, out[:, half:] = x2·cos + x1·sin for one token's (n_heads, 2·half)."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    cols = tl.arange(0, BLOCK_HALF)[None, :]
    mask = (heads < n_heads) & (cols < half)
    x_ptrs = X + token * stride_xt + heads * stride_xh + cols
    x1 = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptrs + half, mask=mask, other=0.0).to(tl.float32)
    o_ptrs = OUT + token * stride_ot + heads * stride_oh + cols
    tl.store(o_ptrs, (x1 * cos - x2 * sin).to(OUT.dtype.element_ty), mask=mask)
    tl.store(o_ptrs + half, (x2 * cos + x1 * sin).to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _rope_angles(POS, INV_FREQ, token, half, BLOCK_HALF: tl.constexpr):
    """cos and sin of pos[token] · inv_freq, shaped (1, BLOCK_HALF), fp32."""
    cols = tl.arange(0, BLOCK_HALF)
    inv_freq = tl.load(INV_FREQ + cols, mask=cols < half, other=0.0)
    angle = tl.load(POS + token).to(tl.float32) * inv_freq
    return tl.cos(angle)[None, :], tl.sin(angle)[None, :]


@triton.jit
def _rope_forward_kernel(
    Q_OUT, K_OUT, Q, K, POS, INV_FREQ,
    stride_qot, stride_qoh, stride_kot, stride_koh, stride_qt, stride_qh, stride_kt, stride_kh,
    n_q_heads, n_k_heads, half,
    BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    """One program per token t.  With θ_i = pos[t] · inv_freq[i], i < D/2, rotates each head's halves:
    (x1, x2) ↦ (x1·cos θ − x2·sin θ, x2·cos θ + x1·sin θ), i.e. x·cos + rotate_half(x)·sin."""
    token = tl.program_id(0).to(tl.int64)
    cos, sin = _rope_angles(POS, INV_FREQ, token, half, BLOCK_HALF)
    _rope_rotate(Q_OUT, Q, stride_qot, stride_qoh, stride_qt, stride_qh, token, cos, sin, n_q_heads, half,
                 BLOCK_HQ, BLOCK_HALF)  # fmt: skip
    _rope_rotate(K_OUT, K, stride_kot, stride_koh, stride_kt, stride_kh, token, cos, sin, n_k_heads, half,
                 BLOCK_HK, BLOCK_HALF)  # fmt: skip


@triton.jit
def _rope_backward_kernel(
    DQ, DK, DQ_OUT, DK_OUT, POS, INV_FREQ,
    stride_dqt, stride_dqh, stride_dkt, stride_dkh, stride_dqot, stride_dqoh, stride_dkot, stride_dkoh,
    n_q_heads, n_k_heads, half,
    BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    """The rotation is orthogonal, so the gradient is the inverse rotation (θ ↦ −θ):
    (g1, g2) ↦ (g1·cos θ + g2·sin θ, g2·cos θ − g1·sin θ)."""
    token = tl.program_id(0).to(tl.int64)
    cos, sin = _rope_angles(POS, INV_FREQ, token, half, BLOCK_HALF)
    _rope_rotate(DQ, DQ_OUT, stride_dqt, stride_dqh, stride_dqot, stride_dqoh, token, cos, -sin, n_q_heads,
                 half, BLOCK_HQ, BLOCK_HALF)  # fmt: skip
    _rope_rotate(DK, DK_OUT, stride_dkt, stride_dkh, stride_dkot, stride_dkoh, token, cos, -sin, n_k_heads,
                 half, BLOCK_HK, BLOCK_HALF)  # fmt: skip


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _empty(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous tensor shaped like t."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def _check(q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor) -> None:
    if q.dim() != 3 or k.dim() != 3:
        raise ValueError(f"q and k must be (T, heads, head_dim); got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2] or q.shape[2] % 2:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} need the same T and an even head_dim")
    if position_ids.shape != (q.shape[0],):
        raise ValueError(f"position_ids must have shape ({q.shape[0]},), got {tuple(position_ids.shape)}")


@functools.lru_cache(maxsize=16)
def _inv_freq(head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """The reference's exact fp32 inverse frequencies, computed once per (head dim, theta, device) rather
    than on every call (a launch and a host→device copy per layer and step)."""
    return rope_inv_freq(head_dim, theta, device)


def block_sizes(n_q_heads: int, n_k_heads: int, head_dim: int) -> dict[str, int]:
    """The kernels' constexpr blocks: each head count and half the head dim, to powers of two (one program
    holds a token's heads whole)."""
    return {
        "BLOCK_HQ": triton.next_power_of_2(n_q_heads),
        "BLOCK_HK": triton.next_power_of_2(n_k_heads),
        "BLOCK_HALF": triton.next_power_of_2(head_dim // 2),
    }


def _launch(kernel, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float):
    """Runs a rope kernel over (T, heads, D) inputs q and k; returns new contiguous outputs."""
    require_backend(q, k)
    _check(q, k, position_ids)
    q, k = _unit_last_stride(q), _unit_last_stride(k)
    n_tokens, n_q_heads, head_dim = q.shape
    half = head_dim // 2
    q_out, k_out = _empty(q), _empty(k)
    inv_freq = _inv_freq(head_dim, theta, q.device)
    if n_tokens:
        kernel[(n_tokens,)](
            q_out, k_out, q, k, position_ids.contiguous(), inv_freq,
            q_out.stride(0), q_out.stride(1), k_out.stride(0), k_out.stride(1),
            q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            n_q_heads, k.shape[1], half, **block_sizes(n_q_heads, k.shape[1], head_dim),
        )  # fmt: skip
    return q_out, k_out


def rope_forward(
    q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches the forward kernel; returns rotated (q, k), contiguous, in their dtypes."""
    return _launch(_rope_forward_kernel, q, k, position_ids, theta)


def rope_backward(
    dq: torch.Tensor, dk: torch.Tensor, position_ids: torch.Tensor, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches the backward kernel; returns the gradients wrt the un-rotated q and k."""
    return _launch(_rope_backward_kernel, dq, dk, position_ids, theta)


@torch.library.custom_op("gristmill::rope", mutates_args=())
def _rope_op(
    q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    return rope_forward(q, k, position_ids, theta)


@_rope_op.register_fake
def _(q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float):
    return _empty(q), _empty(k)


@torch.library.custom_op("gristmill::rope_backward", mutates_args=())
def _rope_backward_op(
    dq: torch.Tensor, dk: torch.Tensor, position_ids: torch.Tensor, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    return rope_backward(dq, dk, position_ids, theta)


@_rope_backward_op.register_fake
def _(dq: torch.Tensor, dk: torch.Tensor, position_ids: torch.Tensor, theta: float):
    return _empty(dq), _empty(dk)


def _setup_rope(ctx, inputs, output) -> None:
    q, k, position_ids, theta = inputs
    ctx.save_for_backward(position_ids)
    ctx.q_shape, ctx.k_shape, ctx.dtype = q.shape, k.shape, q.dtype
    ctx.theta = theta


def _backward_rope(ctx, dq_out, dk_out):
    (position_ids,) = ctx.saved_tensors
    device = position_ids.device
    dq_out = torch.zeros(ctx.q_shape, dtype=ctx.dtype, device=device) if dq_out is None else dq_out
    dk_out = torch.zeros(ctx.k_shape, dtype=ctx.dtype, device=device) if dk_out is None else dk_out
    dq, dk = _rope_backward_op(dq_out, dk_out, position_ids, ctx.theta)
    return dq, dk, None, None


_rope_op.register_autograd(_backward_rope, setup_context=_setup_rope)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (q_out, k_out): q (T, n_heads, D) and k (T, n_kv_heads, D) rotated by RoPE at each token's
    position (position_ids (T,), restarting at every packed document), rotate_half convention, fp32 math.
    Raises ValueError on inconsistent shapes, RuntimeError where no kernel backend exists."""
    return _rope_op(q, k, position_ids, theta)
