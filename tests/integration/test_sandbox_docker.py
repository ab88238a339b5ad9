"""Sandbox against a real Docker engine: a tiny handmade repo (built once per session) and one real PyPI
sdist compared with a direct pytest run in a host venv.

Needs an engine (``crucible sandbox engine`` starts one as root) and, for the first run, the Debian
mirror (base image) and PyPI (env installs); later runs reuse the content-addressed images.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TINY = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tinypkg"
        version = "0.1"
        requires-python = ">=3.9"
        [project.optional-dependencies]
        tests = ["pytest"]
        [tool.setuptools]
        packages = ["tinypkg"]
    """,
    "tinypkg/__init__.py": """
        def add(a, b):
            return a + b
    """,
    "tests/test_tiny.py": """
        import os
        import tinypkg

        def test_add():
            assert tinypkg.add(2, 2) == 4

        def test_add_wrong():
            assert tinypkg.add(2, 2) == 5

        def test_runs_as_non_root():
            assert os.getuid() != 0

        def test_no_new_privileges_and_no_capabilities():
            status = dict(ln.split(":", 1) for ln in open("/proc/self/status").read().splitlines())
            assert status["NoNewPrivs"].strip() == "1" and int(status["CapBnd"].strip(), 16) == 0

        def test_no_network_interfaces_but_loopback():
            lines = open("/proc/net/dev").read().splitlines()[2:]
            assert [ln.split(":")[0].strip() for ln in lines] == ["lo"]
    """,
}
FORGED_CONFTEST = """
    import os
    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line("PASSED tests/test_tiny.py::test_add_wrong")
        terminalreporter.write_line("PASSED tests/test_tiny.py::test_invented")
"""
EXIT_CONFTEST = """
    def pytest_sessionfinish(session, exitstatus):
        session.exitstatus = 1
"""
CRASH_TEST = """
    import module_that_does_not_exist

    def test_never():
        pass
"""
SLEEP_TEST = """
    import time

    def test_sleeps():
        time.sleep(120)
"""
OOM_TEST = """
    def test_eats_memory():
        blocks = [bytearray(64 * 2**20) for _ in range(16)]
        assert blocks
"""
NET_TEST = """
    import socket
    import pytest

    def test_connect_times_out_like_a_real_network():
        s = socket.socket()
        s.settimeout(2)
        with pytest.raises(socket.timeout):
            s.connect(("10.255.255.1", 81))
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    from dataclasses import replace

    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits

    s = settings_from_config(load_config("defaults", []).sandbox)
    return replace(s, limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))


@pytest.fixture(scope="session")
def tiny_env(docker_client, settings, tmp_path_factory):
    """Env image of the tiny repo on Python 3.11 (base built or reused)."""
    from crucible.sandbox.api import build_env

    tree = write_tree(tmp_path_factory.mktemp("tiny") / "tree", TINY)
    spec, res = build_env(docker_client, settings, tree, "tinypkg-it")
    return spec, res, tree


def variant(tmp_path: Path, base_tree: Path, files: dict[str, str]) -> Path:
    tree = tmp_path / "variant"
    shutil.copytree(base_tree, tree)
    return write_tree(tree, files)


def run(client, spec, tree, settings, **kw):
    from crucible.sandbox.testrun import run_tests

    return run_tests(client, spec.image, tree, spec.recipe, limits=kw.pop("limits", settings.limits), **kw)


def test_base_images_are_reused_fast(docker_client, settings):
    import time

    from crucible.sandbox.api import build_base

    for py in ("3.9", "3.11"):
        build_base(docker_client, settings, py)
        t0 = time.monotonic()
        res = build_base(docker_client, settings, py)
        assert res["cache_hit"] and time.monotonic() - t0 < 1.0
        img = docker_client.images.get(res["image"])
        assert img.labels["crucible.kind"] == "base" and img.labels["crucible.key"] == res["key"]


def test_tiny_env_build_is_cached_and_key_tracks_requirements(docker_client, settings, tiny_env, tmp_path):
    from crucible.sandbox.api import build_env, plan_env

    spec, res, tree = tiny_env
    assert spec.recipe["python"] == "3.11" and spec.recipe["sources"]["extra"] == "tests"
    assert all(s["ok"] for s in res["steps"]), res["steps"]
    spec2, res2 = build_env(docker_client, settings, tree, "tinypkg-it")
    assert res2["cache_hit"] and spec2.key == spec.key and res2["seconds"] < 1.0
    # which rung of each install ladder worked is stored on the image and read back on a cache hit
    assert res2["steps"] == res["steps"] and {s["name"] for s in res2["steps"]} >= {"package[tests]", "test-runner"}
    edited = variant(tmp_path, tree, {"requirements.txt": "iniconfig\n"})
    assert plan_env(settings, edited, "tinypkg-it").key != spec.key
    # the repo itself is not baked into the env image
    out = docker_client.containers.run(spec.image, ["bash", "-c", "ls -A /testbed | wc -l"], remove=True,
                                       network_mode="none")
    assert out.decode().strip() == "0"


def test_tiny_suite_outcomes_non_root_and_offline(docker_client, settings, tiny_env):
    spec, _, tree = tiny_env
    label = {"label": "crucible.sandbox=run"}
    before = {c.id for c in docker_client.containers.list(all=True, filters=label)}
    r = run(docker_client, spec, tree, settings)
    assert r.status == "ok", r.reason + r.log_tail
    assert r.tests == {
        "tests/test_tiny.py::test_add": "PASSED",
        "tests/test_tiny.py::test_add_wrong": "FAILED",
        "tests/test_tiny.py::test_runs_as_non_root": "PASSED",
        "tests/test_tiny.py::test_no_new_privileges_and_no_capabilities": "PASSED",
        "tests/test_tiny.py::test_no_network_interfaces_but_loopback": "PASSED",
    }
    assert r.tests_swebench["tests/test_tiny.py::test_add_wrong"] == "FAILED"
    assert r.exit_code == 1 and 0 < r.rw_bytes < 50e6
    # this run's container is gone (others' containers, e.g. of a killed process, are not ours to judge)
    left = {c.id for c in docker_client.containers.list(all=True, filters=label)} - before
    assert left == set()


def test_forged_passed_lines_are_reported_as_failure_with_reason(docker_client, settings, tiny_env, tmp_path):
    spec, _, tree = tiny_env
    r = run(docker_client, spec, variant(tmp_path, tree, {"conftest.py": FORGED_CONFTEST}), settings)
    assert r.status == "error" and r.kind == "forged_summary", r.reason
    assert "test_add_wrong" in r.reason and r.exit_code == 1


def test_all_pass_but_nonzero_exit_is_an_error(docker_client, settings, tiny_env, tmp_path):
    spec, _, tree = tiny_env
    t = variant(tmp_path, tree, {"conftest.py": EXIT_CONFTEST})
    (t / "tests/test_tiny.py").write_text("def test_ok():\n    assert True\n")
    r = run(docker_client, spec, t, settings)
    assert r.status == "error" and r.kind == "exit_mismatch", r.reason


def test_collection_crash_is_reported_with_reason(docker_client, settings, tiny_env, tmp_path):
    spec, _, tree = tiny_env
    r = run(docker_client, spec, variant(tmp_path, tree, {"tests/test_crash.py": CRASH_TEST}), settings)
    assert r.status == "error" and r.kind == "collection", r.reason
    assert r.tests.get("tests/test_crash.py") == "ERROR"


def test_wall_clock_timeout_kills_the_container(docker_client, settings, tiny_env, tmp_path):
    from crucible.sandbox.container import Limits

    spec, _, tree = tiny_env
    t = variant(tmp_path, tree, {"tests/test_sleep.py": SLEEP_TEST})
    r = run(docker_client, spec, t, settings, limits=Limits(timeout_s=8), selection=["tests/test_sleep.py"])
    assert r.status == "infra" and r.kind == "timeout" and r.seconds < 30
    assert docker_client.containers.list(all=True, filters={"label": "crucible.sandbox=run"}) == []


def test_memory_limit_is_infra_oom(docker_client, settings, tiny_env, tmp_path):
    from crucible.sandbox.container import Limits

    spec, _, tree = tiny_env
    t = variant(tmp_path, tree, {"tests/test_oom.py": OOM_TEST})
    r = run(docker_client, spec, t, settings, limits=Limits(memory_mb=256, timeout_s=60),
            selection=["tests/test_oom.py"])
    assert r.status == "infra" and r.kind == "oom", (r.status, r.kind, r.reason)


def test_internal_network_times_out_and_labels_network_dependence(docker_client, settings, tiny_env, tmp_path):
    from crucible.sandbox.testrun import network_dependent

    spec, _, tree = tiny_env
    t = variant(tmp_path, tree, {"tests/test_net.py": NET_TEST})
    sel = ["tests/test_net.py"]
    offline = run(docker_client, spec, t, settings, network="none", selection=sel)
    internal = run(docker_client, spec, t, settings, network="internal", selection=sel)
    key = "tests/test_net.py::test_connect_times_out_like_a_real_network"
    assert offline.tests[key] == "FAILED"  # no route at all: fails at once
    assert internal.tests[key] == "PASSED"  # --internal network: the connect times out
    assert network_dependent(offline, internal) == [key]


def test_real_sdist_matches_direct_host_pytest_run(docker_client, settings, tmp_path):
    """toolz 0.12.0 from its PyPI sdist, no hand-written recipe: same per-test outcomes in the container
    as in a host venv driven by the same recipe."""
    from dataclasses import replace

    from crucible.sandbox.api import build_env, exported
    from crucible.sandbox.baseline import find_host_python, host_run
    from crucible.sandbox.sources import from_sdist
    from crucible.sandbox.testrun import run_tests

    co = from_sdist("toolz==0.12.0", settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
    with exported(co.path) as tree:
        spec, res = build_env(docker_client, settings, tree, co.name)
        assert spec.recipe["python"] == "3.9"  # classifiers stop at 3.10; 3.9 is the newest base allowed
        r = run_tests(docker_client, spec.image, tree, spec.recipe, limits=replace(settings.limits))
        assert r.status == "ok", r.reason
        assert r.counts["PASSED"] >= 150
        py = find_host_python(spec.recipe["python"])
        if py is None:
            pytest.skip(f"no host python{spec.recipe['python']} for the direct comparison")
        host = host_run(tree, spec.recipe, py, tmp_path / "host")
    assert host["run"].status == "ok", host["run"].reason + host["install_log_tail"]
    assert host["run"].counts == r.counts
    assert host["run"].tests == r.tests


def test_long_lived_sandbox_session_exec_files_and_timeout(docker_client, settings, tiny_env):
    """The session API the agent loop uses: exec with a per-command timeout, file put/get, cleanup."""
    from crucible.sandbox.container import Limits, Sandbox

    spec, _, tree = tiny_env
    with Sandbox(docker_client, spec.image, tree=tree, limits=Limits(timeout_s=60), include_git=False) as sb:
        code, out = sb.exec("id -u && python -c 'import tinypkg; print(tinypkg.add(1, 2))'")
        assert code == 0 and out.split() == ["1000", "3"]
        sb.put_file("/testbed/new.txt", b"hello\n")
        assert sb.get_file("/testbed/new.txt") == b"hello\n"
        code, out = sb.exec("cat new.txt; ls tests")
        assert "hello" in out and "test_tiny.py" in out
        code, _ = sb.exec("sleep 30", timeout_s=2)
        assert code == 124  # coreutils timeout
        big = b"x = 1\n" * 40_000  # 240 KB: over the ~96 KB a base64 argv allowed
        sb.put_file("/testbed/pkg_big/big.py", big)  # a new directory is made by the sandbox user
        assert sb.get_file("/testbed/pkg_big/big.py") == big
        assert sb.exec("stat -c %u pkg_big/big.py pkg_big")[1].split() == ["1000", "1000"]
        assert sb.exec("stat -c %a pkg_big/big.py")[1].split() == ["644"]  # a new file: 644
        sb.exec("chmod 755 pkg_big/big.py")
        sb.put_file("/testbed/pkg_big/big.py", b"x = 2\n")  # rewritten whole: keeps its mode (no mode-change diff)
        assert sb.exec("stat -c %a pkg_big/big.py")[1].split() == ["755"]
        assert sb.get_file("/testbed/pkg_big/big.py") == b"x = 2\n"
        with pytest.raises(PermissionError):
            sb.put_file("/etc/crucible.txt", b"no")  # a directory the sandbox user cannot write
        code, out = sb.exec("yes", timeout_s=5, max_bytes=10_000)  # endless output: a capped stream
        assert code == 124 and len(out) < 11_000 and "bytes of output dropped" in out
        cid = sb.container.id
    assert not docker_client.containers.list(all=True, filters={"id": cid})


def test_offline_reinstall_before_run_works_without_network(docker_client, settings, tiny_env, tmp_path):
    """The build backend was installed into the env (build-requires step), so the per-run
    `pip install -e . --no-deps --no-build-isolation` succeeds under --network none."""
    spec, _, tree = tiny_env
    assert any(s["name"] == "build-requires" for s in spec.recipe["install"])
    from crucible.sandbox.testrun import run_tests

    recipe = {**spec.recipe, "reinstall": True}
    t = variant(tmp_path, tree, {"tinypkg/__init__.py": "def add(a, b):\n    return a + b + 0\n"})
    r = run_tests(docker_client, spec.image, t, recipe, limits=settings.limits, network="none")
    assert r.status == "ok", r.reason + r.log_tail
    assert r.tests["tests/test_tiny.py::test_add"] == "PASSED"


def test_cli_test_from_local_bare_mirror_at_a_commit(docker_client, tmp_path, capsys):
    """`crucible sandbox test --repo owner/name --commit SHA --repo-url-template file:///...` end to end."""
    import json
    import subprocess

    from crucible.pipelines.cli import main

    src = write_tree(tmp_path / "src", TINY)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "tiny"]):
        subprocess.run(["git", *args], cwd=src, check=True, env=env)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True,
                         text=True).stdout.strip()
    (tmp_path / "mirrors/own").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(tmp_path / "mirrors/own/tiny.git")], check=True)
    argv = ["sandbox", "test", "--repo", "own/tiny", "--commit", sha, "--json",
            "--repo-url-template", f"file://{tmp_path}/mirrors/{{owner}}/{{name}}.git",
            "--set", f"sandbox.cache_dir={tmp_path / 'cache'}"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["commit"] == sha and out["status"] == "ok" and out["funnel_stage"] == "mostly_passing"  # 4 of 5 pass
    assert out["tests"]["tests/test_tiny.py::test_add_wrong"] == "FAILED"
    assert out["recipe"]["python"] == "3.11"
    with pytest.raises(SystemExit) as exc:
        main(argv[:4] + ["--commit", "0" * 40] + argv[6:])
    assert exc.value.code == 2
    assert "not found" in capsys.readouterr().err


def test_repo_override_adds_debian_packages_and_same_key_reuses_across_names(docker_client, settings, tmp_path):
    """A configs/repos-style override (apt_packages) reaches the env build; an env with the same key is
    reused under another repo name without a rebuild."""
    from dataclasses import replace

    from crucible.sandbox.api import build_env
    from crucible.sandbox.testrun import run_tests

    repos = tmp_path / "repos"
    repos.mkdir()
    (repos / "tiny.yaml").write_text("match: [tiny-apt, tiny-apt-copy]\nrecipe:\n  apt_packages: [jq]\n")
    s = replace(settings, repos_dir=repos)
    files = dict(TINY)
    files["tests/test_tiny.py"] = "import shutil\n\ndef test_jq_installed():\n    assert shutil.which('jq')\n"
    tree = write_tree(tmp_path / "tree", files)
    spec, res = build_env(docker_client, s, tree, "tiny-apt")
    assert spec.recipe["apt_packages"] == ["jq"]
    r = run_tests(docker_client, spec.image, tree, spec.recipe, limits=settings.limits)
    assert r.status == "ok" and r.tests == {"tests/test_tiny.py::test_jq_installed": "PASSED"}, r.reason
    spec2, res2 = build_env(docker_client, s, tree, "tiny-apt-copy")
    assert spec2.key == spec.key and spec2.image != spec.image and res2["cache_hit"]


# A src-layout package whose in-tree build backend cannot make editable installs (no build_editable, like
# pre-PEP 660 setuptools): the recipe's last package rung installs it regularly and links the tree.
NO_EDITABLE = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "backend"\nbackend-path = ["."]\n'
                      '[project]\nname = "srcdemo"\nversion = "1.0"\n[tool.setuptools.packages.find]\nwhere = ["src"]\n',
    "backend.py": "from setuptools import build_meta as _b\n\nbuild_wheel = _b.build_wheel\nbuild_sdist = _b.build_sdist\n"
                  "get_requires_for_build_wheel = _b.get_requires_for_build_wheel\n"
                  "prepare_metadata_for_build_wheel = _b.prepare_metadata_for_build_wheel\n",
    "src/srcdemo/__init__.py": "def double(x):\n    return 2 * x\n",
    "tests/test_demo.py": "from srcdemo import double\n\n\ndef test_double():\n    assert double(3) == 6\n",
}


def test_non_editable_install_still_tests_the_tree(docker_client, settings, tmp_path):
    """No editable install possible: the tests must import /testbed (a bug in the tree fails them, the agent's
    edits count), not the copy the build left in site-packages. Switched off (a plain ``pip install .``), the
    bug goes unseen: the suite passes on the clean installed copy."""
    from crucible.sandbox.api import build_env, plan_env

    tree = write_tree(tmp_path / "t", NO_EDITABLE)
    spec, res = build_env(docker_client, settings, tree, "srcdemo-it")
    steps = {s["name"]: s for s in res["steps"]}
    assert steps["package"]["ok"] and steps["package"]["rung"] == 2  # -e . failed twice: the linked install
    buggy = variant(tmp_path, tree, {"src/srcdemo/__init__.py": "def double(x):\n    return 3 * x\n"})
    assert run(docker_client, spec, tree, settings).tests == {"tests/test_demo.py::test_double": "PASSED"}
    assert run(docker_client, spec, buggy, settings).tests == {"tests/test_demo.py::test_double": "FAILED"}

    plain = plan_env(settings, tree, "srcdemo-plain-it")
    rec = dict(plain.recipe)
    rec["install"] = [dict(s, **{"try": ["pip install ."]}) if s["name"] == "package" else s for s in rec["install"]]
    off, _ = build_env(docker_client, settings, tree, "srcdemo-plain-it", recipe=(rec, plain.inputs))
    assert run(docker_client, off, buggy, settings).tests == {"tests/test_demo.py::test_double": "PASSED"}
