"""A step's ranks as Ray tasks: killed workers are retried, lost work is bounded, failures name a cause."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from datatrove.pipeline.base import PipelineStep

from gristmill.errors import BuildError
from gristmill.pipelines.build.engine import Step, run_locally, run_step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.ray_tasks import RetryPolicy, current_rss, release_memory

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def _steps_by_value(ray_local):
    """Ray workers cannot import this test module by name (pytest imports it from its path): ship its
    classes by value."""
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailOnRank(PipelineStep):
    """Raises `error` in task `rank`; the other tasks do nothing."""

    name = "fail on rank"

    def __init__(self, rank: int, error: Exception) -> None:
        super().__init__()
        self.rank, self.error = rank, error

    def run(self, data, rank: int = 0, world_size: int = 1):
        if rank == self.rank:
            raise self.error
        yield from ()


class WaitToBeKilled(PipelineStep):
    """Writes its pid to DIR/pid-<rank>-<attempt> and sleeps; from attempt `survive_from` on it returns."""

    name = "wait to be killed"

    def __init__(self, directory: str, survive_from: int, sleep_s: float = 120.0) -> None:
        super().__init__()
        self.directory, self.survive_from, self.sleep_s = Path(directory), survive_from, sleep_s

    def run(self, data, rank: int = 0, world_size: int = 1):
        attempt = len(list(self.directory.glob(f"pid-{rank}-*")))
        (self.directory / f"pid-{rank}-{attempt}").write_text(str(os.getpid()))
        if attempt < self.survive_from:
            time.sleep(self.sleep_s)
        yield from ()


class Allocate(PipelineStep):
    """Holds `megabytes[rank]` MB of written (so resident) memory for a moment, then frees it."""

    name = "allocate"

    def __init__(self, megabytes: list[int]) -> None:
        super().__init__()
        self.megabytes = megabytes

    def run(self, data, rank: int = 0, world_size: int = 1):
        block = bytearray(b"\x01") * (self.megabytes[rank] * 2**20)  # repeated, so every page is touched
        time.sleep(0.2)
        del block
        yield from ()


def kill_each_attempt(directory: Path, times: int, stop: threading.Event) -> threading.Thread:
    """SIGKILL the process of each of the first `times` attempts that write a pid file (our tasks only)."""

    def loop() -> None:
        killed: set[str] = set()
        while not stop.is_set() and len(killed) < times:
            for pid_file in sorted(directory.glob("pid-*")):
                if pid_file.name not in killed and pid_file.read_text():
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                    killed.add(pid_file.name)
            time.sleep(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_a_task_exception_is_shown_with_its_type_message_and_place(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "b" / "tokens" / "x.arrow"))
    step = Step("tokenize", [FailOnRank(1, full)], tasks=3)
    with pytest.raises(BuildError) as caught:
        run_step(step, layout, policy=RetryPolicy(poll_s=0.2))
    message = str(caught.value)
    assert "step 'tokenize': 1 task(s) failed" in message
    assert "task 1: OSError: [Errno 28] No space left on device" in message and "x.arrow" in message
    assert "test_ray_tasks.py" in message and "in run" in message, message  # where it was raised
    completions = sorted(p.name for p in (tmp_path / "b" / "logs" / "tokenize" / "completions").iterdir())
    assert completions == ["00000", "00002"], "the tasks that succeeded must keep their markers"


def test_a_task_that_cannot_write_its_log_names_the_path(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    logs = tmp_path / "b" / "logs" / "pack"
    logs.mkdir(parents=True)
    (logs / "logs").write_text("not a directory")  # where datatrove opens each task's log
    with pytest.raises(BuildError) as caught:
        run_step(
            Step("pack", [FailOnRank(-1, ValueError())], tasks=1), layout, policy=RetryPolicy(poll_s=0.2)
        )
    message = str(caught.value)
    assert "task 0:" in message and "Error" in message and str(logs / "logs") in message, message


def test_each_task_records_its_own_peak_rss_on_a_reused_worker(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    run_step(Step("alloc", [Allocate([200, 0])], tasks=2), layout, workers=1, policy=RetryPolicy(poll_s=0.2))
    runs = json.loads(Path(layout.task_runs_file("alloc")).read_text())
    big, small = runs["00000"], runs["00001"]
    assert big["peak_rss"] >= 200 * 2**20, runs
    # its own share, less the kernel's lazily batched RSS counting (a few pages)
    assert big["start_rss"] > 0 and big["peak_rss"] - big["start_rss"] >= 190 * 2**20, runs
    assert big["seconds"] >= 0.2 and big["cpu_seconds"] > 0 and big["node"] and big["failure"] is None
    if big["pid"] == small["pid"]:  # the same worker process: its peak was reset for the second task
        assert small["peak_rss"] < big["peak_rss"] - 100 * 2**20, runs
    # a resumed step keeps the figures recorded before and adds the new ranks'
    run_step(Step("alloc", [Allocate([0, 0, 0])], tasks=3), layout, workers=1, policy=RetryPolicy(poll_s=0.2))
    merged = json.loads(Path(layout.task_runs_file("alloc")).read_text())
    assert merged["00000"] == big and sorted(merged) == ["00000", "00001", "00002"]


def test_memory_an_earlier_task_freed_goes_back_before_the_next_starts():
    """A reused worker keeps what its allocators cached; `run_rank` hands it back first."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    before = current_rss()
    strings = [str(i) * 3 for i in range(2_000_000)]
    column = pc.add(pa.array(np.arange(30_000_000)), 1)
    del strings, column
    held = current_rss()
    release_memory()
    released = current_rss()
    assert released < before + 100 * 2**20 and released < held, (before, held, released)


