"""Sources on s3://, read through fsspec from a local S3 server (moto) started by the test on 127.0.0.1."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gristmill.errors import InputError
from gristmill.pipelines.readers import source_files
from gristmill.pipelines.recipe import SourceConfig

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

BUCKET = "corpora"


@pytest.fixture(scope="module")
def local_s3(bench_module):
    """bench/local_s3.py: the moto server and its client."""
    return bench_module("local_s3")


@pytest.fixture(scope="module")
def s3_endpoint(local_s3):
    """A moto S3 server on a free local port, for this module."""
    with local_s3.local_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(local_s3, s3_endpoint, files, monkeypatch):
    """An emptied bucket holding a SlimPajama chunk and a Starcoderdata file; returns the storage options."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    server = local_s3.LocalS3(s3_endpoint)
    server.create_bucket(BUCKET)
    client = server.client()
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    records = [{"text": f"doc {i}", "meta": {"redpajama_set_name": "RedPajamaC4"}} for i in range(3)]
    client.put_object(
        Bucket=BUCKET,
        Key="slimpajama/train/chunk1/example_train_0.jsonl.zst",
        Body=files.zstd(files.jsonl(records), 2),
    )
    client.put_object(
        Bucket=BUCKET,
        Key="starcoderdata/python/train-00000.parquet",
        Body=files.parquet(pa.table({"content": ["<reponame>a/b\nprint(1)\n"], "id": ["7"]})),
    )
    return {**server.storage_options, "anon": False}


def test_slimpajama_from_s3_has_the_same_ids_as_a_local_copy(bucket, files):
    source = SourceConfig(
        name="slimpajama",
        format="slimpajama",
        paths=[f"s3://{BUCKET}/slimpajama/**/*.jsonl.zst"],
        storage_options=bucket,
    )
    paths = source_files(source)
    assert paths == [f"s3://{BUCKET}/slimpajama/train/chunk1/example_train_0.jsonl.zst"]
    docs, bad = files.read(source, paths[0])
    assert not bad
    assert [(d.id, d.text, d.metadata["subset"]) for d in docs] == [
        (f"slimpajama/train/chunk1/example_train_0.jsonl.zst:{i + 1}", f"doc {i}", "RedPajamaC4")
        for i in range(3)
    ]


def test_starcoder_parquet_from_s3(bucket, files):
    source = SourceConfig(
        name="starcoderdata",
        format="starcoder",
        paths=[f"s3://{BUCKET}/starcoderdata"],
        storage_options=bucket,
    )
    [path] = source_files(source)
    docs, bad = files.read(source, path)
    assert not bad
    assert [(d.id, d.text, d.metadata["subset"]) for d in docs] == [
        ("starcoderdata/python/7", "print(1)\n", "python")
    ]


def test_missing_s3_prefix_names_it(bucket):
    source = SourceConfig(
        name="pile", format="pile", paths=[f"s3://{BUCKET}/pile/*.jsonl.zst"], storage_options=bucket
    )
    with pytest.raises(InputError, match=f"s3://{BUCKET}/pile"):
        source_files(source)
