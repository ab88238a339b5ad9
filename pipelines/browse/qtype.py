"""Is a written question faithful to its formalization? Two pure, deterministic checks.

* :func:`asked_type` reads what kind of thing a question asks for ("which country", "what city",
  "in what year", "how many", "what is the ISO ... code") as one of the graph's entity types
  (``country``, ``city``, ``us_state``, ``airport`` ...) or a value kind (``year``, ``count``,
  ``code``); ``None`` when it cannot tell. :func:`type_mismatch` compares it with the kind of the
  draft's answer (:func:`answer_kind`).
* :func:`relation_backcheck` maps the text back onto relations: every relation of the
  formalization must be expressed by one of its phrases, no phrase of a distinctive relation the
  formalization does not have may appear ("has a border with" when it says "located in"), and the
  nearest relation phrase next to each named entity must be one of that entity's own relations
  ("a country has a border with Mindik Airport": the airport's relation is ``country``).

Both are precision-first: a rewrite they cannot confirm falls back to the template question,
which is built to pass them (tested over many sampled drafts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from crucible.pipelines.browse.draft import ANSWER_ATTRS, REL_PHRASE, Draft, named_constants
from crucible.pipelines.browse.kg.model import Graph

# noun (one or two words, lower case) -> asked kind
TYPE_NOUNS: dict[str, str] = {
    "country": "country", "countries": "country", "nation": "country", "state": "us_state",
    "city": "city", "cities": "city", "town": "city", "capital": "city", "municipality": "city",
    "airport": "airport", "airfield": "airport", "airstrip": "airport",
    "currency": "currency", "money": "currency",
    "language": "language", "tongue": "language",
    "time zone": "timezone", "timezone": "timezone",
    "continent": "continent", "region": "subregion", "subregion": "subregion",
    "element": "element", "discoverer": "discoverer", "scientist": "discoverer", "chemist": "discoverer",
    "person": "discoverer",
    "year": "year", "code": "code", "symbol": "code", "domain": "code", "abbreviation": "code",
    "number": "count",
}
# words allowed between the wh-word and the asked noun ("what is the name of the official ...")
FILLER = frozenset("""is was are were the a an name of official national main primary principal one single
us u.s. american world iso 3166 4217 639 639-3 alpha-2 alpha-3 two-letter three-letter letter iata icao
internet top-level top level chemical international country's its this that""".split())
WH_VALUE = [  # (pattern at the start of the asked clause, kind)
    (re.compile(r"\b(?:in|during) (?:what|which) year\b"), "year"),
    (re.compile(r"\bwhat year\b"), "year"),
    (re.compile(r"\bwhen\b"), "year"),
    (re.compile(r"\bhow many\b"), "count"),
    (re.compile(r"\bwho\b"), "discoverer"),
]
_WH = re.compile(r"\b(what|which)\b")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9.'\-]*")


def _asked_clause(question: str) -> str:
    """The sentence that asks (the last one ending in '?', else the whole text), lower case."""
    text = " ".join(question.split()).lower()
    # a sentence ends at ?, ! or a full stop after a word of 3+ letters ("J.L. Soret" is one sentence)
    parts = [p for p in re.split(r"(?<=[?!])\s+|(?<=[a-z]{3}[.])\s+", text) if p.strip()]
    asking = [p for p in parts if p.rstrip().endswith("?")]
    return (asking[-1] if asking else text).strip()


def asked_type(question: str) -> str | None:
    """The kind of thing ``question`` asks for: an entity type of the graph (``country``, ``city``,
    ``us_state``, ``airport``, ``currency``, ``language``, ``timezone``, ``continent``,
    ``subregion``, ``element``, ``discoverer``) or a value kind (``year``, ``count``, ``code``);
    ``None`` when the asking clause does not name one ("Where is ...?", "What is spoken ...?")."""
    clause = _asked_clause(question)
    hits = []
    for pat, kind in WH_VALUE:
        m = pat.search(clause)
        if m:
            hits.append((m.start(), kind))
    m = _WH.search(clause)
    if m:
        kind = _noun_after(clause[m.end():])
        if kind is not None:
            hits.append((m.start(), kind))
        elif not hits:
            return None
    if not hits:
        return None
    return min(hits)[1]


def _noun_after(rest: str) -> str | None:
    toks = _TOKEN.findall(rest)
    for i, tok in enumerate(toks[:8]):
        two = " ".join(toks[i:i + 2])
        if two in TYPE_NOUNS:
            return TYPE_NOUNS[two]
        if tok in ("number",) and toks[i + 1:i + 2] == ["of"]:
            return "count"
        if tok in ("atomic",) and toks[i + 1:i + 2] == ["number"]:
            return "code"
        if tok in TYPE_NOUNS:
            return TYPE_NOUNS[tok]
        if tok.rstrip("s") in TYPE_NOUNS and tok.endswith("s"):
            return TYPE_NOUNS[tok.rstrip("s")]
        if tok not in FILLER:
            return None
    return None


