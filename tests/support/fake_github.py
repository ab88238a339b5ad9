"""A scripted fake of the GitHub REST API on 127.0.0.1, for tests of :mod:`crucible.pipelines.swe.github`.

A real ``ThreadingHTTPServer`` (random port, context manager) serving the endpoints the PR crawl uses, in
GitHub's shapes:

* ``GET /repos/{o}/{r}/pulls?state=&sort=created&direction=&per_page=&page=`` with ``Link`` pagination;
* ``GET /repos/{o}/{r}/pulls/{n}``: JSON, or the unified diff when ``Accept`` is
  ``application/vnd.github.diff`` / ``application/vnd.github.v3.diff`` (406 "too large" if the PR has no diff);
* ``GET /repos/{o}/{r}/pulls/{n}/commits``, ``/issues/{n}`` (a PR number gives its issue with a
  ``pull_request`` key, as GitHub does), ``/issues/{n}/comments``, all paginated;
* ``X-RateLimit-Limit/-Remaining/-Reset/-Used`` on every reply; at 0 remaining a 403 "API rate limit
  exceeded" until the reset (time from an injectable ``clock``, so tests can share a fake clock with the client);
* scripted faults (:class:`Fault`: status, headers, body, path regex, how many times), unknown objects -> 404;
* every request is recorded (path, query, lower-cased headers incl. ``authorization``).

    with FakeGitHub() as gh:
        gh.add_pull("o/r", 3, title="Fix x", body="fixes #2", base_sha=sha, diff=diff, commits=[...])
        gh.add_issue("o/r", 2, "x breaks", "details", comments=[...])
        client = GitHubClient(gh.base_url)
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path matches ``path`` (regex, searched) with this reply."""

    status: int
    path: str = ".*"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    status: int = 0


@dataclass
class _Repo:
    pulls: dict[int, dict] = field(default_factory=dict)
    diffs: dict[int, str | None] = field(default_factory=dict)
    commits: dict[int, list[dict]] = field(default_factory=dict)
    issues: dict[int, dict] = field(default_factory=dict)
    comments: dict[int, list[dict]] = field(default_factory=dict)


def commit(sha: str, message: str, date: str) -> dict:
    """A PR commit in the ``/pulls/{n}/commits`` shape."""
    person = {"name": "Dev", "email": "dev@example.invalid", "date": date}
    return {"sha": sha, "commit": {"message": message, "author": person, "committer": person}}


def comment(body: str, created_at: str, updated_at: str | None = None, login: str = "user") -> dict:
    return {"body": body, "created_at": created_at, "updated_at": updated_at or created_at, "user": {"login": login}}


