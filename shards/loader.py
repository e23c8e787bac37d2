"""Stream a build's micro-batches to one rank: deterministic, resumable, elastic, following the curriculum.

`ShardStream` is the framework-free iterator (numpy micro-batches); `gristmill.shards.torch_dataset` wraps
it as a torch IterableDataset. The order of samples is fixed by (manifest, seed, curriculum) alone — see
`partition` for how global batches are cut and `shuffle` for the stateless permutation — so the state is
small: (walk, positions consumed in it, seed, walk hash, holdout); a walk is one leg of the run's
curriculum (`curriculum.Curriculum.walks`). The walk hash (`Manifest.walk_hash`) covers what the walks
depend on — stages, shard row counts, source blocks — and not checksums or token counts, so a state saved
before a takedown (which rewrites shards but keeps every row in place) resumes after it.

Held-out rows: `holdout_rows` holds a fixed set of rows of a stage out of training (see `visits.StageVisits`;
the set depends only on the build, the stage and the count, not on the seed). The training stream never
yields them, in any epoch; a stream made with the same `holdout_rows` and `held_out=True` walks exactly
them, e.g. for evaluation.

Workers: iterating with `worker=w, num_workers=W` yields the rank's micro-batches k ≡ w (mod W), counted
from where the stream starts; reading workers round-robin (which torch's DataLoader does, with
batch_size=None) gives the same order as one process.

State: `state_at(batches)` is the state after `batches` more global batches from where this stream was
started or loaded — the count a trainer keeps — so what workers have prefetched does not matter.
`state_dict()` is the state after the micro-batches this object has yielded itself; inside a dataloader
worker it also records that worker's next micro-batch, which is what torchdata's StatefulDataLoader saves
and restores per worker.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from gristmill.errors import BuildError, ConfigError
from gristmill.shards.batch import micro_batch
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import StageEntry, manifest_path, read_manifest
from gristmill.shards.partition import (
    SHUFFLE_BLOCK_ROWS,
    SHUFFLE_WINDOW_BLOCKS,
    Position,
    StageWalk,
    advance,
    global_batches,
    normalise,
    rank_positions,
    walk_rows,
)
from gristmill.shards.source import ShardSource

STATE_VERSION = 3  # 2: the place in the curriculum is `walk` (was `stage_index`); 3: pins `walk_hash`
# (was `manifest_hash`, which a takedown changes)
_LOOKAHEAD_BATCHES = 4  # read-ahead horizon, in this worker's micro-batches
_ROWS_CHUNK = 64  # micro-batches whose rows are computed in one shuffle call

Batch = dict[str, Any]


class _StageIndex:
    """Maps a stage's global row index to (shard, row in shard): cumulative row counts, one searchsorted."""

    def __init__(self, stage: StageEntry, manifest: str) -> None:
        self.stage = stage
        counts = np.fromiter((s.rows for s in stage.shards), dtype=np.int64, count=len(stage.shards))
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        if self.starts[-1] != stage.rows:
            raise BuildError(
                f"stage {stage.name!r} has {stage.rows} rows but its shards hold {self.starts[-1]}",
                path=manifest,
                where=f"stages[{stage.name}].rows",
            )

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (shard number, row within shard) for each stage row."""
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        return shard, rows - self.starts[shard]


class ShardStream:
    """Iterates one rank's micro-batches of a build; raises BuildError/ConfigError on bad builds or states.

    Each micro-batch is a dict: input_ids, targets, position_ids (B, L) `token_dtype`; loss_mask (B, L)
    bool; cu_seqlens (segments + 1,) int32 and max_seqlen (see `gristmill.shards.batch`); row_ids (B,)
    the rows' indices in their stage; stage (name), walk (its leg of the curriculum), seq_len, and position
    (the global batch's first position in the walk). B = micro_batch_tokens // L, so a micro-batch holds
    the same tokens in every stage. Each iteration starts at the start (or loaded) state.

    `holdout_rows` (rows of every stage, or {stage name: rows}) holds rows out of training; with
    `held_out=True` the stream walks only those rows (one epoch of them by default).

    A remote build's shards are cached under `cache_dir` (default $GRISTMILL_CACHE_DIR, else the user's
    cache directory), evicted to `cache_max_bytes` (default $GRISTMILL_CACHE_MAX_BYTES, else 64 GiB); see
    `gristmill.shards.cache`. Cached copies are always checked against the manifest; `verify` is about
    local shards, which are hashed once per process when it is on.
    """

    def __init__(
        self,
        build: str,
        *,
        micro_batch_tokens: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        curriculum: Sequence[tuple[str, int]] | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        cache_max_bytes: int | None = None,
        read_ahead: int = 2,
        verify: bool = True,
        shuffle_block_rows: int = SHUFFLE_BLOCK_ROWS,
        shuffle_window_blocks: int = SHUFFLE_WINDOW_BLOCKS,
        cross_document_targets: bool = False,
        token_dtype: type = np.int64,
        holdout_rows: int | Mapping[str, int] = 0,
        held_out: bool = False,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in [0, world_size={world_size})", where="rank")
        self.build = build
        self.manifest = read_manifest(build, **(storage_options or {}))
        self.walk_hash = self.manifest.walk_hash()
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.curriculum = Curriculum(self.manifest, holdout_rows)
        if held_out and not self.curriculum.holdouts:
            raise ConfigError(
                "held_out=True walks the held-out rows, but holdout_rows holds none out", where="holdout_rows"
            )
        self.held_out = held_out
        self.walks = self.curriculum.walks(micro_batch_tokens, curriculum, held_out)
        self._index = [_StageIndex(self.curriculum.stage(w.name), manifest_path(build)) for w in self.walks]
        self.source = ShardSource(
            build,
            storage_options=storage_options,
            cache_dir=cache_dir,
            cache_max_bytes=cache_max_bytes,
            read_ahead=read_ahead,
            verify=verify,
        )
        self.shuffle_block_rows, self.shuffle_window_blocks = shuffle_block_rows, shuffle_window_blocks
        self.cross_document_targets = cross_document_targets
        self.token_dtype = token_dtype
        self._start = Position(0, 0)
        self._resume_worker: dict[str, int] | None = None
        self._worker, self._num_workers = 0, 1
        self._first, self._yielded = 0, 0  # first micro-batch number, micro-batches yielded by this object

    # -- the sample order --------------------------------------------------------------------------------

    def rows_at(self, walk: StageWalk, positions: np.ndarray) -> np.ndarray:
        """Return the stage rows at a walk's positions: epoch e = position // walk.rows reshuffles the visits
        of the walk's stage split (shards/visits.py), and each visit names a stage row (`walk_rows`)."""
        return walk_rows(
            walk,
            positions,
            self.seed,
            block_rows=self.shuffle_block_rows,
            window_blocks=self.shuffle_window_blocks,
        )

    # -- iteration ---------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    def iterate(self, worker: int = 0, num_workers: int = 1) -> Iterator[Batch]:
        """Yield this rank's micro-batches that belong to `worker` of `num_workers`, from the start state."""
        if not 0 <= worker < num_workers:
            raise ConfigError(f"worker {worker} is not in [0, {num_workers})", where="worker")
        resume = self._resume_worker
        if resume is not None and resume["worker"] == worker and resume["num_workers"] == num_workers:
            first = resume["next"]  # this worker's own saved place (StatefulDataLoader)
        else:
            first = worker
        self._worker, self._num_workers, self._first, self._yielded = worker, num_workers, first, 0
        starts = global_batches(self.walks, self._start, self.world_size)
        owned = (pos for k, pos in enumerate(starts) if k >= first and (k - first) % num_workers == 0)
        for chunk in self._with_rows(owned):
            for i, (pos, rows) in enumerate(chunk):
                self._read_ahead(pos.walk, [r for _, r in chunk[i : i + 1 + _LOOKAHEAD_BATCHES]])
                batch = self._load(pos, rows)
                self._yielded += 1  # before the yield: state_dict() between next() calls counts this batch
                yield batch

    def _with_rows(self, owned: Iterator[Position]) -> Iterator[list[tuple[Position, np.ndarray]]]:
        # the shuffle is vectorised, so computing the rows of many micro-batches in one call is much cheaper
        for index, group in itertools.groupby(owned, key=lambda p: p.walk):
            walk = self.walks[index]
            while chunk := list(itertools.islice(group, _ROWS_CHUNK)):
                positions = np.concatenate(
                    [
                        np.arange(r.start, r.stop)
                        for r in (rank_positions(walk, p.rows, self.rank) for p in chunk)
                    ]
                )
                rows = self.rows_at(walk, positions).reshape(len(chunk), walk.micro_batch_rows)
                yield list(zip(chunk, rows))

    def _read_ahead(self, walk: int, upcoming: list[np.ndarray]) -> None:
        if self.source.local:
            return
        index = self._index[walk]
        shards, _ = index.locate(np.concatenate(upcoming))
        self.source.prefetch([index.stage.shards[i] for i in dict.fromkeys(shards.tolist())])

    def _load(self, pos: Position, rows: np.ndarray) -> Batch:
        walk = self.walks[pos.walk]
        index = self._index[pos.walk]
        shard, local = index.locate(rows)
        tokens = np.empty((rows.size, walk.seq_len + 1), dtype=np.int32)
        parts: list[tuple[int, np.ndarray]] = []
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            self.source.open(index.stage.shards[s], walk.seq_len).take(local[sel], tokens, sel, parts)
        parts.sort(key=lambda p: p[0])
        offsets = np.concatenate([p[1] for p in parts])
        counts = np.array([p[1].size for p in parts])
        try:
            batch = micro_batch(
                tokens,
                offsets,
                counts,
                cross_document_targets=self.cross_document_targets,
                dtype=self.token_dtype,
            )
        except ValueError as e:
            names = sorted({index.stage.shards[s].path for s in shard.tolist()})
            raise BuildError(f"bad doc_offsets: {e}", path=self.build, where=f"one of {names}") from None
        batch.update(stage=walk.name, walk=walk.index, seq_len=walk.seq_len, row_ids=rows, position=pos.rows)
        return batch

    # -- state -------------------------------------------------------------------------------------------

    def _state(self, pos: Position) -> dict[str, Any]:
        pos = normalise(self.walks, pos, self.world_size)
        done = pos.walk >= len(self.walks)
        return {
            "version": STATE_VERSION,
            "walk_hash": self.walk_hash,
            "seed": self.seed,
            "walk": pos.walk,
            "stage": None if done else self.walks[pos.walk].name,
            "rows": pos.rows,
            **self._holdout_state(),
        }

    def _holdout_state(self) -> dict[str, Any]:
        return {"holdout_rows": dict(sorted(self.curriculum.holdouts.items())), "held_out": self.held_out}

    def state_at(self, batches: int) -> dict[str, Any]:
        """Return the state after `batches` more global batches from this stream's start (or loaded state)."""
        return self._state(advance(self.walks, self._start, batches, self.world_size))

    def state_dict(self) -> dict[str, Any]:
        """Return the state after the micro-batches this object yielded (per worker inside a worker)."""
        if self._num_workers == 1:
            return self.state_at(self._first + self._yielded)
        if self._yielded == 0:
            state = self._state(self._start)
            nxt = self._first
        else:  # after this worker's last micro-batch; its next one is num_workers - 1 further on
            state = self.state_at(self._first + (self._yielded - 1) * self._num_workers + 1)
            nxt = self._num_workers - 1
        state["worker"] = {"worker": self._worker, "num_workers": self._num_workers, "next": nxt}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; raise BuildError for another build, seed or curriculum."""
        if state.get("version") != STATE_VERSION:
            raise BuildError(
                f"stream state version {state.get('version')!r} is not {STATE_VERSION}", where="state.version"
            )
        if state["walk_hash"] != self.walk_hash:
            raise BuildError(
                f"the state was saved on a build whose walks hash to {state['walk_hash']}, "
                f"this build's to {self.walk_hash}",
                path=self.build,
                where="state.walk_hash",
                hint="resume on the same build (a takedown keeps it), or start a fresh stream",
            )
        if state["seed"] != self.seed:
            raise BuildError(
                f"the state was saved with seed {state['seed']}, this stream's is {self.seed}",
                where="state.seed",
                hint="pass the seed the run started with",
            )
        saved = {"holdout_rows": state.get("holdout_rows", {}), "held_out": state.get("held_out", False)}
        if saved != self._holdout_state():  # states from before holdouts existed hold nothing out
            raise BuildError(
                f"the state was saved holding out {saved}, this stream holds out {self._holdout_state()}",
                where="state.holdout_rows",
                hint="resume with the holdout the run started with",
            )
        index, name = state["walk"], state["stage"]
        if index > len(self.walks) or (index < len(self.walks) and self.walks[index].name != name):
            raise BuildError(
                f"the state is in walk {index} (stage {name!r}), which this curriculum does not have "
                f"there ({[w.name for w in self.walks]})",
                where="state.walk",
                hint="resume with the curriculum the run started with",
            )
        self._start = Position(index, int(state["rows"]))
        self._resume_worker = state.get("worker")
        self._first, self._yielded = 0, 0

    def close(self) -> None:
        """Release open shards and the read-ahead thread."""
        self.source.close()
