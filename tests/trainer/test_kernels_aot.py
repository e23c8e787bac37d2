"""Every Triton kernel, compiled ahead of time for sm_80 (A100) and sm_90 (H100) on this CPU-only machine, at
every config its launcher chooses for the model presets in bf16 and in fp32: no register spills, and shared
memory within each GPU's limit and within what the config table records.

The compiles run in child processes without TRITON_INTERPRET (see `gristmill.trainer.kernels.aot`): this
process runs the kernels in the interpreter, where they cannot be compiled. The launches the compiles use
are checked here against the launchers themselves, run under the interpreter with their kernels recorded.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import gristmill.trainer.kernels as kernels_package
from gristmill.trainer import kernels
from gristmill.trainer.kernels import aot, attention_configs
from gristmill.trainer.kernels.attention_configs import (
    FALLBACK,
    KERNELS,
    TABLE,
    fallback_dtype,
    padded_head_dim,
    select_config,
)

DTYPES = (torch.bfloat16, torch.float32)
TINY = aot.ModelShapes("tiny", hidden=64, n_heads=4, n_kv_heads=2, head_dim=16, intermediate=176, vocab=384)
ATTENTION = {
    "attention._attention_forward_kernel": "forward",
    "attention._attention_backward_dkdv_kernel": "dkdv",
    "attention._attention_backward_dq_kernel": "dq",
}


def jitted_kernels() -> set[str]:
    """Every top-level kernel (a jitted function named *_kernel) of the kernel modules, as "module.name"."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    found = set()
    for info in pkgutil.iter_modules(kernels_package.__path__):
        module = importlib.import_module(f"gristmill.trainer.kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, JITFunction | InterpretedFunction) and name.endswith("_kernel"):
                found.add(f"{info.name}.{name}")
    return found


# The fallbacks compile at every head dim in bf16 and fp32; fp16, which takes bf16's, at the widest ones.
FALLBACK_CHECKS = {torch.bfloat16: aot.FALLBACK_HEAD_DIMS, torch.float32: aot.FALLBACK_HEAD_DIMS,
                   torch.float16: (128, 256)}  # fmt: skip


def step_items() -> list[tuple[aot.Launch, aot.Target]]:
    """Each preset's step launches in bf16 and fp32, and the fallbacks, on both targets."""
    items = []
    for target in aot.TARGETS.values():
        for model in aot.preset_shapes():
            for dtype in DTYPES:
                items += [(launch, target) for launch in aot.step_launches(model, dtype, target)]
        for dtype, head_dims in FALLBACK_CHECKS.items():
            items += [(launch, target) for launch in aot.fallback_launches(dtype, head_dims)]
    return items


# ------------------------------------------------------------------------------------------------------------
# The launches are the launchers' (fast: no compile)


def test_every_kernel_is_launched_by_a_step():
    launched = {launch.kernel for model in aot.preset_shapes()
                for launch in aot.step_launches(model, torch.bfloat16, aot.TARGETS["sm90"])}  # fmt: skip
    assert launched == jitted_kernels()


def _kind(arg) -> str:
    if isinstance(arg, torch.Tensor):
        return "*" + str(arg.dtype).removeprefix("torch.")
    if isinstance(arg, aot.Pointer):
        return "*" + arg.dtype
    return type(arg).__name__


def test_launches_match_what_the_launchers_pass(monkeypatch, device):
    """Runs every op of a tiny model step (fp32; under the interpreter without a GPU), recording each
    kernel's arguments, and compares them with aot's launch for the same shapes: the same argument kinds
    and pointer dtypes, the same constexprs, warps and stages given where the launcher gives them."""
    recorded: dict[str, tuple[tuple, dict]] = {}
    for name in jitted_kernels():
        module, function = name.split(".")
        fn = getattr(importlib.import_module(f"gristmill.trainer.kernels.{module}"), function)

        def run(*args, grid, warmup, _name=name, _run=fn.run, **kwargs):
            recorded.setdefault(_name, (args, kwargs))
            return _run(*args, grid=grid, warmup=warmup, **kwargs)

        monkeypatch.setattr(fn, "run", run)

    gen = torch.Generator().manual_seed(0)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device).requires_grad_()

    t, m = 24, TINY
    x, r, w = leaf(t, m.hidden), leaf(t, m.hidden), leaf(m.hidden)
    y, h = kernels.rms_norm_residual(x, r, w)
    (y.sum() + h.sum() + kernels.rms_norm(x, w).sum()).backward()
    q, k, v = (
        leaf(t, m.n_heads, m.head_dim),
        leaf(t, m.n_kv_heads, m.head_dim),
        leaf(t, m.n_kv_heads, m.head_dim),
    )
    positions = torch.cat([torch.arange(10), torch.arange(14)]).to(device)
    qr, kr = kernels.apply_rope(q, k, positions)
    cu = torch.tensor([0, 10, 24], dtype=torch.int32, device=device)
    kernels.flash_attention_varlen(qr, kr, v, cu, 14).sum().backward()
    kernels.swiglu(leaf(t, m.intermediate), leaf(t, m.intermediate)).sum().backward()
    targets = torch.randint(0, m.vocab, (t,), generator=gen).to(device)
    kernels.fused_linear_cross_entropy(x, leaf(m.vocab, m.hidden), targets).backward()

    launches = {launch.kernel: launch for launch in aot.step_launches(m, torch.float32, aot.TARGETS["sm80"])}
    assert set(recorded) == set(launches) == jitted_kernels()
    for name, (args, kwargs) in recorded.items():
        launch = launches[name]
        assert [_kind(a) for a in args] == [_kind(a) for a in launch.args], name
        options = {"num_warps", "num_stages"}
        assert set(kwargs) - options == {c for c, _ in launch.constexprs}, name
        assert ("num_warps" in kwargs) == (launch.num_warps is not None), name
        assert ("num_stages" in kwargs) == (launch.num_stages is not None), name


