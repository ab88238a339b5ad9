"""GitHub PR crawl -> SWE-bench-format task candidates (rules: :mod:`crucible.pipelines.swe.github_rules`; HTTP:
:mod:`crucible.pipelines.swe.github_client`).

* :func:`build_candidate` (the requests and checks for one PR), :func:`crawl_repo` (one repo, an iterator of
  results) and :func:`crawl` (repos -> JSONL files, resumable through an append-only journal, with progress
  logging).

    client = GitHubClient(token_env="GITHUB_TOKEN")
    summary = crawl(client, ["psf/requests"], out_path="prs.jsonl", max_pulls=200)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crucible.pipelines.store.fsio import write_bytes_atomic
from crucible.pipelines.swe.github_client import (
    GitHubClient,
    GitHubError,
    NotFoundError,
    RateLimitError,
    iso_utc,
)
from crucible.pipelines.swe.github_rules import (
    REASONS,
    REPO_RE,
    RETRY_REASONS,
    first_commit_time,
    hints_before,
    instance_id,
    is_valid_pull,
    parse_time,
    pull_text,
    pull_to_instance,
    resolved_issues,
    split_diff_checked,
)
from crucible.pipelines.textio import read_text

log = logging.getLogger(__name__)


# -- crawl ----------------------------------------------------------------------------------------

@dataclass
class Rejection:
    repo: str
    pull_number: int
    reason: str
    detail: str = ""

    def as_row(self) -> dict:
        return {"repo": self.repo, "pull_number": self.pull_number,
                "instance_id": instance_id(self.repo, self.pull_number), "reason": self.reason,
                "detail": self.detail or REASONS.get(self.reason, "")}


def build_candidate(client: GitHubClient, repo: str, pr: Mapping) -> tuple[dict | None, Rejection | None]:
    """All requests and checks for one listed PR (cheapest checks first)."""
    number = int(pr["number"])
    if not pr.get("merged_at"):
        return None, Rejection(repo, number, "not_merged")
    commits = client.pull_commits(repo, number)
    numbers = [n for n in resolved_issues(pull_text(pr, [(c.get("commit") or {}).get("message") for c in commits]),
                                          repo) if n != number]
    keep, reason = is_valid_pull(pr, numbers)
    if not keep:
        return None, Rejection(repo, number, reason)
    try:
        diff = client.pull_diff(repo, number)
    except GitHubError as exc:
        if isinstance(exc, NotFoundError) or exc.status in (406, 422):  # 406: "diff too large"
            return None, Rejection(repo, number, "diff_unavailable", str(exc))
        raise
    _, reason = split_diff_checked(diff)
    if reason:
        return None, Rejection(repo, number, reason)
    issues, missing, pulls = [], [], []
    for n in numbers:
        try:
            issue = client.issue(repo, n)
        except NotFoundError as exc:
            missing.append(f"#{n}: {exc}")
            continue
        (pulls if issue.get("pull_request") else issues).append(issue)
    if not issues:
        reason = "linked_issue_is_pull" if pulls and not missing else "issue_unavailable"
        return None, Rejection(repo, number, reason, "; ".join(missing) or f"referenced: {numbers}")
    start = first_commit_time(commits)
    hints = []
    for issue in issues:
        if issue.get("comments", 1):
            hints.extend(hints_before(client.issue_comments(repo, int(issue["number"])), start))
    row, reason = pull_to_instance(repo, pr, diff=diff, issues=issues, hints=hints)
    if row is None:
        return None, Rejection(repo, number, reason)
    return row, None


def crawl_repo(client: GitHubClient, repo: str, *, max_pulls: int | None = None, since: str | None = None,
               skip: Container[int] = (), on_skip: Callable[[int], None] | None = None,
               ) -> Iterator[tuple[dict | None, Rejection | None]]:
    """(row, None) or (None, rejection) per listed PR, newest first; PR numbers in ``skip`` yield nothing
    and cost no request beyond the listing. ``max_pulls`` bounds the PRs looked at (skipped ones included, so
    a rerun with the same bound covers the same PRs); ``since`` (ISO date) stops at older PRs."""
    if not REPO_RE.match(repo):
        raise ValueError(f"repo {repo!r} is not owner/name (e.g. psf/requests)")
    cutoff = parse_time(since) if since else None
    looked = 0
    for pr in client.pulls(repo):
        if max_pulls is not None and looked >= max_pulls:
            return
        created = parse_time(pr.get("created_at"))
        if cutoff is not None and created is not None and created < cutoff:
            return  # listed newest first: everything after is older
        looked += 1
        number = int(pr["number"])
        if number in skip:
            if on_skip is not None:
                on_skip(number)
            continue
        try:
            yield build_candidate(client, repo, pr)
        except RateLimitError:
            raise
        except GitHubError as exc:
            log.warning("%s#%d: %s", repo, number, exc)
            yield None, Rejection(repo, number, "api_error", str(exc))


def rejected_path_for(out_path: str | Path) -> Path:
    """``prs.jsonl`` -> ``prs.rejected.jsonl`` (same directory)."""
    p = Path(out_path)
    stem = p.name[:-len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
    return p.with_name(f"{stem}.rejected.jsonl")


def _repair_and_read(path: Path) -> list[dict]:
    """Rows of a JSONL file written by :class:`_JsonlAppender`. A torn last line (the process died
    mid-write) is dropped, and a missing final newline restored, by rewriting the file atomically
    (:func:`~crucible.pipelines.store.fsio.write_bytes_atomic`), so appending after it stays valid JSONL."""
    if not path.exists():
        return []
    text = read_text(path, "crawler output file")
    rows, good = [], []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
            good.append(line)
        except json.JSONDecodeError:
            if i != len(lines) - 1:  # only the last line (no newline after it) may be torn
                raise ValueError(f"{path}:{i + 1}: not valid JSON; this file was not written by the crawler "
                                 "(move it away or pick another --out)") from None
            log.warning("%s: dropping a torn last line (%d chars) from an interrupted run", path, len(line))
    if text and not text.endswith("\n"):
        write_bytes_atomic(str(path), "".join(g + "\n" for g in good).encode("utf-8"), mode=0o644)
    return rows


class _JsonlAppender:
    """Append-only JSONL: one ``write`` per row, flushed and fsynced, so a crash loses at most the row
    being written (and :func:`_repair_and_read` drops its torn line on the next run)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


