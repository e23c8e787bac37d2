"""Training metrics: throughput and MFU, and where records go (console, JSONL, optional TensorBoard)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from gristmill.errors import ConfigError
from gristmill.storage import atomic_write
from gristmill.trainer.config import ModelConfig
from gristmill.trainer.curriculum import StageSteps, stage_at
from gristmill.trainer.model import flops_per_token

# dense bf16 peak per device, for MFU (vendor datasheets; SXM parts)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def peak_tflops(device: torch.device, configured: float | None) -> float | None:
    """Return the device's peak TFLOP/s for MFU: the configured figure, a known GPU's, or None."""
    if configured is not None:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def format_line(record: dict[str, Any]) -> str:
    """Return the console line for one step's record."""
    parts = [
        f"stage {record['stage']}",
        f"step {record['step']}/{record['total_steps']}",
        f"loss {record['loss']:.4f}",
        f"tok/s {record['tokens_per_s']:,.0f}",
    ]
    if record.get("mfu") is not None:
        parts.append(f"mfu {100 * record['mfu']:.1f}%")
    parts += [f"lr {record['lr']:.2e}", f"gnorm {record['grad_norm']:.3f}"]
    if record.get("eval_loss") is not None:
        parts.append(f"eval {record['eval_loss']:.4f}")
    if record.get("eval_bpb") is not None:
        parts.append(f"eval bpb {record['eval_bpb']:.4f}")
    texts = [f"{k.removeprefix('text_bpb/')} {v:.4f}" for k, v in record.items() if k.startswith("text_bpb/")]
    if texts:
        parts.append("bpb " + ", ".join(texts))
    return " | ".join(parts)


def truncate_metrics(path: str, step: int) -> int:
    """Drop the records after `step` from a metrics JSONL file (what a killed run logged after its last
    checkpoint, which the resumed run logs again), and a torn last line; return how many were dropped."""
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
        with atomic_write(path, "w") as f:
            f.writelines(kept)
    return len(lines) - len(kept)


class MetricsLog:
    """Appends records to a JSONL file, prints them, and mirrors scalars to TensorBoard when asked.

    Only the writer (rank 0) does anything; other ranks hold an inactive log.
    """

    def __init__(
        self,
        path: str,
        *,
        active: bool,
        tensorboard_dir: str | None = None,
        console: Callable[[str], None] | None = None,
    ) -> None:
        self.active = active
        self.console = console or (lambda line: print(line, file=sys.stderr, flush=True))
        self._file = None
        self._tb = None
        if not active:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (held open; appends across resumes)
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "tensorboard is not installed",
                    where="tensorboard",
                    hint="pip install tensorboard, or set tensorboard: false",
                ) from None
            self._tb = SummaryWriter(tensorboard_dir)

    def log(self, record: dict[str, Any], *, show: bool = True) -> None:
        """Write one record (a JSON object per line); print it when `show`."""
        if not self.active:
            return
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        if show and "loss" in record:
            self.console(format_line(record))
        elif show:
            self.console(" | ".join(f"{k} {v}" for k, v in record.items()))
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        """Close the file and the TensorBoard writer."""
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


class ThroughputMeter:
    """Tokens per second (all devices) and MFU over the steps since the last reading."""

    def __init__(
        self,
        model: ModelConfig,
        stages: list[StageSteps],
        world_size: int,
        peak_tflops: float | None,
        step: int,
    ) -> None:
        self.model, self.stages, self.world_size, self.peak = model, stages, world_size, peak_tflops
        self.start, self.last_tokens = time.perf_counter(), tokens_through(stages, step)

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (an evaluation, say) out of the time the next reading divides by."""
        self.start += seconds

    def read(self, step: int) -> dict[str, Any]:
        """Return tokens (trained so far), tokens_per_s and mfu (None without a known peak) up to `step`."""
        now = time.perf_counter()
        done = tokens_through(self.stages, step)
        rate = (done - self.last_tokens) / max(now - self.start, 1e-9)
        mfu = None
        if self.peak:
            seq_len = stage_at(self.stages, step - 1).seq_len
            mfu = rate * flops_per_token(self.model, seq_len) / (self.peak * 1e12 * self.world_size)
        self.start, self.last_tokens = now, done
        return {"tokens": done, "tokens_per_s": rate, "mfu": mfu}


def tokens_through(stages: list[StageSteps], step: int) -> int:
    """Return the tokens trained on in steps 1..`step`."""
    return sum(s.tokens_per_step * min(s.steps, max(0, step - s.first_step)) for s in stages)