def test_attention_launches_take_the_runtime_selection():
    for target in aot.TARGETS.values():
        for model in aot.preset_shapes():
            for dtype in DTYPES:
                for launch in aot.step_launches(model, dtype, target):
                    if launch.kernel not in ATTENTION:
                        continue
                    kernel, consts = ATTENTION[launch.kernel], dict(launch.constexprs)
                    config = select_config(kernel, target.name, dtype, model.head_dim, target.shared_limit)
                    got = (consts["BLOCK_M"], consts["BLOCK_N"], launch.num_warps, launch.num_stages)
                    assert got == (config.block_m, config.block_n, config.num_warps, config.num_stages)


def test_launch_key_follows_triton_specialisation():
    def launch(*ints: int) -> aot.Launch:
        return aot.Launch(
            "swiglu._swiglu_forward_kernel", (aot.Pointer("bfloat16"), *ints), (("BLOCK_SIZE", 1024),)
        )

    assert launch(32).key() == launch(4096).key()  # both multiples of 16
    assert launch(33).key() == launch(35).key()
    assert launch(32).key() != launch(33).key()
    assert launch(1).key() != launch(2).key()  # 1 specialises to a constant
    assert launch(2**31 + 16).key() != launch(16).key()  # i64
    round_trip = aot.Launch.from_json(launch(7).to_json())
    assert round_trip == launch(7)


def test_the_generated_block_is_the_generators_rendering(bench_module):
    """attention_configs.py's generated block is what bench/kernels_aot.py renders from its TABLE and FALLBACK
    (pasted --tune entries included), but for the line naming the triton version."""
    generator = bench_module("kernels_aot")
    source = Path(attention_configs.__file__).read_text()
    begin, end = (
        source.index(generator.BEGIN_CODE),
        source.index(generator.END_CODE) + len(generator.END_CODE),
    )

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if "triton" not in line]

    assert body(source[begin:end]) == body(generator.render_configs(TABLE, FALLBACK))


