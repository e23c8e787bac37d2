"""Threads follow the task: a one-CPU Ray task of a build starts no encoder thread pool and sizes pyarrow and
BLAS to one thread; without `limit_threads`, the same encoding starts a pool of the machine's cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datatrove.pipeline.base import PipelineStep

TEXTS = [f"document {i}: the quick brown fox jumps over the lazy dog, again." * 20 for i in range(400)]
many_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 or more cores to tell")


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _hf_tokenizer(directory: Path) -> Path:
    """Write a small byte-level BPE tokenizer.json (encoded by `tokenizers` when asked for the reference)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["</s>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXTS[:50], trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    return directory


def _encode_and_count(directory: str) -> dict:
    """Encode TEXTS with `tokenizers` through our Tokenizer; return the threads it added, the pool sizes."""
    import pyarrow as pa
    from threadpoolctl import threadpool_info

    from gristmill.tokenizer.interface import Tokenizer

    before = _threads()
    tokenizer = Tokenizer.load(directory, encoder="reference")
    tokenizer.encode_batch(TEXTS)
    return {
        "added_threads": _threads() - before,
        "tokenizer_threads": tokenizer._threads,
        "pyarrow_cpus": pa.cpu_count(),
        "blas_threads": [p["num_threads"] for p in threadpool_info()],
    }


class _CountThreads(PipelineStep):
    """Runs `_encode_and_count` inside the task and writes its answer to `out`."""

    name = "count threads"

    def __init__(self, directory: str, out: str) -> None:
        super().__init__()
        self.directory, self.out = directory, out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        Path(self.out).write_text(json.dumps(_encode_and_count(self.directory)))
        return
        yield


@pytest.mark.ray
@many_cores
def test_one_cpu_ray_task_uses_one_thread(tmp_path, ray_local):
    from gristmill.pipelines.build.engine import Step, run_step
    from gristmill.pipelines.build.layout import BuildLayout

    directory = _hf_tokenizer(tmp_path / "tok")
    out = tmp_path / "threads.json"
    step = Step("threads", [_CountThreads(str(directory), str(out))], tasks=1, cpus_per_task=1)
    run_step(step, BuildLayout(str(tmp_path / "build")))
    seen = json.loads(out.read_text())
    assert seen["added_threads"] == 0, seen  # no tokenizers (rayon) pool was started
    assert seen["tokenizer_threads"] == 1 and seen["pyarrow_cpus"] == 1, seen
    assert all(n == 1 for n in seen["blas_threads"]), seen


_CHILD = """
import json, os, sys
from gristmill.threads import limit_threads
if sys.argv[2] == "limit":
    limit_threads(1)
import pyarrow as pa
from gristmill.tokenizer.interface import Tokenizer
texts = json.loads(open(sys.argv[3]).read())
before = len(os.listdir("/proc/self/task"))
Tokenizer.load(sys.argv[1], encoder="reference").encode_batch(texts)
added = len(os.listdir("/proc/self/task")) - before
print(json.dumps({"added_threads": added, "pyarrow_cpus": pa.cpu_count()}))
"""


@many_cores
def test_the_count_sees_a_pool_without_the_limit(tmp_path):
    """The same measurement in fresh processes: without `limit_threads(1)` tokenizers starts its pool."""
    directory = str(_hf_tokenizer(tmp_path / "tok"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS))
    seen = {}
    for mode in ("free", "limit"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, directory, mode, str(texts)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        seen[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["free"]["added_threads"] >= 2 and seen["free"]["pyarrow_cpus"] >= 2, seen
    assert seen["limit"]["added_threads"] == 0 and seen["limit"]["pyarrow_cpus"] == 1, seen
