"""gristmill's Triton kernels for the trainer, each with a plain-PyTorch reference in ``reference``.

Every op is a ``torch.library`` custom op with its own backward, so autograd uses our gradients and
``torch.compile`` traces around it without a graph break. Where triton is not installed only
``kernels_available`` (False) and ``reference`` are importable.
"""

import importlib.util

from gristmill.trainer.kernels._launch import kernels_available

__all__ = ["kernels_available"]

if importlib.util.find_spec("triton") is not None:
    from gristmill.trainer.kernels.attention import flash_attention_varlen
    from gristmill.trainer.kernels.cross_entropy import fused_linear_cross_entropy
    from gristmill.trainer.kernels.rms_norm import rms_norm, rms_norm_residual
    from gristmill.trainer.kernels.rope import apply_rope
    from gristmill.trainer.kernels.swiglu import swiglu

    __all__ += [
        "apply_rope",
        "flash_attention_varlen",
        "fused_linear_cross_entropy",
        "rms_norm",
        "rms_norm_residual",
        "swiglu",
    ]
