"""Git sources of the survey: the ``--repos`` file, bare mirrors built from releases (dated commits, tags,
same shas on a rerun) and survey rows that carry the resolved commit and its date. No network, no Docker."""

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from crucible.pipelines.swe.survey import Source, SourceKind, failure_for, read_repos, run_survey, survey_one
from crucible.sandbox import sources
from crucible.sandbox.api import Settings
from crucible.sandbox.asof import commit_date, source_date
from crucible.sandbox.sources import Release, SourceError, from_git, mirror_path, release_mirror
from tests.support.trees import write_tree as tree


@pytest.fixture
def releases(tmp_path):
    """Two fake unpacked sdists (PKG-INFO, an ignored file, a stray .git) and an ``obtain`` that records calls."""
    one = tree(tmp_path / "t1", {"PKG-INFO": "Name: n\nVersion: 1.0\n", "n/__init__.py": "V = 1\n",
                                 "tests/test_n.py": "def test_v(): pass\n", ".gitignore": "*.egg-info\n",
                                 "n.egg-info/PKG-INFO": "Name: n\n", ".git/HEAD": "ref: refs/heads/x\n"})
    two = tree(tmp_path / "t2", {"PKG-INFO": "Name: n\nVersion: 2.0\n", "n/__init__.py": "V = 2\n",
                                 "tests/test_n.py": "def test_v(): pass\n"})
    made = {"1.0": Release("1.0", one, "2019-03-04"), "2.0": Release("2.0", two, "2021-06-07"),
            "3.0": Release("3.0", two, None)}
    calls = []

    def obtain(spec, workdir):
        calls.append(spec)
        return made[spec.split("==")[1]]

    return obtain, calls


def git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_read_repos_names_the_bad_line_and_the_expected_form(tmp_path):
    p = tmp_path / "repos.txt"
    p.write_text("# old\npallets/flask@v1.1.2  # tag\n\npallets/flask@v1.1.2\npsf/requests@main\n"
                 "o/n@0123456789abcdef0123456789abcdef01234567\n")
    assert read_repos(p) == ["pallets/flask@v1.1.2", "psf/requests@main",
                             "o/n@0123456789abcdef0123456789abcdef01234567"]
    for bad in ("pallets/flask", "flask@v1.1.2", "pallets/flask@", "pallets/flask@v1 extra", "Flask==1.1.2"):
        p.write_text(f"o/n@v1\n# c\n{bad}\n")
        with pytest.raises(ValueError, match=rf"repos.txt:3: {bad!r} is not owner/name@REV \(REV: a tag"):
            read_repos(p)


def test_survey_cli_repos_file_error_and_exclusive_sources(tmp_path, capsys):
    from crucible.pipelines.cli import main

    p = tmp_path / "repos.txt"
    p.write_text("pallets/flask 1.1.2\n")
    assert main(["sandbox", "survey", "--repos", str(p)]) == 2
    assert f"{p}:1: 'pallets/flask 1.1.2' is not owner/name@REV" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sandbox", "survey", "--repos", str(p), "--sdists", str(p)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_release_mirror_dates_tags_trees_and_same_shas_on_rerun(tmp_path, releases):
    obtain, calls = releases
    root = tmp_path / "mirrors"
    shas = release_mirror(root, "o/n", ["n==1.0", "n==2.0"], tmp_path / "wd", obtain=obtain)
    mirror = mirror_path(root, "o/n")
    assert mirror == root / "o" / "n.git" and list(shas) == ["1.0", "2.0"]
    assert git(mirror, "rev-parse", "refs/tags/v1.0") == shas["1.0"]
    assert git(mirror, "rev-parse", "refs/heads/main") == shas["2.0"]
    assert git(mirror, "rev-parse", f"{shas['2.0']}^") == shas["1.0"]  # one line of history, oldest first
    assert git(mirror, "log", "-1", "--format=%aI %cI", "v1.0") == "2019-03-04T12:00:00+00:00 " \
        "2019-03-04T12:00:00+00:00"
    files = git(mirror, "ls-tree", "-r", "--name-only", "v1.0").splitlines()
    assert "PKG-INFO" in files and "n.egg-info/PKG-INFO" in files  # kept: setuptools-scm needs it; ignored too
    assert not any(f.startswith(".git/") for f in files)
    assert git(mirror, "show", "v2.0:n/__init__.py") == "V = 2"
    assert "n.egg-info/PKG-INFO" not in git(mirror, "ls-tree", "-r", "--name-only", "v2.0")  # whole tree each
    # rerun: nothing downloaded again, same shas; a new release goes on top
    calls.clear()
    again = release_mirror(root, "o/n", ["n==1.0", "n==2.0", "n==3.0"], tmp_path / "wd", obtain=obtain)
    assert calls == ["n==3.0"] and again["1.0"] == shas["1.0"] and again["2.0"] == shas["2.0"]
    assert git(mirror, "rev-parse", f"{again['3.0']}^") == shas["2.0"]
    assert git(mirror, "log", "-1", "--format=%cI", "v3.0").startswith("2000-01-01")  # unknown day: fixed
    # a mirror rebuilt from scratch elsewhere has the same shas (fixed identity, dates, trees)
    other = release_mirror(tmp_path / "elsewhere", "o/n", ["n==1.0", "n==2.0"], tmp_path / "wd", obtain=obtain)
    assert other == shas


