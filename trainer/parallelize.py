"""Data parallelism for the Transformer with FSDP2 (`fully_shard`), applied in one fixed order.

Order (inner units first, as FSDP2 requires):
  1. each transformer block is its own unit: its weights are all-gathered just before it runs and freed
     after, so at most a block or two are ever whole on a device;
  2. the root unit holds what is left: the embedding, the final norm and the LM head. Keeping them in one
     unit means a tied embedding/head weight is one parameter gathered once, and the fused cross-entropy
     (called in the root's forward, not through a module of its own) sees the full (vocab, hidden) weight.
bf16 on GPU: parameters are gathered in bf16 and gradients reduced in fp32; master weights and the
optimizer state stay fp32 and sharded. Works on CPU with the gloo backend (fp32).
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from gristmill.trainer.model import Transformer


def data_parallel_mesh(device: torch.device, world_size: int) -> DeviceMesh:
    """Return a 1-D mesh over all ranks on `device`'s type."""
    return init_device_mesh(device.type, (world_size,), mesh_dim_names=("dp",))


def apply_fsdp(
    model: Transformer,
    mesh: DeviceMesh,
    param_dtype: torch.dtype = torch.float32,
    compile_blocks: bool = False,
) -> Transformer:
    """Shard `model` in place, per block then the root; return it (now an FSDPModule)."""
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    last = len(model.layers) - 1
    for i, block in enumerate(model.layers):
        if compile_blocks:
            block.compile()
        # the last block's weights would be gathered again at once for the backward: keep them
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=i < last)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model
