"""Benchmark a training step of TinyLlama-1.1B shapes on one GPU: gristmill's kernels against plain PyTorch.

Micro-batches come from a real build (packed rows with their documents, so the masks are realistic), at
2K × 8 rows and 8K × 2 rows (16K tokens each). Every variant is the same model, trained the way the
trainer trains it (FSDP2 on a process group of one: bf16 compute, fp32 master weights and AdamW state):

  gristmill   our Triton kernels (RMSNorm, RoPE, SwiGLU, varlen flash attention, fused linear CE)
  eager       plain PyTorch: the reference ops of `gristmill.trainer.kernels.reference`, attention as SDPA
              with a block-diagonal causal mask per row, the loss from full logits
  compile     the eager variant with every block under torch.compile
and, with --fox, Fox-1-1.6B at 8K × 2 with our kernels alone (does it fit in 80 GB without activation
checkpointing?). Reports tokens/s, MFU (bf16 dense peak of the device) and peak memory, and the ratios
to the baselines; run it where all variants are measured together.

    python bench/train_bench.py BUILD [--steps 10] [--warmup 3] [--fox] [--json OUT.json]
    python bench/train_bench.py BUILD --model proxy-150m --seq-lens 2048    # the ablations' 150M proxy

BUILD needs stages of sequence length 2048 and 8192 (or pass --seq-lens). Without CUDA it says so and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from gristmill.shards.loader import ShardStream
from gristmill.shards.manifest import read_manifest
from gristmill.trainer.config import ModelConfig, OpsConfig, model_preset
from gristmill.trainer.kernels import reference
from gristmill.trainer.metrics import peak_tflops
from gristmill.trainer.model import Transformer, flops_per_token
from gristmill.trainer.ops import Ops, build_ops
from gristmill.trainer.parallelize import apply_fsdp, data_parallel_mesh
from gristmill.trainer.train import to_device

GIB = 2**30
MICRO_BATCH_TOKENS = 16384


@dataclass
class Measurement:
    """One variant at one shape."""

    model: str
    variant: str
    seq_len: int
    rows: int
    tokens_per_s: float
    mfu: float | None
    peak_gib: float
    loss: float


def masked_sdpa(seq_len: int):
    """Return a plain-PyTorch varlen attention for rows of `seq_len`: SDPA with a per-row document mask."""

    def attention(q, k, v, cu_seqlens, max_seqlen, causal=True, softmax_scale=None):
        t, n_heads, head_dim = q.shape
        rows = t // seq_len
        segment = torch.searchsorted(cu_seqlens[1:], torch.arange(t, device=q.device), right=True)
        segment = segment.view(rows, seq_len)  # (B, L) segment id of each token
        same = segment[:, :, None] == segment[:, None, :]  # (B, L, L)
        mask = same & torch.ones(seq_len, seq_len, dtype=torch.bool, device=q.device).tril()
        group = n_heads // k.shape[1]
        qb = q.view(rows, seq_len, n_heads, head_dim).transpose(1, 2)  # (B, nh, L, hd)
        kb = k.repeat_interleave(group, dim=1).view(rows, seq_len, n_heads, head_dim).transpose(1, 2)
        vb = v.repeat_interleave(group, dim=1).view(rows, seq_len, n_heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask[:, None], scale=softmax_scale)
        return out.transpose(1, 2).reshape(t, n_heads, head_dim)  # (T, nh, hd)

    return attention


def eager_ops(seq_len: int) -> Ops:
    """Return the plain-PyTorch ops of the baselines."""
    return Ops(
        rms_norm=reference.rms_norm_reference,
        rms_norm_residual=reference.rms_norm_residual_reference,
        apply_rope=reference.rope_reference,
        swiglu=reference.swiglu_reference,
        linear_cross_entropy=reference.linear_cross_entropy_reference,
        attention=masked_sdpa(seq_len),
        choices=dict.fromkeys(OpsConfig.model_fields, "eager"),
    )


def micro_batches(build: str, seq_len: int, count: int, device: torch.device) -> list[dict]:
    """Return `count` micro-batches of the build's stage of `seq_len`, on the device."""
    stage = next((s for s in read_manifest(build).stages if s.seq_len == seq_len), None)
    if stage is None:
        sys.exit(f"{build}: no stage of sequence length {seq_len}; pass --seq-lens with the build's lengths")
    stream = ShardStream(
        build,
        micro_batch_tokens=MICRO_BATCH_TOKENS,
        curriculum=[(stage.name, max(stage.rows, 1) * seq_len * 4)],
    )
    batches = []
    for batch in stream:
        batches.append(to_device(batch, device))
        if len(batches) == count:
            break
    stream.close()
    return batches


