"""Env reuse (crucible.sandbox.reuse): the choice of the env a new commit's env is built on top of, and the
fallback to a build from the base (no Docker)."""

import json

import pytest

from crucible.sandbox.envbuild import parse_pip_check, pip_check_script
from crucible.sandbox.images import BaseSpec, BuildError, EnvSpec
from crucible.sandbox.reuse import REUSE_MAX_DEPTH, choose_parent, compatible, env_candidates, source_day
from tests.support.fake_docker import FakeDockerClient, FakeImage

RECIPE = {"python": "3.11", "apt_packages": [], "as_of": "2023-06-01T23:59:59", "install": []}


def cand(image, date, *, name="demo", base="b311", key=None, created="2026-01-01T00:00:00Z", recipe=None,
         **extra):
    labels = {"crucible.kind": "env", "crucible.name": name, "crucible.base": base,
              "crucible.key": key or image, "crucible.source_date": date or "",
              "crucible.spec": json.dumps(recipe if recipe is not None else {**RECIPE, "as_of": f"{date}T23:59:59"}),
              **extra}
    return {"image": image, "created": created, "labels": labels}


def pick(cands, date="2023-06-01", recipe=RECIPE, **kw):
    p = choose_parent(cands, name="demo", base_key="b311", key="new", recipe=recipe, date=date, **kw)
    return p and p["image"]


def test_nearest_earlier_env_of_the_same_repo_and_base_is_chosen():
    cands = [cand("v1", "2023-01-10"), cand("v3", "2023-05-20"), cand("v2", "2023-03-01"),
             cand("later", "2023-07-01"), cand("other-repo", "2023-05-30", name="other"),
             cand("py39", "2023-05-31", base="b39", recipe={**RECIPE, "python": "3.9"})]
    assert pick(cands) == "v3"
    # the same day counts as earlier (a repair rung's rebuild, two commits of one day)
    assert pick(cands + [cand("same-day", "2023-06-01")]) == "same-day"


def test_ties_on_the_day_go_to_the_newest_build():
    cands = [cand("old-build", "2023-05-20", created="2026-01-01T00:00:00Z"),
             cand("new-build", "2023-05-20", created="2026-02-01T00:00:00Z")]
    assert pick(cands) == "new-build"
    assert pick(list(reversed(cands))) == "new-build"


def test_none_when_only_later_envs_other_pythons_or_other_repos():
    assert pick([cand("later", "2023-07-01"), cand("much-later", "2024-01-01")]) is None
    assert pick([cand("py39", "2023-01-01", base="b39", recipe={**RECIPE, "python": "3.9"})]) is None
    # same base key but a recipe of another Python (an override): still not a parent
    assert pick([cand("odd", "2023-01-01", recipe={**RECIPE, "python": "3.9", "as_of": "2023-01-01"})]) is None
    assert pick([cand("x", "2023-01-01", name="other")]) is None
    assert pick([]) is None


def test_no_date_no_parent_and_own_key_never_its_own_parent():
    assert pick([cand("v1", "2023-01-10")], date=None) is None
    assert pick([cand("v1", None)]) is None  # a parent without a date cannot be ordered
    assert pick([cand("v1", "2023-01-10", key="new")]) is None


def test_switched_off_builds_from_the_base():
    cands = [cand("v1", "2023-01-10")]
    assert pick(cands) == "v1"
    assert pick(cands, enabled=False) is None


def test_as_of_cutoff_never_lets_in_a_later_release():
    # the new recipe resolves as of 2023-06-01: a parent resolved against today's index may hold newer releases
    assert pick([cand("today", "2023-05-01", recipe={**RECIPE, "as_of": None})]) is None
    assert pick([cand("cut-later", "2023-05-01", recipe={**RECIPE, "as_of": "2023-07-01T00:00:00"})]) is None
    assert pick([cand("cut-earlier", "2023-05-01")]) == "cut-earlier"
    # today's index for the new one: only a parent of today's index too
    today = {**RECIPE, "as_of": None}
    assert pick([cand("cut", "2023-05-01")], recipe=today) is None
    assert pick([cand("today", "2023-05-01", recipe=today)], recipe=today) == "today"
    assert not compatible({**RECIPE, "apt_packages": ["libxml2-dev"]}, RECIPE)


