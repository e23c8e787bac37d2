"""Turn the build's stages and the run's config into optimizer steps: batch size, accumulation, budget.

Per device, a micro-batch always holds `micro_batch_tokens` (B = micro_batch_tokens // L rows of the
stage's length L), so memory use is the same in every stage; a stage's tokens per optimizer step are made
up by gradient accumulation: accum = tokens_per_step / (micro_batch_tokens × world_size). A stage trains
for budget // tokens_per_step whole steps, and the loader is given exactly that budget, so no optimizer
step ever mixes two stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.errors import ConfigError
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import Manifest, StageEntry
from gristmill.trainer.config import ModelConfig, TrainConfig, TrainStage


@dataclass(frozen=True)
class StageSteps:
    """One curriculum stage as optimizer steps."""

    name: str
    seq_len: int
    tokens_per_step: int  # all devices
    micro_batch_rows: int  # per device per micro-batch
    accumulation: int  # micro-batches per device per optimizer step
    first_step: int  # global step index where the stage starts
    steps: int

    @property
    def tokens(self) -> int:
        """Return the tokens this stage trains on (what the loader's curriculum budgets)."""
        return self.steps * self.tokens_per_step


def schedule_stages(
    config: TrainConfig, curriculum: Curriculum, model: ModelConfig, world_size: int
) -> list[StageSteps]:
    """Return the stages to train, in order; raise ConfigError when a stage does not fit the run.

    A stage's default budget is one walk of its training rows as the build planned it (each row visited as
    often as the plan repeats it, held-out rows excluded): `Curriculum.training_visits` × seq_len.

    A stage does not fit when its sequence length exceeds the model's max_seq_len or micro_batch_tokens,
    when its tokens per step are not a whole number of micro-batches over all devices, or when its budget
    holds no whole step.
    """
    wanted = config.stages or [TrainStage(name=s.name) for s in curriculum.stages]
    if not wanted:
        raise ConfigError("the build has no stages", path=config.build, where="manifest.stages")
    stages: list[StageSteps] = []
    step = 0
    for i, want in enumerate(wanted):
        where = f"stages[{i}]" if config.stages else f"manifest.stages[{i}]"
        if want.name not in {s.name for s in curriculum.stages}:
            raise ConfigError(
                f"stage {want.name!r} is not in the build, which has {[s.name for s in curriculum.stages]}",
                where=where,
            )
        stage = curriculum.stage(want.name)
        check_stage_fits(stage, model, config.micro_batch_tokens, where)
        per_micro_step = config.micro_batch_tokens * world_size
        tokens_per_step = want.tokens_per_step or stage.tokens_per_step
        if tokens_per_step % per_micro_step:
            raise ConfigError(
                f"stage {stage.name!r}: {tokens_per_step} tokens per step is not a whole "
                f"number of micro-batches of {config.micro_batch_tokens} tokens on "
                f"{world_size} device(s)",
                where=f"{where}.tokens_per_step",
                hint=f"use a multiple of {per_micro_step}",
            )
        budget = want.tokens or curriculum.training_visits(stage.name) * stage.seq_len
        steps = budget // tokens_per_step
        if config.max_steps is not None:
            steps = min(steps, config.max_steps - step)
        if steps <= 0 and config.max_steps is not None and step >= config.max_steps:
            break
        if steps <= 0:
            raise ConfigError(
                f"stage {stage.name!r} has {budget} tokens, less than one step of {tokens_per_step}",
                where=where,
                hint="lower tokens_per_step, or raise tokens",
            )
        stages.append(
            StageSteps(
                name=stage.name,
                seq_len=stage.seq_len,
                tokens_per_step=tokens_per_step,
                micro_batch_rows=config.micro_batch_tokens // stage.seq_len,
                accumulation=tokens_per_step // per_micro_step,
                first_step=step,
                steps=steps,
            )
        )
        step += steps
    return stages


def check_stage_fits(stage: StageEntry, model: ModelConfig, micro_batch_tokens: int, where: str) -> None:
    """Raise ConfigError when a build stage's rows do not fit the run: longer than the model's max_seq_len,
    or not a whole number of them per micro-batch of `micro_batch_tokens` (`where` names the config field)."""
    if stage.seq_len > model.max_seq_len:
        raise ConfigError(
            f"stage {stage.name!r} has sequence length {stage.seq_len}, above the model's "
            f"max_seq_len {model.max_seq_len}",
            where=where,
            hint="raise model.max_seq_len, or train on shorter stages",
        )
    if micro_batch_tokens % stage.seq_len:
        raise ConfigError(
            f"micro_batch_tokens {micro_batch_tokens} is not a multiple of stage "
            f"{stage.name!r}'s sequence length {stage.seq_len}",
            where="micro_batch_tokens",
        )


def eval_holdout(config: TrainConfig, manifest: Manifest) -> dict[str, int]:
    """Return {stage name: rows} of the training build held out for evaluation ({} when none are); the
    `Curriculum` made with it checks that the stage exists and keeps rows to train on."""
    if config.eval is None or config.eval.holdout_rows is None or not manifest.stages:
        return {}
    return {config.eval.stage or manifest.stages[0].name: config.eval.holdout_rows}


def stage_at(stages: list[StageSteps], step: int) -> StageSteps:
    """Return the stage that optimizer step `step` belongs to; raise IndexError past the end."""
    for stage in stages:
        if stage.first_step <= step < stage.first_step + stage.steps:
            return stage
    raise IndexError(f"step {step} is past the curriculum's {sum(s.steps for s in stages)} steps")


def loader_curriculum(stages: list[StageSteps]) -> list[tuple[str, int]]:
    """Return the loader's curriculum: (stage name, tokens) with exactly the stages' step budgets."""
    return [(s.name, s.tokens) for s in stages]
