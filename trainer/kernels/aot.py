"""Ahead-of-time compiles of the kernels for a named NVIDIA target, on a machine with no GPU.

`triton.compile(ASTSource(...), target=GPUTarget("cuda", 80 or 90, 32))` runs Triton's frontend, LLVM and the
ptxas bundled in the triton wheel for any target, so every kernel launch a training step makes can be
compiled here for an A100 (sm_80) or an H100 (sm_90). The signature and specialisation are those triton's
launcher (`JITFunction.run`) derives from the arguments: its own binder (`create_function_from_signature`,
which calls `native_specialize_impl`) and packing (`JITFunction._pack_args`), fed stand-ins for the tensors
(their dtype; a 16-byte aligned address, as torch's allocator gives) and the integers a launcher passes (a
1 becomes a constant, a multiple of 16 gets the divisibility attribute). Registers and spills come from
ptxas's `-v` log, the registers and stack confirmed by `cuobjdump --dump-resource-usage` from the same wheel;
shared memory is the compiled kernel's dynamic allocation (its metadata) plus cuobjdump's static figure.

Triton decides when a kernel module is imported whether its kernels are interpreted (`TRITON_INTERPRET=1`,
as the CPU tests run): such a module holds no `JITFunction`, its jitted helpers are interpreted functions the
compiler cannot inline, and it cannot be imported a second time beside the first (its `torch.library` ops
register once per process). So the compiles run in child processes started without `TRITON_INTERPRET`
(`compile_launches`, each child `python -m gristmill.trainer.kernels.aot`); the caller, interpreted or not,
only describes the launches (`step_launches`, `attention_launch`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from gristmill.trainer.kernels._launch import row_settings
from gristmill.trainer.kernels.attention_configs import (
    FALLBACK,
    KERNELS,
    LaunchConfig,
    fallback_dtype,
    padded_head_dim,
    select_config,
)


@dataclass(frozen=True)
class Target:
    """An NVIDIA GPU class as the compiler and the config table see it."""

    name: str  # the key of attention_configs.TABLE: "sm80"
    capability: int  # 80
    shared_limit: int  # bytes of shared memory one program may use (the opt-in maximum per block)
    sm_shared: int  # bytes of shared memory per SM (what resident programs share)
    sm_count: int  # streaming multiprocessors of the reference GPU

    def __str__(self) -> str:
        return f"sm_{self.capability}"


# A100 SXM and H100 SXM: cudaDevAttrMaxSharedMemoryPerBlockOptin and ...PerMultiprocessor.
TARGETS: dict[str, Target] = {
    "sm80": Target("sm80", 80, 163 * 1024, 164 * 1024, 108),
    "sm90": Target("sm90", 90, 227 * 1024, 228 * 1024, 132),
}

# Tokens of one micro-batch: 8 rows of 2K (TinyLlama) or 2 of 8K (Fox-1). Rows are packed to a power-of-two
# length, so every batch is a multiple of 16 tokens and the launchers' integers specialise alike.
TOKENS = 16384
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Pointer:
    """A tensor argument, as triton's specialisation sees it: its dtype (a torch dtype's name)."""

    dtype: str


Arg = Pointer | int | float


@dataclass(frozen=True)
class Launch:
    """One kernel launch as triton's launcher sees it: positional arguments, constexprs, launch options."""

    kernel: str  # "<module>.<function>" inside gristmill.trainer.kernels
    args: tuple[Arg, ...]
    constexprs: tuple[tuple[str, bool | int | str], ...]
    num_warps: int | None = None  # None: triton's default (4 warps)
    num_stages: int | None = None  # None: triton's default (3 stages)

    def key(self) -> tuple:
        """What the compiled code depends on: each argument's (type, attribute) as triton specialises it,
        the constexprs and the options. Launches with equal keys compile to the same binary."""
        from triton._C.libtriton import native_specialize_impl
        from triton.backends import BaseBackend

        args = tuple(
            ("*" + a.dtype,)
            if isinstance(a, Pointer)
            else native_specialize_impl(BaseBackend, a, False, True, True)
            for a in self.args
        )
        return self.kernel, args, self.constexprs, self.num_warps, self.num_stages

    def label(self) -> str:
        """A short description: kernel, constexprs, warps and stages."""
        consts = " ".join(f"{k}={v}" for k, v in self.constexprs)
        return f"{self.kernel} {consts} w{self.num_warps or 4} s{self.num_stages or 3}"

    def to_json(self) -> dict:
        args = [{"ptr": a.dtype} if isinstance(a, Pointer) else a for a in self.args]
        return {"kernel": self.kernel, "args": args, "constexprs": [list(c) for c in self.constexprs],
                "num_warps": self.num_warps, "num_stages": self.num_stages}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping) -> Launch:
        args = tuple(Pointer(a["ptr"]) if isinstance(a, dict) else a for a in data["args"])
        constexprs = tuple((name, value) for name, value in data["constexprs"])
        return cls(data["kernel"], args, constexprs, data["num_warps"], data["num_stages"])


