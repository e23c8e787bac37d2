"""Linear layer + cross-entropy (+ z-loss), chunked so the (N, V) logits never exist whole.

Forward, over chunks of tokens: each chunk's fp32 logits give its loss rows, its logsumexp and (when a
gradient is wanted) d(loss)/d(x) for the chunk, whose GEMM sums over the whole vocabulary at once. Unlike
Liger-Kernel, the weight gradient is not accumulated chunk by chunk (one bf16 rounding per chunk on the
(V, H) buffer); the backward computes it per vocabulary slice over all tokens instead: the slice's logits
are recomputed, turned into their gradient from the saved logsumexp, and one GEMM (fp32 accumulator, K = N)
writes the slice's rows of the weight gradient, rounded once. The price is one more (N × V × H) GEMM: four
where Liger-Kernel does three. The upstream gradient is folded into the gradient's scale, so nothing saved
is modified in place (which functionalisation under torch.compile would undo with a (V, H) copy).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import interpreting, require_backend, row_settings

# Bytes for one chunk's (or slice's) fp32 logits plus their gradient in x's dtype. 512 MiB keeps the extra
# memory under the 1 GiB target at Fox-1's 256K vocabulary (256 tokens a chunk, slices of 4096 columns at
# 16K tokens) and gives TinyLlama's 32K vocabulary chunks of 2048 tokens.
_CHUNK_BYTES = 512 * 2**20
# Columns per program of the row kernel on CUDA (see row_block).
_ROW_BLOCK = 16384
# Columns per program of the slice-gradient kernel (unmeasured; 256 under the interpreter so the tests'
# slices take several blocks).
_SLICE_BLOCK = 1024


def row_block(vocab: int, interpreted: bool | None = None) -> tuple[int, int]:
    """(BLOCK_SIZE, num_warps) for the row loop: blocks of up to 16384 columns on CUDA, warps by
    row_settings (16 at 16384); blocks of 4096 under the interpreter, so the tests' 5001-wide rows take the
    multi-block path. interpreted: None asks `interpreting()`.

    Liger-Kernel's setting, 32768 columns and 32 warps, caps a thread at 64 registers, and compiled for
    sm_90 in fp32 with the gradient it spills (12 B); 16384 columns and 16 warps compile spill-free for
    sm_80 and sm_90 in bf16 and fp32, at most 64 of their 128 registers (bench/kernels_aot.py; the speed
    of either is unmeasured)."""
    interpreted = interpreting() if interpreted is None else interpreted
    block = min(4096 if interpreted else _ROW_BLOCK, 1 << max(0, vocab - 1).bit_length())
    return block, row_settings(block)[1]


def slice_block(slice_size: int, interpreted: bool | None = None) -> int:
    """Columns per program of the slice-gradient kernel: _SLICE_BLOCK (256 under the interpreter), or the
    slice rounded up to a power of two when narrower. interpreted: None asks `interpreting()`."""
    interpreted = interpreting() if interpreted is None else interpreted
    return min(256 if interpreted else _SLICE_BLOCK, 1 << max(0, slice_size - 1).bit_length())


@triton.jit
def _cross_entropy_forward_kernel(
    LOSS,  # (n_rows,) fp32 out: per-row loss, unscaled, 0 for ignored rows, NaN for out-of-range targets
    LSE,  # (n_rows,) fp32 out: logsumexp of the row's logits
    GRAD,  # (n_rows, n_cols) out: d(scaled loss)/d(logits); may alias LOGITS
    LOGITS,  # (n_rows, n_cols) fp32
    TARGETS,  # (n_rows,) int64
    SCALE,  # (1,) fp32: 1 / (number of non-ignored targets) for "mean", 1 for "sum"
    stride_grad,
    stride_logits,
    n_cols,
    ignore_index,
    z_loss,
    HAS_Z_LOSS: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """One program per row z (logits), target y.  Online pass: lse = log Σ_j exp(z_j);
    loss = lse − z_y + z_loss · lse².  Second pass, the gradient of scale · loss:
    g_j = scale · (softmax(z)_j · (1 + 2 · z_loss · lse) − [j = y]).  Ignored rows get loss 0 and g = 0; a
    target outside [0, n_cols) is never read and gives loss NaN (the launcher also refuses it)."""
    row = tl.program_id(0).to(tl.int64)
    logits_row = LOGITS + row * stride_logits
    grad_row = GRAD + row * stride_grad
    target = tl.load(TARGETS + row)
    ignored = target == ignore_index
    if ignored | (target < 0) | (target >= n_cols):
        tl.store(LOSS + row, tl.where(ignored, 0.0, float("nan")))
        tl.store(LSE + row, 0.0)
        if COMPUTE_GRAD:
            for start in range(0, n_cols, BLOCK_SIZE):
                offs = start + tl.arange(0, BLOCK_SIZE)
                tl.store(grad_row + offs, tl.zeros((BLOCK_SIZE,), tl.float32), mask=offs < n_cols)
        return

    m = float("-inf")
    d = 0.0
    for start in range(0, n_cols, BLOCK_SIZE):
        offs = start + tl.arange(0, BLOCK_SIZE)
        z = tl.load(logits_row + offs, mask=offs < n_cols, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(z, axis=0))
        d = d * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), axis=0)
        m = m_new
    lse = m + tl.log(d)
    loss = lse - tl.load(logits_row + target).to(tl.float32)
    coef = 1.0
    if HAS_Z_LOSS:
        loss += z_loss * lse * lse
        coef = 1.0 + 2.0 * z_loss * lse
    tl.store(LOSS + row, loss)
    tl.store(LSE + row, lse)

    if COMPUTE_GRAD:
        scale = tl.load(SCALE)
        for start in range(0, n_cols, BLOCK_SIZE):
            offs = start + tl.arange(0, BLOCK_SIZE)
            mask = offs < n_cols
            z = tl.load(logits_row + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.exp(z - lse) * coef
            g = tl.where(offs == target, g - 1.0, g) * scale
            tl.store(grad_row + offs, g.to(GRAD.dtype.element_ty), mask=mask)


@triton.jit
def _cross_entropy_slice_grad_kernel(
    GRAD,  # (n_rows, n_cols) out: d(scaled loss)/d(logits) of columns [col_start, col_start + n_cols)
    LOGITS,  # (n_rows, n_cols) fp32: those columns' logits; may alias GRAD
    LSE,  # (n_rows,) fp32: logsumexp over the whole vocabulary
    TARGETS,  # (n_rows,) int64
    SCALE,  # (1,) fp32: the loss's scale times the upstream gradient
    stride_grad,
    stride_logits,
    n_cols,
    col_start,
    ignore_index,
    z_loss,
    HAS_Z_LOSS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """Program (row, block): g_j = scale · (exp(z_j − lse) · (1 + 2 · z_loss · lse) − [col_start + j = y])
    for the block's columns j; 0 for ignored rows."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_cols
    target = tl.load(TARGETS + row)
    if target == ignore_index:
        tl.store(GRAD + row * stride_grad + offs, tl.zeros((BLOCK_SIZE,), tl.float32), mask=mask)
        return
    lse = tl.load(LSE + row)
    coef = 1.0
    if HAS_Z_LOSS:
        coef = 1.0 + 2.0 * z_loss * lse
    z = tl.load(LOGITS + row * stride_logits + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.exp(z - lse) * coef
    g = tl.where(col_start + offs == target, g - 1.0, g) * tl.load(SCALE)
    tl.store(GRAD + row * stride_grad + offs, g.to(GRAD.dtype.element_ty), mask=mask)


@functools.lru_cache(maxsize=4)
def _mm_has_fp32_out(device_type: str, dtype: torch.dtype) -> bool:
    """Whether ``torch.mm(..., out_dtype=torch.float32)`` runs for dtype inputs on this device type."""
    try:
        a = torch.ones(16, 16, dtype=dtype, device=device_type)
        torch.mm(a, a, out_dtype=torch.float32)
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return True


def _logits_fp32(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ weight.T as fp32. bf16/fp16 inputs keep the GEMM's fp32 accumulator instead of rounding logits to
    16 bits first, where torch supports it (CUDA)."""
    if x.dtype == torch.float32:
        return torch.mm(x, weight.T)
    if _mm_has_fp32_out(x.device.type, x.dtype):
        return torch.mm(x, weight.T, out_dtype=torch.float32)
    return torch.mm(x, weight.T).float()


def _bytes_per_logit(dtype: torch.dtype) -> int:
    """fp32 logits, plus their gradient in dtype unless dtype is fp32 (then it overwrites the logits)."""
    return 4 + (0 if dtype == torch.float32 else torch.finfo(dtype).bits // 8)


def default_chunk_size(n_tokens: int, vocab_size: int, dtype: torch.dtype) -> int:
    """Returns the tokens per chunk: the largest power of two whose logits and gradient fit _CHUNK_BYTES,
    at most n_tokens (and at least 1)."""
    chunk = max(1, _CHUNK_BYTES // (vocab_size * _bytes_per_logit(dtype)))
    chunk = 1 << (chunk.bit_length() - 1)
    return max(1, min(chunk, n_tokens))


def default_slice_size(n_tokens: int, vocab_size: int, dtype: torch.dtype) -> int:
    """Returns the vocabulary columns per slice of the weight gradient: the largest power of two whose
    (n_tokens, slice) logits and gradient fit _CHUNK_BYTES, at most vocab_size (and at least 1)."""
    width = max(1, _CHUNK_BYTES // (max(1, n_tokens) * _bytes_per_logit(dtype)))
    width = 1 << (width.bit_length() - 1)
    return max(1, min(width, vocab_size))


def check_targets(targets: torch.Tensor, vocab_size: int, ignore_index: int) -> None:
    """Refuses a target outside [0, vocab_size) that is not ignore_index: ValueError naming the first one on
    a CPU; on CUDA an asynchronous device assert (no host sync), which fails the next synchronising call."""
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= vocab_size))
    message = f"cross_entropy targets must be in [0, {vocab_size}) or the ignore index {ignore_index}"
    if targets.device.type == "cuda":
        torch._assert_async(~bad.any(), message)
        return
    if bad.any():
        where = int(bad.nonzero()[0, 0])
        raise ValueError(f"{message}; target {where} is {int(targets[where])}")


def fused_linear_cross_entropy_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    z_loss: float,
    reduction: str,
    chunk_size: int,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the chunked loop over tokens. Returns (loss, grad_x, lse, scale): the 0-dim fp32 loss; the
    gradient of loss wrt x for a unit upstream gradient (an empty (0,) tensor when compute_grad is False);
    each row's (N,) fp32 logsumexp; the (1,) fp32 scale of the loss (1 / valid targets for "mean").

    One chunk's logits (and gradient) are alive at a time: a chunk's buffers are freed before the next
    chunk's are allocated."""
    n_tokens, _ = x.shape
    vocab = weight.shape[0]
    targets = targets.contiguous()
    check_targets(targets, vocab, ignore_index)
    valid = targets != ignore_index
    if reduction == "mean":
        scale = (1.0 / valid.sum().clamp(min=1).float()).reshape(1)
    else:
        scale = torch.ones(1, dtype=torch.float32, device=x.device)
    loss_rows = torch.empty(n_tokens, dtype=torch.float32, device=x.device)
    lse = torch.empty(n_tokens, dtype=torch.float32, device=x.device)
    block, num_warps = row_block(vocab)
    grad_x = x.new_empty(x.shape) if compute_grad else x.new_empty(0)  # contiguous, whatever x's strides
    for start in range(0, n_tokens, chunk_size):
        end = min(start + chunk_size, n_tokens)
        x_chunk = x[start:end]  # (c, H)
        logits = _logits_fp32(x_chunk, weight)  # (c, V) fp32
        # fp32 inputs: the kernel overwrites the logits with their gradient, saving a buffer.
        if not compute_grad or x.dtype == torch.float32:
            grad_logits = logits
        else:
            grad_logits = torch.empty_like(logits, dtype=x.dtype)
        _cross_entropy_forward_kernel[(end - start,)](
            loss_rows[start:end], lse[start:end], grad_logits, logits, targets[start:end], scale,
            grad_logits.stride(0), logits.stride(0), vocab, ignore_index, z_loss,
            HAS_Z_LOSS=z_loss != 0.0, COMPUTE_GRAD=compute_grad, BLOCK_SIZE=block, num_warps=num_warps,
        )  # fmt: skip
        if compute_grad:
            torch.mm(grad_logits, weight, out=grad_x[start:end])  # (c, H)
        del logits, grad_logits  # before the next chunk's allocation, so two chunks never coexist
    loss = loss_rows.sum() * scale[0]
    return loss, grad_x, lse, scale


def fused_linear_cross_entropy_weight_grad(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    scale: torch.Tensor,
    ignore_index: int,
    z_loss: float,
    slice_size: int,
) -> torch.Tensor:
    """Returns d(scale · Σ loss)/d(weight), (V, H) in weight's dtype, one vocabulary slice at a time.

    Each slice's rows come from one GEMM over all N tokens, written straight into the result (fp32
    accumulation inside the GEMM, one rounding to weight's dtype), so the result does not depend on how the
    forward chunked the tokens. lse: (N,) fp32 from the forward; scale: (1,) fp32, the loss's scale times
    the upstream gradient."""
    n_tokens = x.shape[0]
    vocab = weight.shape[0]
    grad_w = weight.new_empty(weight.shape)
    block = slice_block(slice_size)
    for start in range(0, vocab, slice_size):
        end = min(start + slice_size, vocab)
        logits = _logits_fp32(x, weight[start:end])  # (N, s) fp32
        grad_logits = logits if x.dtype == torch.float32 else torch.empty_like(logits, dtype=x.dtype)
        _cross_entropy_slice_grad_kernel[(n_tokens, triton.cdiv(end - start, block))](
            grad_logits, logits, lse, targets, scale, grad_logits.stride(0), logits.stride(0), end - start,
            start, ignore_index, z_loss, HAS_Z_LOSS=z_loss != 0.0, BLOCK_SIZE=block,
        )  # fmt: skip
        del logits
        torch.mm(grad_logits.T, x, out=grad_w[start:end])  # (s, H)
        del grad_logits
    return grad_w


@torch.library.custom_op("gristmill::fused_linear_cross_entropy", mutates_args=())
def _fused_linear_cross_entropy_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    z_loss: float,
    reduction: str,
    chunk_size: int,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return fused_linear_cross_entropy_forward(
        x, weight, targets, ignore_index, z_loss, reduction, chunk_size, compute_grad
    )


@_fused_linear_cross_entropy_op.register_fake
def _(x, weight, targets, ignore_index, z_loss, reduction, chunk_size, compute_grad):
    loss = x.new_empty((), dtype=torch.float32)
    lse = x.new_empty(x.shape[0], dtype=torch.float32)
    scale = x.new_empty(1, dtype=torch.float32)
    return loss, x.new_empty(x.shape) if compute_grad else x.new_empty(0), lse, scale


@torch.library.custom_op("gristmill::fused_linear_cross_entropy_weight_grad", mutates_args=())
def _weight_grad_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    scale: torch.Tensor,
    ignore_index: int,
    z_loss: float,
    slice_size: int,
) -> torch.Tensor:
    return fused_linear_cross_entropy_weight_grad(
        x, weight, targets, lse, scale, ignore_index, z_loss, slice_size
    )


@_weight_grad_op.register_fake
def _(x, weight, targets, lse, scale, ignore_index, z_loss, slice_size):
    return weight.new_empty(weight.shape)


def _setup(ctx, inputs, output) -> None:
    x, weight, targets, ignore_index, z_loss, _, _, _ = inputs
    _, grad_x, lse, scale = output
    ctx.save_for_backward(x, weight, targets, grad_x, lse, scale)
    ctx.mark_non_differentiable(grad_x, lse, scale)
    ctx.ignore_index, ctx.z_loss = ignore_index, z_loss


def _backward(ctx, dloss, _dgrad_x, _dlse, _dscale):
    x, weight, targets, grad_x, lse, scale = ctx.saved_tensors
    dx = dw = None
    if ctx.needs_input_grad[0]:
        dx = grad_x * dloss.to(grad_x.dtype)  # (N, H): a copy, not an in-place update of a saved tensor
    if ctx.needs_input_grad[1]:
        slice_size = default_slice_size(x.shape[0], weight.shape[0], x.dtype)
        dw = _weight_grad_op(x, weight, targets, lse, scale * dloss, ctx.ignore_index, ctx.z_loss, slice_size)
    return dx, dw, None, None, None, None, None, None


_fused_linear_cross_entropy_op.register_autograd(_backward, setup_context=_setup)


def fused_linear_cross_entropy(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    z_loss: float = 0.0,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Returns the fp32 0-dim loss ``cross_entropy(x @ weight.T, targets) + z_loss · logsumexp²`` without
    materialising the (N, V) logits.

    x: (N, H); weight: (V, H), same dtype; targets: (N,) int64 in [0, V) or ignore_index. "mean" averages
    over non-ignored targets (0 when all are ignored), "sum" adds. chunk_size: tokens per chunk of the
    forward (default: default_chunk_size). Raises ValueError on bad shapes, dtypes, reduction ("none" is
    not supported) or a target out of range (on CUDA that is a device assert instead), RuntimeError where
    no kernel backend exists.
    """
    require_backend(x, weight)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x (N, H) and weight (V, H) disagree: {tuple(x.shape)} and {tuple(weight.shape)}")
    if targets.shape != (x.shape[0],):
        raise ValueError(f"targets must have shape ({x.shape[0]},), got {tuple(targets.shape)}")
    if x.dtype != weight.dtype:
        raise ValueError(f"x ({x.dtype}) and weight ({weight.dtype}) must share a dtype")
    if chunk_size is None:
        chunk_size = default_chunk_size(x.shape[0], weight.shape[0], x.dtype)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    compute_grad = torch.is_grad_enabled() and x.requires_grad
    loss, _, _, _ = _fused_linear_cross_entropy_op(
        x, weight, targets, ignore_index, float(z_loss), reduction, int(chunk_size), compute_grad
    )
    return loss
