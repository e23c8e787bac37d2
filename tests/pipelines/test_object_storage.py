"""Builds whose corpus and output are both on object storage (a moto S3 server on 127.0.0.1): on one
embedded node, resumed from the completion markers kept there, and on a three-node cluster whose tasks share
nothing with the driver but the object store."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gristmill.pipelines.build.driver import BuildOptions, run_build
from gristmill.pipelines.recipe import parse_recipe
from gristmill.shards.loader import ShardStream
from gristmill.shards.manifest import read_manifest
from gristmill.shards.verify import verify_build

from .test_cluster import local_cluster, small_recipe, start_build, wait_for_task

pytest.importorskip("boto3")
pytest.importorskip("moto.server")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

CORPUS, BUILDS = "corpus", "builds"
FORBIDDEN_ENV = "GRISTMILL_TEST_FORBIDDEN_PATHS"
# Installed in every Python process of the cluster's nodes (PYTHONPATH): an audit hook that refuses, and
# logs, any file operation under the driver's local directories.
GUARD = textwrap.dedent(
    """
    import os, sys

    _FORBIDDEN = tuple(p for p in os.environ.get("GRISTMILL_TEST_FORBIDDEN_PATHS", "").split(os.pathsep) if p)
    _LOG = os.environ.get("GRISTMILL_TEST_FORBIDDEN_LOG", "")
    _EVENTS = {"open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.remove", "os.rmdir",
               "os.chmod", "os.link", "os.truncate", "shutil.copyfile", "shutil.rmtree"}
    _busy = []

    def _guard(event, args):
        if _busy or event not in _EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return
        full = os.path.abspath(path)
        if not any(full == p or full.startswith(p + os.sep) for p in _FORBIDDEN):
            return
        _busy.append(1)
        try:
            with open(_LOG, "a") as log:
                log.write(f"{os.getpid()} {event} {full}\\n")
        finally:
            _busy.clear()
        raise PermissionError(f"a task touched the driver-local path {full}")

    if _FORBIDDEN:
        sys.addaudithook(_guard)
    """
)


@pytest.fixture(scope="module")
def s3(bench_module):
    """(endpoint, boto3 client, storage options, LocalS3) of a moto S3 server holding the two buckets."""
    local_s3 = bench_module("local_s3")
    with local_s3.local_s3_server() as endpoint:
        server = local_s3.LocalS3(endpoint)
        for bucket in (CORPUS, BUILDS):
            server.create_bucket(bucket)
        yield endpoint, server.client(), server.storage_options, server


@pytest.fixture(scope="module")
def corpus_on_s3(s3, sample_corpus):
    """The sample corpus uploaded to s3://corpus/sample/; returns the local copy's path (for its layout)."""
    s3[3].upload_tree(sample_corpus, CORPUS, "sample")
    return sample_corpus


def s3_recipe(sample: Path, output: str, options: dict) -> dict:
    """`small_recipe`, its sources read from s3://corpus/sample/ and its output at the URL `output`."""
    recipe = small_recipe(sample, Path("/unused"))
    for source in recipe["sources"]:
        source["paths"] = [
            f"s3://{CORPUS}/sample/{Path(p).relative_to(sample).as_posix()}" for p in source["paths"]
        ]
        source["storage_options"] = options
    recipe.update(output=output, output_storage_options=options)
    return recipe


def objects(client, prefix: str) -> dict[str, bytes]:
    """Every object under s3://builds/<prefix>/, by key relative to the prefix."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUILDS, Prefix=f"{prefix}/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {
        key.removeprefix(f"{prefix}/"): client.get_object(Bucket=BUILDS, Key=key)["Body"].read()
        for key in keys
    }


def shards_and_manifest(client, prefix: str) -> dict[str, bytes]:
    """The build's shards, their sidecars and its manifest, by path in the build."""
    found = objects(client, prefix)
    return {k: v for k, v in found.items() if k.startswith("stage-") or k == "manifest.json"}


