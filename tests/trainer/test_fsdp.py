"""FSDP2 on two CPU processes (gloo, launched by torchrun) trains like one process with the same global batch,
and its checkpoint resumes on a different world size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gristmill.trainer.config import parse_train_config
from gristmill.trainer.train import train

STEPS = 8


def settings(builds, out: Path, model: str) -> dict:
    # 2048 tokens per step = 4 micro-batches of 512: accumulation 4 on one process, 2 on each of two
    texts = out.parent / "eval-texts.jsonl"
    if not texts.exists():  # 5 documents: 3 on one rank, 2 on the other
        docs = [
            "The for statement.",
            "Exceptions are raised.",
            "A class is a type.",
            "Import it.",
            "Yield a value.",
        ]
        texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    return dict(
        build=str(builds.train),
        model=model,
        output_dir=str(out),
        micro_batch_tokens=512,
        stages=[
            {"name": "stage-1-64", "tokens_per_step": 2048, "tokens": 4 * 2048},
            {"name": "stage-2-128", "tokens_per_step": 2048, "tokens": 4 * 2048},
        ],
        optimizer={"lr": 3e-3},
        schedule={"warmup_steps": 2},
        deterministic=True,
        log_every=1,
        checkpoint={"every_steps": 4, "keep_last": 3},
        # held-out rows (25: 13 and 12 per rank), text and a task's items split unevenly over two ranks
        eval={
            "holdout_rows": 25,
            "every_steps": 4,
            "batches": 4,  # up to 32 rows: all 25
            "text": {"docs": [str(texts)]},
            "tasks": ["arc_easy:rc_0shot"],
            "task_items": 5,
        },
    )


def evals(metrics: Path) -> dict[int, dict[str, float]]:
    records = map(json.loads, metrics.read_text().splitlines())
    return {
        r["step"]: {k: v for k, v in r.items() if k.startswith(("eval_", "text_", "task_"))} for r in records
    }


def losses(metrics: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, metrics.read_text().splitlines())}


def torchrun(config_path: Path, nproc: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    command = [  # as a user types it: torchrun … --no-python gristmill train CONFIG
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--no-python",
        str(Path(sys.executable).with_name("gristmill")),
        "train",
        str(config_path),
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["llama-tiny", "llama-tiny-tied"])
def test_two_processes_match_one_and_resume_on_another_world_size(builds, tmp_path, model):
    config_path = tmp_path / "two.yaml"
    config_path.write_text(yaml.safe_dump(settings(builds, tmp_path / "two", model)))
    torchrun(config_path, nproc=2)
    two = losses(tmp_path / "two" / "metrics.jsonl")

    torch.set_num_threads(1)
    one = train(parse_train_config(settings(builds, tmp_path / "one", model)), console=lambda line: None)
    assert sorted(two) == sorted(one.losses) == list(range(1, STEPS + 1))
    for step in one.losses:  # the same data and maths, summed in another order
        assert two[step] == pytest.approx(one.losses[step], rel=1e-4, abs=1e-4), step
    assert one.losses[STEPS] < one.losses[1]
    two_evals = evals(tmp_path / "two" / "metrics.jsonl")
    for step in (4, 8):  # the evaluation sums over both ranks what one process scores alone
        assert set(two_evals[step]) == set(one.evals[step]) and "eval_bpb/docs" in one.evals[step]
        for key, value in one.evals[
            step
        ].items():  # counts exactly; figures of a model trained slightly apart
            assert two_evals[step][key] == (
                value if isinstance(value, int) else pytest.approx(value, rel=1e-3)
            ), (
                step,
                key,
            )
        counted = one.evals[step]
        assert counted["task_items/arc_easy:rc_0shot"] == 5 and counted["text_tokens/docs"] > 0
        assert counted["eval_tokens"] > 20 * 64  # the 25 rows, less bos/eos

    # the two-process checkpoint of step 4, resumed by one process
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two" / "checkpoints" / "step-4", resumed_dir / "checkpoints" / "step-4")
    resumed = train(parse_train_config(settings(builds, resumed_dir, model)), console=lambda line: None)
    assert resumed.resumed_from == 4
    for step in range(5, STEPS + 1):
        assert resumed.losses[step] == pytest.approx(two[step], rel=1e-4, abs=1e-4), step


@pytest.mark.slow
@pytest.mark.ray
def test_ray_train_runs_the_same_training(builds, tmp_path, request):
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        pytest.skip('needs pip install "ray[train]"')
    from gristmill.trainer.ray_train import train_with_ray

    request.getfixturevalue("ray_local")

    cfg = parse_train_config({**settings(builds, tmp_path / "ray", "llama-tiny"), "max_steps": 2})
    result = train_with_ray(cfg, workers=2, use_gpu=False)
    assert result.error is None
    direct = train(
        parse_train_config({**settings(builds, tmp_path / "one", "llama-tiny"), "max_steps": 2}),
        console=lambda line: None,
    )
    ray_losses = losses(tmp_path / "ray" / "metrics.jsonl")
    for step in (1, 2):
        assert ray_losses[step] == pytest.approx(direct.losses[step], rel=1e-4, abs=1e-4)