class FakeGitHub:
    def __init__(self, *, clock: Callable[[], float] = time.time, rate_limit: int = 5000):
        self.clock = clock
        self.limit = rate_limit
        self.remaining = rate_limit
        self.reset = clock() + 3600
        self.repos: dict[str, _Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- scripting ---------------------------------------------------------------------------------
    def _repo(self, repo: str) -> _Repo:
        return self.repos.setdefault(repo, _Repo())

    def add_pull(self, repo: str, number: int, *, title: str, body: str | None = "", merged: bool = True,
                 created_at: str = "2024-01-01T00:00:00Z", merged_at: str | None = None, base_sha: str = "0" * 40,
                 head_sha: str = "1" * 40, diff: str | None = "", commits: list[dict] | None = None) -> dict:
        closed = merged_at or created_at
        pr = {"url": f"/repos/{repo}/pulls/{number}", "number": number, "state": "closed", "title": title,
              "body": body, "user": {"login": "dev"}, "created_at": created_at, "updated_at": closed,
              "closed_at": closed, "merged_at": (merged_at or created_at) if merged else None,
              "base": {"ref": "main", "sha": base_sha, "repo": {"full_name": repo}},
              "head": {"ref": f"pr-{number}", "sha": head_sha}}
        r = self._repo(repo)
        r.pulls[number], r.diffs[number], r.commits[number] = pr, diff, list(commits or [])
        return pr

    def add_issue(self, repo: str, number: int, title: str, body: str | None = "", *,
                  comments: list[dict] | None = None, created_at: str = "2023-12-01T00:00:00Z") -> dict:
        issue = {"number": number, "title": title, "body": body, "state": "closed", "created_at": created_at,
                 "comments": len(comments or []), "user": {"login": "reporter"}}
        r = self._repo(repo)
        r.issues[number], r.comments[number] = issue, list(comments or [])
        return issue

    def fault(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def set_rate_limit(self, remaining: int, reset_in_s: float) -> None:
        """``remaining`` requests left until ``clock() + reset_in_s``, then the full limit again."""
        with self._lock:
            self.remaining, self.reset = remaining, self.clock() + reset_in_s

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                status, headers, payload = server._handle(self.path, {k.lower(): v for k, v in self.headers.items()})
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                ctype = "text/plain; charset=utf-8" if isinstance(payload, str) else "application/json; charset=utf-8"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling --------------------------------------------------------------------------
    def _rate_headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(self.remaining, 0)),
                "X-RateLimit-Reset": str(int(math.ceil(self.reset))), "X-RateLimit-Used": str(self.limit - self.remaining),
                "X-RateLimit-Resource": "core"}

    def _handle(self, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        rec = RecordedRequest("GET", path, query, headers)
        with self._lock:
            self.requests.append(rec)
            now = self.clock()
            if now >= self.reset:
                self.remaining, self.reset = self.limit, now + 3600
            fault = next((f for f in self.faults if re.search(f.path, path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            if self.remaining <= 0 and fault is None:
                rec.status = 403
                return 403, self._rate_headers(), {
                    "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated "
                               "requests get a higher rate limit.)", "documentation_url": DOCS}
            self.remaining -= 1
            rate = self._rate_headers()
        if fault is not None:
            body = fault.body if fault.body is not None else {"message": f"scripted {fault.status}",
                                                               "documentation_url": DOCS}
            rec.status = fault.status
            return fault.status, {**rate, **fault.headers}, body
        status, extra, payload = self._route(path, query, headers)
        rec.status = status
        return status, {**rate, **extra}, payload

    def _route(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict, Any]:
        not_found = (404, {}, {"message": "Not Found", "documentation_url": DOCS})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(pulls|issues)(?:/(\d+))?(?:/(commits|comments))?/?", path)
        if not m or m.group(1) not in self.repos:
            return not_found
        repo, kind, num, sub = m.group(1), m.group(2), m.group(3), m.group(4)
        r = self.repos[repo]
        n = int(num) if num else None
        if kind == "pulls" and n is None and sub is None:
            state = query.get("state", "open")
            pulls = [p for p in r.pulls.values() if state == "all" or p["state"] == state]
            desc = query.get("direction", "desc" if query.get("sort", "created") == "created" else "asc") == "desc"
            pulls.sort(key=lambda p: (p["created_at"], p["number"]), reverse=desc)
            return self._page(path, query, pulls)
        if kind == "pulls" and n in r.pulls and sub is None:
            if "diff" in headers.get("accept", ""):
                diff = r.diffs.get(n)
                if diff is None:
                    return 406, {}, {"message": "Sorry, the diff exceeded the maximum number of files (300).",
                                     "errors": [{"resource": "PullRequest", "field": "diff", "code": "too_large"}],
                                     "documentation_url": DOCS}
                return 200, {}, diff
            return 200, {}, {**r.pulls[n], "merged": bool(r.pulls[n]["merged_at"]), "commits": len(r.commits[n])}
        if kind == "pulls" and n in r.pulls and sub == "commits":
            return self._page(path, query, r.commits[n])
        if kind == "issues" and n is not None and sub is None:
            if n in r.issues:
                return 200, {}, r.issues[n]
            if n in r.pulls:  # every PR is also an issue
                p = r.pulls[n]
                return 200, {}, {"number": n, "title": p["title"], "body": p["body"], "state": p["state"],
                                 "created_at": p["created_at"], "comments": 0, "pull_request": {"url": p["url"]}}
        if kind == "issues" and n is not None and sub == "comments" and (n in r.issues or n in r.pulls):
            return self._page(path, query, r.comments.get(n, []))
        return not_found

    def _page(self, path: str, query: dict[str, str], items: list) -> tuple[int, dict, Any]:
        try:
            per_page = max(1, min(100, int(query.get("per_page", 30))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            return 422, {}, {"message": "Validation Failed", "documentation_url": DOCS}
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def url(p: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**query, 'per_page': per_page, 'page': p})}"

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
        return 200, ({"Link": ", ".join(links)} if links else {}), chunk
