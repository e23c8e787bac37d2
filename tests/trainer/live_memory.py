"""Peak bytes of tensor storage allocated by torch ops inside a block, on any device (no torch.cuda needed).

A `TorchDispatchMode` sees every op's outputs. A storage first seen as an output is an allocation of its
nbytes; it is freed when the last tensor seen on it is garbage collected (weak references). Views share
their base's storage and count once. Tensors made before the block (inputs, parameters) are not counted.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveMemory(TorchDispatchMode):
    """Context manager: `peak` is the most bytes of storage allocated in the block and alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._holders: dict[int, list[weakref.ref]] = {}  # storage address → weak refs to its tensors
        self._bytes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t, inputs)
        return out

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        storage = t.untyped_storage()
        key = _storage_key(t)
        if storage.nbytes() == 0 or (key in inputs and key not in self._holders):
            return  # empty, or a view of (or out= into) memory allocated before the block
        if key not in self._holders:
            self._holders[key] = []
            self._bytes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self._holders[key].append(weakref.ref(t, lambda _ref, key=key: self._release(key)))

    def _release(self, key: int) -> None:
        holders = self._holders.get(key)
        if holders is None or any(ref() is not None for ref in holders):
            return
        del self._holders[key]
        self.live -= self._bytes.pop(key)


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()
