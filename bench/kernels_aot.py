"""Pick the attention launch configs from ahead-of-time compiles for sm_80 and sm_90 (no GPU needed), and
write them with every kernel's registers, spills and shared memory at the model presets.

1. Compiles every attention candidate (`attention_configs.CANDIDATES`) for sm_80 (A100) and sm_90 (H100) at
   each preset's head dim (16, 64, 128) in bf16; the small-tile candidates in bf16 and the fp32 ones
   (`FP32_CANDIDATES`) at every padded head dim (16 to 256, and 96 masked in 128); and the cross-entropy
   row kernel over its block sizes and warps.
2. Per (target, head dim, kernel): drops the candidates that spill or pass the target's shared memory, and
   pins the best of the rest by `attention_configs.rank_key` (entries timed on a GPU, source "tuned", are
   kept). Each dtype's FALLBACK, for keys the table lacks, is the best candidate that is spill-free on both
   targets at every padded head dim and fits 99 KB.
3. Compiles every kernel launch of a training step of each preset (bf16 and fp32, both targets) at the
   configs the runtime now selects, and prints (with --write, writes) the generated part of
   trainer/kernels/attention_configs.py and the AOT tables of docs/trainer.md.

    python bench/kernels_aot.py                      # compile and print
    python bench/kernels_aot.py --write              # ... and rewrite both files
    python bench/kernels_aot.py --save aot.json      # keep every compile's figures; --load reuses them

About 900 compiles: 15-20 minutes of one core (`--jobs` processes share them). Its compiling processes
run without TRITON_INTERPRET whatever the caller's environment (`gristmill.trainer.kernels.aot`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from gristmill.trainer.kernels import aot
from gristmill.trainer.kernels import attention_configs as ac
from gristmill.trainer.kernels.attention_configs import (
    CANDIDATES,
    FP32_CANDIDATES,
    KERNELS,
    LaunchConfig,
    Pinned,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS_FILE = ROOT / "trainer" / "kernels" / "attention_configs.py"
DOCS_FILE = ROOT / "docs" / "trainer.md"
FALLBACK_SHARED_LIMIT = 99 * 1024  # the opt-in shared memory of sm_86, sm_89 and sm_120 GPUs
DTYPES = (torch.bfloat16, torch.float32)
KERNEL_NAMES = {"forward": "attention forward", "dkdv": "attention dK/dV", "dq": "attention dQ"}


def table_head_dims() -> list[int]:
    return sorted({m.head_dim for m in aot.preset_shapes()})


def fallback_candidates(dtype: str, kernel: str) -> list[LaunchConfig]:
    """The candidates for a dtype's fallback: fp32's; for 16-bit, those small enough at head dim 256 (both
    tiles of at most 64 rows)."""
    if dtype == "float32":
        return FP32_CANDIDATES
    return [c for c in CANDIDATES[kernel] if c.block_m <= 64 and c.block_n <= 64]


FALLBACK_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
# fp16 takes the bf16 fallback; the generator compiles that fallback in fp16 too and reports any difference.
CE_ROW_BLOCKS = (8192, 16384, 32768)
CE_ROW_WARPS = (8, 16, 32)


def ce_row_launch(block: int, warps: int, dtype: torch.dtype, compute_grad: bool) -> aot.Launch:
    """The cross-entropy row kernel at a block and warp count, Fox-1's vocabulary."""
    fox = aot.head_dim_model(128)
    launch = next(
        launch
        for launch in aot.cross_entropy_launches(fox, dtype)
        if launch.kernel.endswith("forward_kernel")
        and dict(launch.constexprs)["COMPUTE_GRAD"] == compute_grad
    )
    consts = tuple((k, block if k == "BLOCK_SIZE" else v) for k, v in launch.constexprs)
    return aot.Launch(launch.kernel, launch.args, consts, warps)


def ce_row_items() -> list[tuple[aot.Launch, aot.Target]]:
    return [(ce_row_launch(b, w, dtype, grad), t) for t in aot.TARGETS.values() for b in CE_ROW_BLOCKS
            for w in CE_ROW_WARPS for dtype in DTYPES for grad in (True, False)]  # fmt: skip


def sweep_items() -> list[tuple[aot.Launch, aot.Target]]:
    items = []
    for target in aot.TARGETS.values():
        for d in table_head_dims():
            items += [(aot.candidate_launch(k, c, d), target) for k in KERNELS for c in CANDIDATES[k]]
        for name, dtype in FALLBACK_DTYPES.items():
            for d in aot.FALLBACK_HEAD_DIMS:
                items += [(aot.candidate_launch(k, c, d, dtype), target)
                          for k in KERNELS for c in fallback_candidates(name, k)]  # fmt: skip
    return items + ce_row_items()


