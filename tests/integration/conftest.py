"""Fixtures shared by the integration tests."""

import pytest


@pytest.fixture(scope="session")
def docker_client():
    """A client of a running Docker engine (started as root when missing); the test fails, with the reason,
    when there is none: integration tests never skip silently."""
    from crucible.sandbox.engine import EngineUnavailable, ensure_engine

    try:
        client, _ = ensure_engine(allow_start=True)
    except EngineUnavailable as exc:
        pytest.fail(f"integration tests need Docker: {exc}")
    return client
