"""Repository sources: URL templates, local bare mirrors, sdist archives (no network)."""

import shutil
import subprocess
import tarfile

import pytest

from crucible.sandbox.engine import can_start_engine
from crucible.sandbox.sources import (
    SourceError,
    export_tree,
    from_git,
    from_sdist,
    init_one_commit,
    repo_url,
    unpack_archive,
)


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}).stdout.strip()


def test_repo_url_template():
    assert repo_url("file:///m/{owner}/{name}.git", "psf/requests") == "file:///m/psf/requests.git"
    assert repo_url("https://example/{repo}.git", "a/b") == "https://example/a/b.git"
    with pytest.raises(SourceError, match="unknown placeholder"):
        repo_url("file:///m/{org}.git", "a/b")
    with pytest.raises(SourceError, match="expected owner/name"):
        repo_url("{repo}", "justname")


@pytest.fixture
def mirror(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tests").mkdir()
    (src / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    git(src, "init", "-q")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "one")
    first = git(src, "rev-parse", "HEAD")
    (src / "b.py").write_text("B = 2\n")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "two")
    (tmp_path / "mirrors" / "own").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "mirrors" / "own" / "proj.git"))
    return tmp_path, first


def test_from_git_local_bare_mirror_at_commit(mirror):
    root, first = mirror
    co = from_git("own/proj", first, root / "work", template=f"file://{root}/mirrors/{{owner}}/{{name}}.git")
    assert co.commit == first and (co.path / "tests/test_a.py").exists() and not (co.path / "b.py").exists()
    out = export_tree(co.path, root / "exported")
    assert (out / "tests/test_a.py").exists() and not (out / ".git").exists()


def test_from_git_missing_commit_and_unreachable(mirror):
    root, _ = mirror
    tpl = f"file://{root}/mirrors/{{owner}}/{{name}}.git"
    with pytest.raises(SourceError, match="commit deadbeef not found"):
        from_git("own/proj", "deadbeef", root / "work", template=tpl)
    with pytest.raises(SourceError, match="cannot clone"):
        from_git("own/missing", "HEAD", root / "work", template=tpl)


def test_sdist_archive_to_one_commit_repo_is_deterministic(tmp_path):
    pkg = tmp_path / "demo-1.0"
    pkg.mkdir()
    (pkg / "setup.py").write_text("setup()\n")
    arc = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(pkg, arcname="demo-1.0")
    a = unpack_archive(arc, tmp_path / "u1")
    b = unpack_archive(arc, tmp_path / "u2")
    assert a.name == "demo-1.0"
    assert init_one_commit(a, "demo 1.0") == init_one_commit(b, "demo 1.0")


def test_one_commit_repo_is_dated_at_the_release_and_bug_commits_at_their_parent(tmp_path):
    import os
    from datetime import datetime, timezone

    from crucible.pipelines.swe.mirror import commit_patch, ensure_bare_mirror
    from crucible.sandbox.asof import source_date
    from crucible.sandbox.sources import Checkout, pkg_info_day

    tree = tmp_path / "demo-1.0"
    (tree / "demo").mkdir(parents=True)
    (tree / "demo" / "__init__.py").write_text("X = 1\n")
    (tree / "PKG-INFO").write_text("Name: demo\n")
    ts = datetime(2021, 5, 6, 12, tzinfo=timezone.utc).timestamp()
    os.utime(tree / "PKG-INFO", (ts, ts))
    assert pkg_info_day(tree) == "2021-05-06"
    undated = init_one_commit(tree, "demo 1.0")  # no date: the fixed 2000-01-01, never taken as a date
    assert git(tree, "log", "-1", "--format=%cI").startswith("2000-01-01")
    shutil.rmtree(tree / ".git")
    sha = init_one_commit(tree, "demo 1.0", pkg_info_day(tree))
    assert sha != undated and git(tree, "log", "-1", "--format=%cI").startswith("2021-05-06")
    os.utime(tree / "PKG-INFO", None)  # a checkout's mtime (now): the commit date still says 2021
    assert source_date(tree) == "2021-05-06"
    mirror = ensure_bare_mirror(Checkout(tree, sha, "demo", "t").path, tmp_path / "m", "pypi/demo")
    patch = ("diff --git a/demo/__init__.py b/demo/__init__.py\n--- a/demo/__init__.py\n+++ b/demo/__init__.py\n"
             "@@ -1 +1 @@\n-X = 1\n+X = 2\n")
    bug = commit_patch(mirror, sha, patch, "bug", "crucible/bug")
    assert git(mirror, "log", "-1", "--format=%cI", bug).startswith("2021-05-06")  # as old as its release
    assert commit_patch(mirror, sha, patch, "bug", "crucible/bug2") == bug  # deterministic


