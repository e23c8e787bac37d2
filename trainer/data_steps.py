"""Which stage rows a training run's optimizer steps read, and which steps read a given row: both ways exact.

A run's data order is fixed by its config and the build alone (shards/partition.py): its curriculum
(`schedule_stages`) is one walk per stage, walk i holding exactly stage i's steps × tokens_per_step tokens.
Optimizer step s (counted from 1, as the trainer's metrics and checkpoints count them) of a stage whose
first step is f reads the walk's positions [(s − 1 − f) R, (s − f) R), R = tokens_per_step / L rows: its
`accumulation` global batches one after another, each cut into one micro-batch of `micro_batch_rows` per
rank. A position's row is `partition.walk_rows` (the epoch's shuffle of the stage's visits); a row's
positions are its inverse, `partition.walk_positions` (its visits, each at one position per epoch). The set
and order of a step's rows do not depend on the world size; which rank reads which of them does.

    schedule = RunSchedule.of(load_train_config("runs/demo.yaml"), read_manifest("build/demo"))
    schedule.step_rows(12)                  # the rows of step 12, per micro-batch and rank
    schedule.row_steps("short", [401])      # every step (micro-batch, rank) that reads row 401 of "short"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gristmill.errors import ConfigError
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import Manifest
from gristmill.shards.partition import StageWalk, walk_positions, walk_rows
from gristmill.trainer.config import TrainConfig
from gristmill.trainer.curriculum import StageSteps, eval_holdout, loader_curriculum, schedule_stages


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of a step on one rank: the stage rows it reads, in order."""

    micro_batch: int  # its place in the step, from 0 (gradient accumulation)
    rank: int
    rows: np.ndarray  # int64 stage rows


@dataclass(frozen=True)
class StepRows:
    """The rows one optimizer step reads: its stage and walk, the walk positions, and each micro-batch."""

    step: int  # from 1
    stage: str
    walk: int
    positions: range  # the walk positions the step reads, in order
    micro_batches: list[MicroBatch]

    def to_dict(self) -> dict:
        """Return the step's rows as JSON-ready data."""
        return {
            "step": self.step,
            "stage": self.stage,
            "walk": self.walk,
            "positions": [self.positions.start, self.positions.stop],
            "micro_batches": [
                {"micro_batch": b.micro_batch, "rank": b.rank, "rows": b.rows.tolist()}
                for b in self.micro_batches
            ],
        }

    def render(self) -> str:
        """Return the step's rows as text: a line per micro-batch and rank."""
        lines = [
            f"step {self.step}: stage {self.stage!r} (walk {self.walk}), walk positions "
            f"{self.positions.start}–{self.positions.stop - 1} ({len(self.positions)} rows)"
        ]
        for b in self.micro_batches:
            lines.append(
                f"  micro-batch {b.micro_batch}, rank {b.rank}: rows {' '.join(map(str, b.rows.tolist()))}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class RowRead:
    """One read of a stage row by a run: the step (from 1), micro-batch and rank, and the walk position."""

    row: int
    step: int
    micro_batch: int
    rank: int
    walk: int
    position: int


@dataclass(frozen=True)
class RunSchedule:
    """A training config's data order on a build: its stages as optimizer steps, and the loader's walks."""

    config: TrainConfig
    stages: list[StageSteps]
    walks: list[StageWalk]
    world_size: int

    @classmethod
    def of(cls, config: TrainConfig, manifest: Manifest, world_size: int = 1) -> RunSchedule:
        """Return the schedule `config` trains on the build of `manifest` on `world_size` devices (its eval
        holdout excluded, as the trainer does); raise ConfigError when they do not fit together."""
        if world_size < 1:
            raise ConfigError(f"world size {world_size} is below 1", where="world_size")
        curriculum = Curriculum(manifest, eval_holdout(config, manifest))
        stages = schedule_stages(config, curriculum, config.model, world_size)
        walks = curriculum.walks(config.micro_batch_tokens, loader_curriculum(stages))
        return cls(config, stages, walks, world_size)

    @property
    def total_steps(self) -> int:
        """Return the optimizer steps of the whole run."""
        return self.stages[-1].first_step + self.stages[-1].steps

    def step_rows(self, step: int) -> StepRows:
        """Return the rows optimizer step `step` (from 1) reads; raise ConfigError past the run's steps."""
        if not 1 <= step <= self.total_steps:
            raise ConfigError(f"step {step} is not in the run's steps 1–{self.total_steps}", where="step")
        index = next(i for i, s in enumerate(self.stages) if s.first_step < step <= s.first_step + s.steps)
        stage, walk = self.stages[index], self.walks[index]
        per_step = stage.tokens_per_step // stage.seq_len
        first = (step - 1 - stage.first_step) * per_step
        rows = walk_rows(walk, np.arange(first, first + per_step), self.config.seed)
        micro = walk.micro_batch_rows
        batches = []
        for k in range(stage.accumulation):
            for rank in range(self.world_size):
                at = (k * self.world_size + rank) * micro
                batches.append(MicroBatch(k, rank, rows[at : at + micro]))
        return StepRows(step, stage.name, walk.index, range(first, first + per_step), batches)

    def row_steps(self, stage: str, rows: Sequence[int] | np.ndarray) -> list[RowRead]:
        """Return every read of the stage rows `rows` of `stage` in the run, by step: each visit of a row, in
        each epoch of each walk of the stage (none for a row held out, or not in the run's budget)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        reads = []
        for steps, walk in zip(self.stages, self.walks):
            if walk.name != stage:
                continue
            which, positions = walk_positions(walk, rows, self.config.seed)
            per_step = steps.tokens_per_step // steps.seq_len
            global_rows = walk.global_rows(self.world_size)
            for w, p in zip(which.tolist(), positions.tolist()):
                reads.append(
                    RowRead(
                        row=int(rows[w]),
                        step=steps.first_step + p // per_step + 1,
                        micro_batch=(p % per_step) // global_rows,
                        rank=(p % global_rows) // walk.micro_batch_rows,
                        walk=walk.index,
                        position=p,
                    )
                )
        return sorted(reads, key=lambda r: (r.step, r.micro_batch, r.rank, r.position))
