"""A real S3 API on loopback for tests: moto's server mode (PyPI ``moto[server]``), one per test session.

``.ci/run`` may start one for the whole run and export ``CRUCIBLE_TEST_S3_ENDPOINT``; otherwise the first test
that asks starts ``moto.server`` on a free port of 127.0.0.1 and stops it (by its pid) at the end of the session.
:func:`s3_store` gives each test a fresh bucket and points Beam's ``FileSystems`` and boto3 at the server through
the ``AWS_*`` environment variables (what a user of ``crucible stats --out s3://...`` sets too).

Use in a test module: ``s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store`` (the fixtures).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

ENV_ENDPOINT = "CRUCIBLE_TEST_S3_ENDPOINT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout_s: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_server() -> tuple[subprocess.Popen, str]:
    """``python -m moto.server`` on a free loopback port: (process, endpoint URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url)
    except OSError:
        proc.kill()
        raise
    return proc, url


def client(endpoint: str):
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                          aws_access_key_id="test", aws_secret_access_key="test")


def point_env_at(endpoint: str, setenv) -> None:
    """The environment a user sets for an S3-compatible endpoint (boto3 reads it; Beam's S3 client is boto3)."""
    for k, v in {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                 "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        setenv(k, v)


def reset_filesystems() -> None:
    """Forget FileSystems options a pipeline left behind, so the next call reads the environment again."""
    from apache_beam.io.filesystems import FileSystems

    from crucible.pipelines.store import fsio

    FileSystems._pipeline_options = None
    fsio._S3.clear()


@pytest.fixture(scope="session")
def s3_endpoint():
    pytest.importorskip("moto")
    pytest.importorskip("boto3")
    given = os.environ.get(ENV_ENDPOINT)
    if given:
        wait_up(given, 10)
        yield given
        return
    proc, url = start_server()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_store(s3_endpoint, monkeypatch):
    """``s3://<fresh bucket>/store``, with the environment pointed at the server."""
    point_env_at(s3_endpoint, monkeypatch.setenv)
    reset_filesystems()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client(s3_endpoint).create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/store"
    reset_filesystems()


def objects(endpoint: str, url: str) -> dict[str, bytes]:
    """Every object under ``url`` (``s3://bucket/prefix``): key relative to the prefix -> bytes."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    c = client(endpoint)
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix) + 1:]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def put(endpoint: str, url: str, data: bytes) -> None:
    bucket, _, key = url[len("s3://"):].partition("/")
    client(endpoint).put_object(Bucket=bucket, Key=key, Body=data)