@dataclass
class CrawlSummary:
    out_path: str
    rejected_path: str
    kept: int = 0  # new rows written by this run
    rejected: Counter = field(default_factory=Counter)  # new rejections by reason
    skipped: int = 0  # PRs done by an earlier run
    total_rows: int = 0  # rows in out_path after the run
    requests: int = 0
    rate_limit_remaining: int | None = None
    waited_s: float = 0.0
    elapsed_s: float = 0.0
    repo_errors: dict[str, str] = field(default_factory=dict)  # repos whose listing failed, with why
    rows: list[dict] = field(default_factory=list, repr=False)  # the new rows
    rejections: list[dict] = field(default_factory=list, repr=False)  # the new rejection rows

    def as_dict(self) -> dict:
        return {"out": self.out_path, "rejected_out": self.rejected_path, "kept": self.kept,
                "rejected": dict(sorted(self.rejected.items())), "skipped_done": self.skipped,
                "total_rows": self.total_rows, "repo_errors": dict(self.repo_errors), "requests": self.requests,
                "rate_limit_remaining": self.rate_limit_remaining, "waited_s": round(self.waited_s, 1),
                "elapsed_s": round(self.elapsed_s, 2)}


def crawl(client: GitHubClient, repos: Iterable[str], *, out_path: str | Path, max_pulls: int | None = None,
          since: str | None = None, progress_every_s: float = 30.0) -> CrawlSummary:
    """Crawl ``repos`` into ``out_path`` (SWE-bench-format JSONL, readable by
    :func:`crucible.pipelines.swe.sources.read_instances`) and rejections into ``<stem>.rejected.jsonl``.

    Resumable: instance ids already in the output and PRs already rejected (except ``api_error``) are
    skipped without requests. :class:`RateLimitError` propagates after everything so far is on disk."""
    out = Path(out_path)
    if not out.name.endswith(".jsonl"):
        raise ValueError(f"--out {out}: the crawl writes JSONL; give a path ending in .jsonl")
    repos = list(repos)
    for repo in repos:
        if not REPO_RE.match(repo):
            raise ValueError(f"repo {repo!r} is not owner/name (e.g. psf/requests)")
    rej = rejected_path_for(out)
    done_rows = {(r.get("repo"), r.get("pull_number")) for r in _repair_and_read(out)}
    done_rejected = {(r.get("repo"), r.get("pull_number")) for r in _repair_and_read(rej)
                     if r.get("reason") not in RETRY_REASONS}
    summary = CrawlSummary(str(out), str(rej), total_rows=len(done_rows))
    log.info("crawling %d repo(s) into %s (%d rows and %d rejected PRs from earlier runs are skipped)%s",
             len(repos), out, len(done_rows), len(done_rejected),
             "" if client.authenticated else f"; ${client.token_env} is not set: unauthenticated, 60 requests/hour")
    start = time.monotonic()
    req0, wait0 = client.requests_made, client.waited_s
    rows_fh, rej_fh = _JsonlAppender(out), _JsonlAppender(rej)
    last_log = start
    try:
        for repo in repos:
            skip = {n for (r, n) in done_rejected if r == repo} | {n for (r, n) in done_rows if r == repo}
            seen_here = 0

            def count_skip(_n: int) -> None:
                summary.skipped += 1

            try:
                for row, rejection in crawl_repo(client, repo, max_pulls=max_pulls, since=since, skip=skip,
                                                 on_skip=count_skip):
                    seen_here += 1
                    if row is not None:
                        rows_fh.write(row)
                        summary.rows.append(row)
                        summary.kept += 1
                        summary.total_rows += 1
                    else:
                        r = rejection.as_row()
                        rej_fh.write(r)
                        summary.rejections.append(r)
                        summary.rejected[rejection.reason] += 1
                    now = time.monotonic()
                    if now - last_log >= progress_every_s:
                        last_log = now
                        _log_progress(repo, seen_here, summary, client, now - start, req0)
            except RateLimitError:
                raise
            except GitHubError as exc:  # the listing itself failed (no such repo, no access, GitHub down)
                summary.repo_errors[repo] = str(exc)
                log.error("%s: stopped: %s", repo, exc)
                continue
            log.info("%s done: %s", repo, _progress_text(summary, client, time.monotonic() - start, req0))
    except RateLimitError as exc:
        exc.summary = summary  # what this run did before it had to stop (filled in below)
        raise
    finally:
        rows_fh.close()
        rej_fh.close()
        summary.requests = client.requests_made - req0
        summary.rate_limit_remaining = client.rate_limit_remaining
        summary.waited_s = client.waited_s - wait0
        summary.elapsed_s = time.monotonic() - start
    return summary


def _progress_text(summary: CrawlSummary, client: GitHubClient, elapsed: float, req0: int) -> str:
    n = summary.kept + sum(summary.rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common())
    reset = f", resets {iso_utc(client.rate_limit_reset)}" if client.rate_limit_reset else ""
    return (f"{n} PRs ({n / max(elapsed, 1e-9):.1f}/s), {summary.kept} kept, rejected: {reasons or 'none'}; "
            f"{client.requests_made - req0} requests, rate limit remaining "
            f"{client.rate_limit_remaining if client.rate_limit_remaining is not None else '?'}{reset}")


def _log_progress(repo: str, seen: int, summary: CrawlSummary, client: GitHubClient, elapsed: float, req0: int):
    log.info("%s: %d PRs this repo; %s", repo, seen, _progress_text(summary, client, elapsed, req0))
