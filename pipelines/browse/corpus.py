"""Pages the agent searches and reads, rendered from the knowledge graph.

* Every non-article entity becomes a page at ``https://kb.local/<entity id>``: a title, its facts
  as plain sentences (outgoing triples and attributes, plus the notable incoming ones such as
  "X is the capital of Y" or the largest cities of a country) and a list of links.
* Every Wikipedia summary stays a page with its real ``https://en.wikipedia.org/wiki/<Title>`` URL.

Pages are stored as ``pages.parquet`` (url, title, text, type, entity_id, links) in the corpus
directory; the corpus snapshot id is a hash of every page, so a rebuilt corpus that differs in one
character gets a new id (and the tool cache keyed on it does not serve stale observations).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.browse.kg.model import Entity, Graph, Triple, write_json, write_parquet
from crucible.pipelines.textio import read_jsonl

CORPUS_CODE_VERSION = "corpus-2"  # corpus-2: incoming borders read "X shares a border with Y"
PAGE_SCHEMA = pa.schema([
    pa.field("url", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("type", pa.string()),
    pa.field("entity_id", pa.string()),
    pa.field("links", pa.list_(pa.struct([pa.field("title", pa.string()), pa.field("url", pa.string())]))),
])
MAX_INBOUND = 15

# relation -> sentence for one object, or for several objects (joined list)
REL_TEMPLATES = {
    "country": "{s} is in {o}.",
    "state": "{s} is in the US state of {o}.",
    "timezone": "{s} uses the {o} time zone.",
    "serves_city": "{s} serves the city of {o}.",
    "capital": "The capital of {s} is {o}.",
    "continent": "{s} is on the continent of {o}.",
    "subregion": "{s} is in the {o} region.",
    "currency": "The currency of {s} is the {o}.",
    "language": "Languages spoken in {s} include {o}.",
    "shares_border_with": "{s} shares a border with {o}.",
    "discovered_by": "{s} was discovered by {o}.",
    "discovered_in": "{s} was discovered in {o}.",
    "described_by": "The Wikipedia article on {s} is {o}.",
    "mentions": "The article on {s} mentions {o}.",
}
INV_TEMPLATES = {  # incoming relation -> sentence about the object page ({kinds}: subject type, plural)
    "capital": "{o} is the capital of {s}.",
    "serves_city": "{o} is served by {s}.",
    "country": "{Kinds} in {o} include {s}.",
    "state": "{Kinds} in {o} include {s}.",
    "timezone": "{Kinds} in the {o} time zone include {s}.",
    "discovered_by": "{o} discovered {s}.",
    "discovered_in": "Elements discovered in {o} include {s}.",
    "currency": "The {o} is the currency of {s}.",
    "language": "{o} is spoken in {s}.",
    "continent": "Countries on {o} include {s}.",
    "subregion": "Countries in {o} include {s}.",
    "shares_border_with": "{o} shares a border with {s}.",
}
ATTR_TEMPLATES = {
    "population": "{s} has a population of {v:,}.",
    "area_km2": "{s} has an area of {v:,} km2.",
    "elevation_ft": "{s} is at an elevation of {v:,.0f} ft.",
    "latitude": "{s} lies at latitude {v}.",
    "longitude": "{s} lies at longitude {v}.",
    "iata": "Its IATA code is {v}.",
    "icao": "Its ICAO code is {v}.",
    "iso2": "Its ISO 3166 alpha-2 code is {v}.",
    "iso3": "Its ISO 3166 alpha-3 code is {v}.",
    "tld": "Its internet top-level domain is {v}.",
    "phone": "Its international calling code is +{v}.",
    "demonym": "People from {s} are called {v}.",
    "atomic_number": "{s} has atomic number {v}.",
    "symbol": "Its chemical symbol is {v}.",
    "discovery_year": "{s} was discovered in {v}.",
    "name_origin": "Origin of the name: {v}",
    "iso4217": "Its ISO 4217 code is {v}.",
    "iso639_3": "Its ISO 639-3 code is {v}.",
    "short_description": "{v}",
}
SKIP_ATTRS = {"geonameid", "admin1code", "isonumeric", "city_name", "subdivision", "fips", "code", "topic",
              "iso639_1", "period", "group", "block"}


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    text: str
    type: str = ""
    entity_id: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (title, url)

    def row(self) -> dict:
        return {"url": self.url, "title": self.title, "text": self.text, "type": self.type,
                "entity_id": self.entity_id, "links": [{"title": t, "url": u} for t, u in self.links]}

    def meta(self) -> dict:
        return {"type": self.type, "entity_id": self.entity_id, "links": [list(x) for x in self.links]}


def _name(graph: Graph, eid: str) -> str:
    e = graph.entities.get(eid)
    return e.name if e else eid


def _join(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _link(graph: Graph, eid: str) -> tuple[str, str]:
    e = graph.entities[eid]
    return (e.name, e.page_url)


def relation_sentence(graph: Graph, t: Triple) -> str:
    """The sentence the subject's page uses for one triple (also used to state evidence); for
    ``summary_mentions``, the sentence of the subject's Wikipedia summary that names the object."""
    if t.relation == "summary_mentions":
        return summary_sentence(graph, t)
    tpl = REL_TEMPLATES.get(t.relation, "{s} " + t.relation.replace("_", " ") + ": {o}.")
    return tpl.format(s=_name(graph, t.subject), o=_name(graph, t.object))


