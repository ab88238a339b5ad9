"""Env reuse against a real engine: a tiny repo at two "commits" (v1 needs wheel A and C, v2 needs A and B;
local wheels in the tree, so no index serves them). v2's env is built on top of v1's and its tests pass;
with ``sandbox.reuse_envs`` off it is built from the base. Timings are printed, not asserted."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.wheels import make_wheel

pytestmark = [pytest.mark.integration, pytest.mark.docker]

NAME = "reusedemo-it"


def write_commit(root: Path, deps: list[str]) -> Path:
    wheels = {d: make_wheel(root / "wheels", f"crucible-tiny-{d}", "1.0",
                            {f"crucible_tiny_{d}/__init__.py": f"VALUE = {d!r}\n"}) for d in deps}
    files = {
        "pyproject.toml": f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "reusedemo"
            version = "1.0"
            requires-python = ">=3.9"
            dependencies = {[f"crucible-tiny-{d}" for d in deps]!r}
            [project.optional-dependencies]
            tests = ["pytest"]
            [tool.setuptools]
            packages = ["reusedemo"]
        """,
        "requirements.txt": "".join(f"wheels/{w.name}\n" for w in wheels.values()),
        "reusedemo/__init__.py": "".join(f"import crucible_tiny_{d}\n" for d in deps)
        + f"VALUES = [{', '.join(f'crucible_tiny_{d}.VALUE' for d in deps)}]\n",
        "tests/test_demo.py": f"""
            import reusedemo

            def test_values():
                assert reusedemo.VALUES == {deps!r}
        """,
    }
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    return root


def _remove_demo_images(client):
    imgs = client.images.list(filters={"label": [f"crucible.name={NAME}"]})
    for img in sorted(imgs, key=lambda i: i.attrs.get("Created", ""), reverse=True):  # children first
        try:
            client.images.remove(img.id, force=True)
        except Exception:  # already gone with a child
            pass


def _freeze(client, image: str) -> set[str]:
    out = client.containers.run(image, ["pip", "list", "--format=freeze", "--exclude-editable"], remove=True, network_mode="none")
    return {ln.split("==")[0].lower() for ln in out.decode().split()}


@pytest.fixture
def reuse_settings():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits

    s = settings_from_config(load_config("defaults", ["sandbox.reuse_envs=true"]).sandbox)
    assert s.reuse_envs is True  # switched on (opt-in: off by default)
    return replace(s, limits=Limits(cpus=1, memory_mb=1024, pids=256, timeout_s=120))


def test_new_commit_env_is_built_on_the_earlier_one_and_passes(docker_client, reuse_settings, tmp_path):
    from crucible.sandbox.api import build_env
    from crucible.sandbox.images import base_dists
    from crucible.sandbox.reuse import carried_packages
    from crucible.sandbox.testrun import run_tests

    v1 = write_commit(tmp_path / "v1", ["a", "c"])
    v2 = write_commit(tmp_path / "v2", ["a", "b"])
    _remove_demo_images(docker_client)
    try:
        spec1, res1 = build_env(docker_client, reuse_settings, v1, NAME, date="2026-10-01")
        assert not res1["cache_hit"] and res1["reused_from"] is None  # nothing earlier of this repo
        assert docker_client.images.get(spec1.image).labels["crucible.source_date"] == "2026-10-01"

        spec2, res2 = build_env(docker_client, reuse_settings, v2, NAME, date="2026-11-01")
        assert spec2.key != spec1.key and res2["reused_from"] == spec1.image and res2["reuse_failed"] is None
        labels = docker_client.images.get(spec2.image).labels
        assert labels["crucible.reused_from"] == spec1.image and labels["crucible.reuse_depth"] == "1"
        assert labels["crucible.pip_check"] == "ok"
        # what is there only because v1 had it, on the result and the image
        assert res2["carried"] == ["crucible-tiny-c"] and json.loads(labels["crucible.carried"]) == ["crucible-tiny-c"]
        # pip found A (and pytest) already there and installed only what v2 adds
        assert "crucible-tiny-a is already installed" in res2["log"], res2["log"][-3000:]
        assert "Successfully installed crucible-tiny-b-1.0" in res2["log"]
        run2 = run_tests(docker_client, spec2.image, v2, spec2.recipe, limits=reuse_settings.limits)
        assert run2.status == "ok" and run2.tests == {"tests/test_demo.py::test_values": "PASSED"}, run2.log_tail
        reused_pkgs = _freeze(docker_client, spec2.image)

        # switched off: the same spec from the base
        off = replace(reuse_settings, reuse_envs=False)
        spec3, res3 = build_env(docker_client, off, v2, NAME, force=True, date="2026-11-01")
        assert spec3.key == spec2.key and res3["reused_from"] is None and not res3["cache_hit"]
        assert docker_client.images.get(spec3.image).labels["crucible.reused_from"] == ""
        assert "crucible-tiny-a is already installed" not in res3["log"]
        assert res3["carried"] == [] and carried_packages(res3["log"], base_dists(spec3.base)) == []
        run3 = run_tests(docker_client, spec3.image, v2, spec3.recipe, limits=reuse_settings.limits)
        assert run3.status == "ok" and run3.tests == run2.tests
        fresh_pkgs = _freeze(docker_client, spec3.image)
        # the trade-off: the env on top keeps v1's C, which v2 no longer needs; the fresh one has none of it
        assert reused_pkgs - fresh_pkgs == {"crucible-tiny-c"} and "crucible-tiny-c" not in fresh_pkgs
        print(f"\nv1 fresh {res1['seconds']:.1f} s; v2 on top of v1 {res2['seconds']:.1f} s; "
              f"v2 from the base {res3['seconds']:.1f} s")
    finally:
        _remove_demo_images(docker_client)
