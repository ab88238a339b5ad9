"""Stable entry points for the browse environment (used by ``make synth-browse``).

    from crucible.pipelines.browse.api import load_kg, open_environment
    graph = load_kg(cfg)                      # Graph (built into the cache on first use)
    env = open_environment(cfg)               # BrowseEnv over the configured backend
    session = env.session(forbidden_texts=[question])
    session.tools                             # [search, visit] (crucible.pipelines.agent.tools.Tool)

Everything takes the typed ``search`` section (:class:`crucible.pipelines.options.SearchOptions`), the typed
:class:`crucible.pipelines.options.Options`, or a loaded config (its ``search`` section is typed once here); None
loads the shipped defaults. Nothing happens at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crucible.pipelines.browse.corpus import CORPUS_CODE_VERSION, read_pages_jsonl, render_pages, write_pages
from crucible.pipelines.browse.index import INDEX_CODE_VERSION, build_index
from crucible.pipelines.browse.kg.build import KGOptions, cache_root, ensure_graph, graph_key
from crucible.pipelines.browse.kg.executor import Formalization, count_answers, execute, is_unique  # noqa: F401
from crucible.pipelines.browse.kg.model import Graph, read_graph
from crucible.pipelines.browse.search import live
from crucible.pipelines.browse.search.backends import BackendConfigError, FrozenBackend, LocalBackend
from crucible.pipelines.browse.search.cache import ToolCache
from crucible.pipelines.browse.search.env import BrowseEnv
from crucible.pipelines.browse.search.live import HttpClient
from crucible.pipelines.config import load_config, resolve_section
from crucible.pipelines.options import Options, SearchOptions
from crucible.pipelines.options_base import build_section

log = logging.getLogger(__name__)


def search_options(cfg: Any = None) -> SearchOptions:
    """The typed ``search`` section of ``cfg`` (see the module docstring for what ``cfg`` may be)."""
    if isinstance(cfg, SearchOptions):
        return cfg
    if isinstance(cfg, Options):
        return cfg.search
    if cfg is None:
        cfg = load_config("defaults", [])
    if isinstance(cfg, Mapping) and isinstance(cfg.get("search"), Mapping):
        cfg = cfg["search"]
    return build_section(SearchOptions, resolve_section("search", cfg), "search")


def kg_options(cfg: Any = None) -> KGOptions:
    return KGOptions.from_config(search_options(cfg).kg.to_dict())


def graph_dir(cfg: Any = None) -> Path:
    s = search_options(cfg)
    return Path(s.kg.dir) if s.kg.dir else cache_root() / "kg" / graph_key(kg_options(s))


def load_kg(cfg: Any = None, progress=log.info) -> Graph:
    """The configured graph, built on first use."""
    s = search_options(cfg)
    d, _ = ensure_graph(kg_options(s), graph_dir(s), progress=progress)
    return read_graph(d)


def corpus_dir(cfg: Any = None) -> Path:
    s = search_options(cfg)
    if s.local.dir:
        return Path(s.local.dir)
    pages = s.local.pages
    src = {"pages": [os.path.abspath(pages), os.path.getmtime(pages)] if pages and os.path.exists(pages) else pages,
           "kg": None if pages else graph_key(kg_options(s))}
    key = hashlib.sha256(json.dumps([CORPUS_CODE_VERSION, INDEX_CODE_VERSION, src], sort_keys=True).encode())
    return cache_root() / "corpus" / key.hexdigest()[:16]


def build_corpus(pages, out_dir: str | os.PathLike, extra_manifest: dict | None = None) -> str:
    """Write ``pages.parquet`` + tantivy ``index/`` + ``corpus.json`` (last; marks completion)."""

    pages = list(pages)
    d = Path(out_dir)
    build_index(pages, d / "index")
    return write_pages(pages, d, extra_manifest)


def ensure_corpus(cfg: Any = None, force: bool = False, progress=log.info) -> Path:
    """The local corpus directory, rendered from the graph (or read from ``search.local.pages``)."""

    s = search_options(cfg)
    d = corpus_dir(s)
    if (d / "corpus.json").exists() and (d / "index" / "meta.json").exists() and not force:
        return d
    pages_file = s.local.pages
    if pages_file:
        progress(f"corpus: reading pages from {pages_file}")
        pages = read_pages_jsonl(pages_file)
        extra = {"source": str(pages_file)}
    else:
        graph = load_kg(s, progress)
        progress(f"corpus: rendering {len(graph.entities):,} pages")
        pages = list(render_pages(graph))
        extra = {"source": "kg", "kg_key": graph.manifest.get("key")}
    progress(f"corpus: indexing {len(pages):,} pages into {d}")
    build_corpus(pages, d, extra)
    return d


def make_http(section: Any):
    http = search_options(section).http
    return HttpClient(timeout_s=float(http.timeout_s), max_retries=int(http.max_retries),
                      backoff_s=float(http.backoff_s), rate_limit_per_s=float(http.rate_limit_per_s))


def make_backend(cfg: Any = None, progress=log.info):
    """The configured backend. Live backends check their API key here (clear error at start)."""

    s = search_options(cfg)
    name = s.backend
    if name == "local":
        return LocalBackend(ensure_corpus(s, progress=progress))
    if name == "frozen":
        if not s.frozen.path:
            raise BackendConfigError("search.backend=frozen needs search.frozen.path (a file from `crucible search export`)")
        return FrozenBackend(s.frozen.path)
    cls = {"serper": live.SerperBackend, "brave": live.BraveBackend, "tavily": live.TavilyBackend}.get(name)
    if name != "searxng" and cls is None:
        raise BackendConfigError(f"search.backend={name!r}: choose local, frozen, searxng, serper, brave or tavily")
    http = make_http(s)
    fetcher = live.PageFetcher(http, s.fetch.url_template)
    sub = getattr(s, name)
    if name == "searxng":
        return live.SearxngBackend(sub.base_url, http, fetcher, s.snapshot_id, sub.api_key_env)
    kwargs = {"fetcher": fetcher, "snapshot_id": s.snapshot_id}
    if sub.base_url:
        kwargs["base_url"] = sub.base_url
    return cls(http, api_key_env=sub.api_key_env, **kwargs)


def make_cache(cfg: Any = None):
    s = search_options(cfg)
    if not s.cache.enabled:
        return None
    return ToolCache(s.cache.dir if s.cache.dir else cache_root() / "tools")


def open_environment(cfg: Any = None, backend=None, cache=None, forbidden_texts=(), progress=log.info):
    """A :class:`~crucible.pipelines.browse.search.env.BrowseEnv` from config (backend/cache may be given)."""

    s = search_options(cfg)
    return BrowseEnv(
        backend if backend is not None else make_backend(s, progress),
        cache if cache is not None else make_cache(s),
        default_top_k=int(s.top_k),
        max_page_chars=int(s.visit.max_chars),
        leak_ngram=int(s.leak.ngram),
        leak_page_action=str(s.leak.page_action),
        global_forbidden=forbidden_texts,
    )


def make_tools(cfg: Any = None, forbidden_texts=()):
    """``(session, tools)`` for one rollout; ``session.stats`` has its counters."""
    session = open_environment(cfg).session(forbidden_texts)
    return session, session.tools


def entity_page_url(graph: Graph, eid: str) -> str:
    return graph.entities[eid].page_url
