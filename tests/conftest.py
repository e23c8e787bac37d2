"""Fixtures shared by every test folder: one embedded local Ray per test session, and the sample corpus."""

from __future__ import annotations

import os

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
    from gristmill.sample.s3 import LocalS3, local_s3_server
    from gristmill.storage import register_storage

    with local_s3_server() as endpoint:
        server = LocalS3(endpoint)
        server.create_bucket("store")
        prefix = "s3://store/t"
        register_storage(prefix, server.storage_options)
        try:
            yield prefix
        finally:
            register_storage(prefix, {})
