"""SwiGLU activation ``silu(gate) * up`` as elementwise Triton kernels."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import require_backend

# Elements per program: 1024 is the block size of Triton's elementwise tutorial (not re-measured here).
ELEMENTS_PER_PROGRAM = 1024


@triton.jit
def _swiglu_forward_kernel(OUT, GATE, UP, n_elements, BLOCK_SIZE: tl.constexpr):
    """out = silu(a) · b = a · σ(a) · b, with a = gate, b = up, in fp32."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    a = tl.load(GATE + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(UP + offs, mask=mask, other=0.0).to(tl.float32)
    out = a * tl.sigmoid(a) * b
    tl.store(OUT + offs, out.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_backward_kernel(DGATE, DUP, DOUT, GATE, UP, n_elements, BLOCK_SIZE: tl.constexpr):
    """Recomputes σ(a) instead of saving it.  With s = σ(a):
    d_up = dout · a · s and d_gate = dout · b · s · (1 + a · (1 − s))."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    dout = tl.load(DOUT + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(GATE + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(UP + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(a)
    tl.store(DUP + offs, (dout * a * s).to(DUP.dtype.element_ty), mask=mask)
    tl.store(DGATE + offs, (dout * b * s * (1.0 + a * (1.0 - s))).to(DGATE.dtype.element_ty), mask=mask)


def swiglu_forward(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Launches the forward kernel; returns silu(gate) * up, contiguous, in gate's dtype. Raises ValueError
    when the shapes differ, RuntimeError without a backend."""
    require_backend(gate, up)
    if gate.shape != up.shape:
        raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} must have the same shape")
    gate, up = gate.contiguous(), up.contiguous()
    out = torch.empty_like(gate)
    n = gate.numel()
    if n:
        _swiglu_forward_kernel[(triton.cdiv(n, ELEMENTS_PER_PROGRAM),)](
            out, gate, up, n, BLOCK_SIZE=ELEMENTS_PER_PROGRAM
        )
    return out


def swiglu_backward(
    dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches the backward kernel; returns (d_gate, d_up), contiguous."""
    dout, gate, up = dout.contiguous(), gate.contiguous(), up.contiguous()
    dgate, dup = torch.empty_like(gate), torch.empty_like(up)
    n = gate.numel()
    if n:
        _swiglu_backward_kernel[(triton.cdiv(n, ELEMENTS_PER_PROGRAM),)](
            dgate, dup, dout, gate, up, n, BLOCK_SIZE=ELEMENTS_PER_PROGRAM
        )
    return dgate, dup


@torch.library.custom_op("gristmill::swiglu", mutates_args=())
def _swiglu_op(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return swiglu_forward(gate, up)


@_swiglu_op.register_fake
def _(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)


@torch.library.custom_op("gristmill::swiglu_backward", mutates_args=())
def _swiglu_backward_op(
    dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return swiglu_backward(dout, gate, up)


@_swiglu_backward_op.register_fake
def _(dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.empty(gate.shape, dtype=gate.dtype, device=gate.device),
        torch.empty(up.shape, dtype=up.dtype, device=up.device),
    )


def _setup_swiglu(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward_swiglu(ctx, dout):
    gate, up = ctx.saved_tensors
    return _swiglu_backward_op(dout, gate, up)


_swiglu_op.register_autograd(_backward_swiglu, setup_context=_setup_swiglu)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Returns ``silu(gate) * up`` (fp32 math, gate's dtype) for same-shaped gate and up; the backward
    recomputes the sigmoid instead of storing it. Raises ValueError on a shape mismatch, RuntimeError
    without a backend."""
    return _swiglu_op(gate, up)
