import os
import subprocess

from crucible.pipelines.swe.mining import MiningLimits, mine_commits
from crucible.pipelines.swe.patches import apply_patch

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@x"}


def commit(repo, files, msg):
    for path, text in files.items():
        p = repo / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", msg], cwd=repo, check=True, env=ENV)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_mines_commits_touching_source_and_tests(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    c0 = commit(repo, {"pkg/m.py": "def f():\n    return 1\n", "tests/test_m.py": "x = 1\n"}, "init")
    c1 = commit(repo, {"pkg/m.py": "def f():\n    return 2\n",
                       "tests/test_m.py": "from pkg.m import f\n\ndef test_f():\n    assert f() == 2\n"}, "fix f")
    commit(repo, {"tests/test_m.py": "x = 2\n"}, "tests only")
    commit(repo, {"README.md": "hi\n", "pkg/m.py": "def f():\n    return 3\n", "tests/test_m.py": "y = 1\n"}, "docs")
    commit(repo, {"pkg/m.py": "def f():\n" + "    a = 1\n" * 30 + "    return 2\n", "tests/test_m.py": "z\n"}, "big")
    cands, rejected = mine_commits(repo, "o/r", limits=MiningLimits(max_source_lines=20))
    assert [c["instance_id"] for c in cands] == [f"o__r-{c1[:10]}"]
    c = cands[0]
    assert c["base_commit"] == c0 and c["hints_text"] == "fix f" and c["FAIL_TO_PASS"] is None
    assert "pkg/m.py" in c["patch"] and "tests/" not in c["patch"] and "tests/test_m.py" in c["test_patch"]
    reasons = sorted(r["reason"].split(":")[0] for r in rejected)
    assert reasons == ["non_python_source", "root_commit", "tests_only", "too_many_lines"]
    # the split halves apply on the parent's tree
    subprocess.run(["git", "checkout", "-q", c0], cwd=repo, check=True)
    apply_patch(repo, c["test_patch"])
    apply_patch(repo, c["patch"])
    assert (repo / "pkg/m.py").read_text() == "def f():\n    return 2\n"
