"""The SWE-bench collector's rules for GitHub PRs, pure: which PRs resolve an issue of their repo, the
problem statement and hints (comments before the first commit), and the SWE-bench-format row of a PR.

A PR becomes a candidate when it is merged, resolves at least one issue of the same repo (``fixes #12``
in its title, body or commit messages) and its diff touches both test files and source files. The row
has SWE-bench's fields (``repo, pull_number, instance_id, issue_numbers, base_commit, patch, test_patch,
problem_statement, hints_text, created_at``); ``version``, ``environment_setup_commit``, ``FAIL_TO_PASS``
and ``PASS_TO_PASS`` are null: validation computes the labels. Every other PR becomes a rejection row
with a stable reason key (:data:`REASONS`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from crucible.pipelines.swe.patches import split_patch

# Rejection reasons (stable keys, used in *.rejected.jsonl and summaries)
REASONS = {
    "not_merged": "the PR was closed without being merged",
    "no_linked_issue": "no 'fixes/closes/resolves #N' reference to an issue of the same repo",
    "linked_issue_is_pull": "every referenced number is a pull request, not an issue",
    "issue_unavailable": "no referenced issue could be fetched (deleted, transferred, or 404/410)",
    "diff_unavailable": "the PR diff could not be fetched (too large, or 404)",
    "no_source_patch": "the diff touches only test files",
    "no_test_patch": "the diff touches no test file, so there is nothing to validate against",
    "empty_problem_statement": "the resolved issues have no title and no body",
    "no_base_commit": "the PR has no base sha",
    "api_error": "GitHub kept failing for this PR (retried on the next run)",
}
RETRY_REASONS = frozenset({"api_error"})  # not remembered as done: a rerun tries these PRs again

REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_HTML_COMMENT = re.compile(r"(?s)<!--.*?-->")
_REF = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b:?[ \t]+"
    r"(?:(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)#|#|"
    r"https?://[^\s/]+/(?P<uowner>[A-Za-z0-9_.-]+)/(?P<uname>[A-Za-z0-9_.-]+)/issues/)"
    r"(?P<num>\d+)\b",
    re.IGNORECASE)


# -- pure logic ----------------------------------------------------------------------------------

def parse_time(value: str | None) -> datetime | None:
    """GitHub's ``2024-01-02T03:04:05Z`` (or any ISO 8601 string / date) -> aware UTC datetime."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def resolved_issues(text: str | None, repo: str) -> list[int]:
    """Issue numbers that ``text`` says it resolves, in order of first mention.

    SWE-bench's ``PR_KEYWORDS`` (close/closes/closed/fix/fixes/fixed/resolve/resolves/resolved, any case,
    optional colon) followed by ``#N``, ``owner/repo#N`` or ``https://host/owner/repo/issues/N``; references
    to other repos are ignored, and so is text inside HTML comments (PR templates)."""
    if not text:
        return []
    owner, _, name = repo.lower().partition("/")
    out: list[int] = []
    for m in _REF.finditer(_HTML_COMMENT.sub("", text)):
        o, n = m.group("owner") or m.group("uowner"), m.group("name") or m.group("uname")
        if o is not None and (o.lower(), n.lower()) != (owner, name):
            continue
        num = int(m.group("num"))
        if num > 0 and num not in out:
            out.append(num)
    return out


def pull_text(pr: Mapping, commit_messages: Iterable[str] = ()) -> str:
    """The text SWE-bench scans for issue references: title, body and every commit message."""
    return "\n".join([pr.get("title") or "", pr.get("body") or "", *[m or "" for m in commit_messages]])


def is_valid_pull(pr: Mapping, issues: list[int]) -> tuple[bool, str | None]:
    """SWE-bench's ``is_valid_pull``: merged and resolving at least one issue. (keep, reason)."""
    if not pr.get("merged_at"):
        return False, "not_merged"
    if not issues:
        return False, "no_linked_issue"
    return True, None


def first_commit_time(commits: list[Mapping]) -> datetime | None:
    """Author date of the PR's first commit (GitHub lists PR commits oldest first)."""
    for c in commits:
        info = c.get("commit") or {}
        t = parse_time((info.get("author") or {}).get("date") or (info.get("committer") or {}).get("date"))
        if t is not None:
            return t
    return None


def hints_before(comments: list[Mapping], first_commit: datetime | None) -> list[str]:
    """Bodies of the issue comments written before the PR's first commit (SWE-bench's ``_extract_hints``).

    A comment counts only if it was created *and* last edited before that time (an edit after the fix
    can leak it); with no commit time there are no hints."""
    if first_commit is None:
        return []
    out = []
    for c in comments:
        created = parse_time(c.get("created_at"))
        updated = parse_time(c.get("updated_at")) or created
        if created is None or max(created, updated) >= first_commit:
            continue
        if (c.get("body") or "").strip():
            out.append(c["body"])
    return out


def instance_id(repo: str, number: int) -> str:
    owner, _, name = repo.partition("/")
    return f"{owner}__{name}-{number}"


def split_diff_checked(diff: str | None) -> tuple[tuple[str, str], str | None]:
    """((patch, test_patch), None) when the diff has both a source and a test part, else (("", ""), reason)."""
    if diff is None or not diff.strip():
        return ("", ""), "diff_unavailable"
    patch, test_patch = split_patch(diff)
    if not patch.strip():
        return ("", ""), "no_source_patch"
    if not test_patch.strip():
        return ("", ""), "no_test_patch"
    return (patch, test_patch), None


def pull_to_instance(repo: str, pr: Mapping, *, diff: str | None, issues: list[Mapping],
                     hints: list[str]) -> tuple[dict | None, str | None]:
    """A merged PR with its diff, fetched resolved issues and hints -> (SWE-bench row, None) or (None, reason).

    ``issues`` are the issue objects that could be fetched (pull requests already left out)."""
    if not pr.get("merged_at"):
        return None, "not_merged"
    (patch, test_patch), reason = split_diff_checked(diff)
    if reason:
        return None, reason
    if not issues:
        return None, "issue_unavailable"
    statement = "".join(f"{i.get('title') or ''}\n{i.get('body') or ''}\n" for i in issues)
    if not statement.strip():
        return None, "empty_problem_statement"
    base = (pr.get("base") or {}).get("sha")
    if not base:
        return None, "no_base_commit"
    number = int(pr["number"])
    return {
        "repo": repo,
        "pull_number": number,
        "instance_id": instance_id(repo, number),
        "issue_numbers": [str(i["number"]) for i in issues],
        "base_commit": base,
        "patch": patch,
        "test_patch": test_patch,
        "problem_statement": statement,
        "hints_text": "\n".join(hints),
        "created_at": pr.get("created_at"),
        "merged_at": pr.get("merged_at"),
        "version": None,
        "environment_setup_commit": None,
        "FAIL_TO_PASS": None,
        "PASS_TO_PASS": None,
    }, None