def test_release_mirror_rejects_bad_specs_and_dates(tmp_path, releases):
    obtain, _ = releases
    with pytest.raises(SourceError, match="expected NAME==VERSION"):
        release_mirror(tmp_path / "m", "o/n", ["n 1.0"], tmp_path, obtain=obtain)
    with pytest.raises(SourceError, match="expected owner/name"):
        release_mirror(tmp_path / "m", "flask", ["n==1.0"], tmp_path, obtain=obtain)
    with pytest.raises(SourceError, match="date '04/03/2019' is not YYYY-MM-DD"):
        release_mirror(tmp_path / "m", "o/x", ["n==1.0"], tmp_path,
                       obtain=lambda s, w: Release("1.0", tmp_path, "04/03/2019"))


def test_checkout_at_an_old_tag_is_dated_by_its_commit(tmp_path, releases):
    obtain, _ = releases
    root = tmp_path / "mirrors"
    release_mirror(root, "o/n", ["n==1.0", "n==2.0", "n==3.0"], tmp_path / "wd", obtain=obtain)
    template = f"file://{root}/{{owner}}/{{name}}.git"
    co = from_git("o/n", "v1.0", tmp_path / "git", template)
    assert (co.path / "PKG-INFO").is_file()  # the checkout's PKG-INFO has today's mtime ...
    assert source_date(co.path) == commit_date(co.path) == "2019-03-04"  # ... the commit's date wins
    co = from_git("o/n", "v3.0", tmp_path / "git", template)
    assert commit_date(co.path) is None  # the fixed date is no date


def test_sdist_release_takes_the_upload_day_then_a_real_pkg_info_mtime(tmp_path, monkeypatch):
    t = tree(tmp_path / "x", {"PKG-INFO": "Name: x\n"})
    ts = datetime(2020, 4, 2, 22, tzinfo=timezone.utc).timestamp()
    os.utime(t / "PKG-INFO", (ts, ts))
    monkeypatch.setattr(sources, "from_sdist", lambda spec, wd, pip: sources.Checkout(t, "c", "x", spec))
    monkeypatch.setattr(sources, "index_upload_date", lambda name, version, pip, remote_env: "2020-04-03")
    assert sources.sdist_release("x==1.0", tmp_path) == Release("1.0", t, "2020-04-03")
    monkeypatch.setattr(sources, "index_upload_date", lambda name, version, pip, remote_env: None)
    assert sources.sdist_release("x==1.0", tmp_path).date == "2020-04-02"
    ts = datetime(2020, 2, 2, tzinfo=timezone.utc).timestamp()  # hatchling's fixed mtime is no date
    os.utime(t / "PKG-INFO", (ts, ts))
    assert sources.sdist_release("x==1.0", tmp_path).date is None


def test_git_survey_rows_carry_commit_and_date_through_the_same_attempt(tmp_path, releases, monkeypatch):
    import crucible.sandbox.repair

    obtain, _ = releases
    root = tmp_path / "mirrors"
    shas = release_mirror(root, "o/n", ["n==1.0", "n==2.0"], tmp_path / "wd", obtain=obtain)
    settings = Settings(cache_dir=tmp_path / "cache", repo_url_template=f"file://{root}/{{owner}}/{{name}}.git")
    seen = []

    def fake_attempt(client, settings, tree, name, *, date, max_rungs):
        seen.append((name, date, (tree / "PKG-INFO").read_text().split("\n")[1], (tree / ".git").exists()))
        return {"stage": "installed", "rungs": [], "attempts": 1, "python": "3.9", "as_of": "x",
                "stop": {"rung": None, "reason": "no tests ran", "line": "E   ImportError: soft_unicode"}}

    monkeypatch.setattr(crucible.sandbox.repair, "attempt", fake_attempt)
    row = survey_one(None, settings, Source(SourceKind.GIT, "o/n@v1.0"), "r1")
    assert seen == [("o/n", "2019-03-04", "Version: 1.0", False)]  # exported tree, dated by the checkout
    assert (row["source"], row["commit"], row["source_date"], row["stage"]) == \
        ("git:o/n@v1.0", shas["1.0"], "2019-03-04", "installed")
    fail = failure_for(row)
    assert fail["item_key"] == "git:o/n@v1.0" and "last: none" in fail["reason"] and "soft_unicode" in fail["reason"]
    row = survey_one(None, settings, Source(SourceKind.GIT, "o/n@main"), "r1")
    assert row["commit"] == shas["2.0"] and row["source_date"] == "2021-06-07"
    # a revision the mirror lacks: an attempted row naming it, no attempt made
    seen.clear()
    row = survey_one(None, settings, Source(SourceKind.GIT, "o/n@v9.9"), "r1")
    assert seen == [] and row["stage"] == "attempted" and row["commit"] is None
    assert "commit v9.9 not found" in row["stop_reason"] and "v9.9" in failure_for(row)["reason"]


