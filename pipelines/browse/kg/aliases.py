"""Alias hygiene: which alternate names a graph entity keeps, each with its source.

An alias is an answer the verifier accepts as the entity (``pipelines/browse/resolve.py``), so a
junk or shared alias is a precision bug: "dbln" for Dublin is noise, and an alias that two cities
share makes an answer "resolve" to both. Two steps:

- :func:`alternate_ok` filters a source's alternate names (GeoNames ``alternatenames``,
  countryinfo ``altSpellings``): Latin script only, at least 3 characters, at least one capital
  letter (GeoNames' all-lowercase alternates are romanizations such as "dbln", "lyma"), at least
  one vowel, no digits, not a short all-capitals code (codes come from code fields only), at most
  5 words.
- :func:`drop_shared` removes every alias that names two entities of the same type (the alias of
  one equals the name or an alias of another), from all of them. Names are never removed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from crucible.pipelines.browse.names import key as normalized_key

_LATIN = re.compile("[\u0000-\u024f\u2019]+")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")


def _fold(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def alternate_ok(alt: str, name: str) -> str | None:
    """None when ``alt`` is a usable alternate name of ``name``, else the reason it is dropped."""
    a = (alt or "").strip()
    if not a or a == name:
        return "empty or the name itself"
    if not _LATIN.fullmatch(a):
        return "not Latin script"
    if len(a) < 3:
        return "shorter than 3 characters"
    if re.fullmatch(r"[A-Z0-9]{2,5}", a):
        return "short code (codes come from code fields)"
    if a == a.lower():
        return "all lowercase (a romanization, not a written name)"
    if not _VOWEL.search(_fold(a)):
        return "no vowel"
    if any(ch.isdigit() for ch in a):
        return "contains digits"
    if len(a.split()) > 5:
        return "more than 5 words"
    return None


def filter_alternates(name: str, alternates: Iterable[str], source: str,
                      drops: Counter | None = None) -> list[tuple[str, str]]:
    """(alias, source) pairs that pass :func:`alternate_ok`, deduplicated, in input order."""
    out, seen = [], {name}
    for a in alternates:
        if not isinstance(a, str):
            continue
        a = a.strip()
        why = alternate_ok(a, name)
        if why is None and a not in seen:
            seen.add(a)
            out.append((a, source))
        elif why is not None and drops is not None:
            drops[why] += 1
    return out


def alias_fields(pairs: Sequence[tuple[str, str]]) -> dict:
    """``aliases`` and ``alias_sources`` keyword arguments for an Entity from (alias, source) pairs."""
    pairs = [(a, s) for a, s in pairs if a]
    seen: set[str] = set()
    keep = [(a, s) for a, s in pairs if not (a in seen or seen.add(a))]
    return {"aliases": tuple(a for a, _ in keep), "alias_sources": tuple(s for _, s in keep)}


def drop_shared(entities: Sequence, key=None) -> tuple[list, dict]:
    """Drop every alias that also names another entity of the same type (as its name or an alias),
    from every entity that has it. Articles are left alone (their aliases are their base titles).
    Returns the new entities and stats: aliases before/after and examples of dropped ones."""
    if key is None:
        key = normalized_key
    k = functools.lru_cache(maxsize=None)(key)  # each distinct name normalized once

    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entities:
        if e.type == "article":
            continue
        for n in (e.name, *e.aliases):
            owners[(e.type, k(n))].add(e.id)
    before = sum(len(e.aliases) for e in entities)
    out, examples, dropped = [], [], 0
    for e in entities:
        if e.type == "article" or not e.aliases:
            out.append(e)
            continue
        srcs = e.alias_sources if len(e.alias_sources) == len(e.aliases) else ("",) * len(e.aliases)
        keep = [(a, s) for a, s in zip(e.aliases, srcs, strict=True) if len(owners[(e.type, k(a))]) == 1]
        if len(keep) != len(e.aliases):
            gone = [a for a in e.aliases if len(owners[(e.type, k(a))]) > 1]
            dropped += len(gone)
            if len(examples) < 12:
                examples.append({"entity": e.id, "name": e.name, "dropped": gone[:4]})
            e = replace(e, aliases=tuple(a for a, _ in keep),
                        alias_sources=tuple(s for _, s in keep) if e.alias_sources else ())
        out.append(e)
    return out, {"aliases_before": before, "aliases_after": before - dropped, "shared_dropped": dropped,
                 "examples": examples}
