import pytest


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory):
    """A store written by the real sample Beam pipeline: 12 items, every 5th question invalid."""
    from tests.support.sample_pipeline import run

    out = tmp_path_factory.mktemp("store")
    run(str(out), 12, bad_every=5, commit_every=4)
    return out


@pytest.fixture(scope="session")
def default_kg_cache(tmp_path_factory):
    """A cache folder (for ``CRUCIBLE_CACHE_DIR``) holding the default embedded knowledge graph, built once per
    session (about 20 s): the tests that only read it (judge commands) share it instead of each building it."""
    from crucible.pipelines.browse.api import load_kg
    from crucible.pipelines.config import load_config

    cache = tmp_path_factory.mktemp("kg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRUCIBLE_CACHE_DIR", str(cache))
        load_kg(load_config("browse", []))
    return cache
