"""Image specs, content-addressed keys, gc planning (no Docker)."""

import io
import tarfile

import pytest

from crucible.sandbox.container import Limits
from crucible.sandbox.imagegc import iso_ts, plan_gc
from crucible.sandbox.images import (
    CA_IN_CONTAINER,
    BaseSpec,
    EnvSpec,
    base_setup_script,
    build_env_vars,
)
from crucible.sandbox.tarballs import tar_tree


def test_base_key_is_stable_and_covers_inputs():
    a, b = BaseSpec(python="3.11"), BaseSpec(python="3.11")
    assert a.key == b.key and a.distro == "bookworm" and BaseSpec(python="3.9").distro == "bullseye"
    assert BaseSpec(python="3.11", apt_packages=("python3", "git")).key != a.key
    assert BaseSpec(python="3.9").key != a.key
    assert a.image == f"crucible/base:py3.11-{a.key}"


def test_unknown_python_is_a_clear_error():
    with pytest.raises(ValueError, match="python '2.7': no Debian release"):
        BaseSpec(python="2.7")


def test_env_key_covers_base_recipe_and_inputs():
    base = BaseSpec(python="3.11")
    recipe = {"python": "3.11", "install": [{"name": "p", "required": True, "try": ["pip install -e ."]}]}
    e = EnvSpec(base, recipe, {"setup.py": "aa"}, "Demo Pkg")
    assert e.image.startswith("crucible/env-demo-pkg:py3.11-")
    assert EnvSpec(base, recipe, {"setup.py": "ab"}, "Demo Pkg").key != e.key
    assert EnvSpec(BaseSpec(python="3.11", apt_packages=("x",)), recipe, {"setup.py": "aa"}, "Demo Pkg").key != e.key
    r2 = {**recipe, "install": [{"name": "p", "required": True, "try": ["pip install ."]}]}
    assert EnvSpec(base, r2, {"setup.py": "aa"}, "Demo Pkg").key != e.key
    # the name is a label, not an input
    assert EnvSpec(base, recipe, {"setup.py": "aa"}, "other").key == e.key


def test_build_env_vars_copy_ca_bundle_in(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env, files = build_env_vars(str(ca), {"PIP_INDEX_URL": "https://mirror.example/simple"})
    assert files == {CA_IN_CONTAINER: ca.read_bytes()}
    for k in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        assert env[k] == CA_IN_CONTAINER
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    env, files = build_env_vars(None, None)
    assert files == {} and "PIP_CERT" not in env


def test_base_setup_script_makes_user_and_venv():
    s = base_setup_script(BaseSpec(python="3.9"))
    assert "useradd -m -u 1000" in s and "-m venv /opt/venv" in s and 'startswith("3.9")' in s


def test_iso_ts():
    assert iso_ts("1970-01-01T00:01:40.123456789Z") == 100.0
    assert iso_ts("garbage") == 0.0


def test_plan_gc_keeps_kept_in_use_and_recent():
    imgs = [
        {"id": "1", "kind": "env", "key": "k1", "created": "2026-01-01T00:00:00Z", "size_mb": 10, "tags": []},
        {"id": "2", "kind": "env", "key": "k2", "created": "2026-01-01T00:00:00Z", "size_mb": 10, "tags": []},
        {"id": "3", "kind": "env", "key": "k3", "created": "2026-01-01T00:00:00Z", "size_mb": 10, "tags": []},
        {"id": "4", "kind": "base", "key": "b", "created": "2026-01-01T00:00:00Z", "size_mb": 10, "tags": []},
        {"id": "5", "kind": "env", "key": "k5", "created": "2026-01-09T23:00:00Z", "size_mb": 10, "tags": []},
    ]
    now = iso_ts("2026-01-10T00:00:00Z")
    plan = plan_gc(imgs, keep_keys={"k1"}, in_use_ids={"2"}, older_than_s=86400, now=now)
    assert [i["id"] for i in plan] == ["3"]
    assert [i["id"] for i in plan_gc(imgs, set(), set(), ("env", "base"), 0, now)] == ["1", "2", "3", "4", "5"]


def test_tar_tree_skips_git_and_caches_and_sets_owner(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"0")
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    with tarfile.open(fileobj=io.BytesIO(tar_tree(tmp_path, "testbed", uid=1000))) as tf:
        names = {m.name: m for m in tf.getmembers()}
    assert "testbed/pkg/a.py" in names and names["testbed/pkg/a.py"].uid == 1000
    assert not any(".git" in n or "__pycache__" in n for n in names)
    with tarfile.open(fileobj=io.BytesIO(tar_tree(tmp_path, "testbed", include_git=True))) as tf:
        assert "testbed/.git/HEAD" in tf.getnames()


def test_limits_validate():
    with pytest.raises(ValueError, match="bad sandbox limits"):
        Limits(memory_mb=10)


def test_plan_gc_superseded_only_keeps_newest_of_each_lineage():
    imgs = [
        {"id": "a", "kind": "env", "key": "k1", "name": "toolz", "tags": ["crucible/env-toolz:py3.9-k1"],
         "created": "2026-01-01T00:00:00Z", "size_mb": 1},
        {"id": "b", "kind": "env", "key": "k2", "name": "toolz", "tags": ["crucible/env-toolz:py3.9-k2"],
         "created": "2026-01-02T00:00:00Z", "size_mb": 1},
        {"id": "c", "kind": "env", "key": "k3", "name": "toolz", "tags": ["crucible/env-toolz:py3.11-k3"],
         "created": "2025-01-01T00:00:00Z", "size_mb": 1},
    ]
    assert [i["id"] for i in plan_gc(imgs, set(), set(), superseded_only=True)] == ["a"]
