"""A local S3 server (moto, on a free 127.0.0.1 port) for tests and benches of object-storage paths."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
KEY = SECRET = "testing"  # moto accepts any credentials


@contextlib.contextmanager
def local_s3_server() -> Iterator[str]:
    """Yield the endpoint URL of a moto S3 server on a free port of 127.0.0.1; stop it on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class LocalS3:
    """A local S3 server's endpoint: a boto3 client for it, and the fsspec storage options that reach it."""

    endpoint: str

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec (s3fs) options for paths on this server."""
        return {
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION},
        }

    def client(self) -> Any:
        """Return a boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

    def create_bucket(self, bucket: str) -> None:
        """Create `bucket` (an existing one is kept)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)

    def upload_tree(self, root: str | os.PathLike, bucket: str, prefix: str = "") -> str:
        """Copy every file under `root` to s3://bucket/prefix/ (making the bucket); return that URL."""
        self.create_bucket(bucket)
        client = self.client()
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                path = os.path.join(folder, name)
                client.upload_file(path, bucket, base + os.path.relpath(path, root).replace(os.sep, "/"))
        return f"s3://{bucket}/{base}".rstrip("/")
