"""The training loop: small `build_*` functions assemble a run, `train` walks the curriculum.

One process per device; under torchrun (or Ray Train) the ranks shard the model with FSDP2 and read
disjoint rows of every global batch. The loss of a step is the mean over every counted target of every
micro-batch on every rank, so one device with accumulation and N devices train the same model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from gristmill.errors import BuildError, ConfigError
from gristmill.shards.batch import IGNORE_INDEX
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.shards.torch_dataset import ShardDataset
from gristmill.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from gristmill.trainer.config import ModelConfig, TrainConfig
from gristmill.trainer.curriculum import (
    StageSteps,
    eval_holdout,
    loader_curriculum,
    schedule_stages,
    stage_at,
)
from gristmill.trainer.evaluate import (
    EvalSet,
    build_tokenizer,
    evaluate,
    held_out_rows,
    make_eval_set,
    most_batches,
)
from gristmill.trainer.metrics import (
    MetricsLog,
    ThroughputMeter,
    peak_tflops,
    tokens_through,
    truncate_metrics,
)
from gristmill.trainer.model import Transformer
from gristmill.trainer.ops import build_ops
from gristmill.trainer.parallelize import apply_fsdp, data_parallel_mesh
from gristmill.trainer.schedule import build_scheduler
from gristmill.trainer.scoring import ModelScorer
from gristmill.trainer.summary import run_summary


@dataclass
class Runtime:
    """Where this process runs: rank, world size, device, compute dtype, and whether FSDP shards the model."""

    rank: int
    world_size: int
    device: torch.device
    dtype: torch.dtype
    sharded: bool
    owns_process_group: bool = False

    def all_reduce(self, value: torch.Tensor) -> torch.Tensor:
        """Return the sum of `value` over ranks (itself on one process)."""
        if dist.is_initialized():
            dist.all_reduce(value)
        return value


@dataclass
class TrainResult:
    """What a run did: the loss of every step trained in this call, held-out losses, the last checkpoint."""

    losses: dict[int, float] = field(default_factory=dict)  # 1-based step → training loss
    eval_losses: dict[int, float] = field(default_factory=dict)  # step → held-out loss
    evals: dict[int, dict[str, float]] = field(default_factory=dict)  # step → every evaluation metric
    stages: list[StageSteps] = field(default_factory=list)
    resumed_from: int = 0
    checkpoint: Path | None = None


def build_runtime(config: TrainConfig) -> Runtime:
    """Join the process group torchrun describes (if any) and pick the device and dtype.

    Raises ConfigError for CUDA asked where there is none, or bf16 on a CPU.
    """
    cuda = torch.cuda.is_available() if config.device == "auto" else config.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ConfigError("device is cuda but no CUDA device is visible", where="device")
    bf16 = config.dtype == "bfloat16" or (config.dtype == "auto" and cuda)
    dtype = torch.bfloat16 if bf16 else torch.float32
    if not cuda and dtype != torch.float32:
        raise ConfigError("bf16 training needs a GPU; on a CPU the trainer runs in fp32", where="dtype")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    owns = False
    if not dist.is_initialized() and (world_size > 1 or cuda):
        backend = "nccl" if cuda else "gloo"
        if world_size > 1:
            dist.init_process_group(backend)
        else:  # one GPU: a process group of one, so FSDP2 gives the same bf16 mixed precision as on many
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        owns = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return Runtime(
        rank=rank,
        world_size=world_size,
        device=device,
        dtype=dtype,
        sharded=dist.is_initialized(),
        owns_process_group=owns,
    )


def build_model_config(config: TrainConfig, manifest: Manifest) -> ModelConfig:
    """Return the model config with its vocabulary fitted to the build's tokenizer.

    Raises ConfigError when the model's vocabulary is smaller than the tokenizer's.
    """
    model = config.model
    if manifest.tokenizer is None:
        if model.vocab_size is None:
            raise ConfigError(
                "the build's manifest names no tokenizer, so model.vocab_size must be set",
                path=config.build,
                where="model.vocab_size",
            )
        return model
    vocab = manifest.tokenizer.vocab_size
    if model.vocab_size is None:
        return model.with_vocab(vocab)
    if model.vocab_size < vocab:
        raise ConfigError(
            f"model.vocab_size {model.vocab_size} is smaller than the build tokenizer's vocab_size {vocab}",
            where="model.vocab_size",
            hint="leave vocab_size unset to take it from the build, or raise it",
        )
    return model


def build_model(model_config: ModelConfig, config: TrainConfig, runtime: Runtime) -> Transformer:
    """Return the model, initialised from the seed on the CPU (so any world size starts from the same
    weights), moved to the device, and sharded with FSDP2 when in a process group."""
    torch.manual_seed(config.seed)
    model = Transformer(model_config, build_ops(model_config.ops, runtime.device))
    model.to(runtime.device)
    if runtime.sharded:
        return apply_fsdp(
            model,
            data_parallel_mesh(runtime.device, runtime.world_size),
            runtime.dtype,
            compile_blocks=config.compile,
        )
    if config.compile:
        for block in model.layers:
            block.compile()
    return model


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """Return AdamW with weight decay on matrices and none on norm scales."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = config.optimizer
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=opt.lr,
        betas=opt.betas,
        eps=opt.eps,
        foreach=True,
    )


