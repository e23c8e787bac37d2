"""Benchmark: streaming a build into training, gristmill's ShardStream against litdata, in one run.

Measures, on the same tokens:
  1. tokens/s of one process (= one dataloader worker) from local shards, shuffled: gristmill yields full
     micro-batches (inputs, targets, loss mask, position ids, cu_seqlens); litdata (TokensLoader, shuffle)
     yields rows that we stack into the same (B, L+1) batches;
  2. the same from a local S3 server (moto's ThreadedMotoServer on 127.0.0.1), cold cache;
  3. time to the first batch on a build of 10,000 tiny shards (gristmill) / 10,000 chunks (litdata).

MosaicML streaming was tried too: its wheel needs a CUDA torch and torchvision, so it does not install
next to the CPU torch here. litdata is installed apart from the `bench` extra, without its dependencies
(`pip install --no-deps 'litdata==0.2.76'`; the extra lists those it imports): its torchvision would
replace the tested torch. Run: python bench/stream_bench.py [--rows 8192] [--seq-len 2048]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash
from local_s3 import LocalS3, local_s3_server  # beside this script

from gristmill.shards.format import ShardMeta, shard_schema
from gristmill.shards.loader import ShardStream
from gristmill.shards.manifest import (
    Manifest,
    ShardEntry,
    SourceEntry,
    SourceRows,
    StageEntry,
    write_manifest,
)

MICRO_BATCH_ROWS = 16
CREDENTIALS = {"key": "testing", "secret": "testing"}


def synthetic_rows(n: int, seq_len: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return tokens (n, L+1) int32 and doc_offsets as (list offsets, values) with 1–8 documents a row."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 32000, size=(n, seq_len + 1), dtype=np.int32)
    docs = rng.integers(1, 9, size=n)
    values = []
    for d in docs:
        cuts = np.sort(rng.choice(np.arange(1, seq_len + 1), size=d - 1, replace=False))
        values.append(np.concatenate([[0], cuts, [seq_len + 1]]))
    list_offsets = np.concatenate([[0], np.cumsum(docs + 1)]).astype(np.int32)
    return tokens, list_offsets, np.concatenate(values).astype(np.int32)


def write_build(
    root: Path,
    n_rows: int,
    seq_len: int,
    shard_rows: int,
    seed: int = 0,
    token_type: str = "uint16",
    passes: int = 1,
) -> np.ndarray:
    """Write a one-stage gristmill build whose walk visits each row `passes` times (epochs by reference);
    return its tokens (n_rows, L+1) for the baseline to write."""
    meta = ShardMeta(seq_len=seq_len, pad_id=0, eos_id=2, tokenizer_hash="bench", token_type=token_type)
    schema = shard_schema(meta)
    tokens, list_offsets, values = synthetic_rows(n_rows, seq_len, seed)
    stage_dir = root / "stage"
    stage_dir.mkdir(parents=True)
    batch_rows = max(1, (4 << 20) // ((seq_len + 1) * schema.field("tokens").type.value_type.byte_width))
    entries = []
    for i, a in enumerate(range(0, n_rows, shard_rows)):
        b = min(n_rows, a + shard_rows)
        path = stage_dir / f"shard-{i:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for c in range(a, b, batch_rows):
                d = min(b, c + batch_rows)
                offs = list_offsets[c : d + 1] - list_offsets[c]
                docs = values[list_offsets[c] : list_offsets[d]]
                columns = [
                    pa.FixedSizeListArray.from_arrays(
                        pa.array(tokens[c:d].reshape(-1), schema.field("tokens").type.value_type), seq_len + 1
                    ),
                    pa.ListArray.from_arrays(pa.array(offs), pa.array(docs)),
                    pa.array(np.zeros(d - c, np.uint8)),
                ]
                writer.write_batch(pa.record_batch(columns, schema=schema))
        data = path.read_bytes()
        entries.append(
            ShardEntry(
                path=f"stage/{path.name}",
                rows=b - a,
                tokens=(b - a) * seq_len,
                source_tokens={"web": (b - a) * seq_len},
                source_rows=[
                    SourceRows(
                        source="web", rows=b - a, passes=passes, trained_tokens=passes * (b - a) * seq_len
                    )
                ],
                xxh3=xxhash.xxh3_64_hexdigest(data),
                bytes=len(data),
            )
        )
    stage = StageEntry.of_shards("stage", 1, seq_len, MICRO_BATCH_ROWS * seq_len, entries, {"web": 1.0})
    source = SourceEntry(name="web", format="jsonl", kind="web", priority=0)
    write_manifest(
        str(root),
        Manifest(
            name="bench",
            recipe={},
            recipe_hash="bench",
            seed=seed,
            sources=[source],
            accounting={},
            stages=[stage],
        ),
    )
    return tokens


def _row_item(index: int, path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")[index].copy()


def write_litdata(root: Path, tokens: np.ndarray, rows_per_chunk: int) -> None:
    """Write the same rows with litdata.optimize for its TokensLoader (one process, no compression)."""
    from litdata import optimize
    from litdata.streaming.item_loader import TokensLoader

    npy = root.parent / f"{root.name}-rows.npy"
    np.save(npy, tokens)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        optimize(
            fn=functools.partial(_row_item, path=str(npy)),
            inputs=list(range(len(tokens))),
            output_dir=str(root),
            chunk_size=rows_per_chunk * tokens.shape[1],
            item_loader=TokensLoader(),
            num_workers=1,
            reorder_files=False,
            verbose=False,
            start_method="fork",
        )
    npy.unlink()


def gristmill_pass(build: str, seq_len: int, **options) -> tuple[float, float, int]:
    """Return (seconds to first batch, seconds for the whole pass, input tokens yielded)."""
    start = time.perf_counter()
    stream = ShardStream(build, micro_batch_tokens=MICRO_BATCH_ROWS * seq_len, seed=1, **options)
    first, tokens = None, 0
    for batch in stream:
        first = first or time.perf_counter() - start
        tokens += batch["input_ids"].size
    stream.close()
    return first or 0.0, time.perf_counter() - start, tokens


def litdata_pass(
    data_dir: str, seq_len: int, limit: int | None = None, **options
) -> tuple[float, float, int]:
    """Return (seconds to first batch, seconds for the pass, tokens) for litdata, stacking B rows a batch."""
    from litdata import StreamingDataset
    from litdata.streaming.item_loader import TokensLoader

    start = time.perf_counter()
    dataset = StreamingDataset(
        data_dir, item_loader=TokensLoader(block_size=seq_len + 1), shuffle=True, seed=1, **options
    )
    first, tokens, rows = None, 0, []
    for item in dataset:
        rows.append(np.asarray(item))
        if len(rows) == MICRO_BATCH_ROWS:
            batch = np.stack(rows)
            tokens += batch[:, :-1].size
            rows = []
            first = first or time.perf_counter() - start
            if limit is not None and tokens >= limit:
                break
    return first or 0.0, time.perf_counter() - start, tokens


def report(name: str, first: float, total: float, tokens: int, baseline: float | None = None) -> float:
    """Print one result line; return tokens/s."""
    rate = tokens / total if total else 0.0
    ratio = f"  ×{rate / baseline:5.2f} vs litdata" if baseline else ""
    print(
        f"  {name:<34} first batch {first * 1e3:8.1f} ms   {rate / 1e6:7.2f} M tokens/s "
        f"({tokens / 1e6:.1f} M tokens in {total:.2f} s){ratio}"
    )
    return rate


def loader_only(args: argparse.Namespace) -> None:
    """Time gristmill's loader alone, warm, on the same tokens yielded: rows stored as int32, as uint16, and
    a third of them stored as uint16 and visited three times; best of three passes each."""
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    L = args.seq_len
    variants = {
        "int32, every row once": ("i32", args.rows, "int32", 1),
        "uint16, every row once": ("u16", args.rows, "uint16", 1),
        "uint16, a third stored, 3 passes": ("u16x3", args.rows // 3, "uint16", 3),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (folder, rows, token_type, passes) in variants.items():
            build = Path(tmp) / folder
            write_build(build, rows, L, args.shard_rows, token_type=token_type, passes=passes)
            gristmill_pass(str(build), L)  # verifies the checksums once
            best = min((gristmill_pass(str(build), L) for _ in range(3)), key=lambda r: r[1])
            report(f"gristmill, {name}", *best)


def main() -> None:
    """Run the three measurements and print a table with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096, help="rows of the throughput build")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--shard-rows", type=int, default=512)
    parser.add_argument("--tiny-shards", type=int, default=10_000)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument(
        "--loader-only",
        action="store_true",
        help="only gristmill's loader, local: int32 rows once, uint16 rows once, uint16 rows stored once "
        "and visited 3 times (epochs by reference), the same tokens yielded in each",
    )
    args = parser.parse_args()
    if args.loader_only:
        loader_only(args)
        return
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}, pyarrow {pa.__version__}"
    )
    try:
        import litdata
    except ModuleNotFoundError:
        sys.exit(
            "the litdata baseline is not installed: pip install -e '.[bench]' && pip install --no-deps "
            "'litdata==0.2.76' (without --no-deps, litdata's torchvision would replace the tested torch)"
        )

    print(f"baseline: litdata {litdata.__version__} (StreamingDataset + TokensLoader, shuffle=True)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        L = args.seq_len
        tokens = write_build(tmp / "gm", args.rows, L, args.shard_rows)
        write_litdata(tmp / "lit", tokens, args.shard_rows)
        print(
            f"\n1. local, one process, {args.rows} rows × L={L} ({args.rows * L / 1e6:.1f} M tokens), "
            f"micro-batch {MICRO_BATCH_ROWS} rows"
        )
        lit = litdata_pass(str(tmp / "lit"), L, cache_dir=str(tmp / "lit-cache"))
        base = report("litdata", *lit)
        report("gristmill (cold: verifies xxh3)", *gristmill_pass(str(tmp / "gm"), L), baseline=base)
        report("gristmill (warm)", *gristmill_pass(str(tmp / "gm"), L), baseline=base)
        lit = litdata_pass(str(tmp / "lit"), L, cache_dir=str(tmp / "lit-cache"))
        base = report("litdata (second pass)", *lit)

        if not args.skip_s3:
            print("\n2. local S3 server (moto on 127.0.0.1), cold cache, one process")
            with local_s3_server() as endpoint:
                gm_url = LocalS3(endpoint).upload_tree(tmp / "gm", "gristmill")
                lit_url = LocalS3(endpoint).upload_tree(tmp / "lit", "litdata")
                try:
                    lit = litdata_pass(
                        lit_url,
                        L,
                        cache_dir=str(tmp / "lit-s3-cache"),
                        storage_options={
                            "endpoint_url": endpoint,
                            "aws_access_key_id": "testing",
                            "aws_secret_access_key": "testing",
                        },
                    )
                    base = report("litdata", *lit)
                except Exception as e:  # report the baseline's failure instead of dying
                    print(f"  litdata could not stream from the local S3 server: {type(e).__name__}: {e}")
                    base = None
                options = {
                    **CREDENTIALS,
                    "endpoint_url": endpoint,
                    "client_kwargs": {"region_name": "us-east-1"},
                }
                report(
                    "gristmill",
                    *gristmill_pass(gm_url, L, storage_options=options, cache_dir=str(tmp / "gm-s3-cache")),
                    baseline=base,
                )

        n = args.tiny_shards
        print(f"\n3. time to first batch, {n} tiny shards (4 rows × L=128 each)")
        tiny = write_build(tmp / "gm-tiny", 4 * n, 128, 4)
        write_litdata(tmp / "lit-tiny", tiny, 4)
        start = time.perf_counter()
        stream = ShardStream(str(tmp / "gm-tiny"), micro_batch_tokens=MICRO_BATCH_ROWS * 128, seed=1)
        next(iter(stream))
        gm_first = time.perf_counter() - start
        lit_first = litdata_pass(str(tmp / "lit-tiny"), 128, limit=1, cache_dir=str(tmp / "lit-tiny-cache"))[
            0
        ]
        print(f"  litdata   {lit_first:6.3f} s ({len(list((tmp / 'lit-tiny').glob('*.bin')))} chunks)")
        print(
            f"  gristmill {gm_first:6.3f} s ({n} shards)   litdata time / gristmill time = "
            f"{lit_first / gm_first:.2f}"
        )


if __name__ == "__main__":
    main()
