"""Plain-PyTorch references of every kernel's math, and the tolerances the kernels are held to.

The kernels are tested against these, the benchmarks time them as the eager (and compiled) baseline,
and the trainer runs them where no kernel backend is available. Each computes in fp32 and returns the
input dtype, as the kernels do.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

# (atol, rtol) per op and dtype, for `torch.testing.assert_close(kernel, reference, atol=, rtol=)`, with the
# reference fed the same inputs.
# fp32: under the Triton interpreter, on the test shapes, the kernels differ from the reference by a few
# fp32 roundings, 10x or more inside these figures; on CUDA, fp32 `tl.dot` runs in "ieee" precision, so the
# same figures are meant to hold.
# bf16 (CUDA only; the interpreter is fp32-only): a bf16 kernel against the fp32 reference on the same
# bf16-rounded inputs. Outputs and gradients are rounded to bf16 (relative error up to 2**-8), so rtol is a
# few bf16 roundings and atol covers values near zero; gradients that sum many rounded terms (RMSNorm's
# weight, fused CE's weight, attention's K and V) get the looser "grad" entries. These are estimates not yet
# checked on a GPU: the first run of the `gpu` tests confirms or corrects them.
TOLERANCES: dict[tuple[str, torch.dtype], tuple[float, float]] = {
    ("rms_norm", torch.float32): (1e-5, 1e-5),
    ("rms_norm", torch.bfloat16): (2e-2, 2e-2),
    ("rms_norm_grad", torch.float32): (1e-4, 1e-4),
    ("rms_norm_grad", torch.bfloat16): (1e-1, 5e-2),
    ("rope", torch.float32): (1e-5, 1e-5),
    ("rope", torch.bfloat16): (1e-2, 1e-2),
    ("swiglu", torch.float32): (1e-5, 1e-5),
    ("swiglu", torch.bfloat16): (1e-2, 1e-2),
    ("cross_entropy", torch.float32): (1e-5, 1e-5),
    ("cross_entropy", torch.bfloat16): (1e-2, 1e-2),
    ("cross_entropy_grad", torch.float32): (1e-5, 1e-4),
    ("cross_entropy_grad", torch.bfloat16): (5e-3, 5e-2),  # with reduction="sum" (O(0.01-1) gradients)
    ("attention", torch.float32): (1e-5, 1e-4),
    ("attention", torch.bfloat16): (2e-2, 2e-2),
    ("attention_grad", torch.float32): (1e-4, 1e-4),
    ("attention_grad", torch.bfloat16): (5e-2, 5e-2),
}


def tolerance(op: str, dtype: torch.dtype) -> dict[str, float]:
    """Returns ``{"atol": ..., "rtol": ...}`` for ``op`` (a TOLERANCES key) at ``dtype``; raises KeyError."""
    atol, rtol = TOLERANCES[(op, dtype)]
    return {"atol": atol, "rtol": rtol}


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Returns ``x / sqrt(mean(x², -1) + eps) * weight`` computed in fp32, in x's dtype.

    x: (..., H), weight: (H,).
    """
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * rstd * weight.float()).to(x.dtype)


def rms_norm_residual_reference(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(rms_norm(x + residual), x + residual)``; the sum is rounded to x's dtype before the norm."""
    h = x + residual
    return rms_norm_reference(h, weight, eps), h


def rope_inv_freq(head_dim: int, theta: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Returns the (head_dim // 2,) fp32 inverse frequencies ``theta ** (-2i / head_dim)``, as Llama's."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    return 1.0 / (theta**exponents)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_reference(
    q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns q and k rotated by Llama's rotate_half RoPE, in fp32 then cast back.

    q: (T, n_heads, D), k: (T, n_kv_heads, D), position_ids: (T,) integer positions.
    """
    head_dim = q.shape[-1]
    inv_freq = rope_inv_freq(head_dim, theta, q.device)
    angles = position_ids.float()[:, None] * inv_freq[None, :]  # (T, D/2)
    emb = torch.cat((angles, angles), dim=-1)[:, None, :]  # (T, 1, D)
    cos, sin = emb.cos(), emb.sin()
    qf, kf = q.float(), k.float()
    q_out = qf * cos + _rotate_half(qf) * sin
    k_out = kf * cos + _rotate_half(kf) * sin
    return q_out.to(q.dtype), k_out.to(k.dtype)


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Returns ``silu(gate) * up`` computed in fp32, in gate's dtype."""
    return (F.silu(gate.float()) * up.float()).to(gate.dtype)


def linear_cross_entropy_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    z_loss: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Returns the cross-entropy of ``x @ weight.T`` against targets, plus ``z_loss * logsumexp²``.

    x: (N, H), weight: (V, H), targets: (N,) int64. Logits and the loss are fp32. "mean" divides by the
    number of non-ignored targets (0 when there are none, where F.cross_entropy gives NaN); "sum" does not.
    Raises ValueError for another reduction.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    logits = (x @ weight.T).float()  # (N, V)
    per_token = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="none")
    valid = targets != ignore_index
    if z_loss:
        lse = torch.logsumexp(logits, dim=-1)
        per_token = per_token + torch.where(valid, z_loss * lse.pow(2), 0.0)
    total = per_token.sum()
    if reduction == "sum":
        return total
    return total / valid.sum().clamp(min=1)


def attention_varlen_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    causal: bool = True,
    softmax_scale: float | None = None,
) -> torch.Tensor:
    """Returns attention over packed documents: SDPA run on each document separately, concatenated.

    q: (T, n_heads, D), k and v: (T, n_kv_heads, D) with n_heads a multiple of n_kv_heads (GQA);
    cu_seqlens: (n_docs + 1,) document offsets, first 0 and last T. Computes in fp32; returns q's dtype.
    """
    outputs = []
    bounds = cu_seqlens.tolist()
    group = q.shape[1] // k.shape[1]
    for start, end in itertools.pairwise(bounds):
        if end == start:
            continue
        qd = q[start:end].float().transpose(0, 1)  # (n_heads, L, D)
        kd = k[start:end].float().repeat_interleave(group, dim=1).transpose(0, 1)  # (n_heads, L, D)
        vd = v[start:end].float().repeat_interleave(group, dim=1).transpose(0, 1)
        od = F.scaled_dot_product_attention(qd, kd, vd, is_causal=causal, scale=softmax_scale)
        outputs.append(od.transpose(0, 1))  # (L, n_heads, D)
    if not outputs:
        return torch.empty_like(q)
    return torch.cat(outputs, dim=0).to(q.dtype)
