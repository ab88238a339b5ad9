"""The clean reference run per env: content-addressed disk cache, what is (not) cached, env grouping, and
where a repo's code comes from (local mirror vs URL template)."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from crucible.pipelines.swe.envs import TaskEnv, group_by_env, url_template_for
from crucible.pipelines.swe.reference import cache_path, reference_key, reference_run, tree_id
from crucible.sandbox.testrun import TestRun


def run(status="ok", tests=None, kind="", reason=""):
    return TestRun(status=status, kind=kind, reason=reason, tests_swebench=dict(tests or {}), tests=dict(tests or {}),
                   log_tail="==== 2 passed in 0.50s ====")


class Runner:
    def __init__(self, *batches):
        self.batches, self.calls = list(batches), []

    def __call__(self, ctx, spec, tree, selection, k):
        self.calls.append((spec.image, selection, k))
        return self.batches.pop(0)


@pytest.fixture
def ctx(tmp_path):
    return SimpleNamespace(workdir=tmp_path, reruns=1, id_style="swebench", stats={})


def test_second_reference_of_same_env_and_tree_comes_from_disk(ctx, tmp_path):
    spec = TaskEnv("crucible/env-x:py3.11-aaa", {})
    runner = Runner([run(tests={"t::a": "PASSED", "t::b": "FAILED"})])
    first = reference_run(ctx, spec, tmp_path, "tree1", ["t.py"], runner=runner)
    assert first.ok and not first.cached and first.outcomes == {"t::a": "PASSED", "t::b": "FAILED"}
    assert cache_path(tmp_path, first.key).is_file()
    # a new context (a new pipeline run) finds it on disk: the runner is not called again
    ctx2 = SimpleNamespace(workdir=tmp_path, reruns=1, id_style="swebench", stats={})
    again = reference_run(ctx2, spec, tmp_path, "tree1", ["t.py"], runner=runner)
    assert again.cached and again.outcomes == first.outcomes and len(runner.calls) == 1
    assert ctx2.stats == {"reference_hits": 1}


def test_key_changes_with_image_tree_selection_reruns_and_id_style():
    base = reference_key("img", "tree", ["a.py", "b.py"], 1, "swebench")
    assert reference_key("img", "tree", ["b.py", "a.py"], 1, "swebench") == base  # order does not matter
    others = [reference_key("img2", "tree", ["a.py", "b.py"], 1, "swebench"),
              reference_key("img", "tree2", ["a.py", "b.py"], 1, "swebench"),
              reference_key("img", "tree", ["a.py"], 1, "swebench"),
              reference_key("img", "tree", None, 1, "swebench"),
              reference_key("img", "tree", ["a.py", "b.py"], 3, "swebench"),
              reference_key("img", "tree", ["a.py", "b.py"], 1, "junit")]
    assert len({base, *others}) == 7


def test_failed_reference_is_not_cached_and_says_why(ctx, tmp_path):
    spec = TaskEnv("img", {})
    runner = Runner([run("infra", kind="timeout", reason="no result in 300 s")],
                    [run(tests={"t::a": "PASSED"})])
    bad = reference_run(ctx, spec, tmp_path, "tree", None, runner=runner)
    assert not bad.ok and bad.reason == "infra/timeout: no result in 300 s"
    assert not cache_path(tmp_path, bad.key).exists()
    good = reference_run(ctx, spec, tmp_path, "tree", None, runner=runner)  # retried, now ok
    assert good.ok and len(runner.calls) == 2


def test_reruns_of_the_clean_tree_find_flaky_tests(ctx, tmp_path):
    ctx.reruns = 3
    spec = TaskEnv("img", {})
    runner = Runner([run(tests={"t::a": "PASSED", "t::f": "PASSED"}), run(tests={"t::a": "PASSED", "t::f": "FAILED"}),
                     run(tests={"t::a": "PASSED", "t::f": "PASSED"})])
    ref = reference_run(ctx, spec, tmp_path, "tree", None, runner=runner)
    assert runner.calls == [("img", None, 3)] and ref.flaky == ["t::f"] and ref.n_runs == 3


def test_unreadable_cache_entry_is_recomputed(ctx, tmp_path):
    spec = TaskEnv("img", {})
    runner = Runner([run(tests={"t::a": "PASSED"})], [run(tests={"t::a": "FAILED"})])
    ref = reference_run(ctx, spec, tmp_path, "tree", None, runner=runner)
    cache_path(tmp_path, ref.key).write_text("{not json")
    again = reference_run(ctx, spec, tmp_path, "tree", None, runner=runner)
    assert not again.cached and again.outcomes == {"t::a": "FAILED"} and len(runner.calls) == 2


def test_tree_id_is_content_not_commit(tmp_path):
    def repo(path, msg):
        path.mkdir()
        (path / "f.py").write_text("x = 1\n")
        for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", msg]):
            subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
        return path

    a, b = repo(tmp_path / "a", "one"), repo(tmp_path / "b", "another message")
    assert tree_id(a) == tree_id(b)
    (b / "f.py").write_text("x = 2\n")
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", "edit"], cwd=b, check=True)
    assert tree_id(a) != tree_id(b)
    with pytest.raises(RuntimeError, match="not a git checkout"):
        tree_id(tmp_path)


def test_group_by_env_uses_environment_setup_commit_else_base():
    rows = [{"instance_id": "r-2", "repo": "o/r", "base_commit": "b2", "environment_setup_commit": "e1"},
            {"instance_id": "r-1", "repo": "o/r", "base_commit": "b1", "environment_setup_commit": "e1"},
            {"instance_id": "r-3", "repo": "o/r", "base_commit": "b3", "environment_setup_commit": None},
            {"instance_id": "s-1", "repo": "o/s", "base_commit": "b1"}]
    groups = group_by_env(rows)
    assert list(groups) == [("o/r", "b3"), ("o/r", "e1"), ("o/s", "b1")]
    assert [i["instance_id"] for i in groups[("o/r", "e1")]] == ["r-1", "r-2"]


def test_repo_with_local_mirror_uses_it_others_use_the_template(tmp_path):
    (tmp_path / "pypi" / "toolz.git").mkdir(parents=True)
    (tmp_path / "pypi" / "toolz.git" / "HEAD").write_text("ref: refs/heads/master\n")
    ctx = SimpleNamespace(mirror_root=tmp_path, settings=SimpleNamespace(repo_url_template="file:///m/{repo}.git"))
    assert url_template_for(ctx, "pypi/toolz") == f"file://{Path(tmp_path).resolve()}/{{owner}}/{{name}}.git"
    assert url_template_for(ctx, "pytoolz/toolz") == "file:///m/{repo}.git"
    ctx.mirror_root = None
    assert url_template_for(ctx, "pypi/toolz") == "file:///m/{repo}.git"


def test_validate_bugs_skips_committed_candidates_before_touching_docker():
    from crucible.pipelines.swe.bugs import bug_instance_id
    from crucible.pipelines.swe.validate import validate_bugs

    cands = [SimpleNamespace(key="k1"), SimpleNamespace(key="k2")]
    done = frozenset(bug_instance_id("pypi/toolz", c) for c in cands)
    assert done == {"pypi__toolz.inj-k1", "pypi__toolz.inj-k2"}
    # ctx and checkout are never used when every candidate is already committed
    insts, rows, stats = validate_bugs(None, None, "pypi/toolz", Path("/nonexistent"), cands, "r", done=done)
    assert (insts, rows) == ([], []) and stats["skipped_done"] == 2 and stats["bug_runs"] == 0
