"""Commit mining end to end: a small git repo with history on a local mirror -> mined candidates -> env +
clean reference run -> before/after validation in Docker -> gold rollout graded -> store, and a rerun that
does nothing again."""

import subprocess
import textwrap

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

V1 = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "calc"
        version = "0.1"
        requires-python = ">=3.9"
        [project.optional-dependencies]
        tests = ["pytest"]
        [tool.setuptools]
        packages = ["calc"]
    """,
    "calc/__init__.py": """
        def add(a, b):
            return a + b


        def clamp(x, lo, hi):
            return max(lo, x)
    """,
    "tests/test_calc.py": """
        import calc


        def test_add():
            assert calc.add(2, 3) == 5
    """,
}
FIX = {
    "calc/__init__.py": """
        def add(a, b):
            return a + b


        def clamp(x, lo, hi):
            return min(hi, max(lo, x))
    """,
    "tests/test_calc.py": """
        import calc


        def test_add():
            assert calc.add(2, 3) == 5


        def test_clamp():
            assert calc.clamp(15, 0, 10) == 10
            assert calc.clamp(-1, 0, 10) == 0
    """,
}


def commit(repo, files, msg):
    for rel, text in files.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", "commit", "-qm", msg],
                   cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_mined_commit_becomes_validated_instance_resolved_by_gold(tmp_path):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.pipeline import run

    work = tmp_path / "src"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    base = commit(work, V1, "calc: add and clamp")
    fix = commit(work, FIX, "Fix clamp ignoring the upper bound")
    docs = commit(work, {"README.md": "calc\n"}, "docs")
    mirrors = tmp_path / "mirrors"
    (mirrors / "acme").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirrors / "acme" / "calc.git")], check=True)
    out = tmp_path / "out"
    cfg = load_config("swe", ["swe.sdists=[]", "swe.mine.repos=[acme/calc]",
                              f"sandbox.repo_url_template=file://{mirrors}/{{owner}}/{{name}}.git",
                              "swe.statements.use_llm=false", "swe.rollouts.policies=[gold]",
                              f"run.out_dir={out}", f"swe.workdir={tmp_path / 'work'}"])
    summary = run(cfg)
    assert summary["instances"] == 1, summary
    _, rows = catalog.query(str(out), "select instance_id, source, source_ref, base_commit, FAIL_TO_PASS, "
                            "PASS_TO_PASS, statement_origin, problem_statement from swe_instances")
    iid, source, ref, base_commit, f2p, p2p, origin, statement = rows[0]
    assert iid == f"acme__calc-{fix[:10]}" and source == "mined" and ref == f"acme/calc@{iid}"
    # the statement is written from the observed failure (the F2P test reduced to a call, run before and after)
    assert base_commit == base and origin == "observed" and "clamp(15, 0, 10)" in statement
    assert "calc/__init__.py" not in statement
    assert list(f2p) == ["tests/test_calc.py::test_clamp"] and list(p2p) == ["tests/test_calc.py::test_add"]
    _, fails = catalog.query(str(out), "select stage, reason, item_key from failures where stage = 'mine'")
    by_key = {k: r for _, r, k in fails}
    assert by_key[f"mine:acme/calc@{docs}"] == "no_test_change" and by_key[f"mine:acme/calc@{base}"] == "root_commit"
    _, vals = catalog.query(str(out), "select status, meta from swe_validations")
    assert vals[0][0] == "valid"
    meta = vals[0][1] if isinstance(vals[0][1], dict) else __import__("json").loads(vals[0][1])
    assert meta["reference"]["ok"] and meta["reference"]["n_tests"] == 1  # the clean env commit has test_add only
    assert summary["trajectories"] == {"gold/resolved": 1}
    # rerun: the instance and every rejected commit are committed already -> nothing new
    counts = {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0]
              for t in ("swe_instances", "swe_validations", "swe_trajectories", "failures")}
    again = run(cfg)
    assert again["instances"] == 1
    assert counts == {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0] for t in counts}
