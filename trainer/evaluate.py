"""Evaluate a model: bits per byte on a build's held-out rows (per source) and on text files, and the
benchmark tasks; the library behind `gristmill eval` and the trainer's evaluation every `eval.every_steps`.

An `EvalSet` is what one rank scores: the held-out rows as the document pieces they hold (a row's pieces,
read from its shard; re-encoded as text when the model's tokenizer is not the build's), named text sets,
and encoded tasks. `evaluate` scores it with a `Scorer` (`trainer/scoring.py`) and sums over ranks;
`evaluate_model` loads a checkpoint (ours, or a Hugging Face model directory) and evaluates it. The
arithmetic (bits per byte, accuracies) is in `trainer/eval_sets.py`.

Held-out rows: `holdout_rows` rows of a stage of the training build (the rows training never sees, in the
holdout's fixed order, whatever the seed), or the first rows of a held-out build's stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from gristmill.errors import ConfigError, InputError
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.shards.source import ShardSource
from gristmill.tokenizer.interface import Tokenizer
from gristmill.trainer.eval_sets import (
    EMPTY_TOTALS,
    EncodedTask,
    EncodedTexts,
    TaskTotals,
    TextTotals,
    encode_task,
    read_texts,
    task_requests,
    task_totals,
    text_totals,
)
from gristmill.trainer.scoring import HFScorer, ModelScorer, Progress, Scorer

DEFAULT_BATCH_TOKENS = 16384


class Ranks(Protocol):
    """Where an evaluation runs: this rank, the world size, the device, and a sum over ranks."""

    rank: int
    world_size: int
    device: torch.device

    def all_reduce(self, value: torch.Tensor) -> torch.Tensor: ...


@dataclass
class OneProcess:
    """A single process: rank 0 of 1."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    def all_reduce(self, value: torch.Tensor) -> torch.Tensor:
        """Return `value` (nothing to sum over)."""
        return value


def most_batches(count: int) -> int:
    """Return the largest `count` over the ranks of the process group (itself without one)."""
    if not dist.is_initialized():
        return count
    value = torch.tensor(count, dtype=torch.int64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value)


# -- held-out rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutRows:
    """Rows of one stage of a build to evaluate on, in a fixed order (global row indices)."""

    build: str
    stage: str
    rows: np.ndarray
    holdout_rows: int | None  # rows the training run held out of this stage (None: a held-out build)


def held_out_rows(
    build: str,
    manifest: Manifest,
    stage: str | None,
    holdout_rows: int | None,
    max_rows: int | None = None,
) -> HeldOutRows:
    """Return the rows to evaluate on: the first `max_rows` of the `holdout_rows` rows held out of `stage`
    (default: the first) in the holdout's order, or, without `holdout_rows`, the stage's first `max_rows`.

    Raises ConfigError for an unknown stage or a holdout that the stage cannot give."""
    if not manifest.stages:
        raise ConfigError("the build has no stages", path=build, where="eval.build")
    name = stage or manifest.stages[0].name
    curriculum = Curriculum(manifest, {name: holdout_rows} if holdout_rows else {})
    entry = curriculum.stage(name)
    if holdout_rows:
        held = curriculum.visits(name, held_out=True)  # each held-out row visited once
        rows = held.rows_at(np.arange(held.size if max_rows is None else min(max_rows, held.size)))
    else:
        rows = np.arange(entry.rows if max_rows is None else min(max_rows, entry.rows))
    return HeldOutRows(build, name, np.asarray(rows, dtype=np.int64), holdout_rows)


def read_pieces(
    rows: HeldOutRows, manifest: Manifest, storage_options: dict[str, Any] | None = None
) -> dict[str, list[np.ndarray]]:
    """Return source name → the document pieces (token ids, bos/eos as framed) of `rows`, in row order.

    Every source of the stage has an entry, so every rank builds the same structure."""
    stage = Curriculum(manifest).stage(rows.stage)
    names = [s.name for s in manifest.sources]
    out: dict[str, list[np.ndarray]] = {name: [] for name in sorted(stage.source_tokens)}
    starts = np.concatenate([[0], np.cumsum([s.rows for s in stage.shards])])
    source = ShardSource(rows.build, storage_options=storage_options)
    try:
        shard_of = np.searchsorted(starts, rows.rows, side="right") - 1
        for row, shard in zip(rows.rows.tolist(), shard_of.tolist()):
            found = source.open(stage.shards[shard], stage.seq_len).row(row - int(starts[shard]))
            pieces = out.setdefault(names[found.source], [])
            pieces.extend(np.asarray(p, dtype=np.int64) for p in found.documents() if len(p) >= 2)
    finally:
        source.close()
    return out


