"""The learning-rate schedule: linear warmup to the peak, then cosine decay to a floor at the last step."""

from __future__ import annotations

import functools
import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from gristmill.trainer.config import ScheduleConfig


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Return the lr multiplier for optimizer step `step` (0-based): (step+1)/warmup during warmup, then
    a cosine from 1 down to `min_lr_ratio`, reached at step total_steps - 1 and held after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int) -> LambdaLR:
    """Return a LambdaLR stepping `warmup_cosine` once per optimizer step."""
    schedule = functools.partial(
        warmup_cosine,
        warmup_steps=config.warmup_steps,
        total_steps=total_steps,
        min_lr_ratio=config.min_lr_ratio,
    )
    return LambdaLR(optimizer, schedule)
