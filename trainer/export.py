"""Export a checkpoint as a Hugging Face Llama model (config.json, model.safetensors, the tokenizer), and
read such a model back into ours (`load_hf_llama`, for `gristmill eval`).

Our RoPE rotates the two halves of each head (rotate_half), as HF's Llama does, so q and k projections
are copied unpermuted; a tied LM head is written once, as the embedding, with tie_word_embeddings set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gristmill.errors import BuildError, ConfigError, InputError
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


def model_config_of_hf(config: dict[str, Any]) -> ModelConfig | str:
    """Return our ModelConfig for a HF Llama config.json's content, or the reason it is not one of ours
    (another architecture, biases, scaled RoPE, another activation)."""
    if config.get("model_type") != "llama":
        return f"model_type {config.get('model_type')!r} is not 'llama'"
    rope = config.get("rope_parameters") or {}
    checks = {
        "hidden_act": (config.get("hidden_act", "silu"), "silu"),
        "attention_bias": (bool(config.get("attention_bias", False)), False),
        "mlp_bias": (bool(config.get("mlp_bias", False)), False),
        "rope_scaling": (config.get("rope_scaling"), None),
        "rope_type": (rope.get("rope_type", "default"), "default"),
        "pretraining_tp": (config.get("pretraining_tp", 1), 1),
    }
    for name, (found, wanted) in checks.items():
        if found != wanted:
            return f"{name} is {found!r}, gristmill's model has {wanted!r}"
    try:
        heads = config["num_attention_heads"]
        return ModelConfig(
            name=str(config.get("_name_or_path") or "hf-llama"),
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            n_layers=config["num_hidden_layers"],
            n_heads=heads,
            n_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            intermediate_size=config["intermediate_size"],
            rope_theta=rope.get("rope_theta", config.get("rope_theta", 10000.0)),
            max_seq_len=config.get("max_position_embeddings", 2048),
            norm_eps=config.get("rms_norm_eps", 1e-5),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        return f"config.json does not describe a Llama model: {e}"


def load_hf_llama(directory: str | Path, device: torch.device | str = "cpu") -> Transformer | str:
    """Return a HF Llama model directory's weights in our Transformer (ops chosen for `device`), or the
    reason it cannot be one (see `model_config_of_hf`). Weights are read from safetensors only.

    Raises InputError for an unreadable config.json or weights that do not match it."""
    from safetensors import safe_open

    directory = Path(directory)
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"unreadable config.json: {e}", path=str(directory)) from None
    model_config = model_config_of_hf(config) if isinstance(config, dict) else "config.json is not an object"
    if isinstance(model_config, str):
        return model_config
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return "no *.safetensors weights"
    model = Transformer(model_config, build_ops(model_config.ops, device))
    ours = {hf_name(name): name for name in model.state_dict()}
    state: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
                if key in ours:
                    state[ours[key]] = f.get_tensor(key).float()
                elif not (
                    key.endswith("rotary_emb.inv_freq") or (key == "lm_head.weight" and model.lm_head is None)
                ):
                    raise InputError(f"weight {key!r} has no place in a Llama model", path=str(file))
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise InputError(f"weights missing: {', '.join(missing[:5])}", path=str(directory))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"weights do not fit config.json: {e}", path=str(directory)) from None
    return model


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


def resolve_checkpoint(path: str | Path) -> Path:
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


def tokenizer_dir(checkpoint: Path, tokenizer: str | Path | None) -> Path:
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

    checkpoint = resolve_checkpoint(checkpoint)
    config = read_model_config(checkpoint).model_copy(
        update={"ops": OpsConfig(**dict.fromkeys(OpsConfig.model_fields, "reference"))}
    )
    tok_dir = tokenizer_dir(checkpoint, tokenizer)
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
