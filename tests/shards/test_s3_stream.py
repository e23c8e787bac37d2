"""Streaming from s3:// (moto's server on 127.0.0.1) gives the local batches; bad remote shards are named."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from gristmill.errors import BuildError
from gristmill.shards.loader import ShardStream

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def upload(endpoint: str, root: str, bucket: str) -> tuple[str, dict]:
    """Upload a build directory to a new bucket; return its URL and the storage options to read it."""
    client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
    client.create_bucket(Bucket=bucket)
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            client.upload_file(path, bucket, "build/" + os.path.relpath(path, root))
    options = {"key": "testing", "secret": "testing", "endpoint_url": endpoint,
               "client_kwargs": {"region_name": "us-east-1"}}
    return f"s3://{bucket}/build", options


def test_s3_gives_the_local_batches(stream_build, s3_endpoint, tmp_path):
    url, options = upload(s3_endpoint, stream_build.root, "same")
    kwargs = dict(tokens_per_batch=64, rank=1, world_size=2, seed=3, shuffle_block_rows=4)
    local = list(ShardStream(stream_build.root, **kwargs))
    remote_stream = ShardStream(url, storage_options=options, cache_dir=str(tmp_path / "cache"), **kwargs)
    remote = list(remote_stream)
    assert len(remote) == len(local)
    for a, b in zip(local, remote):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key]
    cached = sorted(os.listdir(tmp_path / "cache" / "s1-16"))
    assert len(cached) == 3 and all(name.startswith("shard-") for name in cached)  # the empty one is unread
    remote_stream.close()


def test_corrupt_remote_shard_is_named(stream_build_copy, s3_endpoint, tmp_path):
    path = Path(stream_build_copy.root) / "s1-16" / "shard-00003.arrow"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    url, options = upload(s3_endpoint, stream_build_copy.root, "corrupt")
    stream = ShardStream(url, tokens_per_batch=64, storage_options=options, cache_dir=str(tmp_path / "c"))
    with pytest.raises(BuildError, match="checksum mismatch") as err:
        list(stream)
    assert err.value.path == url + "/s1-16/shard-00003.arrow"
    assert not (tmp_path / "c" / "s1-16" / "shard-00003.arrow").exists()  # nothing unverified is cached


def test_missing_remote_shard_is_named(stream_build_copy, s3_endpoint, tmp_path):
    os.remove(os.path.join(stream_build_copy.root, "s2-32", "shard-00000.arrow"))
    url, options = upload(s3_endpoint, stream_build_copy.root, "missing")
    stream = ShardStream(url, tokens_per_batch=64, storage_options=options, cache_dir=str(tmp_path / "c"))
    with pytest.raises(BuildError, match="missing") as err:
        list(stream)
    assert err.value.path == url + "/s2-32/shard-00000.arrow"