def test_failed_pip_check_and_deep_chains_are_not_parents():
    assert pick([cand("broken", "2023-05-01", **{"crucible.pip_check": "failed"})]) is None
    assert pick([cand("checked", "2023-05-01", **{"crucible.pip_check": "ok"})]) == "checked"
    deep = cand("deep", "2023-05-01", **{"crucible.reuse_depth": str(REUSE_MAX_DEPTH)})
    assert pick([deep]) is None
    shallow = cand("shallow", "2023-04-01", **{"crucible.reuse_depth": str(REUSE_MAX_DEPTH - 1)})
    assert pick([deep, shallow]) == "shallow"


def test_source_day_of_images_made_before_the_label():
    labels = {"crucible.spec": json.dumps({"sources": {"source_date": "2021-05-14"}})}
    assert source_day(labels) == "2021-05-14"
    assert source_day({"crucible.source_date": "2022-01-05T10:00:00"}) == "2022-01-05"
    assert source_day({"crucible.spec": "not json"}) is None


def test_env_candidates_skip_untagged_images():
    imgs = [FakeImage(tags=["crucible/env-demo:py3.11-aa"], labels={"crucible.kind": "env", "crucible.name": "demo"},
                      id="sha256:a", attrs={"Created": "2026-01-01T00:00:00Z"}),
            FakeImage(tags=[], labels={"crucible.kind": "env", "crucible.name": "demo"}, id="sha256:b"),
            FakeImage(tags=["crucible/env-x:py3.11-bb"], labels={"crucible.kind": "env", "crucible.name": "x"})]
    got = env_candidates(FakeDockerClient(imgs), "demo")
    assert [c["image"] for c in got] == ["crucible/env-demo:py3.11-aa"] and got[0]["id"] == "sha256:a"


@pytest.mark.parametrize(("pip_says", "strict_rc", "verdict"), [
    ("No broken requirements found.", 0, "ok"),
    # the base's own wheel, upgraded to today's release, against an env resolved as of 2021 (Flask 2.0.1)
    ("wheel 0.48.0 has requirement packaging>=24.0, but you have packaging 20.9.", 0, "ok"),
    ("wheel 0.48.0 has requirement packaging>=24.0, but you have packaging 20.9.\n"
     "Flask 1.1.4 has requirement Jinja2<3.0, but you have jinja2 3.0.1.", 4, "failed"),
    ("oldtool 1.0 requires six, which is not installed.", 4, "failed"),
])
def test_pip_check_fails_only_a_build_on_top_and_not_for_the_base_packages(tmp_path, pip_says, strict_rc, verdict):
    import os
    import subprocess

    fake = tmp_path / "pip"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{pip_says}\nEOF\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for strict, want_rc in ((True, strict_rc), (False, 0)):
        proc = subprocess.run(["bash", "-c", pip_check_script(strict)], env=env, capture_output=True, text=True)
        assert proc.returncode == want_rc and parse_pip_check(proc.stdout) == verdict, proc.stdout
    assert parse_pip_check("") == "unknown"


def _setup(monkeypatch, fail_on_parent: bool):
    import crucible.sandbox.envbuild as envbuild

    spec = EnvSpec(BaseSpec(python="3.11"), {**RECIPE}, {}, "demo")
    parent = FakeImage(tags=["crucible/env-demo:py3.11-old"], id="sha256:p",
                       labels=cand("x", "2023-05-01", key="old")["labels"], attrs={"Created": "2026-01-01T00:00:00Z"})
    parent.labels["crucible.base"] = spec.base.key
    client = FakeDockerClient([FakeImage(tags=[spec.base.image], labels={"crucible.kind": "base"}), parent])
    calls = []

    def fake_build(client, spec, repo_dir, ca, pip_env, timeout_s, date, parent):
        calls.append(parent and parent["image"])
        if parent is not None and fail_on_parent:
            raise BuildError("build step exited 4", "...\nERROR: demo 2.0 has requirement a>=2, but you have a 1.0")
        return ">>>>> crucible step package ok 0\n"

    monkeypatch.setattr(envbuild, "_build_env", fake_build)
    return envbuild, client, spec, calls


