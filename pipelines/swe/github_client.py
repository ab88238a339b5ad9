"""GitHub REST client: the one place of the crawl that talks HTTP (auth from an environment variable,
pagination, rate limits, retries through :mod:`crucible.pipelines.http_retry`), clock and sleep injectable."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

from crucible.pipelines.http_retry import RetryPolicy

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
        self.summary = None  # set by crawl(): the partial run (a CrawlSummary)


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
        # GitHub's documented waits: fixed exponential backoff, server waits not capped here (see _on_retry_wait)
        self.retry_policy = RetryPolicy(self.max_retries, BACKOFF_BASE_S, BACKOFF_MAX_S, float("inf"), jitter=False)
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
        """Sleep (outside the retry loop: before a request while the limit is exhausted); a rate-limit wait
        longer than ``max_rate_limit_wait_s`` raises instead."""
        seconds = max(0.0, float(seconds))
        if rate_limit and seconds > self.max_rate_limit_wait_s:
            reset_at = self.clock() + seconds
            raise RateLimitError(
                f"GitHub {why}: it resets at {iso_utc(reset_at)} ({seconds:.0f} s from now), more than "
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

    def _until_reset(self) -> float:
        reset = self.rate_limit_reset
        return max((reset - self.clock() + RESET_MARGIN_S) if reset is not None else SECONDARY_LIMIT_WAIT_S, 0.0)

    def _forget_remaining(self) -> None:
        self.rate_limit_remaining = None  # unknown until the next response

    def _wait_for_reset(self, why: str) -> None:
        self._wait(self._until_reset(), why)
        self._forget_remaining()

    def _request(self, path: str, params: Mapping[str, Any] | None, accept: str):
        """One GET through the shared retry policy: 5xx and connection errors back off (1, 2, 4 ... s);
        rate limits wait for ``Retry-After`` or the reset (a wait beyond ``max_rate_limit_wait_s`` raises
        :class:`RateLimitError`); after ``max_retries`` retries the last error is raised."""
        url = self._url(path)
        try:
            for attempt in self.retry_policy.retrying(lambda e: isinstance(e, _Retry), hint_of=lambda e: e.wait_s,
                                                      on_wait=self._on_retry_wait, sleep=self.sleep):
                with attempt:
                    return self._attempt(url, params, accept, attempt.retry_state.attempt_number)
        except _Retry as exc:
            raise exc.error from None
        raise AssertionError("unreachable")

    def _on_retry_wait(self, exc: _Retry, seconds: float) -> float:
        if exc.rate_limit and seconds > self.max_rate_limit_wait_s:
            self._wait(seconds, exc.why)  # raises RateLimitError: it resets too late
        log.info("GitHub %s: waiting %.0f s", exc.why, seconds)
        self.waited_s += seconds
        if exc.after_wait is not None:
            exc.after_wait()
        return seconds

    def _attempt(self, url: str, params: Mapping[str, Any] | None, accept: str, attempt: int):
        if self.rate_limit_remaining == 0 and self.rate_limit_reset is not None \
                and self.rate_limit_reset > self.clock() - RESET_MARGIN_S:
            self._wait_for_reset("rate limit exhausted (X-RateLimit-Remaining: 0)")
        self.requests_made += 1
        try:
            resp = self.session.get(url, params=params, headers=self._headers(url, accept), timeout=self.timeout)
        except self._requests_exc as exc:
            raise _Retry(GitHubError(f"GET {url}: {type(exc).__name__} after {attempt} attempts: {exc}", url=url),
                         f"connection error ({type(exc).__name__}), retry {attempt}") from None
        self._track(resp.headers)
        status = resp.status_code
        if status < 300:
            return resp
        message = _message(resp)
        if status in (403, 429) and _is_rate_limited(resp, message):
            error = RateLimitError(f"GET {url}: still rate limited after {attempt} attempts ({message})",
                                   reset_at=self.rate_limit_reset)
            retry_after = resp.headers.get("Retry-After")
            if retry_after is not None and retry_after.strip().isdigit():
                raise _Retry(error, f"asked to retry after {retry_after} s ({status})", float(retry_after), True)
            if resp.headers.get("X-RateLimit-Remaining") == "0":
                raise _Retry(error, f"rate limit exceeded ({status})", self._until_reset(), True,
                             after_wait=self._forget_remaining)
            # secondary limit without a hint
            raise _Retry(error, f"secondary rate limit ({status})",
                         max(SECONDARY_LIMIT_WAIT_S, self.retry_policy.wait_s(attempt)), True)
        if status >= 500:
            raise _Retry(GitHubError(f"GET {url}: HTTP {status} after {attempt} attempts ({message})", status, url),
                         f"HTTP {status}, retry {attempt}")
        if status in (404, 410):
            raise NotFoundError(f"GET {url}: HTTP {status} {message} (it does not exist, or the token in "
                                f"${self.token_env} cannot see it)", status, url)
        if status == 401:
            raise GitHubError(f"GET {url}: HTTP 401 {message}: the token in ${self.token_env} was rejected; "
                              "set a valid token or unset the variable", status, url)
        raise GitHubError(f"GET {url}: HTTP {status} {message}", status, url)


class _Retry(Exception):
    """An attempt worth another: ``error`` is raised when the retries run out; ``wait_s`` is the server's
    wait (None: backoff); a ``rate_limit`` wait is bounded by ``max_rate_limit_wait_s``."""

    def __init__(self, error: GitHubError, why: str, wait_s: float | None = None, rate_limit: bool = False,
                 after_wait=None):
        super().__init__(str(error))
        self.error, self.why, self.wait_s, self.rate_limit, self.after_wait = error, why, wait_s, rate_limit, after_wait


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


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def client_from_config(gh: Mapping, *, api_url: str | None = None, token_env: str | None = None,
                       environ: Mapping[str, str] | None = None, **kwargs) -> GitHubClient:
    """A client from the resolved ``swe.github`` config section, flags overriding it."""
    return GitHubClient(api_url or gh["api_url"], token_env=token_env or gh["token_env"], environ=environ,
                        max_rate_limit_wait_s=float(gh["max_rate_limit_wait_s"]), **kwargs)
