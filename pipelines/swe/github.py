"""GitHub PR crawl -> SWE-bench-format task candidates (the SWE-bench collector's rules).

A PR becomes a candidate when it is merged, resolves at least one issue of the same repo (``fixes #12``
in its title, body or commit messages) and its diff touches both test files and source files. The row
has SWE-bench's fields (``repo, pull_number, instance_id, issue_numbers, base_commit, patch, test_patch,
problem_statement, hints_text, created_at``); ``version``, ``environment_setup_commit``, ``FAIL_TO_PASS``
and ``PASS_TO_PASS`` are null: validation computes the labels. Every other PR becomes a rejection row
with a stable reason key (:data:`REASONS`).

Layout:

* pure logic: :func:`resolved_issues`, :func:`is_valid_pull`, :func:`hints_before`, :func:`pull_to_instance`;
* :class:`GitHubClient`: the one place that talks HTTP (auth from an environment variable, pagination,
  rate limits, retries), clock and sleep injectable;
* :func:`crawl_repo` (one repo, an iterator of results) and :func:`crawl` (repos -> JSONL files,
  resumable, with progress logging).

    client = GitHubClient(token_env="GITHUB_TOKEN")
    summary = crawl(client, ["psf/requests"], out_path="prs.jsonl", max_pulls=200)
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.swe.patches import split_patch

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TOKEN_ENV = "GITHUB_TOKEN"
API_VERSION = "2022-11-28"
ACCEPT_JSON = "application/vnd.github+json"
ACCEPT_DIFF = "application/vnd.github.diff"
USER_AGENT = "crucible-swe-crawl"
PER_PAGE = 100
MAX_RETRIES = 5  # 5xx, connection errors, secondary rate limits
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub: wait at least a minute when a secondary limit gives no Retry-After
RESET_MARGIN_S = 1.0  # the reset epoch has 1 s resolution
TIMEOUT_S = (10.0, 60.0)

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
KEYWORDS = ("close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved")
_HTML_COMMENT = re.compile(r"(?s)<!--.*?-->")
_REF = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b:?[ \t]+"
    r"(?:(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)#|#|"
    r"https?://[^\s/]+/(?P<uowner>[A-Za-z0-9_.-]+)/(?P<uname>[A-Za-z0-9_.-]+)/issues/)"
    r"(?P<num>\d+)\b",
    re.IGNORECASE)


# -- errors ------------------------------------------------------------------------------------

class GitHubError(RuntimeError):
    """A request failed for good (after retries where retrying makes sense)."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


class NotFoundError(GitHubError):
    """404/410: the object does not exist or the token cannot see it."""


class RateLimitError(GitHubError):
    """The rate limit resets later than the client is allowed to wait."""

    def __init__(self, message: str, reset_at: float | None = None):
        super().__init__(message, status=403)
        self.reset_at = reset_at
        self.summary: CrawlSummary | None = None  # set by crawl(): the partial run


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


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    for part in (header or "").split(","):
        m = re.match(r'\s*<([^>]+)>\s*;(.*)', part)
        if m and re.search(r'\brel="?next"?', m.group(2)):
            return m.group(1)
    return None


# -- HTTP client -----------------------------------------------------------------------------------

