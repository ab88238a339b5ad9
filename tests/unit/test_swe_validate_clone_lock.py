"""The clean tree id of an injected-bug env group (``validate_bug_group``) is read from the shared clone under
the per-repo lock that checkouts take (#27): a checkout of another commit by a second worker waits, so the
reference run is keyed by the env commit's tree; switched off, the key is the other commit's tree."""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

from crucible.pipelines.swe import envs, reference, validate
from tests.unit.test_swe_pipeline_checkout import _git, repo_ctx  # noqa: F401  (the fixture)


def _keyed_tree(monkeypatch, ctx, commits, tmp_path) -> str:
    """Between the clean checkout and its tree id, another worker checks out commit two; returns the tree id
    the reference run was keyed by."""
    real_tree_id, seen, other = reference.tree_id, {}, []

    def racing_tree_id(path):
        t = threading.Thread(target=envs.checkout_tree, args=(ctx, "o/r", commits[1], tmp_path / "b"))
        t.start()
        t.join(2)  # done at once without the lock; blocked until the lock is released with it
        other.append(t)
        return real_tree_id(path)

    def fake_reference_run(ctx_, env, tree, tree_key):
        seen["tree"] = tree_key
        return SimpleNamespace(ok=False, reason="stub", flaky=[], key="k", cached=False, outcomes={}, pytest_s=0,
                               reconciled=False)

    monkeypatch.setattr(validate, "tree_id", racing_tree_id)  # where validate_bug_group calls them
    monkeypatch.setattr(validate, "reference_run", fake_reference_run)
    monkeypatch.setattr(validate, "checkout_tree", lambda ctx_, repo, commit, dest: dest)
    monkeypatch.setattr(validate, "env_for", lambda *a: None)
    monkeypatch.setattr(validate, "env_of", lambda *a: SimpleNamespace(image="img", network="none"))
    inst = {"repo": "o/r", "base_commit": commits[0], "environment_setup_commit": None, "instance_id": "o__r-1",
            "meta": {}, "bug_operator": "op"}
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    rows = list(validate.validate_bug_group(ctx, [inst], "run"))
    for t in other:
        t.join()
    assert len(rows) == 1
    return seen["tree"]


def test_the_clean_tree_id_is_read_under_the_clone_lock(repo_ctx, tmp_path, monkeypatch):  # noqa: F811
    ctx, commits = repo_ctx
    want = _git(tmp_path / "src", "rev-parse", f"{commits[0]}^{{tree}}")
    assert _keyed_tree(monkeypatch, ctx, commits, tmp_path) == want


def test_without_the_lock_the_reference_is_keyed_by_the_other_checkout(repo_ctx, tmp_path, monkeypatch):  # noqa: F811
    ctx, commits = repo_ctx
    monkeypatch.setattr(envs, "clone_lock", lambda ctx, repo: contextlib.nullcontext())
    other = _git(tmp_path / "src", "rev-parse", f"{commits[1]}^{{tree}}")
    assert _keyed_tree(monkeypatch, ctx, commits, tmp_path) == other
