"""A build's curriculum, computed once: each stage's rows, the rows it holds out, and the walks over them.

The loader (which rows a stream walks, for how long) and the trainer (how many optimizer steps a stage
takes) both read a `Curriculum`, so they cannot disagree about a stage's training rows or its budget.

A stage is known by its name and its number, counted from 1 in build order (the manifest's `number`, the
`stage-<number>-<seq_len>/` directory, `gristmill shards show --stage`). A run walks stages in the order its
curriculum lists them; a *walk* is one such leg, known by its position in that list.

    curriculum = Curriculum(manifest, holdout_rows={"2k": 640})
    curriculum.training_rows("2k")                                # rows left to train on
    curriculum.walks(micro_batch_tokens, [("2k", 10_000_000)])    # what a ShardStream walks
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gristmill.errors import ConfigError
from gristmill.shards.manifest import Manifest, StageEntry
from gristmill.shards.partition import Holdout, StageWalk


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
        self.holdouts: dict[str, Holdout] = {}  # stage name → its held-out rows, for stages holding any out
        for stage in self.stages:
            rows = wanted.get(stage.name, 0)
            if not 0 <= rows < stage.rows:
                raise ConfigError(
                    f"cannot hold out {rows} of stage {stage.name!r}'s {stage.rows} rows",
                    where=f"holdout_rows[{stage.name}]",
                    hint="hold out at least 0 rows and leave one to train on",
                )
            if rows:
                self.holdouts[stage.name] = Holdout.of_stage(stage.rows, rows, stage.number)

    def stage(self, name: str) -> StageEntry:
        """Return the stage called `name`; raise ConfigError when the build has none."""
        if name not in self._by_name:
            raise ConfigError(f"the build has no stage {name!r} (it has {sorted(self._by_name)})")
        return self._by_name[name]

    def held_out_rows(self, name: str) -> int:
        """Return the rows of stage `name` held out of training."""
        holdout = self.holdouts.get(self.stage(name).name)
        return holdout.rows if holdout else 0

    def training_rows(self, name: str) -> int:
        """Return the rows of stage `name` left to train on."""
        return self.stage(name).rows - self.held_out_rows(name)

    def split_rows(self, name: str, held_out: bool) -> int:
        """Return the rows of the held-out split (`held_out`) or of the training split of stage `name`."""
        return self.held_out_rows(name) if held_out else self.training_rows(name)

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
            budgets = [(s.name, self.split_rows(s.name, held_out) * s.seq_len) for s in stages]
        walks = []
        for index, (name, tokens) in enumerate(budgets):
            if name not in self._by_name:
                raise ConfigError(
                    f"curriculum names stage {name!r}, the build has {sorted(self._by_name)}",
                    where=f"curriculum[{index}]",
                )
            stage = self._by_name[name]
            holdout = self.holdouts.get(name)
            if held_out and holdout is None:
                raise ConfigError(
                    f"stage {name!r} holds no rows out, so it has no held-out rows to walk",
                    where=f"curriculum[{index}]",
                    hint="give it holdout_rows",
                )
            micro = micro_batch_tokens // stage.seq_len
            if micro < 1:
                raise ConfigError(
                    f"micro_batch_tokens {micro_batch_tokens} is below stage {name!r}'s sequence "
                    f"length {stage.seq_len}",
                    where="micro_batch_tokens",
                )
            rows = self.split_rows(name, held_out)
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
                    holdout=holdout,
                    held_out=held_out,
                )
            )
        return walks
