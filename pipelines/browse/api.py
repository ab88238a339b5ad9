"""Stable entry points for the browse environment (used by ``make synth-browse``).

    from pipelines.browse.api import load_kg, open_environment
    graph = load_kg(cfg)                      # Graph (built into the cache on first use)
    env = open_environment(cfg)               # BrowseEnv over the configured backend
    session = env.session(forbidden_texts=[question])
    session.tools                             # [search, visit] (pipelines.agent.tools.Tool)

Everything takes the ``search`` config section (or the whole config); nothing happens at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.browse.kg.build import KGOptions, cache_root, ensure_graph, graph_key
from pipelines.browse.kg.executor import Formalization, count_answers, execute, is_unique  # noqa: F401
from pipelines.browse.kg.model import Graph, read_graph

log = logging.getLogger(__name__)


def _search_section(cfg: Any) -> Mapping:
    if cfg is None:
        from pipelines.config import load_config

        cfg = load_config("defaults", [])
    if isinstance(cfg, Mapping) and "search" in cfg and isinstance(cfg["search"], Mapping):
        return cfg["search"]
    return cfg


def _opt(section: Mapping, path: str, default: Any = None) -> Any:
    node: Any = section
    for p in path.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return default
        node = node[p]
    return default if node is None else node


def kg_options(cfg: Any = None) -> KGOptions:
    return KGOptions.from_config(_opt(_search_section(cfg), "kg", {}))


def graph_dir(cfg: Any = None) -> Path:
    s = _search_section(cfg)
    d = _opt(s, "kg.dir")
    return Path(d) if d else cache_root() / "kg" / graph_key(kg_options(s))


def load_kg(cfg: Any = None, progress=log.info) -> Graph:
    """The configured graph, built on first use."""
    s = _search_section(cfg)
    d, _ = ensure_graph(kg_options(s), graph_dir(s), progress=progress)
    return read_graph(d)


def corpus_dir(cfg: Any = None) -> Path:
    from pipelines.browse.corpus import CORPUS_CODE_VERSION
    from pipelines.browse.index import INDEX_CODE_VERSION

    s = _search_section(cfg)
    d = _opt(s, "local.dir")
    if d:
        return Path(d)
    pages = _opt(s, "local.pages")
    src = {"pages": [os.path.abspath(pages), os.path.getmtime(pages)] if pages and os.path.exists(pages) else pages,
           "kg": None if pages else graph_key(kg_options(s))}
    key = hashlib.sha256(json.dumps([CORPUS_CODE_VERSION, INDEX_CODE_VERSION, src], sort_keys=True).encode())
    return cache_root() / "corpus" / key.hexdigest()[:16]


def build_corpus(pages, out_dir: str | os.PathLike, extra_manifest: dict | None = None) -> str:
    """Write ``pages.parquet`` + tantivy ``index/`` + ``corpus.json`` (last; marks completion)."""
    from pipelines.browse.corpus import write_pages
    from pipelines.browse.index import build_index

    pages = list(pages)
    d = Path(out_dir)
    build_index(pages, d / "index")
    return write_pages(pages, d, extra_manifest)


def ensure_corpus(cfg: Any = None, force: bool = False, progress=log.info) -> Path:
    """The local corpus directory, rendered from the graph (or read from ``search.local.pages``)."""
    from pipelines.browse.corpus import read_pages_jsonl, render_pages

    s = _search_section(cfg)
    d = corpus_dir(s)
    if (d / "corpus.json").exists() and (d / "index" / "meta.json").exists() and not force:
        return d
    pages_file = _opt(s, "local.pages")
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


def make_http(section: Mapping):
    from pipelines.browse.search.live import HttpClient

    return HttpClient(timeout_s=float(_opt(section, "http.timeout_s", 20)),
                      max_retries=int(_opt(section, "http.max_retries", 4)),
                      backoff_s=float(_opt(section, "http.backoff_s", 1.0)),
                      rate_limit_per_s=float(_opt(section, "http.rate_limit_per_s", 5.0)))


def make_backend(cfg: Any = None, progress=log.info):
    """The configured backend. Live backends check their API key here (clear error at start)."""
    from pipelines.browse.search import live
    from pipelines.browse.search.backends import BackendConfigError, FrozenBackend, LocalBackend

    s = _search_section(cfg)
    name = _opt(s, "backend", "local")
    if name == "local":
        return LocalBackend(ensure_corpus(s, progress=progress))
    if name == "frozen":
        path = _opt(s, "frozen.path")
        if not path:
            raise BackendConfigError("search.backend=frozen needs search.frozen.path (a file from `crucible search export`)")
        return FrozenBackend(path)
    http = make_http(s)
    fetcher = live.PageFetcher(http, _opt(s, "fetch.url_template"))
    snap = _opt(s, "snapshot_id")
    sub = _opt(s, name, {}) or {}
    if name == "searxng":
        return live.SearxngBackend(_opt(sub, "base_url"), http, fetcher, snap, _opt(sub, "api_key_env"))
    kwargs = {"fetcher": fetcher, "snapshot_id": snap}
    if _opt(sub, "base_url"):
        kwargs["base_url"] = _opt(sub, "base_url")
    cls = {"serper": live.SerperBackend, "brave": live.BraveBackend, "tavily": live.TavilyBackend}.get(name)
    if cls is None:
        raise BackendConfigError(f"search.backend={name!r}: choose local, frozen, searxng, serper, brave or tavily")
    return cls(http, api_key_env=_opt(sub, "api_key_env", f"{name.upper()}_API_KEY"), **kwargs)


def make_cache(cfg: Any = None):
    from pipelines.browse.search.cache import ToolCache

    s = _search_section(cfg)
    if not _opt(s, "cache.enabled", True):
        return None
    d = _opt(s, "cache.dir")
    return ToolCache(d if d else cache_root() / "tools")


def open_environment(cfg: Any = None, backend=None, cache=None, forbidden_texts=(), progress=log.info):
    """A :class:`~pipelines.browse.search.env.BrowseEnv` from config (backend/cache may be given)."""
    from pipelines.browse.search.env import BrowseEnv

    s = _search_section(cfg)
    return BrowseEnv(
        backend if backend is not None else make_backend(s, progress),
        cache if cache is not None else make_cache(s),
        default_top_k=int(_opt(s, "top_k", 5)),
        max_page_chars=int(_opt(s, "visit.max_chars", 20000)),
        leak_ngram=int(_opt(s, "leak.ngram", 13)),
        leak_page_action=str(_opt(s, "leak.page_action", "redact")),
        global_forbidden=forbidden_texts,
    )


def make_tools(cfg: Any = None, forbidden_texts=()):
    """``(session, tools)`` for one rollout; ``session.stats`` has its counters."""
    session = open_environment(cfg).session(forbidden_texts)
    return session, session.tools


def entity_page_url(graph: Graph, eid: str) -> str:
    return graph.entities[eid].page_url