class Results:
    """Compile figures by (launch key, target name), saved and loaded as JSON."""

    def __init__(self) -> None:
        self.usage: dict[tuple, aot.Usage] = {}

    def compile(self, items: list[tuple[aot.Launch, aot.Target]], jobs: int, save: Path | None) -> None:
        """Compiles what is not known yet, in chunks (saved after each when `save` is given)."""
        todo = {self.key(launch, target): (launch, target) for launch, target in items}
        todo = [item for key, item in todo.items() if key not in self.usage]
        chunk = 50 * jobs
        for start in range(0, len(todo), chunk):
            self.usage.update(aot.compile_launches(todo[start : start + chunk], jobs=jobs, timeout=None))
            print(f"  {min(start + chunk, len(todo))} of {len(todo)} compiled", file=sys.stderr)
            if save:
                self.save(save)

    @staticmethod
    def key(launch: aot.Launch, target: aot.Target) -> tuple:
        return launch.key(), target.name

    def __getitem__(self, item: tuple[aot.Launch, aot.Target]) -> aot.Usage:
        return self.usage[self.key(*item)]

    def save(self, path: Path) -> None:
        rows = [{"key": repr(k), "usage": u.__dict__} for k, u in self.usage.items()]
        path.write_text(json.dumps(rows))

    def load(self, path: Path) -> None:
        import ast

        for row in json.loads(path.read_text()):
            self.usage[ast.literal_eval(row["key"])] = aot.Usage(**row["usage"])


def clean(usage: aot.Usage, limit: int) -> bool:
    return usage.spill_bytes == 0 and usage.shared_bytes <= limit


def choose_table(results: Results) -> dict[tuple[str, str, int], dict[str, Pinned]]:
    """The best clean candidate per (target, head dim, kernel) by rank_key; tuned entries that still compile
    clean are kept. Raises SystemExit where no candidate is clean (add candidates or an allowance)."""
    table = {}
    for target in aot.TARGETS.values():
        for d in table_head_dims():
            key, entry = (target.name, "bfloat16", d), {}
            for kernel in KERNELS:
                old = ac.TABLE.get(key, {}).get(kernel)
                if old is not None and old.source == "tuned":
                    usage = results[(aot.candidate_launch(kernel, old.config, d), target)]
                    if clean(usage, target.shared_limit):
                        entry[kernel] = Pinned(old.config, usage.registers, usage.shared_bytes, "tuned")
                        continue
                    print(f"dropping the tuned {kernel} entry of {key}: it spills or does not fit")
                ranked = []
                for config in CANDIDATES[kernel]:
                    usage = results[(aot.candidate_launch(kernel, config, d), target)]
                    if clean(usage, target.shared_limit):
                        rank = ac.rank_key(
                            kernel, config, usage.registers, usage.shared_bytes, target.sm_shared
                        )
                        ranked.append((rank, config, usage))
                if not ranked:
                    sys.exit(f"no {kernel} candidate compiles spill-free within {target}'s shared memory at "
                             f"head dim {d}: add candidates, or a named allowance")  # fmt: skip
                _, config, usage = max(ranked, key=lambda r: r[0])
                entry[kernel] = Pinned(config, usage.registers, usage.shared_bytes)
            table[key] = entry
    # entries tuned on GPU classes this script does not compile for are kept as they are
    for key, entry in ac.TABLE.items():
        if key not in table and all(p.source == "tuned" for p in entry.values()):
            table[key] = entry
    return table