def build_data(
    config: TrainConfig, stages: list[StageSteps], runtime: Runtime, holdout: dict[str, int] | None = None
) -> ShardDataset:
    """Return this rank's stream of micro-batches over exactly the curriculum's steps, never yielding a
    row of `holdout` ({stage name: rows held out})."""
    return ShardDataset(
        config.build,
        micro_batch_tokens=config.micro_batch_tokens,
        rank=runtime.rank,
        world_size=runtime.world_size,
        seed=config.seed,
        curriculum=loader_curriculum(stages),
        storage_options=config.storage_options or None,
        holdout_rows=holdout or 0,
    )


def build_eval(
    config: TrainConfig,
    manifest: Manifest,
    model: torch.nn.Module,
    model_config: ModelConfig,
    runtime: Runtime,
) -> tuple[ModelScorer, EvalSet] | None:
    """Return the scorer and this rank's share of the fixed evaluation set, or None when eval is off:
    held-out rows (the first rows of the held-out build, or the rows of the training build held out of
    training: at most `eval.batches` micro-batches' worth, shared out over the devices), text sets and tasks.

    Raises ConfigError when the held-out build was made with another tokenizer than the training build.
    """
    if config.eval is None:
        return None
    options = config.storage_options or {}
    rows, held_out = None, None
    if config.eval.holdout_rows is not None or config.eval.build is not None:
        holdout = eval_holdout(config, manifest)
        build = config.build if holdout else config.eval.build
        held_out = manifest if holdout else read_manifest(build, **options)
        if held_out.tokenizer and manifest.tokenizer and held_out.tokenizer.hash != manifest.tokenizer.hash:
            raise ConfigError(
                "the held-out build was made with another tokenizer than the training build",
                path=config.eval.build,
                where="eval.build",
            )
        if not held_out.stages:
            raise ConfigError("the held-out build has no stages", path=build, where="eval.build")
        stage = Curriculum(held_out).stage(config.eval.stage or held_out.stages[0].name)
        max_rows = config.eval.batches * (config.micro_batch_tokens // stage.seq_len or 1)  # any world size
        rows = held_out_rows(build, held_out, stage.name, config.eval.holdout_rows, max_rows)
    tokenizer = build_tokenizer(config.build, manifest, options)
    eval_set = make_eval_set(
        tokenizer,
        runtime,
        rows=rows,
        manifest=held_out,
        texts=config.eval.text,
        tasks=config.eval.tasks,
        task_items=config.eval.task_items,
        storage_options=options,
    )
    scorer = ModelScorer(
        model, runtime.device, model_config.max_seq_len, config.eval.batch_tokens, most_batches
    )
    return scorer, eval_set


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Return the model's inputs of a loader micro-batch on `device`."""

    def move(key: str, dtype: torch.dtype) -> torch.Tensor:
        value = batch[key]
        value = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        return value.to(device=device, dtype=dtype, non_blocking=True)

    return {
        "input_ids": move("input_ids", torch.int64),
        "position_ids": move("position_ids", torch.int32),
        "cu_seqlens": move("cu_seqlens", torch.int32),
        "max_seqlen": int(batch["max_seqlen"]),
        "targets": move("targets", torch.int64),
    }


def counted_targets(batches: list[dict[str, Any]]) -> int:
    """Return how many targets in `batches` carry loss."""
    return int(sum((b["targets"] != IGNORE_INDEX).sum() for b in batches))


def train_step(model: torch.nn.Module, micro_batches: list[dict[str, Any]], runtime: Runtime) -> torch.Tensor:
    """Run forward/backward over this rank's micro-batches of one step; return the step's mean loss."""
    counted = runtime.all_reduce(torch.tensor(counted_targets(micro_batches), device=runtime.device))
    # FSDP averages gradients over ranks; × world_size turns that average into the sum over all tokens
    scale = runtime.world_size / counted.clamp(min=1)
    loss_sum = torch.zeros((), device=runtime.device)
    for batch in micro_batches:
        loss = model(**to_device(batch, runtime.device), loss_reduction="sum")
        (loss * scale).backward()
        loss_sum += loss.detach().float()
    return runtime.all_reduce(loss_sum) / counted.clamp(min=1)


def clip_gradients(model: torch.nn.Module, max_norm: float | None) -> float:
    """Clip the global gradient norm to `max_norm` (None: only measure it); return the norm before."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm or float("inf"), foreach=True)
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
        norm = norm.full_tensor()
    return float(norm)


def _micro_batches(it: Iterator[dict[str, Any]], stage: StageSteps) -> list[dict[str, Any]]:
    batches = []
    for _ in range(stage.accumulation):
        batch = next(it)
        if batch["stage"] != stage.name:
            raise BuildError(
                f"the loader gave a batch of stage {batch['stage']!r} in stage {stage.name!r}",
                hint="the trainer and the loader disagree on the curriculum: this is a bug",
            )
        batches.append(batch)
    return batches


def train(
    config: TrainConfig, *, stop_at_step: int | None = None, console: Callable[[str], None] | None = None
) -> TrainResult:
    """Train as `config` says, resuming from its latest checkpoint; return the losses of this call.

    `stop_at_step` ends the call after that step without a final checkpoint, as a killed or time-limited
    job would. Raises ConfigError / BuildError when the config and the build do not fit together.
    """
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic or was_deterministic)
    runtime = build_runtime(config)
    try:
        return _train(config, runtime, stop_at_step, console)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        if runtime.owns_process_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig, runtime: Runtime, stop_at_step: int | None, console: Callable[[str], None] | None
) -> TrainResult:
    say = (console or _stderr) if runtime.rank == 0 else _silent
    manifest = read_manifest(config.build, **(config.storage_options or {}))
    model_config = build_model_config(config, manifest)
    holdout = eval_holdout(config, manifest)
    stages = schedule_stages(config, Curriculum(manifest, holdout), model_config, runtime.world_size)
    total_steps = stages[-1].first_step + stages[-1].steps
    model = build_model(model_config, config, runtime)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config.schedule, total_steps)
    data = build_data(config, stages, runtime, holdout)
    evaluation = build_eval(config, manifest, model, model_config, runtime)
    result = TrainResult(stages=stages)
    for line in run_summary(config, manifest, model_config, stages, runtime, model.ops.choices, evaluation):
        say(line)

    step = 0
    resume = latest_checkpoint(config.checkpoint_dir) if config.checkpoint.resume else None
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer, scheduler, model_config)
        data.load_state_dict(state["loader"])
        step = result.resumed_from = state["step"]
        result.checkpoint = resume
        if runtime.rank == 0:
            truncate_metrics(config.metrics_path, step)
        if step >= total_steps:
            say(f"finished: the run trained all {total_steps} steps ({resume}); nothing to do")
            data.stream.close()
            return result
        say(f"resuming from step {step} of {total_steps} ({resume})")

    tensorboard = str(Path(config.output_dir) / "tensorboard") if config.tensorboard else None
    log = MetricsLog(
        config.metrics_path, active=runtime.rank == 0, console=console, tensorboard_dir=tensorboard
    )
    peak = peak_tflops(runtime.device, config.peak_tflops)
    meter = ThroughputMeter(model_config, stages, runtime.world_size, peak, step)
    loader = data
    if config.data_workers:
        loader = DataLoader(
            data, batch_size=None, num_workers=config.data_workers, pin_memory=runtime.device.type == "cuda"
        )
    batches, consumed = iter(loader), 0
    try:
        while step < total_steps and (stop_at_step is None or step < stop_at_step):
            stage = stage_at(stages, step)
            micro = _micro_batches(batches, stage)
            consumed += len(micro)
            loss = train_step(model, micro, runtime)
            grad_norm = clip_gradients(model, config.grad_clip)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            result.losses[step] = float(loss)
            record: dict[str, Any] = {}
            if evaluation is not None and eval_due(config, step, total_steps):
                began = time.perf_counter()
                record.update(evaluate(*evaluation, runtime).metrics())
                meter.exclude(time.perf_counter() - began)
                result.evals[step] = dict(record)
                if "eval_loss" in record:
                    result.eval_losses[step] = record["eval_loss"]
            if step % config.log_every == 0 or step == total_steps or record:
                record.update(
                    step=step,
                    total_steps=total_steps,
                    stage=stage.name,
                    seq_len=stage.seq_len,
                    loss=result.losses[step],
                    lr=lr,
                    grad_norm=grad_norm,
                    **meter.read(step),
                )
                log.log(record)
            finished = step == total_steps and config.checkpoint.at_end
            if step % config.checkpoint.every_steps == 0 or finished:
                result.checkpoint = save_checkpoint(
                    config.checkpoint_dir,
                    step,
                    model,
                    optimizer,
                    scheduler,
                    data.state_at(consumed),
                    model_config,
                    config,
                )
    finally:
        log.close()
        data.stream.close()
    if step == total_steps:
        say(
            f"finished: {total_steps} steps, {tokens_through(stages, step):,} tokens, "
            f"final loss {result.losses[step]:.4f}"
            + (f"; checkpoint {result.checkpoint}" if result.checkpoint else "")
        )
    else:
        say(
            f"stopped after step {step} of {total_steps}"
            + (f"; checkpoint {result.checkpoint}" if result.checkpoint else "")
        )
    return result


def eval_due(config: TrainConfig, step: int, total_steps: int) -> bool:
    """Return True when the run evaluates after `step`: every `eval.every_steps`, and after the last step
    with `eval.at_end`."""
    return step % config.eval.every_steps == 0 or (config.eval.at_end and step == total_steps)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _silent(line: str) -> None:
    pass
