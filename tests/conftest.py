"""Fixtures shared by every test folder: one embedded local Ray per test session, and the sample corpus."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("LOGURU_LEVEL", "WARNING")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Triton picks interpret-or-compile when a kernel module is imported, so this must precede every import of
# gristmill.trainer.kernels in the session: without a GPU, kernels run in Triton's interpreter (fp32 only).
if not _has_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@functools.cache
def load_bench_module(name: str) -> ModuleType:
    """Return bench/<name>.py (a benchmark's support module) loaded by file path under a private name.

    bench/ is not a package and never goes on sys.path: its scripts' names may be those of installed
    packages, which they would shadow for every later import in the session."""
    private = f"gristmill_bench_{name}"
    spec = importlib.util.spec_from_file_location(private, Path(__file__).parents[1] / "bench" / f"{name}.py")
    sys.modules[private] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_module():
    """`bench_module(name)`: bench/<name>.py as a module (see `load_bench_module`)."""
    return load_bench_module


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs for the whole session (started on first use, shut down at the end)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"LOGURU_LEVEL": "WARNING"}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """The bundled sample corpus (`gristmill sample`), written once per session with seed 0."""
    from gristmill.sample.corpus import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(str(out), seed=0)
    return out


@pytest.fixture(scope="module")
def s3_prefix():
    """s3://store/t on a moto S3 server per test module, registered with its options like a build output."""
    pytest.importorskip("moto.server")
    from gristmill.storage import register_storage

    s3 = load_bench_module("local_s3")
    with s3.local_s3_server() as endpoint:
        server = s3.LocalS3(endpoint)
        server.create_bucket("store")
        prefix = "s3://store/t"
        register_storage(prefix, server.storage_options)
        try:
            yield prefix
        finally:
            register_storage(prefix, {})
