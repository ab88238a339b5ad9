"""benchmarks/swe_old_fixtures: the committed old-commit fixtures (tests/data/swe/old/) and the rebuild of their
mirrors (each commit must come out with the row's sha, or the rows name commits nobody can rebuild)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchmarks.swe_old_fixtures as old
from crucible.pipelines.swe.sources import read_instances
from crucible.sandbox.sources import init_one_commit

DATA = Path(__file__).resolve().parent.parent / "data" / "swe" / "old"
BUG = """diff --git a/tiny.py b/tiny.py
--- a/tiny.py
+++ b/tiny.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return a - b
"""


def test_committed_fixtures_are_2018_2020_rows_of_three_libraries_with_sources():
    rows, problems = read_instances(DATA / "fixtures.jsonl")
    sources = json.loads((DATA / old.SOURCES).read_text())
    assert not problems and len(rows) >= 10
    assert len({r["repo"] for r in rows}) >= 3
    assert all("2018-01-01" <= r["created_at"][:10] <= "2020-12-31" for r in rows)
    assert all(r["FAIL_TO_PASS"] for r in rows) and set(sources) == {r["instance_id"] for r in rows}
    assert all(s["sdist"] in {x[0] for x in old.RELEASES["old"]} for s in sources.values())


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """A release checkout where from_sdist finds it (no download), its mirror, and one row built on it."""
    sdists = tmp_path / "sdists"
    co = sdists / "tiny-1.0"
    co.mkdir(parents=True)
    (co / "tiny.py").write_text("def add(a, b):\n    return a + b\n")
    env = init_one_commit(co, "tiny 1.0 from its sdist", "2019-03-01")
    monkeypatch.setattr(old, "_sdist_dir", lambda: sdists)
    built = tmp_path / "built"
    mirror = old.ensure_bare_mirror(co, built, "acme/tiny")
    sha = old.commit_patch(mirror, env, BUG, "acme__tiny-1: bug", "crucible/acme__tiny-1")
    row = {"repo": "acme/tiny", "instance_id": "acme__tiny-1", "base_commit": sha, "environment_setup_commit": env}
    src = {"sdist": "tiny==1.0", "bug": BUG, "message": old._message(built, "acme/tiny", sha),
           "branch": "crucible/acme__tiny-1"}
    fx = tmp_path / "fx"
    fx.mkdir()
    (fx / old.SOURCES).write_text(json.dumps({"acme__tiny-1": src}))
    return fx, row


def test_mirrors_rebuild_each_commit_with_the_rows_sha(tiny, tmp_path):
    fx, row = tiny
    (fx / "fixtures.jsonl").write_text(json.dumps(row) + "\n")
    assert [r["instance_id"] for r in old.mirrors(fx, tmp_path / "again")] == ["acme__tiny-1"]
    assert (tmp_path / "again" / "acme" / "tiny.git" / "HEAD").exists()


def test_mirrors_refuse_a_row_whose_bug_commit_does_not_rebuild(tiny, tmp_path):
    fx, row = tiny
    (fx / "fixtures.jsonl").write_text(json.dumps(dict(row, base_commit="0" * 40)) + "\n")
    with pytest.raises(RuntimeError, match="bug commit rebuilt as"):
        old.mirrors(fx, tmp_path / "again")
    # only= leaves the row out: nothing to refuse
    assert old.mirrors(fx, tmp_path / "again2", only={"other"}) == []
