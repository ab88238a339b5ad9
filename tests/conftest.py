import pytest


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory):
    """A store written by the real sample Beam pipeline: 12 items, every 5th question invalid."""
    from tests.support.sample_pipeline import run

    out = tmp_path_factory.mktemp("store")
    run(str(out), 12, bad_every=5, commit_every=4)
    return out