def test_a_build_on_object_storage_streams_and_resumes_from_its_markers(
    ray_local, s3, corpus_on_s3, tmp_path, monkeypatch
):
    _, client, options, _ = s3
    url = f"s3://{BUILDS}/embedded"
    recipe = parse_recipe(s3_recipe(corpus_on_s3, url, options))
    manifest = run_build(recipe, BuildOptions())
    assert all(counts.balanced() for counts in manifest.source_totals().values())
    stored = objects(client, "embedded")
    assert {"recipe.json", "work_units.json", "manifest.json", "tokenizer/tokenizer.model"} <= set(stored)
    assert any(k.startswith("logs/tokenize/completions/") for k in stored)
    assert not any(k.endswith(".tmp") for k in stored)
    for secret in (b'"secret"', options["client_kwargs"]["endpoint_url"].encode()):
        assert secret not in stored["manifest.json"] and secret not in stored["recipe.json"]

    # `shards verify` checks it in place (the output's options were registered by run_build), tokenizer too.
    report = verify_build(url)
    assert report.ok, report.to_dict()

    # The loader streams the shards straight from the store.
    stream = ShardStream(
        url, micro_batch_tokens=4096, storage_options=options, cache_dir=str(tmp_path / "cache")
    )
    batch = next(iter(stream))
    assert batch["input_ids"].shape[1] == manifest.stages[0].seq_len

    # A rerun finds every step complete on the store and runs no task; nothing is rewritten but the
    # manifest and report, which are the same bytes.
    ran = []
    import gristmill.pipelines.build.driver as driver

    monkeypatch.setattr(driver, "run_step", lambda step, *args, **kwargs: ran.append(step.name))
    assert run_build(recipe, BuildOptions()) == manifest
    assert ran == []
    again = objects(client, "embedded")
    assert again["manifest.json"] == stored["manifest.json"]
    assert {k: v for k, v in again.items() if not k.startswith("reports/")} == {
        k: v for k, v in stored.items() if not k.startswith("reports/")
    }


def test_three_nodes_sharing_only_object_storage_build_the_bytes_of_one(
    ray_local, s3, corpus_on_s3, tmp_path, monkeypatch
):
    import ray._private.utils

    _, client, options, _ = s3
    if not shards_and_manifest(client, "embedded"):  # run alone: make the one-node reference here
        run_build(parse_recipe(s3_recipe(corpus_on_s3, f"s3://{BUILDS}/embedded", options)), BuildOptions())
    reference = shards_and_manifest(client, "embedded")

    guard = tmp_path.parent / f"{tmp_path.name}-guard"  # on the nodes' sys.path: outside the forbidden tree
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    violations = tmp_path.parent / f"{tmp_path.name}-violations.log"  # outside the forbidden tree
    forbidden = os.pathsep.join([str(tmp_path), str(corpus_on_s3)])
    env = {
        "PYTHONPATH": os.pathsep.join([str(guard), *filter(None, [os.environ.get("PYTHONPATH")])]),
        FORBIDDEN_ENV: forbidden,
        "GRISTMILL_TEST_FORBIDDEN_LOG": str(violations),
    }
    monkeypatch.setattr(ray._private.utils, "write_ray_address", lambda *args, **kwargs: None)
    with local_cluster(workers=2, env=env) as (cluster, workers):
        assert_the_guard_refuses(cluster.address, tmp_path)
        violations.unlink(missing_ok=True)

        started = time.monotonic()
        proc = start_build(
            s3_recipe(corpus_on_s3, f"s3://{BUILDS}/three-nodes", options), tmp_path, cluster.address
        )
        os.kill(wait_for_task(proc, workers, "tokenize"), signal.SIGKILL)  # Ray runs it again
        output, _ = proc.communicate(timeout=900)
        print(f"three nodes on S3, one tokenize worker killed: {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, output[-4000:]
    touched = violations.read_text() if violations.exists() else ""
    assert not touched, f"tasks touched driver-local paths:\n{touched[:2000]}"
    assert shards_and_manifest(client, "three-nodes") == reference
    assert read_manifest(f"s3://{BUILDS}/three-nodes", **options).stages


def assert_the_guard_refuses(address: str, tmp_path: Path) -> None:
    """Check, from a driver process of its own, that a task on the cluster cannot open a driver-local path."""
    import subprocess

    probe = tmp_path / "probe.txt"
    probe.write_text("driver-local")
    code = textwrap.dedent(
        f"""
        import ray
        ray.init(address={address!r}, log_to_driver=False)

        @ray.remote(num_cpus=1)
        def touch():
            try:
                open({str(probe)!r}).read()
            except PermissionError as e:
                return str(e)
            return "opened"

        print(ray.get(touch.remote(), timeout=120))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "a task touched the driver-local path" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
