"""`crucible kg build|stats|query|ingest`: the knowledge graph behind the browse environment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="defaults", help="config file or shipped name (default: defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config key, e.g. --set search.kg.min_city_population=15000")


def _cfg(args):
    from crucible.pipelines.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "out", None):
        overrides.append(f"search.kg.dir={args.out}")
    return load_config(args.config, overrides)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kg", help="build and inspect the knowledge graph (search.kg config)")
    ks = p.add_subparsers(dest="kg_command", metavar="ACTION")
    ks.required = True
    b = ks.add_parser("build", help="build the graph from installed packages (+ search.kg.extra files)")
    _config_args(b)
    b.add_argument("--out", help="graph directory (default: content-addressed cache dir)")
    b.add_argument("--force", action="store_true", help="rebuild even when a complete build exists")
    b.set_defaults(func=_build)
    s = ks.add_parser("stats", help="entity/triple/relation counts and k-hop chain counts")
    _config_args(s)
    s.add_argument("--out", help="graph directory (default: the configured one; built if missing)")
    s.add_argument("--max-k", type=int, default=5)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_stats)
    q = ks.add_parser("query", help="execute a formalization (JSON) and print the target bindings")
    _config_args(q)
    q.add_argument("--out", help="graph directory")
    q.add_argument("formalization", help="JSON text, or @FILE")
    q.set_defaults(func=_query)
    i = ks.add_parser("ingest", help="ingest a Wikidata JSON dump and/or a Wikipedia text dump (a Beam job) "
                      "into a graph dir for search.kg.extra and pages for search.local.pages")
    _config_args(i)
    i.add_argument("--wikidata", action="append", default=[], metavar="DUMP",
                   help="Wikidata JSON dump (.json, .json.gz, .json.bz2; one entity per line in a JSON array)")
    i.add_argument("--wikipedia", action="append", default=[], metavar="FILE",
                   help="Wikipedia text dump: Parquet or JSON lines with title, text (optional id, url)")
    i.add_argument("--mapping", help="Wikidata classes/properties -> types/relations/attributes "
                   "(default: configs/kg_mappings/wikidata.yaml; schema schemas/kg_mapping.json)")
    i.add_argument("--cards", help="relation cards (default: configs/relation_cards.yaml)")
    i.add_argument("--out", help="output dir (default: <cache>/kg/ingest-<key>)")
    i.add_argument("--source-version", default="", help="dump version recorded on every row, e.g. 20261130")
    i.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the finalize step")
    i.add_argument("--force", action="store_true", help="ingest again when a complete ingest exists")
    i.set_defaults(func=_ingest)


def _load(args):
    from crucible.pipelines.browse.api import load_kg

    return load_kg(_cfg(args), progress=lambda m: print(m, file=sys.stderr))


def _build(args) -> int:
    from crucible.pipelines.browse.api import graph_dir, kg_options
    from crucible.pipelines.browse.kg.build import ensure_graph

    cfg = _cfg(args)
    d, rep = ensure_graph(kg_options(cfg), graph_dir(cfg), force=args.force,
                          progress=lambda m: print(m, file=sys.stderr))
    man = json.loads((d / "manifest.json").read_text())
    state = "reused" if rep.reused else f"built in {rep.seconds:.1f} s"
    print(f"graph: {d} ({state}): {man['entities']:,} entities, {man['triples']:,} triples")
    for name, info in man["sources"].items():
        status = info.get("status", "ok")
        print(f"  {name} {info.get('version', '')}: {status}, {info.get('entities', 0):,} entities, "
              f"{info.get('triples', 0):,} triples; licence {info.get('license', '')}")
    for w in man.get("warnings", []):
        print(f"  warning: {w}")
    return 0


def _stats(args) -> int:
    from crucible.pipelines.browse.kg.chains import graph_stats

    st = graph_stats(_load(args), args.max_k)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"entities: {st['entities']:,}   triples: {st['triples']:,}   relations: {len(st['relations'])}")
    print("entity types: " + ", ".join(f"{k} {v:,}" for k, v in st["entity_types"].items()))
    print("relations:    " + ", ".join(f"{k} {v:,}" for k, v in st["relations"].items()))
    print("chains (" + st["chain_definition"] + "):")
    print(f"  {'k':>2} {'functional':>12} {'functional_informative':>22} {'one_many':>16} {'at_most_one_many':>17} "
          f"{'wiki_links':>12}")
    for k, c in st["chains"].items():
        print(f"  {k:>2} {c['functional']:>12,} {c['functional_informative']:>22,} {c['one_many']:>16,} "
              f"{c['at_most_one_many']:>17,} {c['wiki_links']:>12,}")
    return 0


def _query(args) -> int:
    from crucible.pipelines.browse.kg.executor import Formalization, FormalizationError, execute
    from crucible.pipelines.textio import parse_json, read_text

    text, where = args.formalization, "formalization argument"
    if text.startswith("@"):
        where = text[1:]
        text = read_text(where, "formalization file")
    form = parse_json(text, where, "formalization")
    try:
        Formalization.parse(form)  # before the graph loads: a bad formalization fails fast
    except FormalizationError as exc:
        raise ValueError(f"{where}: {exc}") from None
    g = _load(args)
    ans = sorted(execute(g, form))
    print(json.dumps({"count": len(ans), "answers": [{"id": a, "name": g.entities[a].name} for a in ans[:100]]},
                     ensure_ascii=False, indent=1))
    return 0


def _ingest(args) -> int:
    from crucible.pipelines.browse.kg.build import cache_root
    from crucible.pipelines.browse.kg.cards import load_cards
    from crucible.pipelines.browse.kg.ingest import IngestInputs, check_inputs, ingest, input_key
    from crucible.pipelines.browse.kg.wikidata import check_cards, load_mapping
    from crucible.pipelines.config import load_config

    cfg = load_config(args.config, list(args.overrides))
    inputs = IngestInputs(tuple(args.wikidata), tuple(args.wikipedia))
    check_inputs(inputs)
    mapping = load_mapping(args.mapping, args.source_version)
    cards = load_cards(args.cards)
    check_cards(mapping, cards)  # also before a reuse: a card removed since then refuses the mapping
    key = input_key(inputs, mapping)
    out = Path(args.out) if args.out else cache_root() / "kg" / f"ingest-{key}"
    man_path = out / "manifest.json"
    if man_path.exists() and not args.force and json.loads(man_path.read_text()).get("key") == key:
        print(f"ingest: {out} (reused; --force to ingest again)")
        return _print_ingest(out, json.loads(man_path.read_text()))
    man = ingest(inputs, mapping, cards, out, dict(cfg.run), args.memory_limit,
                 progress=lambda m: print(m, file=sys.stderr))
    print(f"ingest: {out} in {man['seconds']:.1f} s")
    return _print_ingest(out, man)


def _print_ingest(out, man: dict) -> int:
    if "entities" in man:
        print(f"  graph: {man['entities']:,} entities, {man['triples']:,} triples "
              f"({man['triples_dropped_object_not_ingested']:,} dropped: object not ingested); "
              f"use it with --set 'search.kg.extra=[\"{out}\"]'")
    if "pages" in man:
        print(f"  corpus: {man['pages']:,} pages in {out}/corpus/pages.jsonl; index them with "
              f"`crucible search index --pages {out}/corpus/pages.jsonl` or --set search.local.pages=...")
    c = man.get("counters", {})
    print(f"  skipped: {c.get('untyped', 0):,} items of no mapped class, {c.get('not_item', 0):,} non-items")
    print(f"  failures: {man['failures']:,} rows in {out}/failures/failures.parquet (file, line, reason)")
    return 0
