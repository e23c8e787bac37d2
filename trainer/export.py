"""Export a checkpoint as a Hugging Face Llama model: config.json, model.safetensors and the tokenizer.

Our RoPE rotates the two halves of each head (rotate_half), as HF's Llama does, so q and k projections
are copied unpermuted; a tied LM head is written once, as the embedding, with tie_word_embeddings set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gristmill.errors import BuildError, ConfigError
from gristmill.storage import atomic_write, write_json
from gristmill.trainer.checkpoint import (
    TRAIN_CONFIG,
    latest_checkpoint,
    load_model_weights,
    read_model_config,
)
from gristmill.trainer.config import ModelConfig, OpsConfig
from gristmill.trainer.model import Transformer
from gristmill.trainer.ops import build_ops

# our parameter name (per block, after "layers.{i}.") → HF Llama's (after "model.layers.{i}.")
BLOCK_NAMES = {
    "attention_norm.weight": "input_layernorm.weight",
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "feed_forward.w_gate.weight": "mlp.gate_proj.weight",
    "feed_forward.w_up.weight": "mlp.up_proj.weight",
    "feed_forward.w_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def hf_name(name: str) -> str:
    """Return the HF Llama parameter name of one of our parameter names; raise KeyError if unknown."""
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    _, index, rest = name.split(".", 2)  # layers.{i}.rest
    return f"model.layers.{index}.{BLOCK_NAMES[rest]}"


def hf_state_dict(model: Transformer, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Return the model's weights under HF Llama names, contiguous, in `dtype`."""
    return {hf_name(k): v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}


def hf_config(config: ModelConfig, special_ids: dict[str, int | None], dtype: torch.dtype) -> dict[str, Any]:
    """Return the config.json of a LlamaForCausalLM of these shapes (read by transformers 4.x and 5.x)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "rope_theta": config.rope_theta,  # transformers 4.x
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},  # 5.x
        "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": config.init_std,
        "bos_token_id": special_ids.get("bos"),
        "eos_token_id": special_ids.get("eos"),
        "pad_token_id": special_ids.get("pad"),
        "torch_dtype": str(dtype).removeprefix("torch."),
        "use_cache": True,
    }


def _resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if (path / "model.json").exists():
        return path
    latest = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
    if latest is None:
        raise BuildError(
            "no checkpoint here",
            path=str(path),
            hint="pass a step-N directory, a checkpoints/ directory, or a run's output_dir",
        )
    return latest


def _tokenizer_dir(checkpoint: Path, tokenizer: str | Path | None) -> Path:
    if tokenizer is not None:
        found = Path(tokenizer)
    else:
        config_file = checkpoint / TRAIN_CONFIG
        if not config_file.exists():
            raise ConfigError(
                "the checkpoint does not name its build",
                path=str(checkpoint),
                hint="pass --tokenizer BUILD/tokenizer",
            )
        found = Path(json.loads(config_file.read_text())["build"]) / "tokenizer"
    if not (found / "tokenizer.json").exists():
        raise ConfigError(
            "no tokenizer.json in the tokenizer directory",
            path=str(found),
            hint="pass --tokenizer with the build's tokenizer directory",
        )
    return found


def export_hf(
    checkpoint: str | Path,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a HF Llama model directory at `out` from a checkpoint (a step-N dir or a run's output_dir).

    Returns `out`. Raises BuildError when there is no checkpoint, ConfigError when the tokenizer is missing
    or frames documents otherwise than the build the checkpoint trained on.
    """
    from safetensors.torch import save

    from gristmill.tokenizer.hf_export import export_hf_tokenizer
    from gristmill.tokenizer.interface import Tokenizer

    checkpoint = _resolve_checkpoint(checkpoint)
    config = read_model_config(checkpoint).model_copy(
        update={"ops": OpsConfig(**dict.fromkeys(OpsConfig.model_fields, "reference"))}
    )
    tok_dir = _tokenizer_dir(checkpoint, tokenizer)
    _check_framing(checkpoint, Tokenizer.load(tok_dir).framing.name)
    model = Transformer(config, build_ops(config.ops, "cpu"))
    load_model_weights(checkpoint, model)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(str(out / "model.safetensors")) as f:
        f.write(save(hf_state_dict(model, dtype), metadata={"format": "pt"}))
    tok = export_hf_tokenizer(tok_dir, out, config.max_seq_len)
    special = {"bos": tok.bos_id, "eos": tok.eos_id, "pad": tok.pad_id}
    write_json(str(out / "config.json"), hf_config(config, special, dtype))
    return out


def _check_framing(checkpoint: Path, framing: str) -> None:
    """Refuse a tokenizer whose document framing differs from the one the checkpoint's build trained on."""
    from gristmill.shards.manifest import read_manifest

    config_file = checkpoint / TRAIN_CONFIG
    if not config_file.exists():
        return
    build = json.loads(config_file.read_text())["build"]
    try:
        trained_on = read_manifest(build).tokenizer
    except BuildError:
        return  # the build is not at hand: nothing to compare with
    if trained_on is not None and trained_on.framing != framing:
        raise ConfigError(
            f"the tokenizer frames documents as {framing!r}, but the model trained on "
            f"{trained_on.framing!r} rows",
            path=str(checkpoint),
            hint="export with the build's own tokenizer directory",
        )
