"""The one HTTP retry policy (tenacity) of every client that talks to a service: the GitHub crawl, live search
backends, the LLM client and the reward model.

An attempt is retried when the caller's ``retry_if`` says it is transient (connection errors, timeouts,
408/409/429/5xx, GitHub's rate limits), at most ``max_retries`` times. The wait is the server's hint when it
gives one (``retry-after-ms``, ``Retry-After`` in seconds or as an HTTP date, a rate-limit reset), capped at
``retry_after_max_s``; else exponential backoff from ``backoff_initial_s`` capped at ``backoff_max_s``, with
equal jitter (half fixed, half random) unless ``jitter`` is off (GitHub's documented waits)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if ra is None:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(ra).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_seconds(attempt: int, initial: float, maximum: float, rng: random.Random | None = None,
                    *, jitter: bool = True) -> float:
    """Exponential backoff capped at ``maximum``; with ``jitter`` half fixed, half random."""
    base = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return base / 2 + (rng or random).uniform(0, base / 2) if jitter else base


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    jitter: bool = True

    def wait_s(self, attempt: int, hint: float | None = None) -> float:
        """The wait before retry ``attempt`` (1 = the first retry): the server's ``hint``, else backoff."""
        if hint is not None:
            return min(max(0.0, hint), self.retry_after_max_s)
        return backoff_seconds(attempt, self.backoff_initial_s, self.backoff_max_s, jitter=self.jitter)

    def retrying(self, retry_if: Callable[[BaseException], bool], *,
                 hint_of: Callable[[BaseException], float | None] | None = None,
                 on_wait: Callable[[BaseException, float], float] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> Retrying:
        """A tenacity loop (``for attempt in policy.retrying(...): with attempt: ...``) that re-raises the last
        exception when the attempts run out. ``hint_of`` reads the server's wait from the exception;
        ``on_wait(exc, seconds)`` sees (and may veto, by raising, or change) each wait."""

        return Retrying(sleep=sleep, **self._tenacity_kwargs(retry_if, hint_of, on_wait))

    def aretrying(self, retry_if: Callable[[BaseException], bool], *,
                  hint_of: Callable[[BaseException], float | None] | None = None,
                  on_wait: Callable[[BaseException, float], float] | None = None) -> AsyncRetrying:
        """The same loop for coroutines (``async for attempt in policy.aretrying(...): with attempt: ...``);
        waits are ``asyncio.sleep``s, so a retrying request holds no thread."""
        return AsyncRetrying(sleep=asyncio.sleep, **self._tenacity_kwargs(retry_if, hint_of, on_wait))

    def _tenacity_kwargs(self, retry_if, hint_of, on_wait) -> dict:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            secs = self.wait_s(state.attempt_number, hint_of(exc) if hint_of and exc is not None else None)
            return on_wait(exc, secs) if on_wait else secs

        return {"stop": stop_after_attempt(self.max_retries + 1), "wait": wait,
                "retry": retry_if_exception(retry_if), "reraise": True}


def headers_hint(headers: Mapping[str, str] | None) -> float | None:
    return retry_after_seconds(dict(headers) if headers is not None else None)
