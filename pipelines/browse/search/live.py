"""Live search backends over HTTP: SearXNG (JSON API), Serper, Brave, Tavily; page fetching with
HTML -> text by trafilatura (html2text as fallback).

One :class:`HttpClient` owns timeouts, retries (tenacity, exponential backoff on 429/5xx and
connection errors, honouring a short ``Retry-After``) and the rate limit. API keys are read from the
environment variables named in config when the backend is constructed: a missing key is a
:class:`BackendConfigError` at start, not an error in the middle of a run.
"""

from __future__ import annotations

import html as _html
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import html2text

from crucible.pipelines.browse.search.backends import BackendConfigError, BackendError
from crucible.pipelines.http_retry import RetryPolicy
from crucible.pipelines.llm.pacing import RatePacer

USER_AGENT = "crucible-browse/0.1 (research data pipeline)"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as exc:
            raise BackendError(f"response is not JSON ({exc.msg}): {self.body[:200]!r}") from None


class HttpClient:
    """urllib + tenacity: bounded retries with backoff, and requests paced to ``rate_limit_per_s`` by the one
    pacer (:class:`~crucible.pipelines.llm.pacing.RatePacer`; 0: unpaced)."""

    def __init__(self, *, timeout_s: float, max_retries: int, backoff_s: float, rate_limit_per_s: float,
                 user_agent: str = USER_AGENT):
        """The four limits come from ``search.http`` (their defaults live in the schema only)."""
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self._pacer = RatePacer(rate_limit_per_s * 60.0) if rate_limit_per_s > 0 else None
        self.user_agent = user_agent
        self.requests = 0
        self.retries = 0
        self._default = urllib.request.build_opener()  # honours http(s)_proxy for live APIs
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never proxied

    def _once(self, method: str, url: str, headers: Mapping[str, str], data: bytes | None) -> HttpResponse:
        if self._pacer is not None:
            self._pacer.acquire()
        self.requests += 1
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"User-Agent": self.user_agent, **headers})
        host = urllib.parse.urlsplit(url).hostname or ""
        opener = self._direct if host in ("127.0.0.1", "localhost", "::1") else self._default
        try:
            with opener.open(req, timeout=self.timeout_s) as r:
                return HttpResponse(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            body = e.read() if e.fp else b""
            if e.code in RETRY_STATUS:
                ra = e.headers.get("Retry-After") if e.headers else None
                raise _Retryable(f"HTTP {e.code} from {url}", float(ra) if ra and ra.isdigit() else None) from None
            raise BackendError(f"HTTP {e.code} from {_redact(url)}: {body[:300].decode('utf-8', 'replace')}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise _Retryable(f"connection error for {_redact(url)}: {getattr(e, 'reason', e)}") from None

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                params: Mapping[str, object] | None = None, json_body: object = None) -> HttpResponse:
        if params:
            url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        hdrs = dict(headers or {})
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")

        def counted(_exc, seconds: float) -> float:
            self.retries += 1
            return seconds

        policy = RetryPolicy(self.max_retries, self.backoff_s, 30.0, 30.0, jitter=False)
        try:
            for attempt in policy.retrying(lambda e: isinstance(e, _Retryable),
                                           hint_of=lambda e: getattr(e, "retry_after", None), on_wait=counted):
                with attempt:
                    return self._once(method, url, hdrs, data)
        except _Retryable as exc:
            raise BackendError(f"{exc} (gave up after {self.max_retries + 1} attempts)") from None
        raise AssertionError("unreachable")


def _redact(url: str) -> str:
    return re.sub(r"(api_key|key|token)=[^&]+", r"\1=***", url)


def require_key(backend: str, env_var: str | None) -> str:
    if not env_var:
        raise BackendConfigError(f"search.{backend}.api_key_env is empty; name the environment variable holding the key")
    key = os.environ.get(env_var, "")
    if not key:
        raise BackendConfigError(
            f"search.backend={backend} needs an API key: environment variable {env_var} is not set "
            f"(export {env_var}=..., or set search.{backend}.api_key_env, or use search.backend=local)")
    return key


def _base(url: str | None, backend: str) -> str:
    if not url or not url.startswith(("http://", "https://")):
        raise BackendConfigError(f"search.{backend}.base_url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


class _LiveBase:
    name = "live"

    def __init__(self, http: HttpClient, fetcher: PageFetcher | None, snapshot_id: str | None):
        self.http = http
        self.fetcher = fetcher or PageFetcher(http)
        self.snapshot_id = snapshot_id or f"{self.name}-live"
        self.calls = 0

    def fetch(self, url: str) -> dict:
        self.calls += 1
        return self.fetcher.fetch(url)


class SearxngBackend(_LiveBase):
    """``GET {base_url}/search?q=...&format=json`` -> ``results[].url/title/content``."""

    name = "searxng"

    def __init__(self, base_url: str, http: HttpClient, fetcher: PageFetcher | None = None,
                 snapshot_id: str | None = None, api_key_env: str | None = None, extra_params: Mapping | None = None):
        super().__init__(http, fetcher, snapshot_id)
        self.base_url = _base(base_url, "searxng")
        self.headers = {"Accept": "application/json"}
        if api_key_env:  # some deployments sit behind a bearer-token proxy
            self.headers["Authorization"] = f"Bearer {require_key('searxng', api_key_env)}"
        self.extra_params = dict(extra_params or {})

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        r = self.http.request("GET", f"{self.base_url}/search", headers=self.headers,
                              params={"q": query, "format": "json", "pageno": 1, **self.extra_params}).json()
        if not isinstance(r, dict) or not isinstance(r.get("results"), list):
            raise BackendError("searxng: response has no 'results' list")
        return [{"title": x.get("title") or "", "url": x.get("url") or "", "snippet": x.get("content") or ""}
                for x in r["results"] if x.get("url")][:top_k]


class SerperBackend(_LiveBase):
    """``POST {base_url}/search`` with ``X-API-KEY`` and ``{"q", "num"}`` -> ``organic[].link/title/snippet``."""

    name = "serper"

    def __init__(self, http: HttpClient, api_key_env: str = "SERPER_API_KEY",
                 base_url: str = "https://google.serper.dev", fetcher: PageFetcher | None = None,
                 snapshot_id: str | None = None):
        super().__init__(http, fetcher, snapshot_id)
        self.key = require_key("serper", api_key_env)
        self.base_url = _base(base_url, "serper")

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        r = self.http.request("POST", f"{self.base_url}/search", headers={"X-API-KEY": self.key},
                              json_body={"q": query, "num": top_k}).json()
        if not isinstance(r, dict) or not isinstance(r.get("organic", []), list):
            raise BackendError("serper: response has no 'organic' list")
        return [{"title": x.get("title") or "", "url": x.get("link") or "", "snippet": x.get("snippet") or ""}
                for x in r.get("organic", []) if x.get("link")][:top_k]


class BraveBackend(_LiveBase):
    """``GET {base_url}/res/v1/web/search?q=&count=`` with ``X-Subscription-Token`` ->
    ``web.results[].url/title/description``."""

    name = "brave"

    def __init__(self, http: HttpClient, api_key_env: str = "BRAVE_API_KEY",
                 base_url: str = "https://api.search.brave.com", fetcher: PageFetcher | None = None,
                 snapshot_id: str | None = None):
        super().__init__(http, fetcher, snapshot_id)
        self.key = require_key("brave", api_key_env)
        self.base_url = _base(base_url, "brave")

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        r = self.http.request("GET", f"{self.base_url}/res/v1/web/search",
                              headers={"X-Subscription-Token": self.key, "Accept": "application/json"},
                              params={"q": query, "count": min(top_k, 20)}).json()
        results = ((r or {}).get("web") or {}).get("results", []) if isinstance(r, dict) else None
        if not isinstance(results, list):
            raise BackendError("brave: response has no 'web.results' list")
        return [{"title": x.get("title") or "", "url": x.get("url") or "",
                 "snippet": re.sub(r"</?strong>", "", x.get("description") or "")}
                for x in results if x.get("url")][:top_k]


class TavilyBackend(_LiveBase):
    """``POST {base_url}/search`` with ``Authorization: Bearer`` and ``{"query", "max_results"}`` ->
    ``results[].url/title/content``."""

    name = "tavily"

    def __init__(self, http: HttpClient, api_key_env: str = "TAVILY_API_KEY",
                 base_url: str = "https://api.tavily.com", fetcher: PageFetcher | None = None,
                 snapshot_id: str | None = None, search_depth: str = "basic"):
        super().__init__(http, fetcher, snapshot_id)
        self.key = require_key("tavily", api_key_env)
        self.base_url = _base(base_url, "tavily")
        self.search_depth = search_depth

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        r = self.http.request("POST", f"{self.base_url}/search", headers={"Authorization": f"Bearer {self.key}"},
                              json_body={"query": query, "max_results": top_k, "search_depth": self.search_depth,
                                         "include_answer": False}).json()
        if not isinstance(r, dict) or not isinstance(r.get("results"), list):
            raise BackendError("tavily: response has no 'results' list")
        return [{"title": x.get("title") or "", "url": x.get("url") or "", "snippet": x.get("content") or ""}
                for x in r["results"] if x.get("url")][:top_k]


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_to_text(html: str) -> str:
    """Main text as markdown by trafilatura; html2text on the whole page when trafilatura finds nothing.
    trafilatura is imported here, on the first live page: it takes about 0.8 s to import."""
    text = None
    try:
        import trafilatura

        text = trafilatura.extract(html, output_format="markdown", include_tables=True, include_links=False,
                                   favor_recall=True)
    except Exception:  # extractor crash on odd markup: fall back below
        text = None
    if not text or not text.strip():
        h = html2text.HTML2Text()
        h.ignore_images = True
        h.body_width = 0
        text = h.handle(html)
    return text.strip()


class PageFetcher:
    """GET a page and turn it into text. ``url_template`` (e.g. ``http://127.0.0.1:8899/page?url={url}``)
    routes fetches through a proxy such as ``crucible search serve``."""

    def __init__(self, http: HttpClient, url_template: str | None = None, max_bytes: int = 5_000_000):
        self.http = http
        self.url_template = url_template
        self.max_bytes = max_bytes

    def fetch(self, url: str) -> dict:
        if not url.startswith(("http://", "https://")):
            raise BackendError(f"cannot visit {url!r}: only http(s) URLs")
        target = self.url_template.format(url=urllib.parse.quote(url, safe="")) if self.url_template else url
        r = self.http.request("GET", target, headers={"Accept": "text/html,text/plain;q=0.9,*/*;q=0.1"})
        ctype = next((v for k, v in r.headers.items() if k.lower() == "content-type"), "")
        body = r.body[: self.max_bytes]
        charset = "utf-8"
        m = re.search(r"charset=([\w-]+)", ctype)
        if m:
            charset = m.group(1)
        raw = body.decode(charset, errors="replace")
        if "html" in ctype or raw.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            tm = _TITLE.search(raw)
            title = _html.unescape(tm.group(1).strip()) if tm else ""
            return {"url": url, "title": title, "text": html_to_text(raw)}
        if ctype.startswith("text/") or ctype.startswith("application/json") or not ctype:
            return {"url": url, "title": "", "text": raw}
        raise BackendError(f"cannot read {url}: content type {ctype!r} is not text")
