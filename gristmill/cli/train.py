"""`gristmill train CONFIG.yaml`: train a model on a build (one process; torchrun for several devices)."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--stop-at-step",
    type=int,
    default=None,
    help="end after this step without a final checkpoint (e.g. to fit a job's time limit)",
)
@click.option("--json", "as_json", is_flag=True, help="print a summary (losses, stages, checkpoint) as JSON")
def train(config: str, stop_at_step: int | None, as_json: bool) -> None:
    """Train the model CONFIG describes on its build, resuming from the run's latest checkpoint.

    \b
    Examples:
      gristmill train runs/demo.yaml
      torchrun --nproc-per-node 8 -m gristmill.trainer runs/tinyllama.yaml   # FSDP2 over 8 GPUs
    """
    from gristmill.trainer.config import load_train_config
    from gristmill.trainer.train import train as run

    result = run(load_train_config(config), stop_at_step=stop_at_step)
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
