"""`gristmill export CHECKPOINT --hf OUT`: write a checkpoint as a Hugging Face Llama model."""

from __future__ import annotations

import click


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--hf",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="output directory for config.json, model.safetensors and the tokenizer",
)
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="tokenizer directory (default: the trained-on build's tokenizer/)",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="dtype of the exported weights",
)
def export(checkpoint: str, out: str, tokenizer: str | None, dtype: str) -> None:
    """Export CHECKPOINT (a step-N directory, or a run's output_dir for its latest) for transformers.

    Writes config.json, model.safetensors and the tokenizer's own files (tokenizer.json, tokenizer.model
    for sentencepiece, tokenizer_config.json), nothing else of the build's tokenizer directory.

    \b
    Examples:
      gristmill train runs/demo.yaml && gristmill export runs/demo-out --hf hf/demo    # after `make demo`
      gristmill export runs/demo-out/checkpoints/step-20 --hf hf/demo --dtype bfloat16
    """
    import torch

    from gristmill.trainer.export import export_hf

    path = export_hf(checkpoint, out, tokenizer=tokenizer, dtype=getattr(torch, dtype))
    click.echo(f"wrote {path} (load with transformers.LlamaForCausalLM.from_pretrained)")