def test_ensure_env_builds_on_the_parent_and_names_it(monkeypatch, tmp_path):
    envbuild, client, spec, calls = _setup(monkeypatch, fail_on_parent=False)
    res = envbuild.ensure_env(client, spec, tmp_path, ca_bundle=None, date="2023-06-01", reuse=True)
    assert calls == ["crucible/env-demo:py3.11-old"]
    assert res["reused_from"] == "crucible/env-demo:py3.11-old" and res["reuse_failed"] is None
    assert not res["cache_hit"] and res["seconds"] >= 0
    # switched off: straight from the base
    calls.clear()
    res = envbuild.ensure_env(client, spec, tmp_path, ca_bundle=None, date="2023-06-01", reuse=False)
    assert calls == [None] and res["reused_from"] is None


def test_a_failed_install_on_top_falls_back_to_the_base_and_is_recorded(monkeypatch, tmp_path):
    envbuild, client, spec, calls = _setup(monkeypatch, fail_on_parent=True)
    res = envbuild.ensure_env(client, spec, tmp_path, ca_bundle=None, date="2023-06-01", reuse=True)
    assert calls == ["crucible/env-demo:py3.11-old", None]
    assert res["reused_from"] is None
    assert res["reuse_failed"].startswith("build step exited 4") and "has requirement a>=2" in res["reuse_failed"]


def test_settings_carry_the_switch():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config

    cfg = load_config("defaults", [])
    assert settings_from_config(cfg.sandbox, resolve_host=False).reuse_envs is False  # opt-in
    on = load_config("defaults", ["sandbox.reuse_envs=true"])
    assert settings_from_config(on.sandbox, resolve_host=False).reuse_envs is True


def test_unreadable_depth_label_is_not_a_parent():
    assert pick([cand("odd", "2023-05-01", **{"crucible.reuse_depth": "x"})]) is None


def _attempt(monkeypatch, tmp_path, *, reuse_envs: bool, reused_passes: bool):
    """``crucible.sandbox.repair.attempt`` with the builds and runs stubbed: the env on top of a parent passes or not,
    the one from the base passes."""
    from dataclasses import replace
    from types import SimpleNamespace

    import crucible.sandbox.api as api
    import crucible.sandbox.envbuild as envbuild
    import crucible.sandbox.testrun as testrun
    from crucible.sandbox.api import Settings
    from crucible.sandbox.repair import attempt

    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='demo')\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_demo.py").write_text("def test_x():\n    pass\n")
    builds, state = [], {}

    def fake_ensure_env(client, spec, tree, *, reuse=False, force=False, **kw):
        parent = "crucible/env-demo:py3.11-old" if reuse else None
        builds.append((reuse, force))
        state["on_parent"] = parent is not None
        return {"image": spec.image, "key": spec.key, "cache_hit": False, "reused_from": parent, "log": ""}

    def fake_run_tests(client, image, tree, recipe, **kw):
        ok = reused_passes or not state["on_parent"]
        return SimpleNamespace(tests={"tests/test_demo.py::test_x": "PASSED" if ok else "FAILED"},
                               counts={"PASSED": 1} if ok else {"FAILED": 1}, kind="", status="ok", reason="",
                               log_tail="E   ImportError: stale", trigger_lines=[], deciding_line="")

    monkeypatch.setattr(api, "build_base", lambda *a, **k: {})
    monkeypatch.setattr(envbuild, "ensure_env", fake_ensure_env)
    monkeypatch.setattr(testrun, "run_tests", fake_run_tests)
    settings = replace(Settings(), reuse_envs=reuse_envs)
    return attempt(None, settings, tmp_path, "demo", date="2026-11-01", max_rungs=0), builds


