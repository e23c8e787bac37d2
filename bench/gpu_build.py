"""Write a small real build with 2048- and 8192-token stages for the GPU benchmarks, in seconds.

It reuses the trainer tests' fixture (tests/trainer/build_fixture.py): the standard library's pydoc topics,
a tiny byte-level BPE, documents packed in order. Enough rows for bench/train_bench.py's default steps; not a
quality build.

    python bench/gpu_build.py OUT_DIR
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "trainer" / "build_fixture.py"


def main(argv: list[str]) -> int:
    """Writes the build at argv[0]; returns the exit code."""
    if len(argv) != 1:
        print(__doc__)
        return 2
    spec = importlib.util.spec_from_file_location("gristmill_bench_build_fixture", FIXTURE)
    fixture = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fixture
    spec.loader.exec_module(fixture)
    out = Path(argv[0])
    texts, held_out = fixture.documents()
    texts = (texts + held_out) * 4  # repeated so that the 8K stage has rows for a dozen steps
    tokenizer = fixture.train_tokenizer(out / "tokenizer-train", texts)
    stages = [
        fixture.FixtureStage("stage-1-2048", 2048, 16384, share=0.5),
        fixture.FixtureStage("stage-2-8192", 8192, 16384, share=0.5),
    ]
    manifest = fixture.write_build(out, texts, tokenizer, stages, name="gpu-bench", rows_per_shard=256)
    for stage in manifest.stages:
        print(f"{out}: {stage.name} {stage.rows} rows, {stage.tokens} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