def build_tokenizer(
    build: str, manifest: Manifest, storage_options: dict[str, Any] | None = None
) -> Tokenizer:
    """Return the tokenizer a build was made with (a remote build's is copied to a temporary directory).

    Raises ConfigError when the manifest names none."""
    from gristmill.storage import download_tree, is_local

    if manifest.tokenizer is None:
        raise ConfigError(
            "the build's manifest names no tokenizer, so its text cannot be measured in bytes",
            path=build,
            where="manifest.tokenizer",
        )
    path = f"{build.rstrip('/')}/{manifest.tokenizer.path.rstrip('/')}"
    if is_local(path):
        return Tokenizer.load(path.removeprefix("file://"))
    import tempfile

    if storage_options:
        from gristmill.storage import register_storage

        register_storage(build, storage_options)
    with tempfile.TemporaryDirectory(prefix="gristmill-tokenizer-") as local:
        download_tree(path, local)
        return Tokenizer.load(local)  # reads its files now, never later


# -- what one rank scores ---------------------------------------------------------------------------------


@dataclass
class EvalSet:
    """What one rank scores, encoded for the model's tokenizer: held-out rows per source, text sets,
    tasks. `choices` says, per task, whether its items have several requests (across all ranks)."""

    tokenizer: Tokenizer
    rows: dict[str, EncodedTexts] = field(default_factory=dict)
    texts: list[EncodedTexts] = field(default_factory=list)
    tasks: list[EncodedTask] = field(default_factory=list)
    choices: dict[str, bool] = field(default_factory=dict)
    rows_in_model_tokens: bool = True  # the rows are the build's own ids (the loss is comparable)
    row_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # this rank's rows

    def tokens(self) -> int:
        """Return the tokens this rank scores (for a progress bar)."""
        sets = [*self.rows.values(), *self.texts]
        total = sum(len(s) for t in sets for s in t.sequences)
        return total + sum(len(s) for task in self.tasks for s in task_requests(task)[0])