class GitHubClient:
    """GitHub REST client: token from an environment variable, pagination, rate limits, retries.

    * The token is read from ``environ[token_env]`` (default ``GITHUB_TOKEN``) once; it is never logged and
      is sent only to the API host (a ``Link`` URL elsewhere gets no Authorization header). Without the
      variable the client works unauthenticated (60 requests/hour on github.com).
    * Rate limits: ``X-RateLimit-Remaining``/``-Reset`` are tracked; at 0 the client sleeps until the reset
      (at most ``max_rate_limit_wait_s``, beyond that :class:`RateLimitError` says when to retry). A 403/429
      with ``Retry-After`` or a rate-limit message waits and retries; 5xx and connection errors retry with
      bounded exponential backoff; 404/410 raise :class:`NotFoundError`.
    * ``clock`` (epoch seconds) and ``sleep`` are injectable; ``requests_made`` counts every HTTP attempt.
    """

    def __init__(self, api_url: str = DEFAULT_API_URL, *, token_env: str = DEFAULT_TOKEN_ENV,
                 environ: Mapping[str, str] | None = None, max_rate_limit_wait_s: float = 3600.0,
                 max_retries: int = MAX_RETRIES, timeout: float | tuple[float, float] = TIMEOUT_S,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 per_page: int = PER_PAGE, session=None):
        import requests

        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token_env or ""):
            raise ValueError(f"token_env {token_env!r} is not an environment variable name (e.g. GITHUB_TOKEN)")
        if not re.match(r"^https?://", api_url or ""):
            raise ValueError(f"api_url {api_url!r} must start with http:// or https:// (e.g. {DEFAULT_API_URL})")
        self.api_url = api_url.rstrip("/")
        self.token_env = token_env
        env = os.environ if environ is None else environ
        self.__token = (env.get(token_env) or "").strip() or None
        self.max_rate_limit_wait_s = float(max_rate_limit_wait_s)
        self.max_retries = int(max_retries)
        self.per_page = max(1, min(100, int(per_page)))
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.session = session or requests.Session()
        self._requests_exc = requests.RequestException
        self.requests_made = 0
        self.rate_limit_remaining: int | None = None
        self.rate_limit_reset: float | None = None
        self.waited_s = 0.0  # total time slept for rate limits and backoff

    @property
    def authenticated(self) -> bool:
        return self.__token is not None

    def __repr__(self) -> str:  # never shows the token
        return f"GitHubClient({self.api_url!r}, token_env={self.token_env!r}, authenticated={self.authenticated})"

    # -- public API ------------------------------------------------------------------------------
    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._request(path, params, ACCEPT_JSON).json()

    def get_text(self, path: str, accept: str) -> str:
        resp = self._request(path, None, accept)
        resp.encoding = resp.encoding or "utf-8"
        return resp.text

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, *,
                 max_pages: int | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"``."""
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": self.per_page, **(params or {})}
        pages = 0
        while url is not None:
            resp = self._request(url, query, ACCEPT_JSON)
            pages += 1
            data = resp.json()
            if not isinstance(data, list):
                raise GitHubError(f"GET {url}: expected a JSON list, got {type(data).__name__}", resp.status_code, url)
            yield from data
            url, query = next_link(resp.headers.get("Link")), None  # the next URL carries the query
            if max_pages is not None and pages >= max_pages:
                return

    def pulls(self, repo: str, *, state: str = "closed") -> Iterator[dict]:
        """PRs newest first (``sort=created&direction=desc``)."""
        return self.paginate(f"/repos/{repo}/pulls", {"state": state, "sort": "created", "direction": "desc"})

    def pull_diff(self, repo: str, number: int) -> str:
        return self.get_text(f"/repos/{repo}/pulls/{number}", ACCEPT_DIFF)

    def pull_commits(self, repo: str, number: int) -> list[dict]:
        return list(self.paginate(f"/repos/{repo}/pulls/{number}/commits"))

    def issue(self, repo: str, number: int) -> dict:
        return self.get_json(f"/repos/{repo}/issues/{number}")

    def issue_comments(self, repo: str, number: int) -> list[dict]:
        return list(self.paginate(f"/repos/{repo}/issues/{number}/comments"))

    # -- internals -------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return path if re.match(r"^https?://", path) else f"{self.api_url}/{path.lstrip('/')}"

    def _headers(self, url: str, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT}
        if self.__token and urlsplit(url).netloc == urlsplit(self.api_url).netloc:
            headers["Authorization"] = f"Bearer {self.__token}"
        return headers

    def _wait(self, seconds: float, why: str, *, rate_limit: bool = True) -> None:
        """Sleep; a rate-limit wait longer than ``max_rate_limit_wait_s`` raises instead (backoff is
        bounded by BACKOFF_MAX_S on its own)."""
        seconds = max(0.0, float(seconds))
        if rate_limit and seconds > self.max_rate_limit_wait_s:
            reset_at = self.clock() + seconds
            raise RateLimitError(
                f"GitHub {why}: it resets at {_iso(reset_at)} ({seconds:.0f} s from now), more than "
                f"max_rate_limit_wait_s={self.max_rate_limit_wait_s:.0f}; rerun after that time (the crawl output is "
                f"resumable){'' if self.authenticated else f', or set ${self.token_env} to a token for a higher limit'}",
                reset_at=reset_at)
        if seconds > 0:
            log.info("GitHub %s: waiting %.0f s", why, seconds)
            self.waited_s += seconds
            self.sleep(seconds)

    def _track(self, headers: Mapping[str, str]) -> None:
        rem, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        try:
            if rem is not None:
                self.rate_limit_remaining = int(rem)
            if reset is not None:
                self.rate_limit_reset = float(reset)
        except ValueError:
            pass

    def _wait_for_reset(self, why: str) -> None:
        reset = self.rate_limit_reset
        wait = (reset - self.clock() + RESET_MARGIN_S) if reset is not None else SECONDARY_LIMIT_WAIT_S
        self._wait(max(wait, 0.0), why)
        self.rate_limit_remaining = None  # unknown until the next response

    def _request(self, path: str, params: Mapping[str, Any] | None, accept: str):
        url = self._url(path)
        attempt = 0
        while True:
            if self.rate_limit_remaining == 0 and self.rate_limit_reset is not None \
                    and self.rate_limit_reset > self.clock() - RESET_MARGIN_S:
                self._wait_for_reset("rate limit exhausted (X-RateLimit-Remaining: 0)")
            attempt += 1
            self.requests_made += 1
            try:
                resp = self.session.get(url, params=params, headers=self._headers(url, accept), timeout=self.timeout)
            except self._requests_exc as exc:
                if attempt > self.max_retries:
                    raise GitHubError(f"GET {url}: {type(exc).__name__} after {attempt} attempts: {exc}",
                                      url=url) from None
                self._wait(_backoff(attempt), f"connection error ({type(exc).__name__}), retry {attempt}",
                           rate_limit=False)
                continue
            self._track(resp.headers)
            status = resp.status_code
            if status < 300:
                return resp
            message = _message(resp)
            if status in (403, 429) and _is_rate_limited(resp, message):
                if attempt > self.max_retries:
                    raise RateLimitError(f"GET {url}: still rate limited after {attempt} attempts ({message})",
                                         reset_at=self.rate_limit_reset)
                retry_after = resp.headers.get("Retry-After")
                if retry_after is not None and retry_after.strip().isdigit():
                    self._wait(float(retry_after), f"asked to retry after {retry_after} s ({status})")
                elif resp.headers.get("X-RateLimit-Remaining") == "0":
                    self._wait_for_reset(f"rate limit exceeded ({status})")
                else:  # secondary limit without a hint
                    self._wait(max(SECONDARY_LIMIT_WAIT_S, _backoff(attempt)), f"secondary rate limit ({status})")
                continue
            if status >= 500:
                if attempt > self.max_retries:
                    raise GitHubError(f"GET {url}: HTTP {status} after {attempt} attempts ({message})", status, url)
                self._wait(_backoff(attempt), f"HTTP {status}, retry {attempt}", rate_limit=False)
                continue
            if status in (404, 410):
                raise NotFoundError(f"GET {url}: HTTP {status} {message} (it does not exist, or the token in "
                                    f"${self.token_env} cannot see it)", status, url)
            if status == 401:
                raise GitHubError(f"GET {url}: HTTP 401 {message}: the token in ${self.token_env} was rejected; "
                                  "set a valid token or unset the variable", status, url)
            raise GitHubError(f"GET {url}: HTTP {status} {message}", status, url)


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))