def choose_fallback(results: Results, name: str) -> dict[tuple[str, str, int], Pinned]:
    """For fallback dtype `name`, per kernel and padded head dim, the best candidate (rank_key on sm_80 at the
    width's widest head dim) that is spill-free on every target at every head dim of FALLBACK_HEAD_DIMS of
    that width and fits FALLBACK_SHARED_LIMIT; recorded with the most registers and shared memory of those
    compiles."""
    sm80, dtype = aot.TARGETS["sm80"], FALLBACK_DTYPES[name]
    widths: dict[int, list[int]] = {}
    for d in aot.FALLBACK_HEAD_DIMS:
        widths.setdefault(ac.padded_head_dim(d), []).append(d)
    fallback = {}
    for kernel in KERNELS:
        for width, head_dims in widths.items():
            ranked = []
            for config in fallback_candidates(name, kernel):
                usages = [results[(aot.candidate_launch(kernel, config, d, dtype), t)]
                          for t in aot.TARGETS.values() for d in head_dims]  # fmt: skip
                if all(clean(u, FALLBACK_SHARED_LIMIT) for u in usages):
                    u = results[(aot.candidate_launch(kernel, config, max(head_dims), dtype), sm80)]
                    rank = ac.rank_key(kernel, config, u.registers, u.shared_bytes, sm80.sm_shared)
                    ranked.append((rank, config, usages))
            if not ranked:
                sys.exit(
                    f"no {name} {kernel} candidate is spill-free at head dims {head_dims} on every target"
                )
            _, config, usages = max(ranked, key=lambda r: r[0])
            registers, shared = max(u.registers for u in usages), max(u.shared_bytes for u in usages)
            fallback[(name, kernel, width)] = Pinned(config, registers, shared)
    return fallback


def fp16_differences(results: Results) -> list[str]:
    """Where the bf16 fallback compiled in fp16 differs from bf16 (registers, spills or shared memory)."""
    out = []
    for target in aot.TARGETS.values():
        for bf16, fp16 in zip(aot.fallback_launches(torch.bfloat16), aot.fallback_launches(torch.float16)):
            a, b = results[(bf16, target)], results[(fp16, target)]
            if a != b:
                out.append(f"{fp16.label()} for {target}: bf16 {a}, fp16 {b}")
    return out


def step_items() -> list[tuple[aot.Launch, aot.Target]]:
    """Every preset's step launches, and the fallbacks (fp16's too) at every head dim, on both targets."""
    items = []
    for target in aot.TARGETS.values():
        for model in aot.preset_shapes():
            for dtype in DTYPES:
                items += [(launch, target) for launch in aot.step_launches(model, dtype, target)]
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            items += [(launch, target) for launch in aot.fallback_launches(dtype)]
    return items


# ------------------------------------------------------------------------------------------------------------
# Rendering

BEGIN_CODE = "# --- generated by bench/kernels_aot.py --write: begin ---"
END_CODE = "# --- generated by bench/kernels_aot.py --write: end ---"
BEGIN_DOCS = "<!-- generated by bench/kernels_aot.py --write: begin -->"
END_DOCS = "<!-- generated by bench/kernels_aot.py --write: end -->"


def _config_source(config: LaunchConfig) -> str:
    return f"LaunchConfig({config.block_m}, {config.block_n}, {config.num_warps}, {config.num_stages})"


def _pinned_source(p: Pinned) -> str:
    source = "" if p.source == "ranked" else f', "{p.source}"'
    return f"Pinned({_config_source(p.config)}, {p.registers}, {p.shared_bytes}{source})"


def render_configs(table, fallback) -> str:
    """The generated block of attention_configs.py."""
    import triton

    lines = [
        BEGIN_CODE,
        "# (GPU class, dtype, head dim) → kernel → Pinned(config, registers, shared bytes); triton "
        f"{triton.__version__}.",
        "TABLE: dict[tuple[str, str, int], dict[str, Pinned]] = {",
    ]
    for key, entry in sorted(table.items()):
        lines.append(f"    {key!r}: {{".replace("'", '"'))
        lines += [f'        "{kernel}": {_pinned_source(entry[kernel])},' for kernel in KERNELS]
        lines.append("    },")
    lines += [
        "}",
        "",
        '# (fallback dtype, kernel, padded head dim) → the config for keys the table lacks; "bfloat16"',
        "# also serves fp16 (the same 16-bit MMAs and tiles). Registers and shared memory: the most of any",
        "# compiled target and head dim of that width.",
        "FALLBACK: dict[tuple[str, str, int], Pinned] = {",
    ]
    order = sorted(fallback, key=lambda k: (k[0], KERNELS.index(k[1]), k[2]))
    lines += [f"    {key!r}: {_pinned_source(fallback[key])},".replace("'", '"') for key in order]
    lines += ["}", END_CODE]
    return "\n".join(lines)


def _kernel_label(launch: aot.Launch) -> str:
    name = launch.kernel.split(".")[1].removeprefix("_").removesuffix("_kernel").replace("_", " ")
    consts = dict(launch.constexprs)
    flags = [
        k.lower().removeprefix("has_") for k in ("HAS_RESIDUAL", "HAS_DH", "HAS_Z_LOSS") if consts.get(k)
    ]
    if consts.get("COMPUTE_GRAD") is False:
        flags.append("no grad")
    return name.replace("attention backward ", "attention ") + (f" ({', '.join(flags)})" if flags else "")


