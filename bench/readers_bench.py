"""Benchmark: reading SlimPajama-style jsonl.zst, gristmill's reader against two baselines, in one run.

All three read the same file into Documents (text, id, subset) and are timed on the same machine back to back:
  - gristmill: SlimPajamaReader (chunked zstd decompressobj, bounded line splitting, quarantine checks);
  - datatrove: datatrove's JsonlReader (fsspec zstd stream, line iteration), with an adapter for `meta`;
  - stdlib: zstandard's stream_reader in io.TextIOWrapper, `for line in f: json.loads(line)`, no checks.
Reports MB/s of uncompressed input and the ratio to each baseline (best of --repeat runs).

Run: python bench/readers_bench.py [--records 200000] [--repeat 3]   (the datatrove baseline needs orjson)
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import zstandard
from datatrove.data import Document
from datatrove.pipeline.readers import JsonlReader

from gristmill.pipelines.readers import reader_for
from gristmill.pipelines.recipe import SourceConfig

SUBSETS = ["RedPajamaCommonCrawl", "RedPajamaC4", "RedPajamaWikipedia", "RedPajamaBook"]


def write_file(path: Path, records: int, seed: int = 0) -> int:
    """Write a SlimPajama-like jsonl.zst of `records` lines (~1 KB of text each); return its size unpacked."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(20_000)] + ["the", "of", "and", "a", "to", "in", "is"] * 300
    lines = []
    for _ in range(records):
        text = " ".join(rng.choices(words, k=rng.randint(60, 300))) + "."
        lines.append(json.dumps({"text": text, "meta": {"redpajama_set_name": rng.choice(SUBSETS)}}))
    data = ("\n".join(lines) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return len(data)


def run_gristmill(path: Path) -> int:
    source = SourceConfig(name="slimpajama", format="slimpajama", paths=[str(path.parent)])
    return sum(1 for doc in reader_for(source).iter_file(str(path)) if isinstance(doc, Document))


def run_datatrove(path: Path) -> int:
    def adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
        return {
            "text": data["text"],
            "id": f"{path}:{id_in_file}",
            "metadata": {"subset": data["meta"]["redpajama_set_name"]},
        }

    reader = JsonlReader(str(path.parent), glob_pattern=path.name, adapter=adapter, compression="zstd")
    return sum(1 for _ in reader.run())


def run_stdlib(path: Path) -> int:
    count = 0
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        for line in io.TextIOWrapper(stream, encoding="utf-8"):
            record = json.loads(line)
            subset = record["meta"]["redpajama_set_name"]
            Document(text=record["text"], id=str(count), metadata={"subset": subset})
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train" / "chunk1" / "example_train_0.jsonl.zst"
        size = write_file(path, args.records)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}; file: {args.records:,} records, {size / 1e6:.1f} MB unpacked, "
            f"{path.stat().st_size / 1e6:.1f} MB zstd"
        )
        best = {}
        runs = {"gristmill": run_gristmill, "datatrove": run_datatrove, "stdlib": run_stdlib}
        if importlib.util.find_spec("orjson") is None:  # datatrove's JsonlReader needs it
            print("datatrove: skipped (pip install orjson to include it)")
            del runs["datatrove"]
        for name, run in runs.items():
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                count = run(path)
                times.append(time.perf_counter() - start)
                assert count == args.records, (name, count)
            best[name] = min(times)
        for name, seconds in best.items():
            print(
                f"{name:>10}: {seconds:6.2f} s  {size / seconds / 1e6:7.1f} MB/s  "
                f"gristmill is {seconds / best['gristmill']:.2f}x its speed"
            )


if __name__ == "__main__":
    main()