def make_eval_set(
    tokenizer: Tokenizer,
    ranks: Ranks,
    *,
    rows: HeldOutRows | None = None,
    manifest: Manifest | None = None,
    texts: dict[str, Sequence[str]] | None = None,
    tasks: Sequence[str] = (),
    task_items: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> EvalSet:
    """Return this rank's share of an evaluation: `rows` of `manifest`'s build, text sets (name → files),
    and `tasks` ("task:variant", the first `task_items` items of each).

    Rows are scored as the build's ids when the model's tokenizer is the build's (same content hash), and
    as their decoded text otherwise. Raises ConfigError/InputError for what cannot be read."""
    out = EvalSet(tokenizer)
    if rows is not None:
        if manifest is None:
            raise ValueError("rows need the build's manifest")
        mine = HeldOutRows(
            rows.build, rows.stage, rows.rows[ranks.rank :: ranks.world_size], rows.holdout_rows
        )
        pieces = read_pieces(mine, manifest, storage_options)
        out.row_ids = mine.rows
        same = manifest.tokenizer is None or manifest.tokenizer.hash == tokenizer.content_hash
        out.rows_in_model_tokens = same
        if same:
            out.rows = {name: EncodedTexts(name, seqs) for name, seqs in pieces.items()}
        else:
            built = build_tokenizer(rows.build, manifest, storage_options)
            out.rows = {
                name: EncodedTexts.encode(name, [built.decode(p) for p in seqs], tokenizer)
                for name, seqs in pieces.items()
            }
    for name, paths in (texts or {}).items():
        documents = [t for path in paths for t in read_texts(path)]
        out.texts.append(EncodedTexts.encode(name, documents, tokenizer).subset(ranks.rank, ranks.world_size))
    for spec in tasks:
        task = encode_task(spec, tokenizer, task_items)
        out.choices[spec] = task.choices
        out.tasks.append(task.subset(ranks.rank, ranks.world_size))
    return out


# -- scoring ----------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """An evaluation's sums over all ranks: per source of the held-out rows, per text set, per task."""

    rows: dict[str, TextTotals] = field(default_factory=dict)
    texts: dict[str, TextTotals] = field(default_factory=dict)
    tasks: dict[str, TaskTotals] = field(default_factory=dict)
    rows_in_model_tokens: bool = True

    @property
    def rows_total(self) -> TextTotals | None:
        """Return the held-out rows summed over sources (None without rows)."""
        if not self.rows:
            return None
        total = EMPTY_TOTALS
        for t in self.rows.values():
            total = total + t
        return total

    def metrics(self) -> dict[str, float]:
        """Return the flat metrics a training log records: eval_loss and eval_bpb (held-out rows, and
        eval_bpb/<source>), text_bpb/<set>, task_bpb/<task> (and task_acc, task_acc_norm), and what they
        counted: eval_tokens, text_tokens/<set>, task_items/<task>."""
        out: dict[str, float] = {}
        total = self.rows_total
        if total is not None:
            if self.rows_in_model_tokens:
                out["eval_loss"] = total.loss
            out["eval_bpb"] = total.bpb
            out["eval_tokens"] = total.tokens
            out.update({f"eval_bpb/{name}": t.bpb for name, t in self.rows.items() if t.bytes})
        for name, t in self.texts.items():
            out[f"text_bpb/{name}"] = t.bpb
            out[f"text_tokens/{name}"] = t.tokens
        for name, t in self.tasks.items():
            out[f"task_bpb/{name}"] = t.bpb
            out[f"task_items/{name}"] = t.items
            if t.choices:
                out[f"task_acc/{name}"] = t.acc
                out[f"task_acc_norm/{name}"] = t.acc_norm
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return every figure as nested JSON-ready values."""
        out: dict[str, Any] = {}
        total = self.rows_total
        if total is not None:
            out["held_out"] = {
                **total.to_dict(),
                "loss": total.loss if self.rows_in_model_tokens else None,
                "sources": {
                    name: {**t.to_dict(), "loss": t.loss if self.rows_in_model_tokens else None}
                    for name, t in self.rows.items()
                },
            }
        out["texts"] = {name: t.to_dict() for name, t in self.texts.items()}
        out["tasks"] = {name: t.to_dict() for name, t in self.tasks.items()}
        return out


def evaluate(scorer: Scorer, eval_set: EvalSet, ranks: Ranks, progress: Progress | None = None) -> EvalResult:
    """Score `eval_set` (this rank's share) and return the sums over all ranks.

    Every rank must call it with sets of the same structure (the same sources, text sets and tasks, in
    the same order), as `make_eval_set` makes them."""
    local: list[float] = []
    for texts in [*eval_set.rows.values(), *eval_set.texts]:
        nll = scorer.nll(texts.sequences, texts.firsts, progress)
        local.extend(text_totals(texts, nll, eval_set.tokenizer).as_tuple())
    for task in eval_set.tasks:
        sequences, firsts = task_requests(task)
        t = task_totals(task, scorer.nll(sequences, firsts, progress))
        local.extend([t.items, t.correct, t.correct_norm, t.bpb_sum])
    summed = ranks.all_reduce(torch.tensor(local, dtype=torch.float64, device=ranks.device)).tolist()
    result = EvalResult(rows_in_model_tokens=eval_set.rows_in_model_tokens)
    k = 0
    for target, sets in ((result.rows, eval_set.rows.values()), (result.texts, eval_set.texts)):
        for texts in sets:
            target[texts.name] = TextTotals.of_tuple(summed[k : k + 6])
            k += 6
    for task in eval_set.tasks:
        items, correct, correct_norm, bpb_sum = summed[k : k + 4]
        k += 4
        result.tasks[task.name] = TaskTotals(
            round(items), round(correct), round(correct_norm), bpb_sum, eval_set.choices[task.name]
        )
    return result


# -- a model from disk ------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready to score: its scorer, tokenizer, what it is, and the run it came from (if ours)."""

    scorer: Scorer
    tokenizer: Tokenizer
    kind: str  # "gristmill checkpoint", "Hugging Face Llama (gristmill's model)", "transformers"
    path: str
    parameters: int
    train_config: dict[str, Any] | None = None  # a gristmill checkpoint's training config


def load_model(
    path: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    backend: str = "auto",
    tokenizer: str | None = None,
) -> LoadedModel:
    """Load a gristmill checkpoint (a step-N directory or a run's output_dir) or a Hugging Face model
    directory for scoring. A HF Llama directory runs on gristmill's model (our kernels on a GPU) unless
    `backend` is "transformers"; any other HF model runs on transformers.

    Raises BuildError when `path` holds neither, InputError for unreadable weights or tokenizer."""
    from gristmill.trainer.checkpoint import TRAIN_CONFIG, load_model_weights, read_model_config
    from gristmill.trainer.export import load_hf_llama, resolve_checkpoint, tokenizer_dir
    from gristmill.trainer.model import Transformer
    from gristmill.trainer.ops import build_ops

    root = Path(path)
    if (root / "config.json").is_file() and not (root / "model.json").exists():
        tok = Tokenizer.load(tokenizer or root)
        reason = "the transformers backend was asked for"
        if backend != "transformers":
            model = load_hf_llama(root, device)
            if not isinstance(model, str):
                return _ours(
                    model, tok, "Hugging Face Llama (gristmill's model)", path, device, dtype, batch_tokens
                )
            reason = model
        return _transformers(root, tok, device, dtype, batch_tokens, reason)
    checkpoint = resolve_checkpoint(root)
    config = read_model_config(checkpoint)
    model = Transformer(config, build_ops(config.ops, device))
    load_model_weights(checkpoint, model)
    tok = Tokenizer.load(tokenizer_dir(checkpoint, tokenizer))
    train_config = (
        json.loads((checkpoint / TRAIN_CONFIG).read_text()) if (checkpoint / TRAIN_CONFIG).exists() else None
    )
    loaded = _ours(model, tok, "gristmill checkpoint", str(checkpoint), device, dtype, batch_tokens)
    loaded.train_config = train_config
    return loaded


def _ours(model, tokenizer, kind, path, device, dtype, batch_tokens) -> LoadedModel:
    from gristmill.trainer.model import count_parameters

    model = model.to(device=device, dtype=dtype).eval()
    scorer = ModelScorer(model, device, model.config.max_seq_len, batch_tokens)
    return LoadedModel(scorer, tokenizer, kind, path, count_parameters(model.config, include_embedding=True))


def _transformers(root: Path, tokenizer, device, dtype, batch_tokens, reason: str) -> LoadedModel:
    try:
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError:
        raise InputError(
            f"this model needs transformers ({reason})", path=str(root), hint="pip install transformers"
        ) from None
    config = AutoConfig.from_pretrained(str(root))
    model = AutoModelForCausalLM.from_pretrained(str(root), dtype=dtype).to(device).eval()
    max_len = getattr(config, "max_position_embeddings", None) or 2048
    parameters = sum(p.numel() for p in model.parameters())
    return LoadedModel(
        HFScorer(model, device, max_len, batch_tokens), tokenizer, "transformers", str(root), parameters
    )


def default_rows(
    loaded: LoadedModel,
    build: str | None,
    stage: str | None,
    holdout_rows: int | None,
    max_rows: int | None,
) -> tuple[HeldOutRows, Manifest] | None:
    """Return the held-out rows to evaluate on: those asked for, else the rows a gristmill run held out
    of its build (or its held-out build); None when there are none."""
    trained = loaded.train_config or {}
    run_eval = trained.get("eval") or {}
    if build is None:
        if run_eval.get("holdout_rows"):
            build, holdout_rows = trained["build"], run_eval["holdout_rows"]
            stage = stage or run_eval.get("stage")
        elif run_eval.get("build"):
            build, stage = run_eval["build"], stage or run_eval.get("stage")
        else:
            return None
    manifest = read_manifest(build)
    return held_out_rows(build, manifest, stage, holdout_rows, max_rows), manifest


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """Return the device ("auto": CUDA when there is one) and dtype ("auto": bf16 on a GPU, fp32 on a CPU).

    Raises ConfigError for CUDA where there is none, or bf16 on a CPU."""
    cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ConfigError("device is cuda but no CUDA device is visible", where="--device")
    chosen = torch.bfloat16 if dtype == "bfloat16" or (dtype == "auto" and cuda) else torch.float32
    if chosen == torch.bfloat16 and not cuda:
        raise ConfigError("bf16 evaluation needs a GPU; on a CPU it runs in fp32", where="--dtype")
    return torch.device("cuda" if cuda else "cpu"), chosen


def evaluate_model(
    loaded: LoadedModel,
    *,
    rows: tuple[HeldOutRows, Manifest] | None = None,
    texts: dict[str, Sequence[str]] | None = None,
    tasks: Sequence[str] = (),
    task_items: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a loaded model in this process; return the report (model, what was scored, every figure).

    `progress(done, total)` is called with tokens scored as it goes."""
    device = getattr(loaded.scorer, "device", torch.device("cpu"))
    ranks = OneProcess(device)
    eval_set = make_eval_set(
        loaded.tokenizer,
        ranks,
        rows=rows[0] if rows else None,
        manifest=rows[1] if rows else None,
        texts=texts,
        tasks=tasks,
        task_items=task_items,
    )
    total, done = eval_set.tokens(), 0

    def advance(tokens: int) -> None:
        nonlocal done
        done += tokens
        if progress is not None:
            progress(done, total)

    result = evaluate(loaded.scorer, eval_set, ranks, advance)
    report: dict[str, Any] = {
        "model": {"path": loaded.path, "kind": loaded.kind, "parameters": loaded.parameters},
        "tokenizer": {"hash": loaded.tokenizer.content_hash, "vocab_size": loaded.tokenizer.vocab_size},
    }
    if rows is not None:
        held = rows[0]
        report["rows"] = {
            "build": held.build,
            "stage": held.stage,
            "rows": len(held.rows),
            "holdout_rows": held.holdout_rows,
            "as": "build token ids" if eval_set.rows_in_model_tokens else "decoded text",
        }
    return {**report, **result.to_dict()}
