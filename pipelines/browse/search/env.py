"""The browse environment: ``search`` and ``visit`` tools over any backend, with the tool cache,
the leak filter and per-rollout accounting.

``BrowseEnv`` is shared (backend + cache); ``env.session(forbidden_texts)`` gives one rollout its
tools and counters. The tool schemas are the same for every backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crucible.pipelines.agent.tools import FunctionTool, Observation, function_schema
from crucible.pipelines.browse.search.backends import Backend, BackendError
from crucible.pipelines.browse.search.cache import ToolCache, normalize_url
from crucible.pipelines.browse.search.leak import LeakFilter

SEARCH_SCHEMA = function_schema(
    "search",
    "Search the web. Returns a ranked list of results with title, URL and a short snippet.",
    {
        "query": {"type": "string", "minLength": 1, "description": "keywords to search for"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "description": "number of results (default 5)"},
    },
    ["query"],
)
VISIT_SCHEMA = function_schema(
    "visit",
    "Open a web page by URL and read its text (long pages are truncated).",
    {
        "url": {"type": "string", "minLength": 1, "description": "the page URL, usually one returned by search"},
        "goal": {"type": "string", "description": "what you are looking for on the page (optional)"},
    },
    ["url"],
)
TOOL_SCHEMAS = [SEARCH_SCHEMA, VISIT_SCHEMA]


@dataclass
class SessionStats:
    search_calls: int = 0
    visit_calls: int = 0
    visits_not_from_search: int = 0
    tool_errors: int = 0
    cache_hits: int = 0
    backend_calls: int = 0
    leak_results_dropped: int = 0
    leak_pages_blocked: int = 0
    leak_spans_redacted: int = 0
    returned_urls: list[str] = field(default_factory=list)
    visited_urls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class BrowseEnv:
    def __init__(self, backend: Backend, cache: ToolCache | None = None, default_top_k: int = 5,
                 max_page_chars: int = 20000, leak_ngram: int = 13, leak_page_action: str = "redact",
                 global_forbidden: Iterable[str] = ()):
        if leak_page_action not in ("redact", "block"):
            raise ValueError(f"search.leak.page_action must be 'redact' or 'block', got {leak_page_action!r}")
        self.backend, self.cache = backend, cache
        self.default_top_k, self.max_page_chars = default_top_k, max_page_chars
        self.leak_ngram, self.leak_page_action = leak_ngram, leak_page_action
        self.global_forbidden = list(global_forbidden)

    @property
    def snapshot_id(self) -> str:
        return self.backend.snapshot_id

    def session(self, forbidden_texts: Iterable[str] = ()) -> BrowseSession:
        return BrowseSession(self, LeakFilter([*self.global_forbidden, *forbidden_texts], n=self.leak_ngram))

    # raw (cached) backend access; errors are not cached
    def _cached(self, tool: str, args: Mapping[str, Any], stats: SessionStats, fn) -> Any:
        if self.cache is not None:
            hit = self.cache.get(tool, args, self.snapshot_id)
            if hit is not None:
                stats.cache_hits += 1
                return hit
        stats.backend_calls += 1
        result = fn()
        if self.cache is not None:
            self.cache.put(tool, args, self.snapshot_id, result)
        return result


def truncate_page(text: str, limit: int, goal: str = "") -> tuple[str, bool]:
    """Cut ``text`` to ``limit`` characters with a note. Without a goal the start is kept; with one,
    the window starts at the line with the most goal words (a little before it), so the relevant
    part of a long page survives."""
    if len(text) <= limit:
        return text, False
    start = 0
    terms = {w for w in re.findall(r"\w+", goal.lower()) if len(w) > 2}
    if terms:
        best, pos = 0, 0
        for line in text.splitlines(keepends=True):
            low = line.lower()
            score = sum(1 for w in terms if w in low)
            if score > best:
                best, start = score, pos
            pos += len(line)
        start = max(0, min(start - limit // 10, len(text) - limit))
    end = start + limit
    if start == 0:
        note = f"[truncated: showing the first {limit:,} of {len(text):,} characters]"
    else:
        note = f"[truncated: showing characters {start:,}-{end:,} of {len(text):,}, chosen for the goal]"
    return text[start:end] + "\n\n" + note, True


class BrowseSession:
    """Tools and counters for one rollout."""

    def __init__(self, env: BrowseEnv, leak: LeakFilter):
        self.env, self.leak = env, leak
        self.stats = SessionStats()
        self._returned: set[str] = set()
        self.tools = [FunctionTool("search", SEARCH_SCHEMA, self.search),
                      FunctionTool("visit", VISIT_SCHEMA, self.visit)]

    @property
    def tool_map(self) -> dict[str, FunctionTool]:
        """``{name: tool}``, the form ``crucible.pipelines.agent.loop.run_agent`` takes."""
        return {t.name: t for t in self.tools}

    @property
    def schemas(self) -> list[dict]:
        return [t.schema for t in self.tools]

    def _error(self, msg: str) -> Observation:
        self.stats.tool_errors += 1
        return Observation(f"Error: {msg}", error=True)

    def search(self, args: Mapping[str, Any]) -> Observation:
        self.stats.search_calls += 1
        query = str(args.get("query") or "").strip()
        if not query:
            return self._error("search needs a non-empty 'query'")
        top_k = int(args.get("top_k") or self.env.default_top_k)
        top_k = max(1, min(top_k, 20))
        key_args = {"query": query, "top_k": top_k}
        try:
            raw = self.env._cached("search", key_args, self.stats,
                                   lambda: {"results": self.env.backend.search(query, top_k)})
        except BackendError as exc:
            return self._error(f"search failed: {exc}")
        kept = []
        for r in raw["results"]:
            if self.leak and self.leak.leaks(f"{r.get('title', '')}\n{r.get('snippet', '')}"):
                self.stats.leak_results_dropped += 1
                continue
            kept.append(r)
        for r in kept:
            u = normalize_url(r["url"])
            if u not in self._returned:
                self._returned.add(u)
                self.stats.returned_urls.append(u)
        if not kept:
            return Observation(f'No results for "{query}".', meta={"results": []})
        lines = [f'Search results for "{query}":']
        for i, r in enumerate(kept, 1):
            lines.append(f"{i}. {r['title']}\n   URL: {r['url']}\n   {r['snippet']}")
        return Observation("\n".join(lines), meta={"results": kept})

    def visit(self, args: Mapping[str, Any]) -> Observation:
        self.stats.visit_calls += 1
        url = normalize_url(str(args.get("url") or ""))
        if not url:
            return self._error("visit needs a 'url'")
        from_search = url in self._returned
        if not from_search:
            self.stats.visits_not_from_search += 1
        self.stats.visited_urls.append(url)
        try:
            page = self.env._cached("visit", {"url": url}, self.stats, lambda: self.env.backend.fetch(url))
        except BackendError as exc:
            return self._error(f"visit failed: {exc}")
        text = page.get("text", "")
        if self.leak:
            if self.env.leak_page_action == "block" and self.leak.leaks(text):
                self.stats.leak_pages_blocked += 1
                return Observation(f"[page blocked: {url} overlaps a forbidden text]",
                                   meta={"url": url, "blocked": True, "from_search": from_search})
            text, n = self.leak.redact(text)
            self.stats.leak_spans_redacted += n
        goal = str(args.get("goal") or "").strip()
        text, truncated = truncate_page(text, self.env.max_page_chars, goal)
        return Observation(text, meta={"url": url, "title": page.get("title", ""), "truncated": truncated,
                                       "from_search": from_search})
