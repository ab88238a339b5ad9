"""Checkouts of one shared clone from 2 workers (#27 item 5): the per-repo lock keeps a concurrent checkout of
another commit from swapping the tree under the export; switched off, the export takes the other commit."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from crucible.pipelines.swe import envs


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo_ctx(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _git(src, "init", "-q")
    commits = []
    for v in ("one", "two"):
        (src / "f.txt").write_text(v)
        _git(src, "add", "f.txt")
        _git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", v)
        commits.append(_git(src, "rev-parse", "HEAD"))
    mirrors = tmp_path / "mirrors" / "o"
    mirrors.mkdir(parents=True)
    _git(tmp_path, "clone", "-q", "--bare", str(src), str(mirrors / "r.git"))
    ctx = SimpleNamespace(workdir=tmp_path / "work", mirror_root=tmp_path / "mirrors", settings=None)
    return ctx, commits


def _race(monkeypatch, ctx, commits, tmp_path) -> str:
    """Worker A checks out commit one and, between its checkout and its export, worker B checks out two."""
    from crucible.sandbox import sources

    a_exporting, b_done, real_export = threading.Event(), threading.Event(), sources.export_tree

    def slow_export(path, dest):
        if threading.current_thread().name == "A":
            a_exporting.set()
            b_done.wait(1.0)  # with the lock B cannot get in before A's export: give up waiting after 1 s
        return real_export(path, dest)

    monkeypatch.setattr(envs, "export_tree", slow_export)  # where checkout_tree calls it

    def b():
        envs.checkout_tree(ctx, "o/r", commits[1], tmp_path / "b")
        b_done.set()

    a = threading.Thread(target=envs.checkout_tree, args=(ctx, "o/r", commits[0], tmp_path / "a"), name="A")
    a.start()
    assert a_exporting.wait(30)
    tb = threading.Thread(target=b, name="B")
    tb.start()
    a.join()
    tb.join()
    return (tmp_path / "a" / "f.txt").read_text()


def test_the_clone_lock_keeps_each_export_at_its_commit(repo_ctx, tmp_path, monkeypatch):
    ctx, commits = repo_ctx
    assert _race(monkeypatch, ctx, commits, tmp_path) == "one"
    assert (tmp_path / "b" / "f.txt").read_text() == "two"


def test_without_the_lock_a_concurrent_checkout_swaps_the_exported_tree(repo_ctx, tmp_path, monkeypatch):
    ctx, commits = repo_ctx
    monkeypatch.setattr(envs, "clone_lock", lambda ctx, repo: contextlib.nullcontext())
    assert _race(monkeypatch, ctx, commits, tmp_path) == "two"
