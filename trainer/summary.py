"""What a run is about to do, said before its first step: build, stages and their steps, model, device,
ops, batch sizes, evaluation and checkpoints, and a warning where the config asks for what it cannot get."""

from __future__ import annotations

from typing import Any

from gristmill.shards.manifest import Manifest
from gristmill.trainer.config import ModelConfig, TrainConfig
from gristmill.trainer.curriculum import StageSteps
from gristmill.trainer.model import count_parameters


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def run_summary(
    config: TrainConfig,
    manifest: Manifest,
    model: ModelConfig,
    stages: list[StageSteps],
    runtime: Any,
    ops: dict[str, str],
    evaluation: Any = None,
) -> list[str]:
    """Return the lines that describe a run before it starts (`evaluation`: the trainer's (scorer,
    eval set) or None)."""
    total = stages[-1].first_step + stages[-1].steps
    tokens = sum(s.tokens for s in stages)
    dtype = str(runtime.dtype).removeprefix("torch.")
    weights, with_embedding = count_parameters(model), count_parameters(model, include_embedding=True)
    lines = [
        f"build {config.build}: {manifest.name}, {len(manifest.stages)} stage(s), "
        f"{sum(s.tokens for s in manifest.stages):,} tokens",
        f"model {model.name}: {model.n_layers} layers, hidden {model.hidden_size}, heads "
        f"{model.n_heads}/{model.n_kv_heads} × {model.head_dim}, vocab {model.vocab_size}, "
        f"{_count(weights)} parameters ({_count(with_embedding)} with the input embedding)",
        f"device {runtime.device.type} × {runtime.world_size}, {dtype}; ops: "
        + ", ".join(f"{op} {choice}" for op, choice in ops.items()),
        f"micro-batch {config.micro_batch_tokens:,} tokens per device",
    ]
    for s in stages:
        lines.append(
            f"  stage {s.name} (seq_len {s.seq_len}): steps {s.first_step + 1}–{s.first_step + s.steps} "
            f"({s.steps}), {s.tokens_per_step:,} tokens/step = {s.micro_batch_rows} rows × "
            f"{s.accumulation} micro-batch(es) × {runtime.world_size} device(s)"
        )
    lines.append(f"total {total:,} steps, {tokens:,} tokens")
    if config.max_steps is not None and config.max_steps > total:
        lines.append(
            f"warning: max_steps {config.max_steps} is beyond the curriculum's {total} steps, so the run "
            f"trains {total} (raise a stage's `tokens` to train longer: tokens beyond an epoch repeat it)"
        )
    if evaluation is not None:
        _, eval_set = evaluation
        what = []
        if eval_set.rows:
            what.append(f"held-out rows ({', '.join(eval_set.rows)})")
        what += [f"text {t.name}" for t in eval_set.texts]
        what += [f"task {t.name}" for t in eval_set.tasks]
        lines.append(f"eval every {config.eval.every_steps} steps: " + "; ".join(what))
    lines.append(
        f"checkpoints every {config.checkpoint.every_steps} steps in {config.checkpoint_dir} "
        f"(newest {config.checkpoint.keep_last} kept); metrics in {config.metrics_path}"
    )
    return lines
