"""`ray job submit` of a build to a real local Ray cluster with token authentication on, writing its output
to object storage (a moto S3 server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gristmill.shards.manifest import read_manifest

from .test_build import ingest_recipe

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A head node bound to 127.0.0.1 with RAY_AUTH_MODE=token and a token file of its own."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard = free_port(), free_port()
    # Ray's Unix socket paths must stay under ~107 bytes, so its temp dir cannot live in pytest's tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--num-cpus=2",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            # The session's embedded Ray holds the default agent ports: give this head its own.
            *(
                f"--{flag}={free_port()}"
                for flag in (
                    "dashboard-agent-listen-port",
                    "dashboard-agent-grpc-port",
                    "runtime-env-agent-port",
                    "metrics-export-port",
                    "ray-client-server-port",
                )
            ),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", url], env=env, capture_output=True, text=True
        )
        if probe.returncode == 0:
            break
        time.sleep(1)
    else:
        os.killpg(head.pid, signal.SIGTERM)
        pytest.fail("the Ray head did not come up")
    yield url, env
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


def submit(url: str, env: dict, recipe: Path) -> subprocess.CompletedProcess:
    """Submit `gristmill build RECIPE`; retry while the head's job agent is still starting."""
    command = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        url,
        "--",
        str(BIN / "gristmill"),
        "build",
        str(recipe),
    ]
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if "No available agent" not in done.stderr + done.stdout or time.monotonic() > deadline:
            return done
        time.sleep(2)


@pytest.fixture
def s3_output(bench_module):
    """(URL of an empty build prefix, its storage options) on a moto S3 server."""
    pytest.importorskip("boto3")
    local_s3 = bench_module("local_s3")
    with local_s3.local_s3_server() as endpoint:
        server = local_s3.LocalS3(endpoint)
        server.create_bucket("builds")
        yield "s3://builds/submitted", server.storage_options


def test_job_submit_writing_to_s3_matches_embedded_run(
    ray_local, ray_cluster, s3_output, sample_corpus, tmp_path
):
    from gristmill.pipelines.build.driver import BuildOptions, run_build
    from gristmill.pipelines.recipe import parse_recipe

    url, env = ray_cluster
    embedded = tmp_path / "embedded"
    run_build(parse_recipe(ingest_recipe(sample_corpus, embedded)), BuildOptions())

    submitted, options = s3_output
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(ingest_recipe(sample_corpus, submitted, output_storage_options=options)))

    unauthenticated = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    refused = submit(url, unauthenticated, recipe)
    assert refused.returncode != 0, "the cluster accepted a job without the token"

    done = submit(url, env, recipe)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    a, b = read_manifest(str(embedded)), read_manifest(submitted, **options)
    assert a.accounting == b.accounting
    assert a.recipe_hash == b.recipe_hash
    assert [s.model_dump() for s in a.stages] == [s.model_dump() for s in b.stages]
