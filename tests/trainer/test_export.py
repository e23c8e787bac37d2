"""The HF export loads in transformers' LlamaForCausalLM, gives our logits, and carries the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError
from gristmill.trainer.checkpoint import latest_checkpoint, load_model_weights, read_model_config
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.export import export_hf
from gristmill.trainer.model import Transformer
from gristmill.trainer.train import train

transformers = pytest.importorskip("transformers")


def trained(builds, out: Path, model) -> Transformer:
    """Train a few steps (so weights are no longer at init) and return the checkpoint's model."""
    torch.set_num_threads(1)
    cfg = parse_train_config(
        dict(
            build=str(builds.train),
            model=model,
            output_dir=str(out),
            micro_batch_tokens=512,
            max_steps=4,
            optimizer={"lr": 1e-2},
            checkpoint={"every_steps": 4},
        )
    )
    train(cfg, console=lambda line: None)
    checkpoint = latest_checkpoint(cfg.checkpoint_dir)
    ours = Transformer(read_model_config(checkpoint))
    load_model_weights(checkpoint, ours)
    return ours.eval()


@pytest.mark.parametrize("model", ["llama-tiny", {"preset": "llama-tiny-tied", "rope_theta": 500.0}])
def test_export_loads_in_transformers_with_our_logits(builds, tmp_path, model):
    ours = trained(builds, tmp_path / "run", model)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    hf = transformers.LlamaForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert hf.config.tie_word_embeddings == ours.config.tie_embeddings

    text_a = "The for statement is used to iterate over the elements of a sequence."
    text_b = "Exceptions are raised by the raise statement."
    ids_a, ids_b = (torch.as_tensor(builds.tokenizer.encode(t), dtype=torch.int64) for t in (text_a, text_b))
    with torch.no_grad():
        hf_a = hf(ids_a[None]).logits[0]
        hf_b = hf(ids_b[None]).logits[0]
        # both documents packed in one row: position ids restart and attention stays within each
        row = torch.cat([ids_a, ids_b])[None]  # (1, L)
        positions = torch.cat([torch.arange(len(ids_a)), torch.arange(len(ids_b))])[None]
        cu_seqlens = torch.tensor([0, len(ids_a), len(ids_a) + len(ids_b)], dtype=torch.int32)
        packed = ours(row, positions, cu_seqlens, max(len(ids_a), len(ids_b)))[0]
    torch.testing.assert_close(packed[: len(ids_a)], hf_a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed[len(ids_a) :], hf_b, atol=1e-4, rtol=1e-4)

    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert hf_tokenizer(text_a, add_special_tokens=False)["input_ids"] == ids_a.tolist()
    assert hf_tokenizer.eos_token == "</s>"
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == builds.tokenizer.eos_id


def test_export_cli(builds, tmp_path):
    trained(builds, tmp_path / "run", "llama-tiny")
    checkpoint = latest_checkpoint(tmp_path / "run" / "checkpoints")
    result = CliRunner().invoke(
        cli, ["export", str(checkpoint), "--hf", str(tmp_path / "hf"), "--dtype", "bfloat16"]
    )
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (tmp_path / "hf").iterdir()
    }
    hf = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "hf"))
    assert hf.model.embed_tokens.weight.dtype == torch.bfloat16

    with pytest.raises(BuildError, match="no checkpoint here"):
        export_hf(tmp_path / "hf", tmp_path / "elsewhere")


def test_export_refuses_a_tokenizer_framed_otherwise(builds, tmp_path):
    # The build's byte-level BPE frames documents with eos only; a copy that prepends <s> (as a llama2
    # tokenizer would) must not be exported with a model that never saw <s> at a document's start.
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import processors

    from gristmill.errors import ConfigError

    trained(builds, tmp_path / "run", "llama-tiny")
    other = tmp_path / "bos-tokenizer"
    other.mkdir()
    hf = HFTokenizer.from_file(str(builds.train / "tokenizer" / "tokenizer.json"))
    bos = hf.token_to_id("<s>")
    hf.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    hf.save(str(other / "tokenizer.json"))
    with pytest.raises(ConfigError, match="frames documents as 'bos\\+eos', but the model trained on 'eos'"):
        export_hf(tmp_path / "run", tmp_path / "hf", tokenizer=other)
    assert not (tmp_path / "hf").exists()
    out = export_hf(tmp_path / "run", tmp_path / "hf")  # the build's own tokenizer
    assert json.loads((out / "tokenizer_config.json").read_text())["add_bos_token"] is False
