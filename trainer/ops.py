"""The model's hot ops, each bound to our Triton kernel or its PyTorch reference as the config says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gristmill.errors import ConfigError
from gristmill.trainer.config import OpsConfig
from gristmill.trainer.kernels import kernels_available, reference


@dataclass(frozen=True)
class Ops:
    """The functions the model calls; `choices` records which implementation each op got."""

    rms_norm: Callable[..., torch.Tensor]
    rms_norm_residual: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    apply_rope: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    swiglu: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    linear_cross_entropy: Callable[..., torch.Tensor]
    attention: Callable[..., torch.Tensor]
    choices: dict[str, str]


def _attention_reference(q, k, v, cu_seqlens, max_seqlen, causal=True, softmax_scale=None):
    return reference.attention_varlen_reference(
        q, k, v, cu_seqlens, causal=causal, softmax_scale=softmax_scale
    )


def _resolve(op: str, choice: str, device: torch.device) -> str:
    if choice == "auto":
        return "kernel" if device.type == "cuda" and kernels_available() else "reference"
    if choice == "kernel" and not kernels_available():
        raise ConfigError(
            f"ops.{op} asks for the Triton kernel, which cannot run here (no CUDA device, "
            "and TRITON_INTERPRET=1 is not set)",
            where=f"model.ops.{op}",
            hint="use 'auto' or 'reference' on a machine without a GPU",
        )
    return choice


def build_ops(config: OpsConfig, device: torch.device | str) -> Ops:
    """Return the ops for `device`; raise ConfigError when a kernel is asked for where none can run."""
    device = torch.device(device)
    choices = {op: _resolve(op, getattr(config, op), device) for op in type(config).model_fields}
    use_kernel = {op: c == "kernel" for op, c in choices.items()}
    kernels = None
    if any(use_kernel.values()):
        from gristmill.trainer import kernels
    return Ops(
        rms_norm=kernels.rms_norm if use_kernel["rms_norm"] else reference.rms_norm_reference,
        rms_norm_residual=(
            kernels.rms_norm_residual if use_kernel["rms_norm"] else reference.rms_norm_residual_reference
        ),
        apply_rope=kernels.apply_rope if use_kernel["rope"] else reference.rope_reference,
        swiglu=kernels.swiglu if use_kernel["swiglu"] else reference.swiglu_reference,
        linear_cross_entropy=(
            kernels.fused_linear_cross_entropy
            if use_kernel["cross_entropy"]
            else reference.linear_cross_entropy_reference
        ),
        attention=kernels.flash_attention_varlen if use_kernel["attention"] else _attention_reference,
        choices=choices,
    )
