"""The torch face of the stream: an IterableDataset of micro-batches (the only module here importing torch).

Use it with `DataLoader(dataset, batch_size=None, num_workers=W)`: each worker yields whole micro-batches
k ≡ worker (mod W) and the DataLoader reads workers round-robin, so its output order equals the
single-process order for any W. For resume, either save `dataset.state_at(global_batches_consumed)` from
the training loop (prefetching does not matter), or use torchdata's `StatefulDataLoader`, whose per-worker
snapshots of `state_dict()` this dataset supports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from gristmill.shards.loader import ShardStream


def _default_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Yields a dict of torch tensors per micro-batch (see `gristmill.shards.batch`), stage name and index.

    `stream_options` go to `ShardStream`, e.g. holdout_rows / held_out for a split of held-out rows.
    """

    def __init__(
        self,
        build: str,
        *,
        micro_batch_tokens: int,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        curriculum: Sequence[tuple[str, int]] | None = None,
        **stream_options: Any,
    ) -> None:
        super().__init__()
        default_rank, default_world = _default_rank_world()
        self.stream = ShardStream(
            build,
            micro_batch_tokens=micro_batch_tokens,
            rank=default_rank if rank is None else rank,
            world_size=default_world if world_size is None else world_size,
            seed=seed,
            curriculum=curriculum,
            **stream_options,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for batch in self.stream.iterate(worker, num_workers):
            yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}

    def state_at(self, batches: int) -> dict[str, Any]:
        """Return the stream state after `batches` more global batches from the start or loaded state."""
        return self.stream.state_at(batches)

    def state_dict(self) -> dict[str, Any]:
        """Return the state after what this object (or this worker's copy) has yielded."""
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; raise BuildError when it belongs to another build or seed."""
        self.stream.load_state_dict(state)
