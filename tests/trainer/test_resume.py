"""Checkpoints: a killed run resumes bitwise-exactly; saves are atomic, pruned, and refuse other models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from gristmill.errors import ConfigError
from gristmill.trainer.checkpoint import TRAINER_STATE, complete_checkpoints, latest_checkpoint
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = {"console": lambda line: None}


def config(builds, out: Path, **overrides):
    # 6 steps at L=64, then 6 at L=128: resume crosses a stage boundary and a loader state mid-stage
    base = dict(
        build=str(builds.train),
        model="llama-tiny",
        output_dir=str(out),
        micro_batch_tokens=512,
        stages=[{"name": "stage-1-64", "tokens": 6 * 1024}, {"name": "stage-2-128", "tokens": 6 * 1024}],
        optimizer={"lr": 3e-3},
        schedule={"warmup_steps": 3},
        deterministic=True,
        checkpoint={"every_steps": 4, "keep_last": 2},
    )
    return parse_train_config({**base, **overrides})


def test_killed_run_resumes_with_exactly_the_same_losses(builds, tmp_path):
    whole = train(config(builds, tmp_path / "whole"), **QUIET)
    assert sorted(whole.losses) == list(range(1, 13))

    killed_cfg = config(builds, tmp_path / "killed")
    first = train(killed_cfg, stop_at_step=6, **QUIET)  # steps 5-6 are lost: the last checkpoint is step 4
    assert sorted(first.losses) == list(range(1, 7))
    second = train(killed_cfg, **QUIET)
    assert second.resumed_from == 4
    assert sorted(second.losses) == list(range(5, 13))
    for step in range(1, 5):
        assert first.losses[step] == whole.losses[step]
    for step in range(5, 13):  # bitwise: fp32 on CPU, deterministic algorithms
        assert second.losses[step] == whole.losses[step], step

    # and killed again in stage 2, resumed from step 8 (loader state inside the second stage)
    third = train(config(builds, tmp_path / "killed-late"), stop_at_step=10, **QUIET)
    fourth = train(config(builds, tmp_path / "killed-late"), **QUIET)
    assert fourth.resumed_from == 8
    assert [fourth.losses[s] for s in range(9, 13)] == [whole.losses[s] for s in range(9, 13)]
    assert third.losses[8] == whole.losses[8]


def test_checkpoints_are_complete_or_absent_and_pruned(builds, tmp_path):
    cfg = config(
        builds,
        tmp_path,
        stages=[{"name": "stage-1-64", "tokens": 8 * 1024}],
        checkpoint={"every_steps": 2, "keep_last": 2},
    )
    train(cfg, **QUIET)
    checkpoints = complete_checkpoints(cfg.checkpoint_dir)
    assert [p.name for p in checkpoints] == ["step-6", "step-8"]
    state = torch.load(checkpoints[-1] / TRAINER_STATE, weights_only=True)
    assert state["step"] == 8 and state["loader"]["stage"] is None  # the curriculum is used up

    # a save killed half-way leaves step-N.tmp, which resume ignores
    partial = Path(cfg.checkpoint_dir) / "step-10.tmp"
    shutil.copytree(checkpoints[-1], partial)
    (partial / TRAINER_STATE).unlink()
    assert latest_checkpoint(cfg.checkpoint_dir) == checkpoints[-1]


def test_checkpoint_of_another_model_is_refused(builds, tmp_path):
    train(config(builds, tmp_path), stop_at_step=4, **QUIET)
    other = config(builds, tmp_path, model={"preset": "llama-tiny", "hidden_size": 32})
    with pytest.raises(ConfigError, match="hidden_size: checkpoint 64, config 32"):
        train(other, **QUIET)
