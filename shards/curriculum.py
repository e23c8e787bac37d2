"""A build's curriculum, computed once: each stage's rows, the rows it holds out, and the walks over them.

The loader (which rows a stream walks, for how long) and the trainer (how many optimizer steps a stage
takes) both read a `Curriculum`, so they cannot disagree about a stage's training rows or its budget.

    curriculum = Curriculum.of(manifest, holdout_rows={"2k": 640})
    curriculum.stage("2k").training_rows      # rows left to train on
    curriculum.walks(tokens_per_batch, [("2k", 10_000_000)])   # what a ShardStream walks
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gristmill.errors import ConfigError
from gristmill.shards.manifest import Manifest
from gristmill.shards.partition import Holdout, StageWalk


@dataclass(frozen=True)
class StageRows:
    """One build stage's rows: all of them, and the split into training and held-out rows."""

    number: int  # the stage's index in the manifest (which fixes its holdout)
    name: str
    seq_len: int
    tokens_per_batch: int  # the build's tokens per optimizer step for this stage
    rows: int
    holdout: Holdout | None  # None: every row trains

    @property
    def held_out_rows(self) -> int:
        """Return the rows held out of training."""
        return self.holdout.rows if self.holdout else 0

    @property
    def training_rows(self) -> int:
        """Return the rows left to train on."""
        return self.rows - self.held_out_rows

    def split_rows(self, held_out: bool) -> int:
        """Return the rows of the held-out split (`held_out`) or of the training split."""
        return self.held_out_rows if held_out else self.training_rows


class Curriculum:
    """A build's stages as a run sees them, with `holdout_rows` (rows of every stage, or {stage: rows})
    held out of training. Raises ConfigError for an unknown stage or a count not in [0, rows)."""

    def __init__(self, manifest: Manifest, holdout_rows: int | Mapping[str, int] = 0) -> None:
        if isinstance(holdout_rows, int):
            wanted = {s.name: holdout_rows for s in manifest.stages}
        else:
            wanted = dict(holdout_rows)
        known = {s.name for s in manifest.stages}
        for name in wanted:
            if name not in known:
                raise ConfigError(
                    f"holdout_rows names stage {name!r}, the build has {sorted(known)}", where="holdout_rows"
                )
        self.stages: list[StageRows] = []
        for number, stage in enumerate(manifest.stages):
            rows = wanted.get(stage.name, 0)
            if not 0 <= rows < stage.rows:
                raise ConfigError(
                    f"cannot hold out {rows} of stage {stage.name!r}'s {stage.rows} rows",
                    where=f"holdout_rows[{stage.name}]",
                    hint="hold out at least 0 rows and leave one to train on",
                )
            holdout = Holdout.of_stage(stage.rows, rows, number) if rows else None
            self.stages.append(
                StageRows(number, stage.name, stage.seq_len, stage.tokens_per_batch, stage.rows, holdout)
            )
        self._by_name = {s.name: s for s in self.stages}

    def stage(self, name: str) -> StageRows:
        """Return the stage called `name`; raise ConfigError when the build has none."""
        if name not in self._by_name:
            raise ConfigError(f"the build has no stage {name!r} (it has {sorted(self._by_name)})")
        return self._by_name[name]

    @property
    def holdouts(self) -> dict[str, Holdout]:
        """Return {stage name: holdout} of the stages that hold rows out."""
        return {s.name: s.holdout for s in self.stages if s.holdout is not None}

    def walks(
        self, tokens_per_batch: int, budgets: Sequence[tuple[str, int]] | None = None, held_out: bool = False
    ) -> list[StageWalk]:
        """Return the stages a stream walks: `budgets`' (stage name, tokens), else one epoch of each stage.

        With `held_out`, each walk covers the stage's held-out rows instead of its training rows (by
        default, only the stages holding rows out). Raises ConfigError for an unknown stage, a budget below
        one row, tokens_per_batch below seq_len, or a held-out walk of a stage holding nothing out.
        """
        if budgets is None:
            stages = [s for s in self.stages if s.holdout is not None or not held_out]
            budgets = [(s.name, s.split_rows(held_out) * s.seq_len) for s in stages]
        walks = []
        for index, (name, tokens) in enumerate(budgets):
            if name not in self._by_name:
                raise ConfigError(
                    f"curriculum names stage {name!r}, the build has {sorted(self._by_name)}",
                    where=f"curriculum[{index}]",
                )
            stage = self._by_name[name]
            if held_out and stage.holdout is None:
                raise ConfigError(
                    f"stage {name!r} holds no rows out, so it has no held-out rows to walk",
                    where=f"curriculum[{index}]",
                    hint="give it holdout_rows",
                )
            micro = tokens_per_batch // stage.seq_len
            if micro < 1:
                raise ConfigError(
                    f"tokens_per_batch {tokens_per_batch} is below stage {name!r}'s sequence "
                    f"length {stage.seq_len}",
                    where="tokens_per_batch",
                )
            rows = stage.split_rows(held_out)
            if rows < 1 or tokens < stage.seq_len:
                raise ConfigError(
                    f"stage {name!r} has {rows} rows and a budget of {tokens} tokens; "
                    f"a stage needs at least one row",
                    where=f"curriculum[{index}]",
                )
            walks.append(
                StageWalk(
                    index=index,
                    name=name,
                    seq_len=stage.seq_len,
                    rows=rows,
                    budget_rows=tokens // stage.seq_len,
                    micro_batch_rows=micro,
                    holdout=stage.holdout,
                    held_out=held_out,
                )
            )
        return walks
