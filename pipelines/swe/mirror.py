"""Local bare git mirrors: how sdists and injected bugs become repos at commits that the validator, the
grader and the agent reach through the sandbox's URL template (``file://<root>/{owner}/{name}.git``).
Commits use a fixed identity and their parent's date, so the same edit on the same parent gives the same sha
(and a bug on an old release is as old as the release)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from crucible.pipelines.swe.patches import apply_patch
from crucible.sandbox.sources import GIT_ENV


def _git(args, cwd=None, check=True, strip=True, env=None):
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, **(env or {})})
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return proc.stdout.strip() if strip else proc.stdout


def mirror_template(root: Path) -> str:
    return f"file://{Path(root).resolve()}/{{owner}}/{{name}}.git"


def ensure_bare_mirror(checkout: Path, root: Path, repo: str) -> Path:
    """``root/owner/name.git``: a bare clone of ``checkout`` (fetches new commits if it exists)."""
    owner, name = repo.split("/", 1)
    mirror = Path(root) / owner / f"{name}.git"
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        _git(["clone", "-q", "--bare", str(checkout), str(mirror)])
    else:
        _git(["fetch", "-q", str(checkout), "+HEAD:refs/heads/crucible-base"], cwd=mirror)
    return mirror


def commit_patch(mirror: Path, parent: str, patch: str, message: str, branch: str) -> str:
    """Apply ``patch`` on ``parent`` and push the commit to ``mirror`` as ``branch``; returns its sha."""
    with tempfile.TemporaryDirectory(prefix="crucible-mirror-") as tmp:
        work = Path(tmp) / "w"
        _git(["clone", "-q", "--no-checkout", str(mirror), str(work)])
        _git(["checkout", "-q", "--detach", parent], cwd=work)
        apply_patch(work, patch, what=f"patch for {branch}")
        _git(["add", "-A"], cwd=work)
        # dated at its parent (deterministic, and the source's date survives: it decides as-of resolution)
        when = _git(["log", "-1", "--format=%cI", parent], cwd=work)
        _git(["commit", "-q", "--no-gpg-sign", "--allow-empty", "-m", message], cwd=work,
             env={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
        sha = _git(["rev-parse", "HEAD"], cwd=work)
        _git(["push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}"], cwd=work)
    return sha


def diff_commits(mirror: Path, a: str, b: str) -> str:
    # unstripped: a hunk's trailing blank context lines are part of it (a strict parser counts them)
    return _git(["diff", "--no-color", "--full-index", a, b], cwd=mirror, strip=False)


def fixture_instances(spec: dict, checkout, root: Path, instance_id: str | None = None) -> dict:
    """A SWE-bench-format row from a fixture spec (``sdist``, ``repo``, ``bug`` diff, ``test_patch``,
    labels): the sdist checkout goes to a bare mirror under ``root``, the bug becomes ``base_commit``
    and the fix (bug reversed) the ``patch``."""
    mirror = ensure_bare_mirror(checkout.path, root, spec["repo"])
    iid = instance_id or f"{spec['repo'].replace('/', '__')}-fixture"
    bug = commit_patch(mirror, checkout.commit, spec["bug"], f"bug for {iid}", f"crucible/{iid}")
    return {"repo": spec["repo"], "instance_id": iid, "base_commit": bug,
            "patch": diff_commits(mirror, bug, checkout.commit), "test_patch": spec["test_patch"],
            "problem_statement": spec.get("problem_statement", ""), "hints_text": "", "created_at": None,
            "version": None, "environment_setup_commit": None,
            "FAIL_TO_PASS": spec.get("FAIL_TO_PASS"), "PASS_TO_PASS": spec.get("PASS_TO_PASS")}
