"""Streaming from s3:// (moto's server on 127.0.0.1) gives the local batches; bad remote shards are named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gristmill.errors import BuildError
from gristmill.shards.loader import ShardStream


@pytest.fixture
def upload(stream_s3):
    """Upload a build directory to a new bucket; return its URL and the storage options to read it."""
    return stream_s3.upload


def test_s3_gives_the_local_batches(stream_build, upload, tmp_path):
    url, options = upload(stream_build.root, "same")
    kwargs = dict(micro_batch_tokens=64, rank=1, world_size=2, seed=3, shuffle_block_rows=4)
    local = list(ShardStream(stream_build.root, **kwargs))
    remote_stream = ShardStream(url, storage_options=options, cache_dir=str(tmp_path / "cache"), **kwargs)
    remote = list(remote_stream)
    assert len(remote) == len(local)
    for a, b in zip(local, remote):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key]
    cached = sorted(os.listdir(Path(remote_stream.source.cache.directory) / "s1-16"))
    assert len(cached) == 3 and all(name.startswith("shard-") for name in cached)  # the empty one is unread
    remote_stream.close()


def test_corrupt_remote_shard_is_named(stream_build_copy, upload, tmp_path):
    path = Path(stream_build_copy.root) / "s1-16" / "shard-00003.arrow"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    url, options = upload(stream_build_copy.root, "corrupt")
    stream = ShardStream(url, micro_batch_tokens=64, storage_options=options, cache_dir=str(tmp_path / "c"))
    with pytest.raises(BuildError, match="checksum mismatch") as err:
        list(stream)
    assert err.value.path == url + "/s1-16/shard-00003.arrow"
    assert not [p for p in (tmp_path / "c").rglob("shard-00003*")]  # nothing unverified is cached


def test_missing_remote_shard_is_named(stream_build_copy, upload, tmp_path):
    os.remove(os.path.join(stream_build_copy.root, "s2-32", "shard-00000.arrow"))
    url, options = upload(stream_build_copy.root, "missing")
    stream = ShardStream(url, micro_batch_tokens=64, storage_options=options, cache_dir=str(tmp_path / "c"))
    with pytest.raises(BuildError, match="missing") as err:
        list(stream)
    assert err.value.path == url + "/s2-32/shard-00000.arrow"