def test_run_survey_is_resumable_for_git_sources(tmp_path):
    from crucible.pipelines.store.catalog import query
    from crucible.pipelines.swe.survey import survey_row

    srcs = [Source(SourceKind.GIT, "o/n@v1.0"), Source(SourceKind.GIT, "o/n@v2.0"),
            Source(SourceKind.SDIST, "n==1.0")]
    done = []

    def one(client, settings, src, run_id):
        done.append(src.id)
        return survey_row(src.id, "c" * 40, "2019-03-04", {"stage": "mostly_passing", "rungs": [], "attempts": 1},
                          1.0, run_id)

    out = str(tmp_path / "out")
    run_survey(None, None, srcs[:2], out, "r", 1, one=one)
    run_survey(None, None, srcs, out, "r", 1, one=one)
    assert sorted(done) == ["git:o/n@v1.0", "git:o/n@v2.0", "sdist:n==1.0"]  # each once
    cols, rows = query(out, "select source, commit, source_date from sandbox_surveys order by source")
    assert [r[0] for r in rows] == ["git:o/n@v1.0", "git:o/n@v2.0", "sdist:n==1.0"]
    assert all(r[1] == "c" * 40 and r[2] == "2019-03-04" for r in rows)


def test_old_pytest_autoloads_env_plugins_and_the_trees_are_blocked_by_name(tmp_path):
    """pytest < 3.8 ignores PYTEST_DISABLE_PLUGIN_AUTOLOAD: a "-p module" for an env plugin would register it
    twice (requests 2.25.1 with pytest 3.5.1: "Plugin already registered"); the tree's plugin is blocked."""
    import sys

    from crucible.sandbox.plugins import PLUGIN_LIST

    for dist, ep in (("evil-1.0", "evil = evil_plugin"), ("pytest-3.5.1", None)):
        d = tmp_path / f"{dist}.dist-info"
        d.mkdir()
        name, version = dist.rsplit("-", 1)
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        if ep:
            (d / "entry_points.txt").write_text(f"[pytest11]\n{ep}\n")

    def listing():
        return subprocess.run([sys.executable, "-c", PLUGIN_LIST, str(tmp_path)], cwd=tmp_path, capture_output=True,
                              text=True).stdout.split("\n")

    old = listing()  # the tree is first on sys.path here, so its fake pytest 3.5.1 is the one seen
    assert "-p no:evil" in old and not [ln for ln in old if ln.startswith("-p ") and "no:" not in ln]
    import shutil

    shutil.rmtree(tmp_path / "pytest-3.5.1.dist-info")  # the real (new) pytest: -p per env plugin, none of the tree
    new = listing()
    assert "-p no:evil" not in new and "-p evil_plugin" not in new and any(ln.startswith("-p ") for ln in new)


def test_a_reused_clone_follows_the_branch_a_full_sha_needs_no_refresh(tmp_path, releases):
    obtain, _ = releases
    root = tmp_path / "mirrors"
    template = f"file://{root}/{{owner}}/{{name}}.git"
    one = release_mirror(root, "o/n", ["n==1.0"], tmp_path / "wd", obtain=obtain)
    assert from_git("o/n", "main", tmp_path / "git", template).commit == one["1.0"]
    two = release_mirror(root, "o/n", ["n==1.0", "n==2.0"], tmp_path / "wd", obtain=obtain)
    co = from_git("o/n", "main", tmp_path / "git", template)  # same clone, the branch moved upstream
    assert co.commit == two["2.0"] and (co.path / "n" / "__init__.py").read_text() == "V = 2\n"
    assert from_git("o/n", "v2.0", tmp_path / "git", template).commit == two["2.0"]
    moved = tmp_path / "moved"
    root.rename(moved)  # the mirror is gone: a branch cannot be resolved, a known full sha still can
    with pytest.raises(SourceError, match="cannot refresh .* to resolve 'main'"):
        from_git("o/n", "main", tmp_path / "git", template)
    assert from_git("o/n", one["1.0"], tmp_path / "git", template).commit == one["1.0"]


def test_release_list_of_the_benchmark_names_the_bad_entry(tmp_path):
    from benchmarks.asof_mirrors import DEFAULT_LIST, read_list

    shipped = read_list(DEFAULT_LIST)
    assert len(shipped) >= 10 and not {"pytoolz/toolz", "marshmallow-code/marshmallow", "python-attrs/attrs"} & set(shipped)
    p = tmp_path / "l.yaml"
    for text, msg in (("flask: [Flask==1.1.2]\n", "key 'flask' is not owner/name"),
                      ("pallets/flask: Flask==1.1.2\n", "pallets/flask: expected a non-empty list of NAME==VERSION"),
                      ("pallets/flask: [Flask 1.1.2]\n", "pallets/flask: expected a non-empty list"),
                      ("- a\n", "expected a mapping")):
        p.write_text(text)
        with pytest.raises(ValueError, match=msg):
            read_list(p)
    p.write_text("o/n: [n==1.0]\n")
    assert read_list(p) == {"o/n": ["n==1.0"]}