@dataclass(frozen=True)
class Usage:
    """What one compiled kernel uses per program."""

    registers: int  # per thread
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    stack_bytes: int
    shared_bytes: int  # dynamic (triton's allocation) + static

    @property
    def spill_bytes(self) -> int:
        return self.spill_stores + self.spill_loads


class AotError(RuntimeError):
    """A kernel failed to compile ahead of time, or the compiling process failed."""


# ------------------------------------------------------------------------------------------------------------
# The launches: what each launcher passes, through the launchers' own rules.


@dataclass(frozen=True)
class ModelShapes:
    """The dimensions of a model that the kernels see."""

    name: str
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    z_loss: bool = False


# Presets without a vocabulary take their build's: the trainer tests' tokenizer (384) and the demo's (4096).
TINY_VOCABS = (384, 4096)


def preset_shapes() -> list[ModelShapes]:
    """The kernels' view of every model preset (`gristmill.trainer.config.PRESETS`); a preset whose vocabulary
    comes from its build appears once per vocabulary of TINY_VOCABS."""
    from gristmill.trainer.config import PRESETS, model_preset

    shapes = []
    for name in PRESETS:
        config = model_preset(name)
        for vocab in (config.vocab_size,) if config.vocab_size else TINY_VOCABS:
            shapes.append(ModelShapes(
                f"{name}" if config.vocab_size else f"{name} (vocab {vocab})", config.hidden_size,
                config.n_heads, config.n_kv_heads, config.head_dim, config.intermediate_size, vocab,
                config.z_loss != 0.0,
            ))  # fmt: skip
    return shapes


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _consts(**constexprs: bool | int | str) -> tuple[tuple[str, bool | int | str], ...]:
    return tuple(constexprs.items())