def summary_article(graph: Graph, t: Triple) -> Entity | None:
    """The article whose summary a ``summary_mentions`` triple reads (the subject's described_by)."""
    arts = graph.objects(t.subject, "described_by")
    return graph.entities.get(arts[0]) if arts else None


def summary_sentence(graph: Graph, t: Triple) -> str:
    """The sentence of the subject's summary that contains the object's title ('' if none does)."""
    art, title = summary_article(graph, t), _name(graph, t.object)
    text = (art.description or "") if art else ""
    for sent in re.split(r"(?<=[.!?])\s+", text):
        if re.search(r"(?<!\w)" + re.escape(title) + r"(?!\w)", sent):
            return sent.strip()
    return ""


def page_fact(graph: Graph, t: Triple) -> str:
    """The sentence stating triple ``t`` exactly as it appears on the subject's page (many-valued
    relations are one sentence listing every object)."""
    e = graph.entities[t.subject]
    if e.type == "article":
        return ""
    if t.relation == "summary_mentions":
        return summary_sentence(graph, t)
    objs = graph.objects(t.subject, t.relation)
    tpl = REL_TEMPLATES.get(t.relation, "{s} " + t.relation.replace("_", " ") + ": {o}.")
    return tpl.format(s=e.name, o=_join([_name(graph, o) for o in objs]))


def evidence_url(graph: Graph, t: Triple) -> str:
    """The page that states triple ``t``: the subject's page, or for ``summary_mentions`` the
    subject's Wikipedia article."""
    if t.relation == "summary_mentions":
        art = summary_article(graph, t)
        return art.page_url if art else ""
    return graph.entities[t.subject].page_url


def evidence(graph: Graph, t: Triple) -> dict:
    """Evidence for one hop: the subject's page URL and the fact sentence shown there, plus provenance."""
    return {"url": evidence_url(graph, t), "fact": page_fact(graph, t),
            "triple": [t.subject, t.relation, t.object], "source": t.source, "record_id": t.record_id,
            "license": t.license}


def answer_aliases(graph: Graph, eid: str) -> list[str]:
    """Names accepted for an entity answer: its name first, then its aliases (deduplicated)."""
    e = graph.entities[eid]
    seen: set[str] = set()
    return [x for x in (e.name, *e.aliases) if x and not (x.casefold() in seen or seen.add(x.casefold()))]


def attribute_sentence(name: str, attr: str, value) -> str | None:
    if value is None or value == "" or attr in SKIP_ATTRS:
        return None
    tpl = ATTR_TEMPLATES.get(attr)
    if tpl is None:
        return f"Its {attr.replace('_', ' ')} is {value}."
    try:
        return tpl.format(s=name, v=value)
    except (ValueError, TypeError):
        return tpl.replace(":,", "").replace(":,.0f", "").format(s=name, v=value)


def _rank_key(graph: Graph, eid: str):
    e = graph.entities.get(eid)
    pop = (e.attributes.get("population") or 0) if e else 0
    return (-(pop if isinstance(pop, int | float) else 0), _name(graph, eid))


def render_entity(graph: Graph, e: Entity) -> Page:
    if e.type == "article":
        links = tuple(_link(graph, o) for o in graph.objects(e.id, "mentions") if o in graph.entities)
        lead = e.attributes.get("short_description")
        text = (f"{lead}.\n\n" if lead else "") + (e.description or "")
        return Page(e.page_url, e.name, text.strip(), e.type, e.id, links)
    lines: list[str] = []
    kind = e.type.replace("_", " ")
    head = f"{e.name} is {'an' if kind[:1] in 'aeiou' else 'a'} {kind}."
    lines.append(head)
    links: list[tuple[str, str]] = []
    for rel, objs in graph.out.get(e.id, {}).items():
        if rel == "summary_mentions":  # stated by the Wikipedia page itself, not by this one
            continue
        names = [_name(graph, o) for o in objs]
        links.extend(_link(graph, o) for o in objs if o in graph.entities)
        tpl = REL_TEMPLATES.get(rel, "{s} " + rel.replace("_", " ") + ": {o}.")
        lines.append(tpl.format(s=e.name, o=_join(names)))
    for attr, v in sorted(e.attributes.items()):
        s = attribute_sentence(e.name, attr, v)
        if s:
            lines.append(s)
    for rel, all_subs in graph.inn.get(e.id, {}).items():
        if rel in ("mentions", "described_by", "summary_mentions"):
            continue
        by_kind: dict[str, list[str]] = {}
        for x in all_subs:
            by_kind.setdefault(graph.entities[x].type if x in graph.entities else "entity", []).append(x)
        for kind, subs in sorted(by_kind.items()):
            tpl = INV_TEMPLATES.get(rel, "{o} is the " + rel.replace("_", " ") + " of {s}.")
            shown = sorted(subs, key=lambda x: _rank_key(graph, x))[:MAX_INBOUND]
            more = f" (and {len(subs) - len(shown):,} more)" if len(subs) > len(shown) else ""
            kinds = {"city": "cities", "us_state": "US states"}.get(kind, kind.replace("_", " ") + "s")
            sent = tpl.format(o=e.name, s=_join([_name(graph, x) for x in shown]), Kinds=kinds.capitalize())
            lines.append(sent.rstrip(".") + more + ".")
            links.extend(_link(graph, x) for x in shown if x in graph.entities)
    if e.aliases:
        lines.append("Also known as: " + ", ".join(e.aliases) + ".")
    lines.append(f"Source: {e.source} {e.source_version} (record {e.record_id}; licence {e.license}).")
    seen: set[tuple[str, str]] = set()
    links = [u for u in links if not (u in seen or seen.add(u))]
    return Page(e.page_url, e.name, "\n".join(lines), e.type, e.id, tuple(links))


