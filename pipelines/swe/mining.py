"""Commit mining (R2E-Gym style): commits of a git repo's history that change both source and tests and are
small, split into ``patch`` (source) and ``test_patch`` (tests). Each becomes a SWE-bench-format candidate
whose ``base_commit`` is the parent; validation decides whether it is an instance. Pure given the repo."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from crucible.pipelines.swe.patches import split_diff, split_patch


@dataclass(frozen=True)
class MiningLimits:
    max_source_files: int = 4
    max_source_lines: int = 200
    max_patch_chars: int = 10_000
    python_only: bool = True


def _git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                       env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if p.returncode != 0:
        raise RuntimeError(f"{repo}: git {' '.join(args)} failed: {p.stderr.strip()[-300:]}")
    return p.stdout


def changed_lines(diff: str) -> int:
    return sum(1 for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---")))


def judge_commit(diff: str, limits: MiningLimits = MiningLimits()) -> tuple[bool, str | None, str, str]:
    """(keep, reason, patch, test_patch) for one commit's diff."""
    patch, test_patch = split_patch(diff)
    if not test_patch.strip():
        return False, "no_test_change", patch, test_patch
    if not patch.strip():
        return False, "tests_only", patch, test_patch
    src_files = [p for p, _ in split_diff(patch)]
    if limits.python_only and any(not p.endswith(".py") for p in src_files):
        return False, "non_python_source", patch, test_patch
    if len(src_files) > limits.max_source_files:
        return False, f"too_many_files: {len(src_files)} > {limits.max_source_files}", patch, test_patch
    n = changed_lines(patch)
    if n > limits.max_source_lines:
        return False, f"too_many_lines: {n} > {limits.max_source_lines}", patch, test_patch
    if len(patch) > limits.max_patch_chars:
        return False, f"patch_too_long: {len(patch)} chars", patch, test_patch
    return True, None, patch, test_patch


def mine_commits(repo: Path, repo_name: str, *, rev: str = "HEAD", max_commits: int = 500,
                 limits: MiningLimits = MiningLimits()) -> tuple[list[dict], list[dict]]:
    """(candidates in SWE-bench format, rejections {commit, reason}) for non-merge commits with a parent."""
    shas = _git(repo, "rev-list", "--no-merges", f"--max-count={max_commits}", rev).split()
    cands, rejected = [], []
    owner, name = repo_name.split("/", 1)
    for sha in shas:
        parents = _git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
        if not parents:
            rejected.append({"commit": sha, "reason": "root_commit"})
            continue
        diff = _git(repo, "diff", "--no-color", "--full-index", parents[0], sha)
        keep, reason, patch, test_patch = judge_commit(diff, limits)
        if not keep:
            rejected.append({"commit": sha, "reason": reason})
            continue
        msg = _git(repo, "log", "-1", "--format=%B", sha).strip()
        date = _git(repo, "log", "-1", "--format=%cI", sha).strip()
        cands.append({"repo": repo_name, "instance_id": f"{owner}__{name}-{sha[:10]}", "base_commit": parents[0],
                      "patch": patch, "test_patch": test_patch, "problem_statement": "", "hints_text": msg,
                      "created_at": date, "version": None, "environment_setup_commit": None,
                      "FAIL_TO_PASS": None, "PASS_TO_PASS": None})
    return cands, rejected
