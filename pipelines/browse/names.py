"""How answers are spelled: the normal form names are compared in, and the names an entity answers to.

The lowest room of answer checking: the resolver, the verifier, the question writer and the filters
all compare names through :func:`normalize`, and an entity answer's accepted names are
:func:`entity_name` plus :func:`answer_aliases`.
"""

from __future__ import annotations

import re
import unicodedata

# code attributes that are answers in their own right, and the entity types whose codes are
CODE_ATTRS = ("iso4217", "iata", "icao", "iso2", "iso3", "symbol")
CODED_TYPES = ("currency", "airport", "element")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s%.-]")
_SINGLE_LETTERS = re.compile(r"\b(?:\w )+\w\b")


def normalize(text: str) -> str:
    """Lowercase, strip accents, punctuation, articles and extra spaces."""
    t = text or ""
    if not t.isascii():
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    t = t.lower().replace("&", " and ")
    t = _PUNCT.sub(" ", t)
    t = re.sub(r"(?<!\d)[.-]|[.-](?!\d)", " ", t)  # keep 3.5 and -4, drop other dots/dashes
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


def key(text: str) -> str:
    """The index key of a name: :func:`normalize` plus runs of single letters joined."""
    n = normalize(text)
    if " " in n:
        n = _SINGLE_LETTERS.sub(lambda m: m.group(0).replace(" ", "") if all(
            len(w) == 1 for w in m.group(0).split()) else m.group(0), n)
    return n


def entity_name(graph, eid: str) -> str:
    """The entity's name (its id when the graph does not know it)."""
    e = graph.entities.get(eid)
    return e.name if e else eid


def answer_aliases(graph, eid: str) -> list[str]:
    """The other names an entity answer is accepted by: its aliases (not its name), then its codes
    (:data:`CODE_ATTRS`, for :data:`CODED_TYPES` only)."""
    e = graph.entities[eid]
    out = [a for a in dict.fromkeys(e.aliases) if a and a != e.name]
    for attr in CODE_ATTRS:
        v = e.attributes.get(attr)
        if isinstance(v, str) and v and e.type in CODED_TYPES and v not in out:
            out.append(v)
    return out
