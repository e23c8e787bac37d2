"""A build's curriculum, computed once: each stage's visits, the rows it holds out, and the walks over them.

The loader (which rows a stream walks, for how long) and the trainer (how many optimizer steps a stage
takes) both read a `Curriculum`, so they cannot disagree about a stage's training rows or its budget.

A stage is known by its name and its number, counted from 1 in build order (the manifest's `number`, the
`stage-<number>-<seq_len>/` directory, `gristmill shards show --stage`). A run walks stages in the order its
curriculum lists them; a *walk* is one such leg, known by its position in that list. One epoch of a walk
is its stage's visits (shards/visits.py): the stage's rows are stored once and visited as often as the plan
repeats them, so a stage's default budget is its planned trained tokens, not one pass over its rows.

    curriculum = Curriculum(manifest, holdout_rows={"2k": 640})
    curriculum.training_visits("2k")                              # row visits left to train on
    curriculum.walks(micro_batch_tokens, [("2k", 10_000_000)])    # what a ShardStream walks
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gristmill.errors import ConfigError
from gristmill.shards.manifest import Manifest, StageEntry
from gristmill.shards.partition import StageWalk
from gristmill.shards.visits import StageVisits


class Curriculum:
    """A build's stages as a run sees them, with `holdout_rows` (rows of every stage, or {stage: rows})
    held out of training. Raises ConfigError for an unknown stage or a count not in [0, rows)."""

    def __init__(self, manifest: Manifest, holdout_rows: int | Mapping[str, int] = 0) -> None:
        self.stages: list[StageEntry] = list(manifest.stages)
        self._by_name = {s.name: s for s in self.stages}
        if isinstance(holdout_rows, int):
            wanted = {s.name: holdout_rows for s in self.stages}
        else:
            wanted = dict(holdout_rows)
        for name in wanted:
            if name not in self._by_name:
                raise ConfigError(
                    f"holdout_rows names stage {name!r}, the build has {sorted(self._by_name)}",
                    where="holdout_rows",
                )
        self.holdouts: dict[str, int] = {}  # stage name → rows held out, for stages holding any out
        self._visits: dict[tuple[str, bool], StageVisits] = {}
        sources = [s.name for s in manifest.sources]
        for stage in self.stages:
            rows = wanted.get(stage.name, 0)
            if not 0 <= rows < stage.rows:
                raise ConfigError(
                    f"cannot hold out {rows} of stage {stage.name!r}'s {stage.rows} rows",
                    where=f"holdout_rows[{stage.name}]",
                    hint="hold out at least 0 rows and leave one to train on",
                )
            self._visits[(stage.name, False)] = StageVisits(stage, sources, rows)
            if rows:
                self.holdouts[stage.name] = rows
                self._visits[(stage.name, True)] = StageVisits(stage, sources, rows, held_out=True)

    def stage(self, name: str) -> StageEntry:
        """Return the stage called `name`; raise ConfigError when the build has none."""
        if name not in self._by_name:
            raise ConfigError(f"the build has no stage {name!r} (it has {sorted(self._by_name)})")
        return self._by_name[name]

    def visits(self, name: str, held_out: bool = False) -> StageVisits:
        """Return the visits of stage `name`'s training split, or of its held-out rows (`held_out`); raise
        ConfigError for an unknown stage or a held-out split of a stage holding nothing out."""
        stage = self.stage(name)
        if (stage.name, held_out) not in self._visits:
            raise ConfigError(
                f"stage {name!r} holds no rows out, so it has no held-out rows to walk",
                hint="give it holdout_rows",
            )
        return self._visits[(stage.name, held_out)]

    def training_visits(self, name: str) -> int:
        """Return the row visits one walk of stage `name` trains on (its held-out rows excluded)."""
        return self.visits(name).size

    def held_out_rows(self, name: str) -> np.ndarray:
        """Return the stage rows held out of stage `name`, sorted (none when it holds nothing out)."""
        if name not in self.holdouts:
            return np.zeros(0, np.int64)
        held = self.visits(name, held_out=True)
        return np.sort(held.rows_at(np.arange(held.size)))

    def walks(
        self,
        micro_batch_tokens: int,
        budgets: Sequence[tuple[str, int]] | None = None,
        held_out: bool = False,
    ) -> list[StageWalk]:
        """Return the walks a stream makes: `budgets`' (stage name, tokens), else one epoch of each stage.

        Every micro-batch holds `micro_batch_tokens` (micro_batch_tokens // seq_len rows of its stage). With
        `held_out`, each walk covers the stage's held-out rows instead of its training rows (by default, only
        the stages holding rows out). Raises ConfigError for an unknown stage, a budget below one row,
        micro_batch_tokens below seq_len, or a held-out walk of a stage holding nothing out.
        """
        if budgets is None:
            stages = [s for s in self.stages if s.name in self.holdouts or not held_out]
            budgets = [(s.name, self.visits(s.name, held_out).size * s.seq_len) for s in stages]
        walks = []
        for index, (name, tokens) in enumerate(budgets):
            if name not in self._by_name:
                raise ConfigError(
                    f"curriculum names stage {name!r}, the build has {sorted(self._by_name)}",
                    where=f"curriculum[{index}]",
                )
            stage = self._by_name[name]
            if held_out and name not in self.holdouts:
                raise ConfigError(
                    f"stage {name!r} holds no rows out, so it has no held-out rows to walk",
                    where=f"curriculum[{index}]",
                    hint="give it holdout_rows",
                )
            visits = self.visits(name, held_out)
            micro = micro_batch_tokens // stage.seq_len
            if micro < 1:
                raise ConfigError(
                    f"micro_batch_tokens {micro_batch_tokens} is below stage {name!r}'s sequence "
                    f"length {stage.seq_len}",
                    where="micro_batch_tokens",
                )
            if visits.size < 1 or tokens < stage.seq_len:
                raise ConfigError(
                    f"stage {name!r} has {visits.size} row visits and a budget of {tokens} tokens; "
                    f"a stage needs at least one row",
                    where=f"curriculum[{index}]",
                )
            walks.append(
                StageWalk(
                    index=index,
                    name=name,
                    seq_len=stage.seq_len,
                    rows=visits.size,
                    budget_rows=tokens // stage.seq_len,
                    micro_batch_rows=micro,
                    visits=visits,
                    held_out=held_out,
                )
            )
        return walks
