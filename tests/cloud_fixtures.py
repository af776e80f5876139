"""Session fixtures for scans beyond one machine: one S3-compatible server (moto, in server mode, on a
free port) and one local Ray, each started on first use and shared by every test of the session."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint of a moto S3 server, with ``AWS_ENDPOINT_URL`` and fake credentials set for the session."""
    server_module = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        yield endpoint
    server.stop()


@pytest.fixture()
def s3(s3_server: str):
    """A boto3 client of the session's server (fsspec's caches are cleared, so each test lists afresh)."""
    boto3 = pytest.importorskip("boto3")
    import fsspec

    fsspec.filesystem("s3").invalidate_cache()
    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture(scope="session")
def ray_local(s3_server: str) -> Iterator[object]:
    """One local Ray of two CPUs for the session, started after the S3 environment so its workers inherit it."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