def answer_kind(graph: Graph, draft) -> str:
    """The kind of the draft's answer: the answer attribute's value kind, else the entity type."""
    etype = graph.entities[draft.answer_id].type
    attr = draft.formalization.get("answer_attr")
    if attr:
        return next(a for n, a, _ in ANSWER_ATTRS[etype] if n == attr)
    return etype


def type_mismatch(graph: Graph, draft, question: str) -> str | None:
    """Why the question does not ask for its answer's kind (None = it does)."""
    want = answer_kind(graph, draft)
    got = asked_type(question)
    if got is None:
        return f"asked type unclear (answer is a {want})"
    if got != want:
        return f"asks for a {got}, the answer is a {want}"
    return None


# ---------------------------------------------------------------- relation back-check

# relation -> phrases that express it (regex over lower-cased text with named entities masked)
LOCATIVE = r"located|situated|\blies\b|\blie\b|based|home to|\bin\b|\bwhere\b|\bwithin\b"
REL_PATTERNS: dict[str, str] = {
    "country": r"countr\w*|nation\w*|" + LOCATIVE,
    "state": r"\bstates?\b|" + LOCATIVE,
    "capital": r"capital|seat of government",
    "currency": r"currenc\w*|money|monetary|legal tender|\bus(?:e|es|ed|ing)\b|\bpa(?:y|ys|id)\b",
    "continent": r"continent\w*|" + LOCATIVE,
    "subregion": r"\bregions?\b|subregion\w*|part of the world|" + LOCATIVE,
    "timezone": r"time ?zones?|\butc\b|" + LOCATIVE,
    "serves_city": r"\bserv\w*|airport",
    "discovered_by": r"discover\w*|\bwho\b|identified|isolated",
    "discovered_in": r"discover\w*|identified|isolated",
    "language": r"languages?|spoken|speak\w*|tongue",
    "shares_border_with": r"border\w*|neighbo\w*|adjacent|adjoin\w*|next to",
    "summary_mentions": r"wikipedia (?:summary|article)\b.*\b(?:mention\w*|names?|refers? to)",
}
# the phrases of a relation that no other relation uses: if one appears, the relation is stated
DISTINCTIVE: dict[str, str] = {
    "capital": r"capital|seat of government",
    "currency": r"currenc\w*|money|monetary|legal tender",
    "continent": r"continent\w*",
    "subregion": r"\bregions?\b|subregion\w*",
    "timezone": r"time ?zones?|\butc\b",
    "language": r"languages?|spoken|speak\w*|tongue",
    "shares_border_with": r"border\w*|neighbo\w*|adjacent|adjoin\w*",
    "discovered_by": r"discover\w*|identified|isolated",
    "summary_mentions": r"wikipedia",
}
# a constraint on a variable's type names that type; the noun is not a relation phrase then
TYPE_RELATION = {"currency": "currency", "language": "language", "timezone": "timezone",
                 "continent": "continent", "subregion": "subregion"}
# answer attribute -> phrase that must state it
ATTR_PATTERNS = {
    "iso3": r"\biso\b.*\bcode|alpha-3|three-letter", "tld": r"domain|\btld\b",
    "iso4217": r"\biso\b.*\bcode|currency code|4217", "iso639_3": r"\biso\b.*\bcode|639|language code",
    "discovery_year": r"\byear\b|\bwhen\b", "symbol": r"symbol", "iata": r"\biata\b", "icao": r"\bicao\b",
    "count:shares_border_with": r"how many|number of",
}


def _mask(graph: Graph, draft, text: str) -> tuple[str, dict[str, str]]:
    """Lower-cased text with each named constant (name or alias) replaced by a token ``ent<i>``;
    returns the text and token -> entity id."""
    out = " " + " ".join(text.split()) + " "
    tokens: dict[str, str] = {}
    for i, c in enumerate(dict.fromkeys(named_constants(draft))):
        e = graph.entities.get(c)
        names = sorted({n for n in ([e.name, *e.aliases] if e else [c]) if len(n) >= 2}, key=len, reverse=True)
        tok = f"ent{i}"
        tokens[tok] = c
        for n in names:  # short codes ("IS", "NL") only in their own case: "is" is a word
            flags = 0 if len(n) <= 3 else re.IGNORECASE
            out = re.sub(r"(?<![\w])" + re.escape(n) + r"(?![\w])", f" {tok} ", out, flags=flags)
    out = out.lower()
    return " ".join(out.split()), tokens