def render_pages(graph: Graph) -> Iterator[Page]:
    for eid in sorted(graph.entities):
        yield render_entity(graph, graph.entities[eid])


def page_text_with_links(page: Page, max_links: int = 40) -> str:
    """What ``visit`` shows for a local page: title, URL, text, then the links (title: url)."""
    out = f"# {page.title}\nURL: {page.url}\n\n{page.text}"
    if page.links:
        out += "\n\nLinks:\n" + "\n".join(f"- {t}: {u}" for t, u in page.links[:max_links])
    return out


def page_html(page: Page) -> str:
    """The page as a small HTML document (served by the local search server for ``visit`` over HTTP)."""
    paras = "".join(f"<p>{html.escape(p)}</p>\n" for p in page.text.split("\n") if p.strip())
    links = "".join(
        f'<li><a href="{html.escape(u)}">{html.escape(t)}</a></li>\n' for t, u in page.links[:40]
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
        f"{html.escape(page.title)}</title></head><body>\n<nav><a href=\"/\">crucible kb</a></nav>\n"
        f"<article><h1>{html.escape(page.title)}</h1>\n{paras}"
        + (f"<h2>Links</h2><ul>\n{links}</ul>\n" if links else "")
        + "</article>\n<footer>Rendered by Crucible from open data; see the source line for the licence.</footer>"
        "\n</body></html>\n"
    )


# -- storage ----------------------------------------------------------------------------------
def snapshot_id(pages: Iterable[Page]) -> str:
    h = hashlib.sha256(CORPUS_CODE_VERSION.encode())
    for p in sorted(pages, key=lambda p: p.url):
        h.update(json.dumps([p.url, p.title, p.text], ensure_ascii=False).encode())
        h.update(b"\n")
    return "kb-" + h.hexdigest()[:16]


def write_pages(pages: list[Page], out_dir: str | os.PathLike, extra_manifest: dict | None = None) -> str:
    out = Path(out_dir)
    pages = sorted(pages, key=lambda p: p.url)
    urls = set()
    for p in pages:
        if p.url in urls:
            raise ValueError(f"duplicate page url {p.url!r}; page urls must be unique")
        urls.add(p.url)
    snap = snapshot_id(pages)
    write_parquet(pa.Table.from_pylist([p.row() for p in pages], schema=PAGE_SCHEMA), out / "pages.parquet")
    man = {"snapshot_id": snap, "pages": len(pages), "code_version": CORPUS_CODE_VERSION, **(extra_manifest or {})}
    write_json(out / "corpus.json", man)
    return snap


def read_pages(corpus_dir: str | os.PathLike) -> list[Page]:
    t = pq.read_table(Path(corpus_dir) / "pages.parquet")
    cols = {n: t.column(n).to_pylist() for n in t.column_names}
    return [Page(u, ti, tx, ty or "", ei or "", tuple((x["title"], x["url"]) for x in li or ())) for u, ti, tx, ty, ei, li in
            zip(cols["url"], cols["title"], cols["text"], cols["type"], cols["entity_id"], cols["links"],
                strict=True)]


def read_pages_jsonl(path: str | os.PathLike) -> list[Page]:
    """A user corpus or an exported frozen corpus: one ``{"url", "title", "text"}`` object per line."""
    pages = []
    for i, r in read_jsonl(path, "pages file", allow_empty=False):
        if not isinstance(r, dict):
            raise ValueError(f"{path}:{i}: a row must be a JSON object with url, title, text; got {type(r).__name__}")
        if r.get("kind", "page") != "page":
            continue
        for k in ("url", "title", "text"):
            if not isinstance(r.get(k), str):
                raise ValueError(f"{path}:{i}: field {k!r} must be a string (page lines need url, title, text)")
        pages.append(Page(r["url"], r["title"], r["text"], r.get("type", ""), r.get("entity_id", ""),
                          tuple(tuple(x) for x in r.get("links") or ())))
    return pages
