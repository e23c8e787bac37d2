"""What the loader, verify and the shard cache refuse to trust: manifest paths leaving the build (local and
remote, symlinks too), planted or stale cache files, someone else's cache directory, an edited manifest;
and that a loader state resumes on a copy of the build elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from gristmill.errors import BuildError
from gristmill.shards.loader import ShardStream
from gristmill.shards.manifest import read_manifest
from gristmill.shards.verify import verify_build

KWARGS = dict(micro_batch_tokens=64, seed=3, shuffle_block_rows=4)


def _batches(stream: ShardStream) -> list[dict]:
    try:
        return list(stream)
    finally:
        stream.close()


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in x:
            assert np.array_equal(x[key], y[key]) if isinstance(x[key], np.ndarray) else x[key] == y[key], key


def _point_first_shard_at(root: str, path: str) -> None:
    """Rewrite the manifest so stage 0's first shard has `path` (content hash recomputed, as an attacker
    would)."""
    file = Path(root) / "manifest.json"
    data = json.loads(file.read_text())
    data["stages"][0]["shards"][0]["path"] = path
    if "content_hash" in data:
        from gristmill.shards.manifest import content_hash_of

        data["content_hash"] = content_hash_of(data)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "bad",
    [
        "../outside/stolen.arrow",
        "../../../../etc/passwd",
        "/etc/passwd",
        "s1-16/../../outside/stolen.arrow",
        "./s1-16/shard-00000.arrow",
        "s1-16//shard-00000.arrow",
        "C:\\shard.arrow",
    ],
)
def test_check_relative_refuses_paths_that_leave_the_build(bad):
    from gristmill.shards.paths import check_relative

    with pytest.raises(ValueError, match=r"absolute|normalised|backslash"):
        check_relative(bad)


def test_a_shard_outside_the_build_is_refused_by_loader_and_verify(stream_build_copy, tmp_path):
    root = Path(stream_build_copy.root)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / "s1-16" / "shard-00000.arrow", outside / "stolen.arrow")  # same bytes, same xxh3
    _point_first_shard_at(str(root), "../outside/stolen.arrow")
    with pytest.raises(BuildError, match="not normalised") as err:
        _batches(ShardStream(str(root), **KWARGS))
    assert err.value.path.endswith("manifest.json")
    with pytest.raises(BuildError, match="not normalised"):
        verify_build(str(root))
    _point_first_shard_at(str(root), "../../../../etc/passwd")
    with pytest.raises(BuildError, match="not normalised"):
        read_manifest(str(root))


def test_a_symlink_out_of_the_build_is_refused(stream_build_copy, tmp_path):
    root = Path(stream_build_copy.root)
    shard = root / "s1-16" / "shard-00000.arrow"
    outside = tmp_path / "elsewhere.arrow"
    shutil.move(shard, outside)
    shard.symlink_to(outside)  # the checksum still matches: only the path gives it away
    with pytest.raises(BuildError, match="outside") as err:
        _batches(ShardStream(str(root), **KWARGS))
    assert err.value.where == "s1-16/shard-00000.arrow"
    report = verify_build(str(root))
    bad = {s.path: s.problems for s in report.shards if not s.ok}
    assert "outside" in bad["s1-16/shard-00000.arrow"][0]


def test_a_symlinked_stage_directory_out_of_the_build_is_refused(stream_build_copy, tmp_path):
    root = Path(stream_build_copy.root)
    shutil.move(root / "s2-32", tmp_path / "s2-32")
    (root / "s2-32").symlink_to(tmp_path / "s2-32", target_is_directory=True)
    with pytest.raises(BuildError, match="outside"):
        _batches(ShardStream(str(root), **KWARGS))


def test_an_edited_manifest_is_refused_by_the_loader(stream_build_copy):
    file = Path(stream_build_copy.root) / "manifest.json"
    data = json.loads(file.read_text())
    data["stages"][0]["rows"] += 1  # the hash is left as it was
    file.write_text(json.dumps(data))
    with pytest.raises(BuildError, match="content hashes to") as err:
        ShardStream(stream_build_copy.root, **KWARGS)
    assert err.value.where == "content_hash"


def test_a_remote_manifest_cannot_send_the_cache_outside_itself(stream_build_copy, stream_s3, tmp_path):
    root = stream_build_copy.root
    _point_first_shard_at(root, "../../escaped.arrow")
    url, options = stream_s3.upload(root, "traversal")
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(BuildError, match="not normalised"):
        _batches(ShardStream(url, storage_options=options, cache_dir=str(cache), **KWARGS))
    assert not list(tmp_path.rglob("escaped.arrow*"))
    _point_first_shard_at(root, "/tmp/absolute.arrow")
    url, options = stream_s3.upload(root, "absolute")
    with pytest.raises(BuildError, match="absolute"):
        _batches(ShardStream(url, storage_options=options, cache_dir=str(cache), **KWARGS))
    assert not os.path.exists("/tmp/absolute.arrow")


def test_a_planted_cache_file_is_replaced_by_the_real_shard(stream_build, stream_s3, tmp_path):
    url, options = stream_s3.upload(stream_build.root, "planted")
    local = _batches(ShardStream(stream_build.root, **KWARGS))
    remote = dict(storage_options=options, cache_dir=str(tmp_path / "cache"), **KWARGS)
    _same(local, _batches(ShardStream(url, **remote)))
    cached = sorted(p for p in (tmp_path / "cache").rglob("shard-*") if p.is_file())
    assert cached
    real = {p: p.read_bytes() for p in cached}
    for path in cached:  # files of the right names and sizes that the manifest did not make
        forged = bytearray(real[path])
        forged[len(forged) // 2] ^= 0x01
        path.write_bytes(bytes(forged))
    _same(local, _batches(ShardStream(url, **remote)))
    assert {p: p.read_bytes() for p in cached} == real  # each re-fetched over the planted copy


def test_the_cache_is_private_and_defaults_to_the_users_cache_dir(monkeypatch, tmp_path):
    from gristmill.shards.cache import CACHE_DIR_ENV, ShardCache, default_cache_root

    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == str(tmp_path / "xdg" / "gristmill" / "shards")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    cache = ShardCache("s3://bucket/build")
    assert cache.root == str(tmp_path / "mine")
    cache.prepare()
    for folder in (cache.root, cache.directory):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    ShardCache("s3://bucket/build", str(loose)).prepare()
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_cache_directory_of_another_user_is_refused(tmp_path):
    from gristmill.shards.cache import ShardCache

    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(BuildError, match="belongs to user id 65534"):
        ShardCache("s3://bucket/build", str(theirs)).prepare()


def test_a_symlinked_cache_directory_is_refused(tmp_path):
    from gristmill.shards.cache import ShardCache

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(BuildError, match="symlink"):
        ShardCache("s3://bucket/build", str(tmp_path / "link")).prepare()


def test_the_cache_evicts_to_its_size(stream_build, stream_s3, tmp_path):
    url, options = stream_s3.upload(stream_build.root, "evict")
    manifest = read_manifest(stream_build.root)
    largest = max(s.bytes for stage in manifest.stages for s in stage.shards)
    limit = 2 * largest
    stream = ShardStream(
        url, storage_options=options, cache_dir=str(tmp_path / "cache"), cache_max_bytes=limit, **KWARGS
    )
    _same(_batches(ShardStream(stream_build.root, **KWARGS)), _batches(stream))
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert 1 <= len(cached) <= 2 and sum(p.stat().st_size for p in cached) <= limit


def test_a_cached_shard_evicted_before_it_is_opened_is_fetched_again(stream_build, stream_s3, tmp_path):
    from gristmill.shards.source import ShardSource

    url, options = stream_s3.upload(stream_build.root, "evicted")
    stage = read_manifest(stream_build.root).stages[0]
    entry = stage.shards[0]
    source = ShardSource(url, storage_options=options, cache_dir=str(tmp_path / "cache"))
    fetch, calls = source._local_copy, []

    def fetch_then_evict(e):  # as a read-ahead download's eviction would, between lookup and open
        path = fetch(e)
        calls.append(path)
        if len(calls) == 1:
            os.unlink(path)
        return path

    source._local_copy = fetch_then_evict
    rows = source.open(entry, stage.seq_len)
    assert len(calls) == 2 and os.path.isfile(calls[-1])
    local = ShardSource(stream_build.root).open(entry, stage.seq_len)
    ours, theirs = (c.tokens for c in rows.chunks), (c.tokens for c in local.chunks)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_a_state_resumes_on_a_moved_copy_and_on_s3(stream_build, stream_s3, tmp_path):
    first = ShardStream(stream_build.root, **KWARGS)
    state = first.state_at(3)
    expected = _batches(first)[3:]
    moved = tmp_path / "moved"
    shutil.copytree(stream_build.root, moved)
    url, options = stream_s3.upload(str(moved), "moved")
    for build, extra in (
        (str(moved), {}),
        (url, {"storage_options": options, "cache_dir": str(tmp_path / "cache")}),
    ):
        stream = ShardStream(build, **KWARGS, **extra)
        stream.load_state_dict(state)
        _same(expected, _batches(stream))


def test_a_remote_build_is_cached_under_the_users_cache_dir_by_default(
    stream_build, stream_s3, monkeypatch, tmp_path
):
    monkeypatch.delenv("GRISTMILL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    url, options = stream_s3.upload(stream_build.root, "default-cache")
    _batches(ShardStream(url, storage_options=options, **KWARGS))
    root = tmp_path / "xdg" / "gristmill" / "shards"
    cached = [p for p in root.rglob("shard-*") if p.is_file()]
    assert cached
    for folder in [root, *root.iterdir()]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
