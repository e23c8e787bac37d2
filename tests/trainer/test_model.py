"""The model: preset sizes, document masking, the fused loss against the logits; kernels vs references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gristmill.trainer.config import ModelConfig, OpsConfig, model_preset
from gristmill.trainer.kernels import kernels_available
from gristmill.trainer.model import Transformer, count_parameters
from gristmill.trainer.ops import build_ops

REFERENCE = OpsConfig(**dict.fromkeys(OpsConfig.model_fields, "reference"))


def tiny(**overrides) -> ModelConfig:
    return model_preset("llama-tiny", **{"vocab_size": 97, "ops": REFERENCE, **overrides})


def packed(lengths: list[int], vocab: int = 97, seed: int = 0):
    """Return one row of documents of `lengths`: input_ids, position_ids (1, L), cu_seqlens, max_seqlen."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, sum(lengths)), generator=g)
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return ids, positions, cu, max(lengths)


@pytest.mark.parametrize(("preset", "billions"), [("tinyllama-1.1b", 1.10), ("fox1-1.6b", 1.65)])
def test_presets_have_their_published_sizes(preset, billions):
    config = model_preset(preset)
    with torch.device("meta"):
        model = Transformer(config)
    actual = sum(p.numel() for p in model.parameters())
    assert actual == count_parameters(config, include_embedding=True)
    assert actual / 1e9 == pytest.approx(billions, abs=0.05)
    assert (model.lm_head is None) == config.tie_embeddings


def test_config_checks_shapes():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        tiny(n_kv_heads=3)
    with pytest.raises(ValueError, match="even"):
        tiny(head_dim=15)


def test_attention_stays_inside_each_document():
    torch.manual_seed(0)
    model = Transformer(tiny()).eval()
    ids, positions, cu, max_len = packed([5, 7, 4])
    with torch.no_grad():
        logits = model(ids, positions, cu, max_len)  # (1, 16, V)
        changed = ids.clone()
        changed[0, :5] = (changed[0, :5] + 1) % 97  # another first document
        logits_changed = model(changed, positions, cu, max_len)
        alone = model(ids[:, 5:12], torch.arange(7)[None], torch.tensor([0, 7], dtype=torch.int32), 7)
    assert logits.shape == (1, 16, 97)
    torch.testing.assert_close(logits_changed[0, 5:], logits[0, 5:], rtol=0, atol=0)
    assert not torch.allclose(logits_changed[0, :5], logits[0, :5])
    torch.testing.assert_close(alone[0], logits[0, 5:12], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tied", [False, True])
def test_loss_is_the_cross_entropy_of_the_logits(tied):
    torch.manual_seed(0)
    model = Transformer(tiny(tie_embeddings=tied))
    ids, positions, cu, max_len = packed([9, 8, 15], seed=1)
    targets = torch.roll(ids, -1, dims=1)
    targets[0, 8] = targets[0, -1] = -100  # the end of document 1 and of the row carry no loss
    loss = model(ids, positions, cu, max_len, targets=targets)
    logits = model(ids, positions, cu, max_len)
    expected = F.cross_entropy(logits.view(-1, 97), targets.view(-1), ignore_index=-100)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    summed = model(ids, positions, cu, max_len, targets=targets, loss_reduction="sum")
    torch.testing.assert_close(summed, expected * 30, atol=1e-4, rtol=1e-5)
    if tied:
        assert model.output_weight is model.embed.weight


def test_ops_auto_pick_the_reference_on_cpu():
    assert set(build_ops(OpsConfig(), "cpu").choices.values()) == {"reference"}
    assert build_ops(OpsConfig(rope="kernel"), "cpu").choices["rope"] == (
        "kernel" if kernels_available() else "reference"
    )


@pytest.mark.skipif(not kernels_available(), reason="needs CUDA or TRITON_INTERPRET=1")
def test_kernel_ops_match_reference_ops_forward_and_backward():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    reference = Transformer(tiny(n_layers=1)).to(device)
    kernel_config = tiny(n_layers=1, ops=OpsConfig(**dict.fromkeys(OpsConfig.model_fields, "kernel")))
    kernel = Transformer(kernel_config, build_ops(kernel_config.ops, device)).to(device)
    kernel.load_state_dict(reference.state_dict())
    assert set(kernel.ops.choices.values()) == {"kernel"}
    ids, positions, cu, max_len = (
        t.to(device) if isinstance(t, torch.Tensor) else t for t in packed([6, 10], seed=2)
    )
    targets = torch.roll(ids, -1, dims=1)
    targets[0, 5] = -100
    losses = []
    for model in (reference, kernel):
        loss = model(ids, positions.int(), cu, max_len, targets=targets)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(reference.named_parameters(), kernel.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.skipif(not kernels_available(), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("tied", [False, True])
def test_compiled_kernel_model_has_no_graph_break_and_matches_eager(tied):
    # Every kernel is a custom op with its own backward: dynamo traces the whole model, forward and loss,
    # as one graph, and AOT autograd's joint graph gives eager's loss and gradients.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    config = tiny(
        n_layers=2, tie_embeddings=tied, ops=OpsConfig(**dict.fromkeys(OpsConfig.model_fields, "kernel"))
    )
    eager = Transformer(config, build_ops(config.ops, device)).to(device)
    compiled = Transformer(config, build_ops(config.ops, device)).to(device)
    compiled.load_state_dict(eager.state_dict())
    ids, positions, cu, max_len = (
        t.to(device) if isinstance(t, torch.Tensor) else t for t in packed([5, 9, 2], seed=4)
    )
    targets = torch.roll(ids, -1, dims=1)
    targets[0, 4] = -100
    args = (ids, positions, cu, max_len)

    explanation = torch._dynamo.explain(compiled)(*args, targets=targets)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    torch._dynamo.reset()
    losses = []
    for model in (eager, torch.compile(compiled, backend="aot_eager", fullgraph=True)):
        loss = model(*args, targets=targets)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=1e-6)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_every_residual_addition_is_fused_into_the_next_norm():
    # Only the first block's attention norm has no pending residual; the other 2 · layers norms (each
    # block's MLP output is added by the norm after it, the last one by the final norm) add one.
    import dataclasses

    calls = {"rms_norm": 0, "rms_norm_residual": 0}
    ops = build_ops(REFERENCE, "cpu")

    def counted(name):
        def call(*args, **kwargs):
            calls[name] += 1
            return getattr(ops, name)(*args, **kwargs)

        return call

    counting = dataclasses.replace(
        ops, rms_norm=counted("rms_norm"), rms_norm_residual=counted("rms_norm_residual")
    )
    torch.manual_seed(0)
    plain = Transformer(tiny(n_layers=3))
    fused = Transformer(tiny(n_layers=3), counting)
    fused.load_state_dict(plain.state_dict())
    ids, positions, cu, max_len = packed([6, 10])
    out = fused(ids, positions, cu, max_len)
    assert calls == {"rms_norm": 1, "rms_norm_residual": 6}

    # the same stream as adding each residual by hand
    h = plain.embed(ids.reshape(-1))
    for layer in plain.layers:
        a = layer.attention(ops.rms_norm(h, layer.attention_norm.weight), positions.reshape(-1), cu, max_len)
        h = h + a
        h = h + layer.feed_forward(ops.rms_norm(h, layer.ffn_norm.weight))
    want = F.linear(ops.rms_norm(h, plain.norm.weight), plain.output_weight)
    torch.testing.assert_close(out[0], want, atol=1e-5, rtol=1e-5)
