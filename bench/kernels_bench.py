"""Benchmark gristmill's Triton kernels against PyTorch baselines, forward + backward, bf16, on one GPU.

For each op at TinyLlama and Fox-1 shapes and sequence lengths 2K-8K (one packed row of that many tokens),
times forward + backward and measures peak memory above the inputs for: ours, the eager reference
(`gristmill.trainer.kernels.reference`, fp32 math like the kernels), and the torch.compile'd
reference. Attention is also compared with SDPA's flash backend on plain causal attention (no document
mask: a lower bound on the work) and with FlexAttention given the document mask. Every figure is a ratio
to ours, measured in the same run.

Then checks the fused cross-entropy's extra peak memory at Fox-1's 256K vocabulary and 16K tokens
(target: at most 1 GiB above the inputs and their gradients), and its speed against the compiled unfused
loss at TinyLlama's 32K vocabulary.

    python bench/kernels_bench.py              # full run
    python bench/kernels_bench.py --quick      # smoke run: 2K tokens, few repetitions, small CE check
    python bench/kernels_bench.py --ops attention cross_entropy --seqlens 4096 8192
    python bench/kernels_bench.py --tune       # time the attention launch configs; print TABLE entries

`--tune` compiles each candidate of `trainer/kernels/attention_configs.py` for this GPU ahead of time and
times those that compile clean (no register spill, within its shared memory), per kernel (forward, dK/dV,
dQ), at both models' head dims and 8K tokens of ragged documents, against the table's pinned config; it
prints the fastest as entries to paste into TABLE (keyed by this GPU's class, source "tuned", which
`bench/kernels_aot.py --write` keeps): configs are pinned from that table, never autotuned in training.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gristmill.trainer.kernels.aot import ModelShapes

MODELS = (
    ModelShapes("TinyLlama-1.1B", hidden=2048, n_heads=32, n_kv_heads=4, head_dim=64, intermediate=5632,
               vocab=32000),
    # tensoropera/Fox-1-1.6B config.json: intermediate_size 4096, vocab_size 256000.
    ModelShapes("Fox-1-1.6B", hidden=2048, n_heads=16, n_kv_heads=4, head_dim=128, intermediate=4096,
               vocab=256000),
)  # fmt: skip
OPS = ("rms_norm", "rms_norm_residual", "rope", "swiglu", "cross_entropy", "attention")
DTYPE = torch.bfloat16
GIB = 2**30


@dataclass
class Impl:
    """One implementation of a case: ``fn(*inputs)`` returns output tensors, backpropagated with ``grads``."""

    label: str
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    inputs: Sequence[torch.Tensor]
    grads: Sequence[torch.Tensor] | None = None  # None: the output is a scalar loss


@dataclass
class Result:
    label: str
    ms: float | None
    peak_bytes: int | None
    note: str = ""


def _step(impl: Impl) -> None:
    outputs = impl.fn(*impl.inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    torch.autograd.backward(outputs, impl.grads)


def _clear_grads(impl: Impl) -> None:
    for t in impl.inputs:
        t.grad = None


def measure(impl: Impl, warmup: int, reps: int) -> Result:
    """Returns the median forward+backward time over reps and the peak memory above the inputs (gradients
    included); a Result with a note instead when the implementation fails or runs out of memory."""
    try:
        for _ in range(warmup):  # includes compilation and autotuning
            _step(impl)
            _clear_grads(impl)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(impl)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        _clear_grads(impl)
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            _step(impl)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
            _clear_grads(impl)
        return Result(impl.label, statistics.median(times), peak)
    except torch.OutOfMemoryError:
        _clear_grads(impl)
        torch.cuda.empty_cache()
        return Result(impl.label, None, None, "out of memory")
    except Exception as exc:  # a baseline this torch build cannot run is reported, not fatal
        _clear_grads(impl)
        return Result(impl.label, None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}")


def _leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, device="cuda") * scale).to(DTYPE).requires_grad_()


def _like(t: torch.Tensor) -> torch.Tensor:
    return torch.randn_like(t)


def doc_lengths(n_tokens: int, seed: int = 0) -> list[int]:
    """Ragged document lengths summing to n_tokens (exponential, mean n_tokens / 6, at least 1)."""
    gen = torch.Generator().manual_seed(seed)
    lengths, left = [], n_tokens
    while left > 0:
        n = max(1, int(torch.empty(1).exponential_(6 / n_tokens, generator=gen).item()))
        lengths.append(min(n, left))
        left -= lengths[-1]
    return lengths


def _compiled(fn: Callable) -> Callable:
    return torch.compile(fn, dynamic=False)


def cases(op: str, model: ModelShapes, n_tokens: int) -> list[Impl]:
    """The implementations to compare for one op, model and token count."""
    from gristmill.trainer import kernels
    from gristmill.trainer.kernels import reference as ref

    t, h = n_tokens, model.hidden
    if op == "rms_norm":
        x, w = _leaf(t, h), _leaf(h)
        grads = [_like(x)]
        return [Impl(label, fn, [x, w], grads) for label, fn in
                [("ours", kernels.rms_norm), ("eager ref", ref.rms_norm_reference),
                 ("compiled ref", _compiled(ref.rms_norm_reference))]]  # fmt: skip
    if op == "rms_norm_residual":
        x, r, w = _leaf(t, h), _leaf(t, h), _leaf(h)
        grads = [_like(x), _like(x)]
        return [Impl(label, fn, [x, r, w], grads) for label, fn in
                [("ours", kernels.rms_norm_residual), ("eager ref", ref.rms_norm_residual_reference),
                 ("compiled ref", _compiled(ref.rms_norm_residual_reference))]]  # fmt: skip
    if op == "rope":
        q, k = _leaf(t, model.n_heads, model.head_dim), _leaf(t, model.n_kv_heads, model.head_dim)
        pos = torch.cat([torch.arange(n, dtype=torch.int32) for n in doc_lengths(t)]).cuda()
        grads = [_like(q), _like(k)]
        return [Impl(label, lambda a, b, fn=fn: fn(a, b, pos), [q, k], grads) for label, fn in
                [("ours", kernels.apply_rope), ("eager ref", ref.rope_reference),
                 ("compiled ref", _compiled(ref.rope_reference))]]  # fmt: skip
    if op == "swiglu":
        gate, up = _leaf(t, model.intermediate), _leaf(t, model.intermediate)
        grads = [_like(gate)]
        return [Impl(label, fn, [gate, up], grads) for label, fn in
                [("ours", kernels.swiglu), ("eager ref", ref.swiglu_reference),
                 ("compiled ref", _compiled(ref.swiglu_reference))]]  # fmt: skip
    if op == "cross_entropy":
        x, w = _leaf(t, h), _leaf(model.vocab, h, scale=h**-0.5)
        y = torch.randint(0, model.vocab, (t,), device="cuda")
        y[::17] = -100  # some ignored positions (padding, document ends)
        return [Impl(label, lambda a, b, fn=fn: fn(a, b, y), [x, w]) for label, fn in
                [("ours", kernels.fused_linear_cross_entropy),
                 ("eager ref", ref.linear_cross_entropy_reference),
                 ("compiled ref", _compiled(ref.linear_cross_entropy_reference))]]  # fmt: skip
    if op == "attention":
        return attention_cases(model, t)
    raise ValueError(f"unknown op {op!r}")


def attention_cases(model: ModelShapes, n_tokens: int) -> list[Impl]:
    """Ours and the per-document eager reference on (T, H, D) packed documents; SDPA flash (causal over the
    whole row, no document mask) and FlexAttention (document mask) on (1, H, T, D)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from gristmill.trainer import kernels
    from gristmill.trainer.kernels import reference as ref

    lengths = doc_lengths(n_tokens)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    max_len = max(lengths)
    hq, hkv, d = model.n_heads, model.n_kv_heads, model.head_dim
    q, k, v = _leaf(n_tokens, hq, d), _leaf(n_tokens, hkv, d), _leaf(n_tokens, hkv, d)
    grads = [_like(q)]
    impls = [
        Impl("ours", lambda a, b, c: kernels.flash_attention_varlen(a, b, c, cu, max_len), [q, k, v], grads),
        Impl("eager ref", lambda a, b, c: ref.attention_varlen_reference(a, b, c, cu), [q, k, v], grads),
    ]

    def heads_first(t: torch.Tensor) -> torch.Tensor:  # (T, H, D) -> (1, H, T, D)
        return t.detach().transpose(0, 1).unsqueeze(0).contiguous().requires_grad_()

    qb, kb, vb = heads_first(q), heads_first(k), heads_first(v)
    grads_b = [_like(qb)]

    def sdpa_flash(a, b, c):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            if hq != hkv and not _flash_takes_gqa():
                b, c = (t.repeat_interleave(hq // hkv, dim=1) for t in (b, c))
            return F.scaled_dot_product_attention(a, b, c, is_causal=True, enable_gqa=hq != hkv)

    impls.append(Impl("sdpa flash, causal, no doc mask", sdpa_flash, [qb, kb, vb], grads_b))

    doc_id = torch.repeat_interleave(torch.arange(len(lengths), device="cuda"), torch.tensor(lengths).cuda())

    def document_causal(b, h, q_idx, kv_idx):
        return (doc_id[q_idx] == doc_id[kv_idx]) & (q_idx >= kv_idx)

    # Built once, outside the timing, as a trainer would build it once per batch.
    block_mask = create_block_mask(document_causal, None, None, n_tokens, n_tokens, device="cuda")
    flex = torch.compile(flex_attention, dynamic=False)
    impls.append(Impl("flex, doc mask", lambda a, b, c: flex(a, b, c, block_mask=block_mask, enable_gqa=True),
                      [qb, kb, vb], grads_b))  # fmt: skip
    return impls


_FLASH_GQA: list[bool] = []


def _flash_takes_gqa() -> bool:
    """Whether SDPA's flash backend takes enable_gqa here (else KV heads are expanded, inside the timing)."""
    if not _FLASH_GQA:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q = torch.randn(1, 4, 128, 64, device="cuda", dtype=DTYPE)
        kv = torch.randn(1, 1, 128, 64, device="cuda", dtype=DTYPE)
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
            _FLASH_GQA.append(True)
        except RuntimeError:
            _FLASH_GQA.append(False)
    return _FLASH_GQA[0]


def _fmt_ms(r: Result) -> str:
    return f"{r.ms:9.3f}" if r.ms is not None else f"{'-':>9}"


def _fmt_mib(r: Result) -> str:
    return f"{r.peak_bytes / 2**20:10.1f}" if r.peak_bytes is not None else f"{'-':>10}"


def _ratio(x: float | None, ours: float | None) -> str:
    return f"{x / ours:7.2f}x" if x is not None and ours else f"{'-':>8}"


def print_table(rows: list[tuple[str, str, int, list[Result]]]) -> None:
    """One line per implementation; time and memory ratios are the implementation's over ours."""
    head = f"{'op':<18} {'model':<15} {'tokens':>6}  {'impl':<32} {'fwd+bwd ms':>10} {'vs ours':>8} " \
           f"{'peak MiB':>10} {'vs ours':>8}  note"  # fmt: skip
    print("vs ours: the implementation's time (or peak memory) over ours; above 1.00x, ours wins")
    print(head)
    print("-" * len(head))
    for op, model, tokens, results in rows:
        ours = results[0]
        for r in results:
            print(f"{op:<18} {model:<15} {tokens:>6}  {r.label:<32} {_fmt_ms(r):>10} {_ratio(r.ms, ours.ms)} "
                  f"{_fmt_mib(r)} {_ratio(r.peak_bytes, ours.peak_bytes)}  {r.note}")  # fmt: skip
        print()


def _cross_entropy_check(n_tokens: int, hidden: int, vocab: int, warmup: int, reps: int) -> None:
    from gristmill.trainer.kernels import fused_linear_cross_entropy
    from gristmill.trainer.kernels.reference import linear_cross_entropy_reference

    x, w = _leaf(n_tokens, hidden), _leaf(vocab, hidden, scale=hidden**-0.5)
    y = torch.randint(0, vocab, (n_tokens,), device="cuda")
    ours = measure(Impl("ours", lambda a, b: fused_linear_cross_entropy(a, b, y), [x, w]), warmup, reps)
    if ours.ms is None:
        print(f"  V={vocab}: ours failed: {ours.note}")
        return
    grads = x.numel() * x.element_size() + w.numel() * w.element_size()
    extra = (ours.peak_bytes - grads) / GIB
    verdict = "meets" if extra <= 1.0 else "MISSES"
    print(f"  V={vocab}: ours {ours.ms:.3f} ms; peak above the inputs and their gradients {extra:.3f} GiB "
          f"({verdict} the 1 GiB target)")  # fmt: skip
    if vocab != 32000:
        return
    compiled = _compiled(linear_cross_entropy_reference)
    base = measure(Impl("compiled", lambda a, b: compiled(a, b, y), [x, w]), warmup, reps)
    if base.ms is None:
        print(f"  V={vocab}: compiled unfused failed: {base.note}")
        return
    print(f"  V={vocab}: compiled unfused {base.ms:.3f} ms, peak {base.peak_bytes / GIB:.3f} GiB; "
          f"compiled / ours time = {base.ms / ours.ms:.2f}x")  # fmt: skip


def cross_entropy_checks(quick: bool, warmup: int, reps: int) -> None:
    """The fused CE's targets: extra peak memory at V=256000 and 16K tokens (at most 1 GiB), and speed
    against the compiled unfused loss at V=32000."""
    n_tokens, hidden = (2048, 2048) if quick else (16384, 2048)
    note = "; --quick: not the target size" if quick else ""
    print(f"fused cross-entropy checks ({n_tokens} tokens, hidden {hidden}, bf16{note})")
    for vocab in (256000, 32000):
        _cross_entropy_check(n_tokens, hidden, vocab, warmup, reps)
        torch.cuda.empty_cache()


def _time_ms(fn: Callable[[], object], warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def gpu_target():
    """This GPU as an ahead-of-time compile target (`gristmill.trainer.kernels.aot.Target`)."""
    from gristmill.trainer.kernels import aot
    from gristmill.trainer.kernels import attention_configs as ac

    device = torch.device("cuda")
    props = torch.cuda.get_device_properties(device)
    return aot.Target(
        ac.gpu_class(device),
        props.major * 10 + props.minor,
        ac.shared_memory_limit(device),
        int(getattr(props, "shared_memory_per_multiprocessor", 0) or ac.shared_memory_limit(device)),
        props.multi_processor_count,
    )


def tune_attention(warmup: int, reps: int, n_tokens: int = 8192, jobs: int = 8) -> None:
    """Times every candidate of each attention kernel that compiles clean for this GPU (no spill, within its
    shared memory: the generator's test), against the table's pinned config, and prints the fastest as
    TABLE entries (source "tuned")."""
    from gristmill.trainer.kernels import aot
    from gristmill.trainer.kernels import attention_configs as ac
    from gristmill.trainer.kernels.attention import attention_backward, attention_forward

    target = gpu_target()
    lengths = doc_lengths(n_tokens)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    max_len = max(lengths)
    print(f"attention configs for {target.name} ({target.shared_limit} bytes of shared memory per program), "
          f"{n_tokens} tokens, bf16, causal, ragged documents:")  # fmt: skip
    launches = {(m.head_dim, k, c): aot.candidate_launch(k, c, m.head_dim)
                for m in MODELS for k in ac.KERNELS for c in ac.CANDIDATES[k]}  # fmt: skip
    usage = aot.compile_launches(
        [(launch, target) for launch in launches.values()], jobs=jobs, keep_cache=True
    )
    entries = []
    for model in MODELS:
        d = model.head_dim
        heads = (model.n_heads, model.n_kv_heads, model.n_kv_heads)
        q, k, v = (_leaf(n_tokens, h, d).detach() for h in heads)
        dout = torch.randn_like(q)
        scale = d**-0.5
        out, lse = attention_forward(q, k, v, cu, max_len, True, scale)
        pinned = {
            kernel: ac.select_config(kernel, target.name, DTYPE, d, target.shared_limit)
            for kernel in ac.KERNELS
        }
        best = {}
        for kernel in ac.KERNELS:
            timings = []
            for config in ac.CANDIDATES[kernel]:
                u = usage[(launches[(d, kernel, config)].key(), target.name)]
                if u.spill_bytes or u.shared_bytes > target.shared_limit:
                    continue
                blocks = {kernel: config}
                if kernel == "forward":
                    run = functools.partial(attention_forward, q, k, v, cu, max_len, True, scale, blocks)
                else:
                    run = functools.partial(
                        attention_backward, dout, q, k, v, out, lse, cu, max_len, True, scale, blocks
                    )
                timings.append((_time_ms(run, warmup, reps), config, u))
            timings.sort(key=lambda t: t[0])
            fastest = timings[0][0]
            print(f"  {model.name} (head dim {d}) {kernel}: {len(timings)} clean candidates, fastest first "
                  f"(time / fastest; * the table's pin):")  # fmt: skip
            for ms, config, u in timings:
                mark = "*" if config == pinned[kernel] else " "
                print(f"   {mark} {config!s:32} {ms:8.3f} ms {ms / fastest:5.2f}x  {u.registers} regs, "
                      f"{u.shared_bytes} B shared")  # fmt: skip
            if pinned[kernel] not in [c for _, c, _ in timings]:
                print(
                    f"    the table's pin {pinned[kernel]} is not among them (it spills or does not fit here)"
                )
            _, config, u = timings[0]
            best[kernel] = ac.Pinned(config, u.registers, u.shared_bytes, "tuned")
        entries.append((d, best))
    print(
        "paste into TABLE in trainer/kernels/attention_configs.py (bench/kernels_aot.py --write keeps them):"
    )
    for d, best in entries:
        print(f'    ("{target.name}", "bfloat16", {d}): {{')
        for kernel, p in best.items():
            c = p.config
            print(f'        "{kernel}": Pinned(LaunchConfig({c.block_m}, {c.block_n}, {c.num_warps}, '
                  f'{c.num_stages}), {p.registers}, {p.shared_bytes}, "tuned"),')  # fmt: skip
        print("    },")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; returns the process exit code (0 also when there is no GPU to measure on)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2K tokens, 1 warm-up, 3 repetitions")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument(
        "--models", nargs="+", choices=[m.name for m in MODELS], default=[m.name for m in MODELS]
    )
    parser.add_argument("--seqlens", nargs="+", type=int, default=[2048, 4096, 8192])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--tune", action="store_true", help="time the attention launch configs, print TABLE")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        print(
            "bench/kernels_bench.py measures on a CUDA GPU (without TRITON_INTERPRET): none here, "
            "nothing measured."
        )
        return 0
    warmup, reps = (1, 3) if args.quick else (3, args.reps)
    seqlens = [2048] if args.quick else args.seqlens
    import triton

    print(f"GPU: {torch.cuda.get_device_name()} | torch {torch.__version__} | triton {triton.__version__} | "
          f"bf16 | median of {reps} fwd+bwd runs")  # fmt: skip
    torch.manual_seed(0)
    if args.tune:
        tune_attention(warmup, reps)
        return 0
    rows = []
    for op in args.ops:
        for model in (m for m in MODELS if m.name in args.models):
            for n_tokens in seqlens:
                impls = cases(op, model, n_tokens)
                rows.append((op, model.name, n_tokens, [measure(i, warmup, reps) for i in impls]))
                del impls
                torch.cuda.empty_cache()
    print_table(rows)
    if "cross_entropy" in args.ops:
        cross_entropy_checks(args.quick, warmup, reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
