"""The same training under Ray Train's TorchTrainer, for clusters already run with Ray.

Ray starts one worker per device and sets up torch.distributed among them; each worker then runs
`gristmill.trainer.train.train`, which finds the process group ready and shards the model with FSDP2
exactly as under torchrun. Checkpoints go to the config's output_dir (a shared file system), not to
Ray's storage, so a run in one process or under torchrun can resume them too.

    gristmill train CONFIG.yaml --address ray://head:10001 --workers 8 --gpu
"""

from __future__ import annotations

import os
from typing import Any

from gristmill.errors import ConfigError
from gristmill.trainer.config import TrainConfig, parse_train_config


def _worker_loop(settings: dict[str, Any]) -> None:
    from gristmill.trainer.train import train

    train(parse_train_config(settings))


def train_with_ray(config: TrainConfig, *, workers: int, use_gpu: bool) -> Any:
    """Run `config` on `workers` Ray Train workers; return Ray's Result.

    Raises ConfigError where ray[train] is not installed.
    """
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as e:
        raise ConfigError(
            f"Ray Train is not installed here ({e})", where="ray", hint='pip install "ray[train]"'
        ) from None
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=config.model_dump(mode="json"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=f"gristmill-{config.model.name}", storage_path=os.path.abspath(config.output_dir)
        ),
    )
    return trainer.fit()