def formal_relations(draft) -> set[str]:
    return {r for _s, r, _o in draft.formalization["triples"]}


def read_back_vocabulary() -> dict[str, str]:
    """Relation name -> the phrase that states it: what the read-back model may answer."""
    return {**{r: p.format(x="X") for r, p in REL_PHRASE.items()},
            "summary_mentions": "X whose Wikipedia summary mentions Y"}


def read_back_mismatch(draft, relations: Sequence[str] | None) -> str | None:
    """Why a model's read-back of a rewrite does not match the formalization's relations (None =
    same set). An empty or missing read-back cannot decide, so it does not match."""
    if not relations:
        return "no read-back"
    got, want = set(relations), formal_relations(draft)
    missing, extra = sorted(want - got), sorted(got - want)
    if missing or extra:
        return "read back as " + "/".join(sorted(got)) + (f"; missing {'/'.join(missing)}" if missing else "") + (
            f"; extra {'/'.join(extra)}" if extra else "")
    return None


def relation_backcheck(graph: Graph, draft, text: str) -> str | None:
    """Why ``text`` does not state the relations of ``draft`` (None = it does; see module doc)."""
    masked, tokens = _mask(graph, draft, text)
    rels = formal_relations(draft)
    for r in sorted(rels):
        pat = REL_PATTERNS.get(r)
        if pat and not re.search(pat, masked):
            return f"relation {r} not expressed"
    attr = draft.formalization.get("answer_attr")
    if attr and attr in ATTR_PATTERNS and not re.search(ATTR_PATTERNS[attr], masked):
        return f"answer attribute {attr} not asked"
    implied = {TYPE_RELATION[c["type"]] for c in draft.formalization.get("constraints", [])
               if c.get("type") in TYPE_RELATION}
    implied |= {TYPE_RELATION.get(graph.entities[draft.answer_id].type, "")}
    if attr == "iso4217":
        implied.add("currency")
    if attr == "iso639_3":
        implied.add("language")
    if attr == "count:shares_border_with":
        implied.add("shares_border_with")
    for r, pat in DISTINCTIVE.items():
        if r in rels or r in implied:
            continue
        if r == "discovered_by" and "discovered_in" in rels:
            continue
        m = re.search(pat, masked)
        if m:
            return f"states a relation the formalization does not have ({r}: {m.group(0)!r})"
    for tok, eid in tokens.items():
        own = {r for s, r, o in draft.formalization["triples"] if eid in (s, o)}
        for m in re.finditer(r"\b" + tok + r"\b", masked):
            sides = [x for x in (_nearest(masked[:m.start()], left=True), _nearest(masked[m.end():], left=False))
                     if x is not None]
            if sides and not any(x & own for x in sides):
                got = sorted(set().union(*sides))
                name = graph.entities[eid].name if eid in graph.entities else eid
                return f"{name} is linked by {'/'.join(got)}, the formalization links it by {'/'.join(sorted(own))}"
    return None


_SENT_END = re.compile(r"[.?!;]")
WINDOW_WORDS = 6


def _nearest(span: str, left: bool) -> set[str] | None:
    """Relations whose phrase is nearest to an entity mention on one side (within its sentence,
    another entity and :data:`WINDOW_WORDS` words), as a set: a word like 'in' expresses several."""
    if left:
        span = _SENT_END.split(span)[-1]
        span = re.split(r"\bent\d+\b", span)[-1]
        span = " ".join(span.split()[-WINDOW_WORDS:])
    else:
        span = _SENT_END.split(span)[0]
        span = re.split(r"\bent\d+\b", span)[0]
        span = " ".join(span.split()[:WINDOW_WORDS])
    hits: dict[int, set[str]] = {}
    words: dict[int, str] = {}
    for r, pat in REL_PATTERNS.items():
        for m in re.finditer(pat, span):
            pos = m.end() if left else -m.start()
            hits.setdefault(pos, set()).add(r)
            words[pos] = m.group(0)
    if not hits:
        return None
    order = sorted(hits, reverse=True)
    out = set(hits[order[0]])
    # a bare locative ("spoken in X", "where X is") says little: the next phrase counts as well
    if re.fullmatch(LOCATIVE, words[order[0]]) and len(order) > 1:
        out |= hits[order[1]]
    return out


def row_type_mismatch(graph: Graph, row) -> str | None:
    """:func:`type_mismatch` for a stored question row (``formalization`` holds the binding), for
    the audit: why the row's question does not ask for its answer's kind (None = it does)."""
    form = dict(row["formalization"])
    binding = form.pop("binding")
    return type_mismatch(graph, Draft(form, binding, row.get("seed_entity") or ""), row["question"])