def test_a_killed_worker_is_retried_and_the_step_completes(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = threading.Event()
    killer = kill_each_attempt(pids, times=1, stop=stop)
    started = time.monotonic()
    try:
        run_step(
            Step("tokenize", [WaitToBeKilled(str(pids), survive_from=1)], tasks=1),
            layout,
            policy=RetryPolicy(poll_s=0.2),
        )
    finally:
        stop.set()
        killer.join(5)
    assert sorted(p.name for p in pids.iterdir()) == ["pid-0-0", "pid-0-1"]
    assert (tmp_path / "b" / "logs" / "tokenize" / "completions" / "00000").exists()
    assert time.monotonic() - started < 100, "the retry must not wait out the killed attempt's sleep"


def test_a_task_lost_more_often_than_its_retries_fails_naming_it(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = threading.Event()
    killer = kill_each_attempt(pids, times=2, stop=stop)
    try:
        with pytest.raises(BuildError) as caught:
            run_step(
                Step("plan", [WaitToBeKilled(str(pids), survive_from=5)], tasks=1),
                layout,
                policy=RetryPolicy(retries=1, poll_s=0.2),
            )
    finally:
        stop.set()
        killer.join(5)
    message = str(caught.value)
    assert "step 'plan'" in message and "task 0:" in message and "lost after 1 retries" in message, message
    assert not (tmp_path / "b" / "logs" / "plan" / "completions").exists()


def test_a_task_past_its_timeout_is_cancelled_and_named(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    (tmp_path / "pids").mkdir()
    started = time.monotonic()
    with pytest.raises(BuildError, match=r"task 0: did not finish within 2 s"):
        run_step(
            Step("pack", [WaitToBeKilled(str(tmp_path / "pids"), survive_from=1)], tasks=1),
            layout,
            policy=RetryPolicy(task_timeout_s=2, poll_s=0.2),
        )
    assert time.monotonic() - started < 60


def test_run_locally_shares_the_completion_markers(tmp_path):
    layout = BuildLayout(str(tmp_path / "b"))
    (tmp_path / "pids").mkdir()
    step = Step("tokenize", [WaitToBeKilled(str(tmp_path / "pids"), survive_from=0)], tasks=2)
    run_locally([step], layout)
    assert run_step(step, layout) is False, "tasks finished in process must be skipped on Ray"
    assert len(list((tmp_path / "pids").iterdir())) == 2


@pytest.mark.slow
def test_a_build_that_cannot_write_its_tokens_says_why_and_resumes(sample_corpus, tmp_path):
    from click.testing import CliRunner

    from gristmill.cli import cli

    from .test_cluster import build_bytes, small_recipe

    out = tmp_path / "b"
    out.mkdir()
    (out / "tokens").write_text("")  # a file where the tokenize step makes its folder
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(small_recipe(sample_corpus, out)))
    failed = CliRunner().invoke(cli, ["build", str(recipe)])
    assert failed.exit_code != 0
    message = str(failed.exception) if failed.exception and not failed.output else failed.output
    assert "step 'tokenize'" in message and "task 0:" in message, message
    assert "Error: [Errno" in message and str(out / "tokens") in message, message  # the OSError and its path
    ingested = sorted(p.stat().st_mtime_ns for p in (out / "documents").rglob("*.parquet"))

    (out / "tokens").unlink()
    resumed = CliRunner().invoke(cli, ["build", str(recipe)])
    assert resumed.exit_code == 0, resumed.output
    assert sorted(p.stat().st_mtime_ns for p in (out / "documents").rglob("*.parquet")) == ingested
    assert build_bytes(out)  # shards and a manifest exist


def test_tasks_collect_garbage_rarely_and_restore_the_thresholds():
    import gc

    from gristmill.pipelines.build.ray_tasks import TASK_GC_THRESHOLD, rare_collections

    before = gc.get_threshold()
    with rare_collections():
        assert gc.get_threshold() == TASK_GC_THRESHOLD
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), rare_collections((10, 1, 1)):
        raise RuntimeError("a failing task")
    assert gc.get_threshold() == before
