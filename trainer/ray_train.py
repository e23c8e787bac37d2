"""The same training under Ray Train's TorchTrainer, for clusters already run with Ray.

Ray starts one worker per device and sets up torch.distributed among them; each worker then runs
`gristmill.trainer.train.train`, which finds the process group ready and shards the model with FSDP2
exactly as under torchrun. Checkpoints go to the config's output_dir (a shared file system), not to
Ray's storage, so `gristmill train` and torchrun can resume them too.

    python -m gristmill.trainer.ray_train CONFIG.yaml --workers 8 [--gpu] [--address ray://head:10001]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gristmill.errors import ConfigError, GristmillError
from gristmill.trainer.config import TrainConfig, load_train_config, parse_train_config


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


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train under Ray; return the exit status (2: a user error)."""
    parser = argparse.ArgumentParser(
        prog="python -m gristmill.trainer.ray_train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (one per device)")
    parser.add_argument("--gpu", action="store_true", help="give each worker a GPU")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)")
    args = parser.parse_args(argv)
    try:
        import ray

        ray.init(address=args.address)
        train_with_ray(load_train_config(args.config), workers=args.workers, use_gpu=args.gpu)
    except GristmillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