def test_cached_undated_sdist_checkout_is_redated_not_downloaded_again(tmp_path):
    import os
    from datetime import datetime, timezone

    target = tmp_path / "demo-1.0"
    target.mkdir()
    (target / "demo.py").write_text("X = 1\n")
    (target / "PKG-INFO").write_text("Name: demo\n")
    ts = datetime(2020, 7, 8, 12, tzinfo=timezone.utc).timestamp()
    os.utime(target / "PKG-INFO", (ts, ts))
    old = init_one_commit(target, "demo 1.0")  # a checkout made before commits carried the release date
    co = from_sdist("demo==1.0", tmp_path, pip=("false",))  # a download would fail: the cache is used
    assert co.commit != old and git(target, "log", "-1", "--format=%cI").startswith("2020-07-08")
    assert from_sdist("demo==1.0", tmp_path, pip=("false",)).commit == co.commit  # now current: reused as is


def test_sdist_with_a_fixed_build_mtime_is_dated_by_the_index_upload_day(tmp_path):
    """flit/hatchling sdists carry a fixed PKG-INFO mtime: the commit is dated at the index's upload day
    (asked once through ``pip index versions --uploaded-prior-to``; here a fake pip that lists 1.0 from
    2021-03-05 on)."""
    import os
    import sys

    fake_pip = tmp_path / "fake_pip.py"
    fake_pip.write_text("import sys\nday = sys.argv[sys.argv.index('--uploaded-prior-to') + 1][:10]\n"
                        "print('Available versions: ' + ('1.0' if day > '2021-03-05' else ''))\n")
    target = tmp_path / "demo-1.0"
    target.mkdir()
    (target / "demo.py").write_text("X = 1\n")
    (target / "PKG-INFO").write_text("Name: demo\n")
    os.utime(target / "PKG-INFO", (0, 0))  # flit: the epoch
    init_one_commit(target, "demo 1.0")  # cached from before: undated
    co = from_sdist("demo==1.0", tmp_path, pip=(sys.executable, str(fake_pip)))
    assert git(target, "log", "-1", "--format=%cI").startswith("2021-03-05")
    assert from_sdist("demo==1.0", tmp_path, pip=("false",)).commit == co.commit  # no second lookup needed
    shutil.rmtree(target / ".git")
    init_one_commit(target, "demo 1.0")
    undated = from_sdist("demo==1.0", tmp_path, pip=("false",))  # the index does not answer: stays undated
    assert git(target, "log", "-1", "--format=%cI").startswith("2000-01-01")
    # and is not asked again on every later run (an offline index costs seconds per probe)
    assert from_sdist("demo==1.0", tmp_path, pip=(sys.executable, str(fake_pip))).commit == undated.commit


def test_sdist_spec_validation_and_download_failure(tmp_path):
    with pytest.raises(SourceError, match="expected NAME==VERSION"):
        from_sdist("toolz>=1", tmp_path)
    # a pip that fails: the error names the sdist and says why
    with pytest.raises(SourceError, match="sdist nothing==1.0: pip download failed"):
        from_sdist("nothing==1.0", tmp_path, pip=("false",))


@pytest.mark.parametrize("root,apt,dockerd,host,ok", [
    (True, True, False, False, True),
    (True, False, True, False, True),
    (True, False, False, False, False),
    (False, True, True, False, False),
    (True, True, True, True, False),
])
def test_can_start_engine(root, apt, dockerd, host, ok):
    got, why = can_start_engine(root, apt, dockerd, host)
    assert got is ok and why
