"""A local S3 server (moto, on a free 127.0.0.1 port) for tests and benches of object-storage paths."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