def test_ptxas_and_cuobjdump_parsing():
    log = """ptxas info    : Compiling entry function '_k' for 'sm_80'
ptxas info    : Function properties for _k
    288 bytes stack frame, 424 bytes spill stores, 368 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 288 bytes cumulative stack size, 456 bytes cmem[0]
"""
    assert aot._REGISTERS.search(log).group(1) == "255"
    assert aot._SPILLS.search(log).groups() == ("288", "424", "368")
    dump = """Resource usage:
 Common:
  GLOBAL:11 CONSTANT[4]:8
 Function _k:
  REG:255 STACK:288 SHARED:1024 LOCAL:0 CONSTANT[0]:632 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
    assert aot._RESOURCES.findall(dump) == [("_k", "255", "288", "1024", "0")]


# ------------------------------------------------------------------------------------------------------------
# The compiles


@pytest.fixture(scope="module")
def compiled() -> tuple[list[tuple[aot.Launch, aot.Target]], dict]:
    items = step_items()
    return items, aot.compile_launches(items, jobs=2)


def _usage(results: dict, launch: aot.Launch, target: aot.Target) -> aot.Usage:
    return results[(launch.key(), target.name)]


@pytest.mark.slow
def test_no_chosen_config_spills(compiled):
    items, results = compiled
    spilling = set()
    for launch, target in items:
        usage = _usage(results, launch, target)
        if usage.spill_bytes:
            spilling.add(f"{launch.label()} for {target}: {usage}")
    assert not spilling, "configs that spill registers:\n" + "\n".join(sorted(spilling))


@pytest.mark.slow
def test_shared_memory_within_the_gpu_and_what_the_runtime_reads(compiled):
    """Every compile fits its GPU; the table's and the fallbacks' recorded shared memory, which the runtime
    compares with the device's, is at least what the kernel compiles to."""
    items, results = compiled
    problems = []
    for launch, target in items:
        usage = _usage(results, launch, target)
        if usage.shared_bytes > target.shared_limit:
            problems.append(
                f"{launch.label()} for {target}: {usage.shared_bytes} B > {target.shared_limit} B"
            )
    for target in aot.TARGETS.values():
        for (gpu, dtype, head_dim), entry in TABLE.items():
            if gpu != target.name:
                continue
            for kernel, pinned in entry.items():
                launch = aot.candidate_launch(kernel, pinned.config, head_dim, getattr(torch, dtype))
                usage = _usage(results, launch, target)
                if usage.shared_bytes > pinned.shared_bytes:
                    where = f"TABLE[{gpu, dtype, head_dim}][{kernel!r}]"
                    problems.append(
                        f"{where} records {pinned.shared_bytes} B, compiles to {usage.shared_bytes} B"
                    )
        for dtype, head_dims in FALLBACK_CHECKS.items():
            group = fallback_dtype(dtype)
            for d in head_dims:
                for kernel in KERNELS:
                    fallback = FALLBACK[(group, kernel, padded_head_dim(d))]
                    usage = _usage(results, aot.candidate_launch(kernel, fallback.config, d, dtype), target)
                    recorded = fallback.shared_bytes
                    if usage.shared_bytes > recorded:
                        problems.append(f"the {dtype} fallback's {kernel} at head dim {d} on {target}: "
                                        f"{usage.shared_bytes} B > {recorded} B recorded")  # fmt: skip
    assert not problems, "regenerate with bench/kernels_aot.py --write:\n" + "\n".join(problems)


@pytest.mark.slow
def test_a_launch_that_cannot_compile_is_named():
    ptr = aot.Pointer("bfloat16")
    bad = aot.Launch("swiglu._swiglu_forward_kernel", (ptr, ptr, ptr, 16),
                     (("BLOCK_SIZE", 1000),))  # not a power of two  # fmt: skip
    with pytest.raises(aot.AotError, match=r"swiglu\._swiglu_forward_kernel BLOCK_SIZE=1000"):
        aot.compile_launches([(bad, aot.TARGETS["sm80"])], jobs=1)
