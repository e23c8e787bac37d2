"""RMSNorm over the last dimension, optionally fused with the residual add, as Triton kernels."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import num_persistent_programs, require_backend, row_settings


@triton.jit
def _rms_norm_forward_kernel(
    Y,  # (n_rows, n_cols) out, x's dtype
    H,  # (n_rows, n_cols) out, h = x + residual (only written when HAS_RESIDUAL)
    RSTD,  # (n_rows,) fp32 out
    X,
    R,  # residual, same shape as X (unused unless HAS_RESIDUAL)
    W,  # (n_cols,)
    stride_y,
    stride_h,
    stride_x,
    stride_r,
    n_cols,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """One program per row.  h = x (+ residual, rounded to x's dtype); rstd = 1 / sqrt(mean(h²) + eps);
    y = h · rstd · w; statistics and the product in fp32."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    h = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        h = h + tl.load(R + row * stride_r + cols, mask=mask, other=0.0)
        tl.store(H + row * stride_h + cols, h, mask=mask)
    h = h.to(tl.float32)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=0) / n_cols + eps)
    tl.store(RSTD + row, rstd)
    tl.store(Y + row * stride_y + cols, (h * rstd * w).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rms_norm_backward_kernel(
    DX,  # (n_rows, n_cols) out, x's dtype
    DW_PARTIAL,  # (n_programs, n_cols) fp32 out, one partial sum of dw per program
    DY,
    DH,  # gradient flowing into h = x + residual directly (only read when HAS_DH)
    H,
    W,
    RSTD,
    stride_dx,
    stride_dy,
    stride_dh,
    stride_h,
    n_rows,
    n_cols,
    rows_per_program,
    HAS_DH: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """Grid-stride over rows.  With g = dy · w and r = rstd:
    dh = r · (g − h · r² · mean(g · h)) (+ dh_in when HAS_DH), and dw = Σ_rows dy · h · r, of which each
    program writes its rows' partial sum."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    row_start = pid.to(tl.int64) * rows_per_program  # int64: row * stride may pass 2**31
    row_end = tl.minimum(row_start + rows_per_program, n_rows)
    for row in range(row_start, row_end):
        dy = tl.load(DY + row * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        h = tl.load(H + row * stride_h + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row)
        g = dy * w
        dh = rstd * (g - h * (rstd * rstd) * (tl.sum(g * h, axis=0) / n_cols))
        if HAS_DH:
            dh += tl.load(DH + row * stride_dh + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(DX + row * stride_dx + cols, dh.to(DX.dtype.element_ty), mask=mask)
        dw += dy * h * rstd
    tl.store(DW_PARTIAL + pid * n_cols + cols, dw, mask=mask)


def _empty(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous tensor shaped like t (the launchers' outputs are contiguous; so are the fakes)."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(..., n) -> (rows, n) with unit stride along the last dim (a view when possible)."""
    t = t.reshape(-1, t.shape[-1])
    return t if t.stride(-1) == 1 else t.contiguous()


def rms_norm_forward(
    x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launches the forward kernel. Returns (y, h, rstd): y and h shaped like x (h is x when residual is
    None), rstd (rows,) fp32. Raises ValueError on mismatched shapes, RuntimeError without a backend."""
    require_backend(x, weight)
    if weight.shape != (x.shape[-1],):
        raise ValueError(f"weight must have shape ({x.shape[-1]},), got {tuple(weight.shape)}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} differs from x shape {tuple(x.shape)}")
    x2 = _rows(x)  # (rows, n)
    n_rows, n_cols = x2.shape
    block, num_warps = row_settings(n_cols)
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    r2 = _rows(residual) if residual is not None else x2
    h = torch.empty_like(y) if residual is not None else x2
    if n_rows:
        _rms_norm_forward_kernel[(n_rows,)](
            y, h, rstd, x2, r2, weight,
            y.stride(0), h.stride(0), x2.stride(0), r2.stride(0),
            n_cols, eps,
            HAS_RESIDUAL=residual is not None, BLOCK_SIZE=block, num_warps=num_warps,
        )  # fmt: skip
    return y.view(x.shape), h.view(x.shape), rstd


def rms_norm_backward(
    dy: torch.Tensor, dh_in: torch.Tensor | None, h: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches the backward kernel. Returns (dh, dw): dh shaped like h (includes dh_in when given), dw
    shaped like weight."""
    h2, dy2 = _rows(h), _rows(dy)
    dh2 = _rows(dh_in) if dh_in is not None else dy2
    n_rows, n_cols = h2.shape
    block, num_warps = row_settings(n_cols)
    dx = torch.empty((n_rows, n_cols), dtype=h.dtype, device=h.device)
    programs = num_persistent_programs(h.device, n_rows)
    dw_partial = torch.zeros((programs, n_cols), dtype=torch.float32, device=h.device)
    if n_rows:
        _rms_norm_backward_kernel[(programs,)](
            dx, dw_partial, dy2, dh2, h2, weight, rstd,
            dx.stride(0), dy2.stride(0), dh2.stride(0), h2.stride(0),
            n_rows, n_cols, triton.cdiv(n_rows, programs),
            HAS_DH=dh_in is not None, BLOCK_SIZE=block, num_warps=num_warps,
        )  # fmt: skip
    return dx.view(h.shape), dw_partial.sum(0).to(weight.dtype)


@torch.library.custom_op("gristmill::rms_norm", mutates_args=())
def _rms_norm_op(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    y, _, rstd = rms_norm_forward(x, None, weight, eps)
    return y, rstd


@_rms_norm_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _empty(x), x.new_empty(x.numel() // x.shape[-1], dtype=torch.float32)


@torch.library.custom_op("gristmill::rms_norm_residual", mutates_args=())
def _rms_norm_residual_op(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return rms_norm_forward(x, residual, weight, eps)


@_rms_norm_residual_op.register_fake
def _(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = x.numel() // x.shape[-1]
    return _empty(x), _empty(x), x.new_empty(rows, dtype=torch.float32)


@torch.library.custom_op("gristmill::rms_norm_backward", mutates_args=())
def _rms_norm_backward_op(
    dy: torch.Tensor, dh_in: torch.Tensor | None, h: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return rms_norm_backward(dy, dh_in, h, weight, rstd)


@_rms_norm_backward_op.register_fake
def _(
    dy: torch.Tensor, dh_in: torch.Tensor | None, h: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return _empty(h), _empty(weight)


def _setup_rms_norm(ctx, inputs, output) -> None:
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.mark_non_differentiable(output[1])  # rstd


def _backward_rms_norm(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    if dy is None:
        dy = torch.zeros_like(x)
    dx, dw = _rms_norm_backward_op(dy.contiguous(), None, x, weight, rstd)
    return dx, dw, None


def _setup_rms_norm_residual(ctx, inputs, output) -> None:
    _, _, weight, _ = inputs
    ctx.save_for_backward(output[1], weight, output[2])
    ctx.mark_non_differentiable(output[2])  # rstd


def _backward_rms_norm_residual(ctx, dy, dh, _drstd):
    h, weight, rstd = ctx.saved_tensors
    if dy is None:
        dy = torch.zeros_like(h)
    dx, dw = _rms_norm_backward_op(dy.contiguous(), dh, h, weight, rstd)
    # x and residual enter h = x + residual with unit weight: both receive dh.
    return dx, dx, dw, None


_rms_norm_op.register_autograd(_backward_rms_norm, setup_context=_setup_rms_norm)
_rms_norm_residual_op.register_autograd(_backward_rms_norm_residual, setup_context=_setup_rms_norm_residual)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Returns ``x / sqrt(mean(x², -1) + eps) * weight`` (fp32 statistics) in x's dtype; x: (..., H),
    weight: (H,). Raises ValueError on a shape mismatch, RuntimeError where no kernel backend exists."""
    return _rms_norm_op(x, weight, eps)[0]


def rms_norm_residual(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(rms_norm(h, weight, eps), h)`` with ``h = x + residual`` (rounded to x's dtype), in one
    pass. Raises as rms_norm does."""
    y, h, _ = _rms_norm_residual_op(x, residual, weight, eps)
    return y, h
