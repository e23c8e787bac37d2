"""A build on a real three-node Ray cluster (`ray.cluster_utils.Cluster`: a head and two workers, one CPU
each) gives the same bytes as on one embedded node, also when a worker node is removed mid-build."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gristmill.pipelines.build.driver import BuildOptions, run_build
from gristmill.pipelines.recipe import parse_recipe

from .test_build import ingest_recipe

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def small_recipe(sample: Path, output: Path) -> dict:
    """The demo recipe, every step, sized down: a small one-thread tokenizer (one CPU per node) and one
    short stage."""
    recipe = ingest_recipe(sample, output)
    recipe.update(
        tokenizer={
            "train": {
                "backend": "sentencepiece-bpe",
                "profile": "llama2",
                "vocab_size": 1024,
                "sample_bytes": 2_000_000,
                "num_threads": 1,
            }
        },
        stages=[
            {
                "name": "short",
                "seq_len": 256,
                "tokens": 60_000,
                "tokens_per_step": 4096,
                "weights": {"slimpajama": 0.4, "starcoderdata": 0.3, "dolma": 0.15, "pile": 0.15},
            }
        ],
    )
    return recipe


def build_bytes(build: Path) -> dict[str, bytes]:
    """Every shard and sidecar, and the manifest with its one absolute path (the recipe's output) blanked."""
    files = {str(p.relative_to(build)): p.read_bytes() for p in sorted(build.glob("stage-*/shard-*"))}
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["recipe"]["output"] = "<output>"
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_args(temp_dir: str) -> dict:
    """One CPU, with ports of its own (other Ray instances here hold the default ones)."""
    return {
        "num_cpus": 1,
        "temp_dir": temp_dir,
        "metrics_export_port": free_port(),
        "runtime_env_agent_port": free_port(),
        "dashboard_agent_listen_port": free_port(),
    }


@contextlib.contextmanager
def local_cluster(workers: int = 2, env: dict[str, str] | None = None) -> Iterator[tuple[object, list]]:
    """A head and `workers` worker nodes, one CPU each, their processes started with `env` added to ours;
    yields (cluster, worker nodes). The caller keeps its address out of /tmp/ray/ray_current_cluster."""
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Unix socket paths must stay short
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})  # the nodes' processes inherit it
    cluster = Cluster()
    try:
        cluster.add_node(**node_args(temp_dir), gcs_server_port=free_port(), include_dashboard=False)
        nodes = [cluster.add_node(**node_args(temp_dir)) for _ in range(workers)]
        cluster.wait_for_nodes()
        for key, value in saved.items():  # the nodes are up: later processes of ours do without it
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        saved = {}
        yield cluster, nodes
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def three_nodes(monkeypatch):
    """A head and two worker nodes, one CPU each; yields (cluster, worker nodes). Its address is kept out of
    /tmp/ray/ray_current_cluster, so no other process's plain `ray.init()` joins it."""
    import ray._private.utils

    monkeypatch.setattr(ray._private.utils, "write_ray_address", lambda *args, **kwargs: None)
    with local_cluster() as nodes:
        yield nodes


def start_build(recipe: dict, tmp_path: Path, address: str) -> subprocess.Popen:
    """`gristmill build` as its own driver process, connected to the cluster at `address`."""
    path = tmp_path / f"{recipe['output'].rstrip('/').rsplit('/', 1)[-1]}.json"
    path.write_text(json.dumps(recipe))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-m", "gristmill", "build", str(path), "--address", address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def node_pids(*nodes) -> set[int]:
    """The processes of these nodes of our cluster: each raylet and everything it started."""
    import psutil

    pids: set[int] = set()
    for node in nodes:
        try:
            raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
            pids |= {raylet.pid, *(p.pid for p in raylet.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return pids


def running_task(nodes: list, step: str) -> int | None:
    """The pid of a worker process on `nodes` running one of `step`'s tasks (titled ray::gristmill:<step>)."""
    import psutil

    for pid in node_pids(*nodes):
        try:
            if psutil.Process(pid).cmdline()[:1] == [f"ray::gristmill:{step}"]:
                return pid
        except psutil.Error:
            continue
    return None


def wait_for_task(proc: subprocess.Popen, nodes: list, step: str) -> int:
    """Wait (up to 10 minutes, while the build runs) for a task of `step` on `nodes`; return its pid."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if pid := running_task(nodes, step):
            return pid
        time.sleep(0.05)
    pytest.fail(f"no {step} task was seen running on {len(nodes)} node(s): " + proc.communicate()[0][-4000:])


def test_three_nodes_losing_one_mid_step_build_the_same_bytes_as_one(
    ray_local, three_nodes, sample_corpus, tmp_path
):
    cluster, workers = three_nodes
    reference = tmp_path / "one-node"
    started = time.monotonic()
    run_build(parse_recipe(small_recipe(sample_corpus, reference)), BuildOptions())
    print(f"one embedded node: {time.monotonic() - started:.0f} s")

    # The build spreads over the three nodes (each holds one task at a time). The tokenizer task's worker
    # process is SIGKILLed, and the worker node running a tokenize task is removed; Ray runs both again.
    spread = tmp_path / "three-nodes"
    started = time.monotonic()
    proc = start_build(small_recipe(sample_corpus, spread), tmp_path, cluster.address)
    os.kill(wait_for_task(proc, cluster.list_all_nodes(), "tokenizer"), signal.SIGKILL)
    wait_for_task(proc, workers[:1], "tokenize")
    cluster.remove_node(workers[0], allow_graceful=False)
    output, _ = proc.communicate(timeout=900)
    print(f"three nodes, one worker killed, one node removed: {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, output[-4000:]
    assert build_bytes(spread) == build_bytes(reference)
