"""Linear layer + cross-entropy (+ z-loss), chunked over tokens so the (N, V) logits never exist whole.

As in Liger-Kernel's fused linear cross-entropy, the gradients wrt x and the weight are computed in the
forward, chunk by chunk, while each chunk's logits are at hand; the backward only scales them by the
upstream gradient.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from gristmill.trainer.kernels._launch import interpreting, require_backend, row_settings

# Bytes for one chunk's fp32 logits plus their gradient in x's dtype. 512 MiB keeps the extra memory under
# the 1 GiB target at Fox-1's 256K vocabulary (256 tokens a chunk) and gives TinyLlama's 32K vocabulary
# chunks of 2048 tokens.
_CHUNK_BYTES = 512 * 2**20


def _block_size(vocab: int) -> tuple[int, int]:
    """(BLOCK_SIZE, num_warps) for the row loop: Liger-Kernel's cross-entropy setting on CUDA (blocks of up
    to 32768 columns, 32 warps; not re-measured here); blocks of 4096 under the interpreter, so the tests'
    5001-wide rows take the multi-block path."""
    block = min(4096 if interpreting() else 32768, 1 << max(0, vocab - 1).bit_length())
    return block, row_settings(block)[1]


@triton.jit
def _cross_entropy_forward_kernel(
    LOSS,  # (n_rows,) fp32 out: per-row loss, unscaled, 0 for ignored rows
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
    g_j = scale · (softmax(z)_j · (1 + 2 · z_loss · lse) − [j = y]).  Ignored rows get loss 0 and g = 0."""
    row = tl.program_id(0).to(tl.int64)
    logits_row = LOGITS + row * stride_logits
    grad_row = GRAD + row * stride_grad
    target = tl.load(TARGETS + row)
    if target == ignore_index:
        tl.store(LOSS + row, 0.0)
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

    if COMPUTE_GRAD:
        scale = tl.load(SCALE)
        for start in range(0, n_cols, BLOCK_SIZE):
            offs = start + tl.arange(0, BLOCK_SIZE)
            mask = offs < n_cols
            z = tl.load(logits_row + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.exp(z - lse) * coef
            g = tl.where(offs == target, g - 1.0, g) * scale
            tl.store(grad_row + offs, g.to(GRAD.dtype.element_ty), mask=mask)


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


def default_chunk_size(n_tokens: int, vocab_size: int, dtype: torch.dtype) -> int:
    """Returns the tokens per chunk: the largest power of two whose logits and gradient fit _CHUNK_BYTES,
    at most n_tokens (and at least 1)."""
    per_token = vocab_size * (4 + (0 if dtype == torch.float32 else torch.finfo(dtype).bits // 8))
    chunk = max(1, _CHUNK_BYTES // per_token)
    chunk = 1 << (chunk.bit_length() - 1)
    return max(1, min(chunk, n_tokens))


def fused_linear_cross_entropy_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    z_loss: float,
    reduction: str,
    chunk_size: int,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the chunked loop. Returns (loss, grad_x, grad_weight): loss a 0-dim fp32 tensor, the gradients
    of loss (for a unit upstream gradient) shaped like x and weight, or empty (0,) tensors when
    compute_grad is False. grad_weight accumulates in weight's dtype across chunks (fp32 within a chunk)."""
    n_tokens, _ = x.shape
    vocab = weight.shape[0]
    targets = targets.contiguous()
    valid = targets != ignore_index
    if reduction == "mean":
        scale = (1.0 / valid.sum().clamp(min=1).float()).reshape(1)
    else:
        scale = torch.ones(1, dtype=torch.float32, device=x.device)
    loss_rows = torch.empty(n_tokens, dtype=torch.float32, device=x.device)
    block, num_warps = _block_size(vocab)
    if compute_grad:
        grad_x = x.new_empty(x.shape)  # contiguous, whatever x's strides
        grad_w = weight.new_zeros(weight.shape)
    else:
        grad_x, grad_w = x.new_empty(0), weight.new_empty(0)
    for start in range(0, n_tokens, chunk_size):
        end = min(start + chunk_size, n_tokens)
        x_chunk = x[start:end]  # (c, H)
        logits = _logits_fp32(x_chunk, weight)  # (c, V) fp32
        # fp32 inputs: the kernel overwrites the logits with their gradient, saving a buffer.
        grad_logits = logits if x.dtype == torch.float32 else torch.empty_like(logits, dtype=x.dtype)
        _cross_entropy_forward_kernel[(end - start,)](
            loss_rows[start:end], grad_logits, logits, targets[start:end], scale,
            grad_logits.stride(0), logits.stride(0), vocab, ignore_index, z_loss,
            HAS_Z_LOSS=z_loss != 0.0, COMPUTE_GRAD=compute_grad, BLOCK_SIZE=block, num_warps=num_warps,
        )  # fmt: skip
        if compute_grad:
            torch.mm(grad_logits, weight, out=grad_x[start:end])  # (c, H)
            grad_w.addmm_(grad_logits.T, x_chunk)  # (V, H)
    loss = loss_rows.sum() * scale[0]
    return loss, grad_x, grad_w


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return fused_linear_cross_entropy_forward(
        x, weight, targets, ignore_index, z_loss, reduction, chunk_size, compute_grad
    )


@_fused_linear_cross_entropy_op.register_fake
def _(x, weight, targets, ignore_index, z_loss, reduction, chunk_size, compute_grad):
    loss = x.new_empty((), dtype=torch.float32)
    if not compute_grad:
        return loss, x.new_empty(0), weight.new_empty(0)
    return loss, x.new_empty(x.shape), weight.new_empty(weight.shape)


def _setup(ctx, inputs, output) -> None:
    _, grad_x, grad_w = output
    ctx.save_for_backward(grad_x, grad_w)
    ctx.consumed = False


def _backward(ctx, dloss, _dgrad_x, _dgrad_w):
    if ctx.consumed:
        raise RuntimeError("fused_linear_cross_entropy's backward can run once per forward (retain_graph)")
    ctx.consumed = True
    grad_x, grad_w = ctx.saved_tensors
    # In place: a scaled copy would add a second (V, H) buffer, 1 GiB at Fox-1's vocabulary in bf16.
    grad_x.mul_(dloss)
    grad_w.mul_(dloss)
    return grad_x, grad_w, None, None, None, None, None, None


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
    over non-ignored targets (0 when all are ignored), "sum" adds. chunk_size: tokens per chunk (default:
    default_chunk_size). The backward can run only once per forward. Raises ValueError on bad shapes,
    dtypes or reduction ("none" is not supported), RuntimeError where no kernel backend exists.
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
    compute_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    loss, _, _ = _fused_linear_cross_entropy_op(
        x, weight, targets, ignore_index, float(z_loss), reduction, int(chunk_size), compute_grad
    )
    return loss