def test_survey_rebuilds_from_the_base_when_the_env_on_top_fails(monkeypatch, tmp_path):
    res, builds = _attempt(monkeypatch, tmp_path, reuse_envs=True, reused_passes=False)
    assert builds == [(True, False), (False, True)]
    assert res["stage"] == "mostly_passing" and res["reuse_fallbacks"] == 1 and res["reused_from"] is None


def test_survey_keeps_a_passing_env_on_top(monkeypatch, tmp_path):
    res, builds = _attempt(monkeypatch, tmp_path, reuse_envs=True, reused_passes=True)
    assert builds == [(True, False)]
    assert res["stage"] == "mostly_passing" and res["reuse_fallbacks"] == 0
    assert res["reused_from"] == "crucible/env-demo:py3.11-old"


def test_survey_with_reuse_off_builds_from_the_base_only(monkeypatch, tmp_path):
    res, builds = _attempt(monkeypatch, tmp_path, reuse_envs=False, reused_passes=False)
    assert builds == [(False, False)] and res["reused_from"] is None and res["reuse_fallbacks"] == 0
    assert res["stage"] == "mostly_passing"  # the base-built env passes in this stub


CARRY_LOG = """\
>>>>> crucible step requirements:requirements.txt try 0
Processing ./wheels/crucible_tiny_a-1.0-py3-none-any.whl
crucible-tiny-a is already installed with the same version as the provided wheel. Use --force-reinstall to force an installation of the wheel.
Processing ./wheels/crucible_tiny_b-1.0-py3-none-any.whl
Installing collected packages: crucible-tiny-b
Successfully installed crucible-tiny-b-1.0
>>>>> crucible step package[tests] try 0
Obtaining file:///testbed
Requirement already satisfied: pytest in /opt/venv/lib/python3.11/site-packages (from reusedemo==1.0) (9.0.1)
Requirement already satisfied: iniconfig>=1 in /opt/venv/lib/python3.11/site-packages (from pytest) (2.3.0)
Collecting Pluggy<2,>=1.5 (from pytest)
Requirement already satisfied: packaging>=20 in /opt/venv/lib/python3.11/site-packages (from pytest) (25.0)
Successfully installed pluggy-1.6.0 reusedemo-1.0
>>>>> crucible freeze
>>>>> crucible pkg crucible-tiny-a @ file:///testbed/wheels/crucible_tiny_a-1.0-py3-none-any.whl#sha256=00
>>>>> crucible pkg crucible-tiny-b @ file:///testbed/wheels/crucible_tiny_b-1.0-py3-none-any.whl#sha256=01
>>>>> crucible pkg crucible_tiny_c @ file:///testbed/wheels/crucible_tiny_c-1.0-py3-none-any.whl#sha256=02
>>>>> crucible pkg iniconfig==2.3.0
>>>>> crucible pkg packaging==25.0
>>>>> crucible pkg pluggy==1.6.0
>>>>> crucible pkg pytest==9.0.1
>>>>> crucible pkg six==1.16.0
>>>>> crucible pkg wheel==0.48.0
"""


def test_carried_packages_are_those_no_pip_call_of_the_build_named():
    from crucible.sandbox.reuse import carried_packages

    assert carried_packages(CARRY_LOG, ("pip", "setuptools", "wheel")) == ["crucible-tiny-c", "six"]
    # without the base's own packages excluded, wheel (never resolved by the build) counts too
    assert "wheel" in carried_packages(CARRY_LOG)
    # a build that resolved everything it has carries nothing
    assert carried_packages(CARRY_LOG.replace("crucible pkg six==1.16.0\n", "")
                            .replace("crucible pkg crucible_tiny_c", "crucible pkg crucible-tiny-b"),
                            ("wheel",)) == []
