"""Shared session fixtures for SWE Docker tests: toolz 0.12.0 sdist -> bare mirror + fixture instance."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data" / "swe"


@pytest.fixture(scope="session")
def swe_settings():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits

    s = settings_from_config(load_config("swe", []).sandbox)
    return replace(s, limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))


@pytest.fixture(scope="session")
def toolz_checkout(swe_settings):
    from crucible.sandbox.sources import from_sdist

    return from_sdist("toolz==0.12.0", swe_settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mirrors")


@pytest.fixture(scope="session")
def toolz_instance(toolz_checkout, mirror_root):
    from crucible.pipelines.swe.mirror import fixture_instances

    spec = json.loads((DATA / "toolz_take_nth.json").read_text())
    return fixture_instances(spec, toolz_checkout, mirror_root, "pytoolz__toolz-take_nth")


@pytest.fixture(scope="session")
def swe_ctx(docker_client, swe_settings, mirror_root, tmp_path_factory):
    from crucible.pipelines.swe.envs import ValidateContext
    from crucible.pipelines.swe.mirror import mirror_template

    s = replace(swe_settings, repo_url_template=mirror_template(mirror_root))
    return ValidateContext(client=docker_client, settings=s, workdir=tmp_path_factory.mktemp("swe-work"))