def _message(resp) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:300]
    except ValueError:
        pass
    return (resp.text or "").strip()[:300]


def _is_rate_limited(resp, message: str) -> bool:
    return resp.status_code == 429 or "Retry-After" in resp.headers \
        or resp.headers.get("X-RateLimit-Remaining") == "0" or "rate limit" in message.lower()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    mid-write) is dropped, and a missing final newline restored, by rewriting the file atomically (temp
    file in the same directory + os.replace), so appending after it stays valid JSONL."""
    if not path.exists():
        return []
    from pipelines.textio import read_text

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
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("".join(g + "\n" for g in good))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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
    :func:`pipelines.swe.sources.read_instances`) and rejections into ``<stem>.rejected.jsonl``.

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
    reset = f", resets {_iso(client.rate_limit_reset)}" if client.rate_limit_reset else ""
    return (f"{n} PRs ({n / max(elapsed, 1e-9):.1f}/s), {summary.kept} kept, rejected: {reasons or 'none'}; "
            f"{client.requests_made - req0} requests, rate limit remaining "
            f"{client.rate_limit_remaining if client.rate_limit_remaining is not None else '?'}{reset}")


def _log_progress(repo: str, seen: int, summary: CrawlSummary, client: GitHubClient, elapsed: float, req0: int):
    log.info("%s: %d PRs this repo; %s", repo, seen, _progress_text(summary, client, elapsed, req0))


def client_from_config(gh: Mapping | None = None, *, api_url: str | None = None, token_env: str | None = None,
                       environ: Mapping[str, str] | None = None, **kwargs) -> GitHubClient:
    """A client from the ``swe.github`` config section, flags overriding it."""
    gh = gh or {}
    return GitHubClient(api_url or gh.get("api_url") or DEFAULT_API_URL,
                        token_env=token_env or gh.get("token_env") or DEFAULT_TOKEN_ENV, environ=environ,
                        max_rate_limit_wait_s=float(gh.get("max_rate_limit_wait_s", 3600)), **kwargs)
