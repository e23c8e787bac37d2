"""Sharded, atomic checkpoints with torch.distributed.checkpoint (DCP), resumable on any world size.

OUTPUT_DIR/checkpoints/step-N/ holds
  .metadata, __*_*.distcp   model and optimizer state (DCP: each rank writes its shards; loading reshards
                            to the current world size)
  trainer_state.pt          step, lr scheduler, the data stream's state and RNG states (torch.save; read
                            back with weights_only=True)
  model.json                the model config, so a checkpoint is never loaded into another model
  train_config.json         the run's config (export finds the build's tokenizer through it)
Loading never runs code from the checkpoint: DCP's metadata and non-tensor values are read through
`dcp_reader` (an allow-listed unpickler, weights_only=True), trainer_state.pt with weights_only=True.
Everything is written into step-N.tmp/ and renamed to step-N/ once complete, so a checkpoint directory is
complete or absent; the newest `keep_last` are kept. Checkpoints live on a local or shared file system.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from gristmill.errors import BuildError, ConfigError
from gristmill.storage import write_json
from gristmill.trainer.config import ModelConfig, TrainConfig
from gristmill.trainer.dcp_reader import (
    SafeFileSystemReader,
    SafeLoadPlanner,
    gristmill_error_in,
    read_metadata,
)

TRAINER_STATE = "trainer_state.pt"
MODEL_CONFIG = "model.json"
TRAIN_CONFIG = "train_config.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")
# fields that decide the weights' shapes and meaning; the rest (name, ops, init) may change on resume
SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "intermediate_size",
    "tie_embeddings",
    "rope_theta",
)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    if _distributed():
        dist.barrier()


def _dcp(operation, state: dict[str, Any], path: Path, **options: Any) -> None:
    """Run dcp.save or dcp.load; in a single process, without DCP's warning that this is one process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        operation(state, checkpoint_id=str(path), no_dist=not _distributed(), **options)


def load_dcp(state: dict[str, Any], path: Path) -> None:
    """Load `state` from the DCP checkpoint at `path` without running code from it; raise BuildError."""
    read_metadata(path)  # refuses a crafted .metadata here, with its own message, before DCP sees it
    try:
        _dcp(dcp.load, state, path, storage_reader=SafeFileSystemReader(path), planner=SafeLoadPlanner())
    except dcp.api.CheckpointException as e:
        raise (gristmill_error_in(e) or BuildError(f"cannot load the checkpoint: {e}", path=str(path))) from e


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def complete_checkpoints(directory: str | Path) -> list[Path]:
    """Return the complete step-N checkpoints under `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / TRAINER_STATE).exists()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """Return the newest complete checkpoint under `directory`, or None."""
    found = complete_checkpoints(directory)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """Return the RNG states of python, numpy, torch (and CUDA), in types torch.load(weights_only) reads."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader_state: dict[str, Any],
    model_config: ModelConfig,
    train_config: TrainConfig,
) -> Path:
    """Write checkpoint step-`step` (collective: every rank calls it); return its path.

    A checkpoint already complete for this step is kept as is.
    """
    directory = Path(directory)
    final, tmp = directory / f"step-{step}", directory / f"step-{step}.tmp"
    if (final / TRAINER_STATE).exists():
        return final
    if _rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a run killed while saving
        tmp.mkdir(parents=True)
    _barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    _dcp(dcp.save, {"model": model_state, "optimizer": optim_state}, tmp)
    if _rank() == 0:
        torch.save(
            {"step": step, "scheduler": scheduler.state_dict(), "loader": loader_state, "rng": rng_state()},
            tmp / TRAINER_STATE,
        )
        write_json(str(tmp / MODEL_CONFIG), model_config.model_dump(mode="json"))
        write_json(str(tmp / TRAIN_CONFIG), train_config.model_dump(mode="json"))
        tmp.rename(final)
        for old in complete_checkpoints(directory)[: -train_config.checkpoint.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def read_model_config(path: str | Path) -> ModelConfig:
    """Return the model config a checkpoint was written with; raise BuildError when it has none."""
    file = Path(path) / MODEL_CONFIG
    if not file.exists():
        raise BuildError(
            f"not a gristmill checkpoint (no {MODEL_CONFIG})",
            path=str(path),
            hint="pass a step-N directory under OUTPUT_DIR/checkpoints",
        )
    return ModelConfig.model_validate(json.loads(file.read_text()))


def check_same_model(path: str | Path, model_config: ModelConfig) -> None:
    """Raise ConfigError when the checkpoint at `path` was written by a model of other shapes."""
    saved = read_model_config(path)
    differ = [
        f"{f}: checkpoint {getattr(saved, f)}, config {getattr(model_config, f)}"
        for f in SHAPE_FIELDS
        if getattr(saved, f) != getattr(model_config, f)
    ]
    if differ:
        raise ConfigError(
            f"the checkpoint is of another model ({saved.name}): " + "; ".join(differ),
            path=str(path),
            where="model",
            hint="resume with the model config the run started with, or use a new output_dir",
        )


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    model_config: ModelConfig,
) -> dict[str, Any]:
    """Load model, optimizer, scheduler and RNG states from `path` (collective); return the trainer state.

    Raises ConfigError for a checkpoint of another model.
    """
    check_same_model(path, model_config)
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    load_dcp(state, Path(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    trainer_state = torch.load(Path(path) / TRAINER_STATE, weights_only=True)
    scheduler.load_state_dict(trainer_state["scheduler"])
    set_rng_state(trainer_state["rng"])
    return trainer_state


def load_model_weights(path: str | Path, model: torch.nn.Module) -> None:
    """Load only the model weights of a checkpoint into a plain (unsharded) model, in one process."""
    check_same_model(path, model.config)
    state = {"model": model.state_dict()}
    load_dcp(state, Path(path))
    model.load_state_dict(state["model"])
