"""The engine pool against real engines (issue #28 item 1): the machine's dockerd plus a second one with its own
data root, exec root, pidfile and socket (tests/support/dockerd.py), and Debian's docker-registry on loopback
(tests/support/registry_server.py). ``crucible swe validate`` over instances of 2 repos (toolz 0.12.0 through
its bare mirror, a tiny local repo):

1. one engine + the registry: the baseline labels; its images (base and envs) go to the registry;
2. two engines: both run env groups, the second engine pulls every image it runs (the same image ids as the
   first engine's: pulled, not rebuilt) and the labels equal the one-engine run;
3. two engines, the second killed while it runs a container: every instance still has exactly one row, with
   the baseline's labels, and the retry is recorded as ``infra`` (meta.engine_retries); ``crucible stats``
   shows the engine drained.

The second engine has no bridge network (``--bridge none``): it builds nothing, it only pulls; its containers
run with network ``none``.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures
from tests.support.dockerd import SecondEngine, can_run_second_engine
from tests.support.registry_server import RegistryServer, has_registry

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TINY = {
    "PKG-INFO": "Metadata-Version: 2.1\nName: tinypool\nVersion: 0.1\n",
    "setup.py": "from setuptools import setup\nsetup(name='tinypool', version='0.1', py_modules=['tinypool'])\n",
    "requirements-dev.txt": "pytest==7.4.4\n",
    "tinypool.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_tinypool.py": "import tinypool\n\n\ndef test_zero():\n    assert tinypool.add(0, 0) == 0\n",
}
BUG = """diff --git a/tinypool.py b/tinypool.py
--- a/tinypool.py
+++ b/tinypool.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return a - b
"""
TEST_PATCH = """diff --git a/tests/test_new.py b/tests/test_new.py
new file mode 100644
--- /dev/null
+++ b/tests/test_new.py
@@ -0,0 +1,9 @@
+import tinypool
+
+
+def test_add():
+    assert tinypool.add(2, 3) == 5
+
+
+def test_mul():
+    assert tinypool.mul(2, 3) == 6
"""
LABELS = ("status", "fail_to_pass", "pass_to_pass", "labels_match", "labels_hold")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if not has_registry():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry; .ci/run does)")
    srv = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def engine2(tmp_path_factory, docker_client):
    why = can_run_second_engine()
    if why:
        pytest.skip(why)
    eng = SecondEngine(tmp_path_factory.mktemp("engine2")).start()
    yield eng
    eng.remove()


@pytest.fixture(scope="module")
def instances(toolz_instance, mirror_root, tmp_path_factory):
    from crucible.pipelines.swe.mirror import commit_patch, diff_commits
    from crucible.sandbox.sources import Release, mirror_path, release_mirror

    tmp = tmp_path_factory.mktemp("tinypool")
    tree = tmp / "tree"
    for name, text in TINY.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    release = release_mirror(mirror_root, "crucible-it/tinypool", ["tinypool==0.1"], tmp,
                             obtain=lambda spec, wd: Release("0.1", tree, "2024-06-01"))["0.1"]
    mirror = mirror_path(mirror_root, "crucible-it/tinypool")
    bug = commit_patch(mirror, release, BUG, "bug", "bug")
    tiny = {"repo": "crucible-it/tinypool", "base_commit": bug, "patch": diff_commits(mirror, bug, release),
            "test_patch": TEST_PATCH, "problem_statement": "add", "hints_text": "", "created_at": None,
            "version": None, "environment_setup_commit": release, "FAIL_TO_PASS": None, "PASS_TO_PASS": None}
    noop = toolz_instance["patch"].replace("+    return itertools.islice(seq, 0, None, n)\n",
                                           "+    return itertools.islice(seq, 1, None, n)  # noqa\n")
    rows = [toolz_instance, dict(toolz_instance, instance_id="pytoolz__toolz-noop", patch=noop,
                                 FAIL_TO_PASS=None, PASS_TO_PASS=None),
            dict(tiny, instance_id="tinypool-1"), dict(tiny, instance_id="tinypool-2", FAIL_TO_PASS=["tests/test_new.py::test_add"])]
    path = tmp / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def validate(instances, out, mirror_root, engines: list[dict], registry, work) -> list[dict]:
    from crucible.pipelines.cli import main
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.mirror import mirror_template

    sets = [f"sandbox.repo_url_template={mirror_template(mirror_root)}", f"swe.workdir={work}",
            "swe.network=none", f"sandbox.registry={registry.address}",
            f"sandbox.engines={json.dumps(engines)}", "swe.recipes=inferred"]
    assert main(["swe", "validate", "--instances", str(instances), "--out", str(out),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    cols, rows = catalog.query(str(out), "select * from swe_validations order by instance_id")
    out_rows = [dict(zip(cols, r)) for r in rows]
    for r in out_rows:
        r["meta"] = json.loads(r["meta"]) if isinstance(r["meta"], str) else (r["meta"] or {})
    return out_rows


def labels(rows: list[dict]) -> dict:
    return {r["instance_id"]: tuple(json.dumps(r[k], sort_keys=True, default=list) for k in LABELS) for r in rows}


def image_id(client, name: str) -> str:
    return client.images.get(name).id


@pytest.fixture(scope="module")
def baseline(instances, mirror_root, registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-engine")
    rows = validate(instances, tmp / "out", mirror_root, [{"host": None, "capacity": 2, "tls": None}], registry,
                    tmp / "work")
    assert len(rows) == 4 and {r["meta"]["engine"] for r in rows} == {"local"}
    return rows


def test_two_engines_share_the_work_pull_images_and_label_as_one(baseline, instances, mirror_root, registry, engine2,
                                                                  docker_client, tmp_path):
    import docker

    by = {r["instance_id"]: r for r in baseline}
    assert by["pytoolz__toolz-take_nth"]["status"] == "valid" and by["tinypool-1"]["status"] == "valid"
    assert by["tinypool-1"]["fail_to_pass"] == ["tests/test_new.py::test_add"]
    assert {"crucible/base", "crucible/env-toolz", "crucible/env-tinypool"} <= set(registry.repositories())
    engines = [{"host": None, "capacity": 1, "tls": None}, {"host": engine2.host, "capacity": 1, "tls": None}]
    rows = validate(instances, tmp_path / "out", mirror_root, engines, registry, tmp_path / "work")
    assert labels(rows) == labels(baseline)
    used = {r["meta"]["engine"] for r in rows}
    assert used == {"local", engine2.host}
    c2 = docker.DockerClient(base_url=engine2.host)
    on2 = {r["env_image"] for r in rows if r["meta"]["engine"] == engine2.host}
    assert on2
    for image in on2:  # the same image as the first engine's: pulled from the registry, never rebuilt
        assert image_id(c2, image) == image_id(docker_client, image)
    assert not [t for i in c2.images.list() for t in i.tags if t.startswith(registry.address)]  # own names only
    for r in rows:
        assert "engine_retries" not in r["meta"]


def test_an_engine_killed_mid_run_moves_its_work_rows_once_infra_recorded(baseline, instances, mirror_root,
                                                                         registry, engine2, tmp_path, capsys):
    import docker

    from crucible.pipelines.cli import main

    c2 = docker.DockerClient(base_url=engine2.host, timeout=5)
    fired = threading.Event()

    def kill_when_busy():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not fired.is_set():
            try:
                if c2.containers.list(filters={"label": "crucible.sandbox"}):
                    engine2.kill_api()
                    fired.set()
                    return
            except Exception:  # noqa: BLE001 - the engine is going away
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_when_busy, daemon=True)
    watcher.start()
    engines = [{"host": None, "capacity": 1, "tls": None}, {"host": engine2.host, "capacity": 1, "tls": None}]
    rows = validate(instances, tmp_path / "out", mirror_root, engines, registry, tmp_path / "work")
    watcher.join(5)
    assert fired.is_set(), "the second engine never ran a container"
    ids = [r["instance_id"] for r in rows]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4  # every instance, none twice
    assert labels(rows) == labels(baseline)  # the dead engine's failure is nobody's test result
    moved = [r for r in rows if r["meta"].get("engine_retries")]
    assert moved and all(r["meta"]["engine"] == "local" for r in moved)
    assert all(a["engine"] == engine2.host and a["kind"] == "infra" for r in moved for a in r["meta"]["engine_retries"])
    capsys.readouterr()
    assert main(["stats", "--out", str(tmp_path / "out"), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)["engines"]
    assert st[engine2.host]["drained"] == 1 and st[engine2.host]["failed"] >= 1
    assert st["local"]["done"] >= 2 and st["local"]["drained"] == 0
