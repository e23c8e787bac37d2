"""`gristmill train CONFIG.yaml`: the one training command: one process, under torchrun, or on Ray Train."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config field")
@click.option(
    "--stop-at-step",
    type=int,
    default=None,
    help="end after this step without a final checkpoint (e.g. to fit a job's time limit)",
)
@click.option(
    "--address",
    default=None,
    help="train on Ray Train on this Ray cluster (`auto` inside a Ray job) instead of in this process",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Ray Train workers, one per device")
@click.option("--gpu", is_flag=True, help="give each Ray Train worker a GPU")
@click.option("--json", "as_json", is_flag=True, help="print a summary (losses, stages, checkpoint) as JSON")
def train(
    config: str,
    overrides: tuple[str, ...],
    stop_at_step: int | None,
    address: str | None,
    workers: int,
    gpu: bool,
    as_json: bool,
) -> None:
    """Train the model CONFIG describes on its build, resuming from the run's latest checkpoint.

    One process trains on one device. Under torchrun, each process trains on its own device and the ranks
    shard the model with FSDP2; with --address, Ray Train starts --workers such processes on a Ray cluster.

    \b
    Examples:
      gristmill train runs/demo.yaml
      gristmill train runs/demo.yaml --set max_steps=20 --set output_dir=runs/demo-short
      torchrun --nproc-per-node 8 --no-python gristmill train runs/tinyllama.yaml   # FSDP2, 8 GPUs
      gristmill train runs/tinyllama.yaml --address auto --workers 8 --gpu        # Ray Train
    """
    from gristmill.models import parse_override
    from gristmill.trainer.config import load_train_config

    settings = load_train_config(config, dict(parse_override(o) for o in overrides))
    if address is not None:
        if stop_at_step is not None or as_json:
            raise click.UsageError("--stop-at-step and --json apply to a run in this process, not --address")
        import ray

        from gristmill.trainer.ray_train import train_with_ray

        ray.init(address=address)
        train_with_ray(settings, workers=workers, use_gpu=gpu)
        return
    from gristmill.trainer.train import train as run

    result = run(settings, stop_at_step=stop_at_step)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "resumed_from": result.resumed_from,
                    "steps": len(result.losses),
                    "final_loss": result.losses[max(result.losses)] if result.losses else None,
                    "eval_losses": result.eval_losses,
                    "stages": [
                        {
                            "name": s.name,
                            "seq_len": s.seq_len,
                            "steps": s.steps,
                            "tokens_per_step": s.tokens_per_step,
                            "accumulation": s.accumulation,
                        }
                        for s in result.stages
                    ],
                    "checkpoint": str(result.checkpoint) if result.checkpoint else None,
                },
                indent=2,
            )
        )