def _short(config: LaunchConfig) -> str:
    return f"{config.block_m}×{config.block_n}, {config.num_warps}w{config.num_stages}s"


def _launch_config(launch: aot.Launch) -> str:
    consts = dict(launch.constexprs)
    if "BLOCK_N" in consts:
        tile = f"{consts['BLOCK_M']}×{consts['BLOCK_N']}"
    else:
        names = ("BLOCK_SIZE", "BLOCK_M", "BLOCK_HQ", "BLOCK_HK", "BLOCK_HALF")
        tile = "×".join(f"{consts[k]}" for k in names if k in consts)
    return f"{tile}, {launch.num_warps or 4}w{launch.num_stages or 3}s"


def _usage_cells(u: aot.Usage) -> str:
    spill = "0" if not u.spill_bytes else f"**{u.spill_stores}/{u.spill_loads}**"
    return f"{u.registers} | {spill} | {u.shared_bytes / 1024:.1f}"


def _models_label(names: list[str]) -> str:
    """Model names, with the build-vocabulary variants of a preset folded ("llama-tiny (vocab 384, 4096)")."""
    bases: dict[str, list[str]] = {}
    for name in names:
        base, _, vocab = name.partition(" (vocab ")
        bases.setdefault(base, []).append(vocab.rstrip(")"))
    parts = []
    for base, vocabs in bases.items():
        vocabs = [v for v in vocabs if v]
        folded = vocabs and len(vocabs) == len(aot.TINY_VOCABS)
        parts.append(base if not vocabs or folded else f"{base} (vocab {', '.join(vocabs)})")
    return ", ".join(parts)


def _cell(results: Results, launch: aot.Launch, target: aot.Target) -> str:
    return f"{_launch_config(launch)} | {_usage_cells(results[(launch, target)])}"