def rms_norm_launches(model: ModelShapes, dtype: torch.dtype, target: Target, n_tokens: int = TOKENS):
    """rms_norm.py's forward (alone and with the residual) and backward (with and without dh)."""
    t, h, x, f32 = n_tokens, model.hidden, Pointer(_dtype_name(dtype)), Pointer("float32")
    block, warps = row_settings(h)
    programs = min(target.sm_count, t)  # _launch.num_persistent_programs: one per SM
    launches = []
    for residual in (False, True):
        launches.append(Launch("rms_norm._rms_norm_forward_kernel", (x, x, f32, x, x, x, h, h, h, h, h, 1e-5),
                               _consts(HAS_RESIDUAL=residual, BLOCK_SIZE=block), warps))  # fmt: skip
    for has_dh in (False, True):
        args = (x, f32, x, x, x, x, f32, h, h, h, h, t, h, -(-t // programs))
        launches.append(Launch("rms_norm._rms_norm_backward_kernel", args,
                               _consts(HAS_DH=has_dh, BLOCK_SIZE=block), warps))  # fmt: skip
    return launches


def rope_launches(model: ModelShapes, dtype: torch.dtype, n_tokens: int = TOKENS) -> list[Launch]:
    """rope.py's forward and backward over (T, heads, head_dim) q and k."""
    from gristmill.trainer.kernels.rope import block_sizes

    x, hq, hk, d = Pointer(_dtype_name(dtype)), model.n_heads, model.n_kv_heads, model.head_dim
    strides = (hq * d, d, hk * d, d) * 2
    blocks = _consts(**block_sizes(hq, hk, d))
    args = (x, x, x, x, Pointer("int64"), Pointer("float32"), *strides, hq, hk, d // 2)
    return [Launch(f"rope._rope_{name}_kernel", args, blocks) for name in ("forward", "backward")]


def swiglu_launches(model: ModelShapes, dtype: torch.dtype, n_tokens: int = TOKENS) -> list[Launch]:
    """swiglu.py's elementwise forward and backward over (T, intermediate)."""
    from gristmill.trainer.kernels.swiglu import ELEMENTS_PER_PROGRAM

    x, n = Pointer(_dtype_name(dtype)), n_tokens * model.intermediate
    block = _consts(BLOCK_SIZE=ELEMENTS_PER_PROGRAM)
    return [
        Launch("swiglu._swiglu_forward_kernel", (x, x, x, n), block),
        Launch("swiglu._swiglu_backward_kernel", (x, x, x, x, x, n), block),
    ]


def cross_entropy_launches(model: ModelShapes, dtype: torch.dtype, n_tokens: int = TOKENS) -> list[Launch]:
    """cross_entropy.py's row kernel in a training step (with the logits' gradient) and in an evaluation
    (without), and the weight gradient's slice kernel."""
    from gristmill.trainer.kernels.cross_entropy import default_slice_size, row_block, slice_block

    v, f32, i64 = model.vocab, Pointer("float32"), Pointer("int64")
    x = Pointer(_dtype_name(dtype))
    block, warps = row_block(v, interpreted=False)
    launches = []
    for compute_grad in (True, False):
        # the gradient overwrites the fp32 logits unless it is wanted in a 16-bit dtype
        grad = x if compute_grad and dtype != torch.float32 else f32
        args = (f32, f32, grad, f32, i64, f32, v, v, v, IGNORE_INDEX, 0.0)
        consts = _consts(HAS_Z_LOSS=model.z_loss, COMPUTE_GRAD=compute_grad, BLOCK_SIZE=block)
        launches.append(Launch("cross_entropy._cross_entropy_forward_kernel", args, consts, warps))
    width = default_slice_size(n_tokens, v, dtype)
    grad = f32 if dtype == torch.float32 else x
    args = (grad, f32, f32, i64, f32, width, width, width, 0, IGNORE_INDEX, 0.0)
    consts = _consts(HAS_Z_LOSS=model.z_loss, BLOCK_SIZE=slice_block(width, interpreted=False))
    launches.append(Launch("cross_entropy._cross_entropy_slice_grad_kernel", args, consts))
    return launches


_ATTENTION_KERNELS = {
    "forward": "attention._attention_forward_kernel",
    "dkdv": "attention._attention_backward_dkdv_kernel",
    "dq": "attention._attention_backward_dq_kernel",
}


def attention_launch(
    kernel: str, config: LaunchConfig, n_heads: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype,
    n_tokens: int = TOKENS,
) -> Launch:  # fmt: skip
    """attention.py's launch of `kernel` ("forward", "dkdv" or "dq") with `config`, causal, as the model
    calls it; with GQA the dK/dV kernel writes fp32 shares."""
    from gristmill.trainer.kernels.attention import launch_meta

    x, f32, i32 = Pointer(_dtype_name(dtype)), Pointer("float32"), Pointer("int32")
    q_strides, kv_strides = (n_heads * head_dim, head_dim), (n_kv_heads * head_dim, head_dim)
    scale = head_dim**-0.5  # a float argument specialises as fp32 whatever its value
    if kernel == "forward":
        args = (x, f32, x, x, x, i32, *q_strides, *kv_strides, *kv_strides, *q_strides, n_tokens, scale)
    else:
        inputs = (x, x, x, x, f32, f32, i32, *q_strides, *kv_strides, *kv_strides, *q_strides)
        if kernel == "dkdv":
            share = x if n_heads == n_kv_heads else f32
            args = (share, share, *inputs, *q_strides, *q_strides, n_tokens, scale, scale)
        else:
            args = (x, *inputs, *q_strides, n_tokens, scale, scale)
    consts = _consts(**launch_meta(n_heads, n_kv_heads, head_dim, dtype, True),
                     BLOCK_M=config.block_m, BLOCK_N=config.block_n)  # fmt: skip
    return Launch(_ATTENTION_KERNELS[kernel], args, consts, config.num_warps, config.num_stages)


def attention_launches(model: ModelShapes, dtype: torch.dtype, target: Target, n_tokens: int = TOKENS):
    """attention.py's four kernels: the delta preprocess, then forward, dK/dV and dQ at the configs the
    runtime selects for this target (`select_config`)."""
    from gristmill.trainer.kernels.attention import PREPROCESS_BLOCK

    x, d, h = Pointer(_dtype_name(dtype)), model.head_dim, model.n_heads
    preprocess = Launch(
        "attention._attention_backward_preprocess_kernel",
        (Pointer("float32"), x, x, h * d, d, h * d, d, n_tokens),
        _consts(HEAD_DIM=d, BLOCK_D=padded_head_dim(d), BLOCK_M=PREPROCESS_BLOCK),
    )
    launches = [preprocess]
    for kernel in KERNELS:
        config = select_config(kernel, target.name, dtype, d, target.shared_limit)
        launches.append(attention_launch(kernel, config, h, model.n_kv_heads, d, dtype, n_tokens))
    return launches


def step_launches(model: ModelShapes, dtype: torch.dtype, target: Target) -> list[Launch]:
    """Every kernel launch of a training step of `model` (forward and backward) and of an evaluation, in
    `dtype` on `target`, as the launchers make them."""
    return [
        *rms_norm_launches(model, dtype, target),
        *rope_launches(model, dtype),
        *swiglu_launches(model, dtype),
        *cross_entropy_launches(model, dtype),
        *attention_launches(model, dtype, target),
    ]


# Head dims the attention fallback is compiled at: every padded width the kernels take (16 to 256), and a
# head dim that is masked inside its padded width (96 in 128).
FALLBACK_HEAD_DIMS = (16, 32, 64, 96, 128, 256)


def head_dim_model(head_dim: int) -> ModelShapes:
    """The preset whose attention stands for a head dim (its GQA and all), or for a head dim no preset has,
    16 query heads over 4 KV heads."""
    for model in preset_shapes():
        if model.head_dim == head_dim:
            return model
    return ModelShapes(f"head dim {head_dim}", 2048, 16, 4, head_dim, 4096, 32000)


def candidate_launch(
    kernel: str, config: LaunchConfig, head_dim: int, dtype: torch.dtype = torch.bfloat16
) -> Launch:
    """The launch of an attention kernel at `config` for head_dim's model (`head_dim_model`)."""
    model = head_dim_model(head_dim)
    return attention_launch(kernel, config, model.n_heads, model.n_kv_heads, head_dim, dtype)


def fallback_launches(dtype: torch.dtype, head_dims: Sequence[int] = FALLBACK_HEAD_DIMS) -> list[Launch]:
    """The attention fallbacks of `dtype` (`attention_configs.FALLBACK`) at each head dim."""
    group = fallback_dtype(dtype)
    return [
        candidate_launch(kernel, FALLBACK[(group, kernel, padded_head_dim(d))].config, d, dtype)
        for d in head_dims
        for kernel in KERNELS
    ]


# ------------------------------------------------------------------------------------------------------------
# Compiling: in child processes without TRITON_INTERPRET.

_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_RESOURCES = re.compile(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def _jit_function(name: str):
    from triton.runtime.jit import JITFunction

    module_name, function = name.split(".")
    fn = getattr(importlib.import_module(f"gristmill.trainer.kernels.{module_name}"), function)
    if not isinstance(fn, JITFunction):
        raise AotError(f"{name} is not a compilable JITFunction (TRITON_INTERPRET is set in this process)")
    return fn


def _stand_in(arg: Arg):
    from triton.runtime.jit import MockTensor

    return MockTensor(getattr(torch, arg.dtype)) if isinstance(arg, Pointer) else arg


def _resource_usage(cubin: bytes, name: str) -> tuple[int, int, int]:
    """(registers, stack bytes, static shared bytes) of kernel `name` in a cubin, from cuobjdump."""
    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run(
            [knobs.nvidia.cuobjdump.path, "--dump-resource-usage", f.name],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    for fn, reg, stack, shared, _local in _RESOURCES.findall(out):
        if fn == name:
            return int(reg), int(stack), int(shared)
    raise AotError(f"cuobjdump names no function {name}:\n{out}")


def compile_launch(launch: Launch, target: Target) -> Usage:
    """Compiles one launch for target as triton's launcher would, and returns its usage. Raises AotError
    where ptxas's log and cuobjdump disagree; triton's CompilationError where the kernel does not compile.
    Needs a process in which the kernels are not interpreted."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    fn = _jit_function(launch.kernel)
    gpu = GPUTarget("cuda", target.capability, 32)
    backend = make_backend(gpu)
    kwargs = dict(launch.constexprs)
    if launch.num_warps is not None:
        kwargs["num_warps"] = launch.num_warps
    if launch.num_stages is not None:
        kwargs["num_stages"] = launch.num_stages
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*map(_stand_in, launch.args), **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    knobs.compilation.always_compile = True  # a cache hit would skip ptxas and its log
    knobs.nvidia.dump_ptxas_log = True
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=gpu,
                                  options=options.__dict__)  # fmt: skip
    text = log.getvalue()
    registers, spills = _REGISTERS.search(text), _SPILLS.search(text)
    if not (registers and spills):
        raise AotError(f"no register or spill figures in the ptxas log of {launch.label()}:\n{text}")
    stack, stores, loads = map(int, spills.groups())
    cu_registers, cu_stack, static_shared = _resource_usage(compiled.asm["cubin"], compiled.metadata.name)
    if (cu_registers, cu_stack) != (int(registers.group(1)), stack):
        raise AotError(f"{launch.label()} for {target}: ptxas says {registers.group(1)} registers and "
                       f"{stack} bytes of stack, cuobjdump {cu_registers} and {cu_stack}")  # fmt: skip
    return Usage(cu_registers, stores, loads, stack, compiled.metadata.shared + static_shared)


def _serve(request_path: str, result_path: str) -> int:
    """The child: compiles each [launch, target] of the request file, appending one JSON line per item (a
    Usage, or the error) to the result file as it goes."""
    with open(request_path) as f:
        items = json.load(f)
    with open(result_path, "a") as out:
        for item in items:
            launch, target = Launch.from_json(item["launch"]), Target(**item["target"])
            try:
                outcome = {"usage": compile_launch(launch, target).__dict__}
            except Exception as exc:  # reported per launch, so one failure does not hide the others
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(outcome) + "\n")
            out.flush()
    return 0


def _cost(launch: Launch) -> int:
    return 4 if launch.kernel in _ATTENTION_KERNELS.values() else 1


def compile_launches(
    items: Iterable[tuple[Launch, Target]],
    jobs: int = 2,
    timeout: float | None = 1800.0,
    keep_cache: bool = False,
) -> dict[tuple[tuple, str], Usage]:
    """Compiles each distinct (launch, target) once, in `jobs` child processes started without
    TRITON_INTERPRET, and returns {(launch.key(), target.name): Usage}. keep_cache: the children write
    triton's usual cache (so a later launch of the same kernel on this GPU loads the binary) instead of a
    private one removed afterwards. Raises AotError naming every launch that failed to compile, or when a
    child fails or all of them pass `timeout` seconds (None: no limit)."""
    unique: dict[tuple[tuple, str], tuple[Launch, Target]] = {}
    for launch, target in items:
        unique.setdefault((launch.key(), target.name), (launch, target))
    order = sorted(unique, key=lambda k: -_cost(unique[k][0]))
    shares = [share for share in (order[i :: max(1, jobs)] for i in range(max(1, jobs))) if share]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    results: dict[tuple[tuple, str], Usage] = {}
    failures, problems = [], []
    deadline = None if timeout is None else time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="gristmill-aot-") as tmp:
        if not keep_cache:
            env["TRITON_CACHE_DIR"] = os.path.join(tmp, "cache")  # nothing into the user's cache
        children = []
        for i, share in enumerate(shares):
            paths = [os.path.join(tmp, f"{i}-{name}") for name in ("request.json", "result.jsonl", "stderr")]
            with open(paths[0], "w") as f:
                json.dump(
                    [{"launch": unique[k][0].to_json(), "target": unique[k][1].__dict__} for k in share], f
                )
            with open(paths[2], "w") as stderr:
                command = [sys.executable, "-m", "gristmill.trainer.kernels.aot", paths[0], paths[1]]
                child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            children.append((child, share, paths))
        for child, _, _ in children:
            try:
                child.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for child, share, (_, result, stderr) in children:
            outcomes = []
            if os.path.exists(result):
                with open(result) as f:
                    outcomes = [json.loads(line) for line in f if line.endswith("\n")]
            for k, outcome in zip(share, outcomes):
                if "error" in outcome:
                    failures.append(f"{unique[k][0].label()} for {unique[k][1]}: {outcome['error']}")
                else:
                    results[k] = Usage(**outcome["usage"])
            if child.returncode:
                with open(stderr) as f:
                    tail = f.read()[-4000:]
                problems.append(f"a compiling process ended with {child.returncode} after {len(outcomes)} of "
                                f"{len(share)} compiles:\n{tail}")  # fmt: skip
    if failures or problems:
        raise AotError(
            "\n".join([*problems, *(["kernels that do not compile:", *failures] if failures else [])])
        )
    return results


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(
            "usage: python -m gristmill.trainer.kernels.aot REQUEST.json RESULT.jsonl (see compile_launches)"
        )
    sys.exit(_serve(sys.argv[1], sys.argv[2]))
