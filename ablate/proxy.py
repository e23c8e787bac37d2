"""Proxy models for data ablations: a model preset, the training settings it runs with, and its token budget.

A proxy's budget is Chinchilla-style: tokens = tokens_per_param × N, where N counts the weights a token's
FLOPs go through (`trainer.model.count_parameters`: blocks, final norm, LM head; the input embedding is a
lookup). N depends on the vocabulary, so an ablation sizes it with its largest candidate vocabulary and every
candidate trains exactly that many tokens. Hoffmann et al. (2022) put the compute-optimal ratio near 20;
DataDecide (Magnusson et al., 2025) ranks data recipes with proxies at that ratio (100 tokens per parameter
for its larger runs), and finds ranking at 150M right for about 80% of pairs of recipes.

The settings are starting points, not tuned here: a learning rate and warmup share that train the shape
stably, and batch sizes that fit the device the preset is meant for (CPU presets: minutes on a laptop's
cores; the others: one GPU of 80 GB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gristmill.errors import ConfigError
from gristmill.trainer.config import PRESETS, ModelConfig, model_preset
from gristmill.trainer.model import count_parameters, flops_per_token


@dataclass(frozen=True)
class ProxyPreset:
    """A proxy model and the training settings an ablation runs it with (unless its config overrides them)."""

    model: str  # a model preset of trainer/config.py
    lr: float
    warmup_fraction: float  # of the run's steps
    micro_batch_tokens: int
    tokens_per_step: int
    device: str  # what it is sized for


PROXIES: dict[str, ProxyPreset] = {
    "cpu-tiny": ProxyPreset("proxy-cpu-tiny", 3e-3, 0.02, 4096, 16384, "CPU, minutes"),
    "cpu-small": ProxyPreset("proxy-cpu-small", 2e-3, 0.02, 4096, 32768, "CPU, an hour"),
    "20m": ProxyPreset("proxy-20m", 3e-3, 0.02, 32768, 262144, "one GPU"),
    "60m": ProxyPreset("proxy-60m", 3e-3, 0.02, 32768, 262144, "one GPU"),
    "150m": ProxyPreset("proxy-150m", 3e-3, 0.02, 32768, 524288, "one GPU (or several)"),
}


def proxy(name: str) -> ProxyPreset:
    """Return the proxy preset `name`; raise ConfigError naming the presets for another name."""
    if name not in PROXIES:
        raise ConfigError(f"unknown proxy {name!r}; proxies are {', '.join(PROXIES)}", where="proxy")
    return PROXIES[name]


def proxy_model(name: str, vocab_size: int, **overrides: Any) -> ModelConfig:
    """Return the proxy's model config with `vocab_size` (and `overrides` of its fields)."""
    return model_preset(proxy(name).model, vocab_size=vocab_size, **overrides)


def token_budget(model: ModelConfig, tokens_per_param: float) -> int:
    """Return tokens_per_param × N (the model's weights without the input embedding), rounded down."""
    return int(tokens_per_param * count_parameters(model))


def preset_table(vocab_size: int = 32000, seq_len: int = 2048) -> list[dict[str, Any]]:
    """Return, per proxy, its shape, parameters (without and with the input embedding) and training FLOPs
    per token at `vocab_size` and `seq_len` (the table in docs/ablate.md)."""
    rows = []
    for name, p in PROXIES.items():
        config = model_preset(p.model, vocab_size=vocab_size)
        shape = PRESETS[p.model]
        rows.append(
            {
                "proxy": name,
                "layers": shape["n_layers"],
                "hidden": shape["hidden_size"],
                "heads": f"{shape['n_heads']}/{shape['n_kv_heads']}",
                "mlp": shape["intermediate_size"],
                "parameters": count_parameters(config),
                "with_embedding": count_parameters(config, include_embedding=True),
                "flops_per_token": flops_per_token(config, seq_len),
            }
        )
    return rows