def render_docs(results: Results, table, fallback: dict) -> str:
    """The AOT tables of docs/trainer.md: attention pins and fallbacks, the cross-entropy row sweep, and
    every kernel launch per model."""
    import triton

    sm80, sm90 = aot.TARGETS["sm80"], aot.TARGETS["sm90"]
    head = ("| {} | {} | sm_80 config | regs | spills | smem | sm_90 config | regs | spills | smem |",
            "|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    out = [
        BEGIN_DOCS,
        f"Compiled with triton {triton.__version__} for sm_80 (A100: 163 KB of shared memory per program)",
        "and sm_90 (H100: 227 KB): registers per thread, spill stores/loads in bytes (bold where not 0),",
        "shared memory in KB per program; config: blocks, warps (w) and stages (s).",
        "",
        "Attention, bf16: the pin per target and head dim, and how many of the 20 candidates compile clean",
        "(no spill, within the target's shared memory).",
        "",
        "| head dim | kernel | sm_80 config | regs | spills | smem | clean "
        "| sm_90 config | regs | spills | smem | clean |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in table_head_dims():
        for kernel in KERNELS:
            cells = []
            for target in (sm80, sm90):
                pinned = table[(target.name, "bfloat16", d)][kernel]
                launch = aot.candidate_launch(kernel, pinned.config, d)
                n_clean = sum(
                    clean(results[(aot.candidate_launch(kernel, c, d), target)], target.shared_limit)
                    for c in CANDIDATES[kernel]
                )
                cells.append(f"{_cell(results, launch, target)} | {n_clean}/{len(CANDIDATES[kernel])}")
            out.append(f"| {d} | {KERNEL_NAMES[kernel]} | {' | '.join(cells)} |")
    out += [
        "",
        "Attention fallbacks (keys the table lacks), per dtype and padded head dim: spill-free on both",
        "targets at every head dim of that width (96 too, masked in 128), within 99 KB; the most registers",
        "and shared memory (KB) of those compiles. The bf16 ones compiled in fp16 give "
        + (
            "the same figures." if not fp16_differences(results) else "different figures (see the generator)."
        ),
        "",
        "| dtype | width | forward | regs | smem | dK/dV | regs | smem | dQ | regs | smem |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, width in sorted({(n, w) for n, _, w in fallback}):
        cells = [fallback[(name, kernel, width)] for kernel in KERNELS]
        row = " | ".join(f"{_short(p.config)} | {p.registers} | {p.shared_bytes / 1024:.1f}" for p in cells)
        out.append(f"| {name} | {width} | {row} |")
    out += [
        "",
        "Cross-entropy row kernel (`row_block`) over blocks and warps: the most registers and spills of bf16",
        "and fp32, with and without the gradient, at Fox-1's vocabulary.",
        "",
        "| block | warps | sm_80 regs | spills | sm_90 regs | spills |",
        "|---|---|---|---|---|---|",
    ]
    for block in CE_ROW_BLOCKS:
        for warps in CE_ROW_WARPS:
            cells = []
            for target in (sm80, sm90):
                usages = [results[(ce_row_launch(block, warps, dtype, grad), target)]
                          for dtype in DTYPES for grad in (True, False)]  # fmt: skip
                spills = max(u.spill_bytes for u in usages)
                cells.append(
                    f"{max(u.registers for u in usages)} | {spills if not spills else f'**{spills}**'}"
                )
            out.append(f"| {block} | {warps} | {' | '.join(cells)} |")
    out += [
        "",
        "Every kernel launch of a training step (and of an evaluation) at each preset, as the launchers",
        "make them (micro-batches of 16K tokens):",
        "",
    ]
    for dtype in DTYPES:
        out += [f"{'bf16' if dtype == torch.bfloat16 else 'fp32 (the GPU test path)'}:", "",
                head[0].format("kernel", "models"), head[1]]  # fmt: skip
        rows: dict[str, dict[str, list[str]]] = {}  # kernel label → cells → models, in launch order
        for model in aot.preset_shapes():
            for a, b in zip(aot.step_launches(model, dtype, sm80), aot.step_launches(model, dtype, sm90)):
                cells = f"{_cell(results, a, sm80)} | {_cell(results, b, sm90)}"
                rows.setdefault(_kernel_label(a), {}).setdefault(cells, []).append(model.name)
        for label, variants in rows.items():
            for cells, models in variants.items():
                out.append(f"| {label} | {_models_label(models)} | {cells} |")
        out.append("")
    out.append(END_DOCS)
    return "\n".join(out)


def _replace_between(path: Path, begin: str, end: str, text: str) -> None:
    source = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(source):
        sys.exit(f"{path}: no generated block ({begin!r} … {end!r}) to replace")
    path.write_text(pattern.sub(lambda _: text, source, count=1))


def main(argv: Sequence[str] | None = None) -> int:
    """Compiles, chooses, prints, and with --write rewrites the generated blocks; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--write", action="store_true", help="rewrite attention_configs.py and docs/trainer.md"
    )
    parser.add_argument("--jobs", type=int, default=2, help="compiling processes (default 2)")
    parser.add_argument("--save", type=Path, help="write every compile's figures to this JSON file")
    parser.add_argument(
        "--load", type=Path, help="reuse figures saved by --save (compiles only what is missing)"
    )
    parser.add_argument("--candidates", action="store_true", help="print every attention candidate's figures")
    args = parser.parse_args(argv)

    results = Results()
    if args.load:
        results.load(args.load)
    start = time.perf_counter()
    results.compile(sweep_items(), args.jobs, args.save)
    table = choose_table(results)
    fallback = {k: v for name in FALLBACK_DTYPES for k, v in choose_fallback(results, name).items()}
    ac.TABLE.clear()
    ac.TABLE.update(table)
    ac.FALLBACK.clear()
    ac.FALLBACK.update(fallback)
    results.compile(step_items(), args.jobs, args.save)
    print(f"{len(results.usage)} distinct compiles, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    for line in fp16_differences(results):
        print("fp16 differs:", line)
    if args.candidates:
        for target in aot.TARGETS.values():
            for d in table_head_dims():
                for kernel in KERNELS:
                    for config in CANDIDATES[kernel]:
                        u = results[(aot.candidate_launch(kernel, config, d), target)]
                        print(f"{target} d{d} {kernel:7} {config!s:28} {u.registers:3} regs, spills "
                              f"{u.spill_stores}/{u.spill_loads}, smem {u.shared_bytes}")  # fmt: skip
    configs_block = render_configs(table, fallback)
    docs_block = render_docs(results, table, fallback)
    print(configs_block)
    print()
    print(docs_block)
    if args.write:
        _replace_between(CONFIGS_FILE, BEGIN_CODE, END_CODE, configs_block)
        _replace_between(DOCS_FILE, BEGIN_DOCS, END_DOCS, docs_block)
        print(f"wrote {CONFIGS_FILE.relative_to(ROOT)} and {DOCS_FILE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