def measure(
    config: ModelConfig, variant: str, batches: list[dict], steps: int, warmup: int, device: torch.device
) -> Measurement:
    """Train `warmup` + `steps` steps of one variant; return its throughput and peak memory."""
    seq_len = batches[0]["input_ids"].shape[1]
    torch.manual_seed(0)
    ops = build_ops(config.ops, device) if variant == "gristmill" else eager_ops(seq_len)
    model = Transformer(config, ops).to(device)
    apply_fsdp(model, data_parallel_mesh(device, 1), torch.bfloat16, compile_blocks=variant == "compile")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    torch.cuda.reset_peak_memory_stats(device)
    loss = torch.zeros(())
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize(device)
            start = time.perf_counter()
        loss = model(**batches[i % len(batches)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    rate = steps * MICRO_BATCH_TOKENS / (time.perf_counter() - start)
    peak = peak_tflops(device, None)
    mfu = rate * flops_per_token(config, seq_len) / (peak * 1e12) if peak else None
    result = Measurement(
        config.name,
        variant,
        seq_len,
        MICRO_BATCH_TOKENS // seq_len,
        rate,
        mfu,
        torch.cuda.max_memory_allocated(device) / GIB,
        float(loss),
    )
    del model, optimizer
    torch.cuda.empty_cache()
    return result


def safely(config, variant, batches, args, device) -> Measurement | None:
    """Return the measurement, or None (with a message) when the variant runs out of memory."""
    try:
        return measure(config, variant, batches, args.steps, args.warmup, device)
    except torch.OutOfMemoryError:
        print(f"  {config.name} {variant} at {batches[0]['input_ids'].shape}: out of memory", flush=True)
        torch.cuda.empty_cache()
        return None


def report(results: list[Measurement], model: str) -> None:
    """Print the table and the ratios of gristmill to each baseline on `model`."""
    print(f"\n{'model':16} {'variant':10} {'rows':>9} {'tok/s':>10} {'MFU':>7} {'peak GiB':>9} {'loss':>7}")
    for r in results:
        mfu = f"{100 * r.mfu:.1f}%" if r.mfu is not None else "-"
        print(
            f"{r.model:16} {r.variant:10} {r.seq_len:>5}x{r.rows:<3} {r.tokens_per_s:>10,.0f} {mfu:>7} "
            f"{r.peak_gib:>9.1f} {r.loss:>7.3f}"
        )
    for seq_len in sorted({r.seq_len for r in results}):
        at = {r.variant: r for r in results if r.seq_len == seq_len and r.model == model}
        if "gristmill" in at:
            ratios = ", ".join(
                f"{at['gristmill'].tokens_per_s / at[v].tokens_per_s:.2f}x {v}"
                for v in ("eager", "compile")
                if v in at
            )
            print(f"L={seq_len}: gristmill is {ratios}")


def main() -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("build")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--variants", nargs="+", default=["gristmill", "eager", "compile"])
    parser.add_argument("--model", default="tinyllama-1.1b", help="the model preset to measure")
    parser.add_argument("--fox", action="store_true", help="also Fox-1-1.6B at the longest length, ours only")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/train_bench.py needs a CUDA GPU; none is visible here, so nothing was measured.")
        return 0
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1)
    vocab = read_manifest(args.build).tokenizer
    tiny = model_preset(args.model, max_seq_len=max(args.seq_lens))
    if vocab is not None and (tiny.vocab_size is None or vocab.vocab_size > tiny.vocab_size):
        tiny = tiny.with_vocab(vocab.vocab_size)  # a proxy preset takes the build's
    elif tiny.vocab_size is None:
        tiny = tiny.with_vocab(32000)
    print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}; build {args.build}")
    results = []
    for seq_len in args.seq_lens:
        batches = micro_batches(args.build, seq_len, 4, device)
        for variant in args.variants:
            if (r := safely(tiny, variant, batches, args, device)) is not None:
                results.append(r)
                print(f"  {asdict(r)}", flush=True)
    if args.fox:
        fox = model_preset("fox1-1.6b")
        batches = micro_batches(args.build, max(args.seq_lens), 4, device)
        if (r := safely(fox, "gristmill", batches, args, device)) is not None:
            results.append(r)
    report(results, tiny.name)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=2)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
