"""`crucible search index|query|visit|serve|export`: the search side of the browse environment."""

from __future__ import annotations

import argparse
import json
import sys

from crucible.pipelines.commands.view_cmd import port_number


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="defaults", help="config file or shipped name (default: defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config key, e.g. --set search.backend=searxng")


def _cfg(args, extra: list[str] | None = None):
    from crucible.pipelines.config import load_config

    return load_config(args.config, list(args.overrides) + list(extra or []))


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="local corpus index, search/visit tools, local search server, cache export")
    ss = p.add_subparsers(dest="search_command", metavar="ACTION")
    ss.required = True
    i = ss.add_parser("index", help="render the graph into pages and index them (or index --pages JSONL)")
    _config_args(i)
    i.add_argument("--pages", help="pages JSONL ({url,title,text} per line) to index instead of the graph")
    i.add_argument("--out", help="corpus directory (default: content-addressed cache dir)")
    i.add_argument("--force", action="store_true")
    i.set_defaults(func=_index)
    q = ss.add_parser("query", help="run the search tool once and print the observation")
    _config_args(q)
    q.add_argument("query")
    q.add_argument("--top-k", type=int, default=None)
    q.set_defaults(func=_query)
    v = ss.add_parser("visit", help="run the visit tool once and print the observation")
    _config_args(v)
    v.add_argument("url")
    v.set_defaults(func=_visit)
    s = ss.add_parser("serve", help="serve the local index on loopback in SearXNG/Serper/Brave/Tavily JSON shapes")
    _config_args(s)
    s.add_argument("--port", type=port_number, default=8899, help="0..65535 (0 = any free port; default: 8899)")
    s.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
    s.add_argument("--api-key", help="require exactly this key (default: any non-empty key)")
    s.set_defaults(func=_serve)
    e = ss.add_parser("export", help="export the tool cache as a frozen corpus (JSONL), servable as backend=frozen")
    _config_args(e)
    e.add_argument("out", help="output .jsonl")
    e.add_argument("--snapshot-id", help="only entries of this backend snapshot (default: the configured backend's)")
    e.add_argument("--all", action="store_true", help="every snapshot in the cache")
    e.set_defaults(func=_export)


def _index(args) -> int:
    from crucible.pipelines.browse.api import ensure_corpus

    extra = []
    if args.pages:
        extra.append(f"search.local.pages={args.pages}")
    if args.out:
        extra.append(f"search.local.dir={args.out}")
    cfg = _cfg(args, extra)
    d = ensure_corpus(cfg, force=args.force, progress=_progress)
    man = json.loads((d / "corpus.json").read_text())
    print(f"corpus: {d}: {man['pages']:,} pages, snapshot {man['snapshot_id']}")
    return 0


def _session(args):
    from crucible.pipelines.browse.api import open_environment

    return open_environment(_cfg(args), progress=_progress).session()


def _query(args) -> int:
    sess = _session(args)
    a = {"query": args.query}
    if args.top_k:
        a["top_k"] = args.top_k
    obs = sess.search(a)
    print(obs.content)
    return 1 if obs.error else 0


def _visit(args) -> int:
    obs = _session(args).visit({"url": args.url})
    print(obs.content)
    return 1 if obs.error else 0


def _serve(args) -> int:
    from crucible.pipelines.browse.api import make_backend
    from crucible.pipelines.browse.search.server import SearchServer
    from crucible.pipelines.browse.search.spec import SPEC_PATH

    backend = make_backend(_cfg(args), progress=_progress)
    try:
        srv = SearchServer(backend, host=args.host, port=args.port, api_key=args.api_key)
    except OSError as exc:
        print(f"crucible: cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another with --port",
              file=sys.stderr)
        return 2
    lim = srv.limits
    print(f"serving {backend.name} snapshot {backend.snapshot_id} on {srv.url} "
          "(/search?format=json, /serper/search, /brave/res/v1/web/search, /tavily/search, /retrieve, /page?url=; "
          f"described in {SPEC_PATH}; bodies <= {lim.max_body_bytes} bytes, {lim.max_connections} connections, "
          f"read timeout {lim.read_timeout_s} s)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


def _export(args) -> int:
    from crucible.pipelines.browse.api import make_backend, make_cache

    cfg = _cfg(args)
    cache = make_cache(cfg)
    if cache is None:
        raise ValueError("search.cache.enabled is false: there is no tool cache to export")
    snap = None if args.all else (args.snapshot_id or make_backend(cfg, progress=_progress).snapshot_id)
    info = cache.export(args.out, snap)
    print(f"exported {info['searches']:,} searches and {info['pages']:,} pages to {info['path']}")
    return 0
