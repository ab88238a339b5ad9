"""Text-grounded hops: which facts of the graph a Wikipedia summary states in one sentence.

Definition (docs/browse-env.md, "Text as the main source"):

- A **hop** ``s -r-> o`` is *text-grounded* when a sentence of the Wikipedia summary page of one of
  its ends (the ``described_by`` article of ``s`` or of ``o``, a page of the corpus) names both ends.
  An end is *named* when the sentence contains its name, one of its aliases of at least
  :data:`MIN_FORM_CHARS` characters, or the title of its article (with or without the title's
  parenthesis), as whole words after :func:`fold` (case and accents do not matter; hyphenated words
  stay whole). Longest names are matched first and consume their words, other articles' titles hide
  the names they contain, and a name that is another article's title does not name this entity
  (:func:`named_in`, :func:`name_forms`). The linking sentence and its page (article id and URL) are
  the hop's text evidence.
- A **question** is *text-grounded* when at least half of its path hops are, the hop into the answer
  among them (:func:`grounded_enough`). For an attribute answer (an ISO code, a year) the hop into the
  answer is the last hop of the path: into the entity whose attribute is asked.

The :class:`TextIndex` is built once per loaded graph (:func:`text_index`, cached on the graph): every
fact triple (not the page links ``mentions``, ``described_by``, ``summary_mentions``) with an end that
has a summary is looked up once, so the sampler asks :meth:`TextIndex.hop` per hop in O(1). It reads
the ``described_by`` pages whose text the corpus renders at their Wikipedia URLs (``summary_mentions``
triples come from the same pages); ``crucible browse audit`` re-checks a stored sentence with
:meth:`TextIndex.states` against the corpus page (:mod:`crucible.pipelines.browse.grounding`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from crucible.pipelines.browse.kg.model import Graph, Triple
from crucible.pipelines.browse.names import normalize

# relations that link pages rather than state facts: never a hop, never grounded
UNGROUNDED = frozenset({"mentions", "described_by", "summary_mentions"})
# with text preference on (browse.text_grounded_share > 0), a text-grounded hop weighs this much in the sampler
TEXT_HOP_WEIGHT = 8.0
# with text preference on, the sampler draws up to this many times its usual candidates while none is grounded
TEXT_DRAWS = 4
MIN_FORM_CHARS = 4  # shorter aliases ("US", "UK", "Ga") are words, not names, in running text
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class TextEvidence:
    """The sentence of a summary page that names both ends of a hop."""

    article: str  # the article entity id (the page's entity_id in the corpus)
    url: str  # the page URL (https://en.wikipedia.org/wiki/<Title>)
    sentence: str


def split_sentences(text: str) -> list[str]:
    """A summary's sentences (split after . ! ? before a capital, digit or quote)."""
    return [s.strip() for s in _SENTENCE.split(text or "") if s.strip()]


def fold(text: str) -> str:
    """:func:`normalize` with hyphenated words kept whole ("Guinea-Bissau" -> "guineabissau"), so
    the name Guinea is not read inside Guinea-Bissau."""
    return normalize(_HYPHEN.sub("", text or ""))


def _quick_words(raw: str) -> list[str]:
    """Words of a name for the cheap first test (lower case; accents folded only where there are any)."""
    t = raw.lower()
    return _WORDS.findall(t if t.isascii() else normalize(raw))


def name_forms(graph: Graph, eid: str, foreign_titles: Mapping[str, str] | None = None) -> list[str]:
    """Folded forms that name ``eid`` in text: its name, its aliases of at least
    :data:`MIN_FORM_CHARS` characters, its article's title with and without a parenthesis. A form that
    is the title of an article describing another entity is left out (``foreign_titles``: folded
    title -> article id): the sentence "... south of Florida" names the US state, not the Cuban city."""
    e = graph.entities.get(eid)
    if e is None:
        return []
    own = [a for a in graph.objects(eid, "described_by") if a in graph.entities]
    raw = [e.name, *(a for a in e.aliases if len(fold(a)) >= MIN_FORM_CHARS)]
    for art in own:
        name = graph.entities[art].name
        raw += [name, re.sub(r"\s*\([^)]*\)$", "", name)]
    forms = dict.fromkeys(f for f in map(fold, raw) if f)
    titles = foreign_titles or {}
    return [f for f in forms if f not in titles or titles[f] in own]


def named_in(sentence: str, forms_a: Sequence[str], forms_b: Sequence[str], longer: Iterable[str] = ()) -> bool:
    """True when ``sentence`` names both ends. Longest forms are matched first and consume their words:
    "Mexico City" does not also name Mexico, an end named like the other is not named, and ``longer``
    names (other articles' titles that contain a form: "South Sudan", "Gulf of Finland") hide the
    shorter name they contain."""
    s = f" {fold(sentence)} "
    marks = [(f, "\x00") for f in forms_a] + [(f, "\x01") for f in forms_b] + [(f, "\x02") for f in longer]
    for f, mark in sorted(marks, key=lambda x: -len(x[0])):
        s = s.replace(f" {f} ", f" {mark} ")
    return " \x00 " in s and " \x01 " in s


class TextIndex:
    """Text evidence per triple ``(s, r, o)``, computed once for every groundable triple."""

    def __init__(self, graph: Graph, relations: Iterable[str] | None = None):
        self._hops: dict[tuple[str, str, str], TextEvidence] = {}
        self._forms: dict[str, list[str]] = {}
        self._pools: dict[int, tuple[Sequence[str], list[str]]] = {}
        self._titles = {fold(e.name): e.id for e in graph.entities.values() if e.type == "article"}
        self._titles.update({fold(re.sub(r"\s*\([^)]*\)$", "", e.name)): e.id for e in graph.entities.values()
                             if e.type == "article" and e.name.endswith(")")})
        self._by_word: dict[str, list[str]] = {}
        for title in self._titles:
            for w in set(title.split()):
                self._by_word.setdefault(w, []).append(title)
        pages = self._pages(graph)
        wanted = set(relations) if relations is not None else None
        for t in graph.triples:
            if t.relation in UNGROUNDED or (wanted is not None and t.relation not in wanted):
                continue
            if t.subject not in pages and t.object not in pages:
                continue
            ev = self._find(graph, pages, t)
            if ev is not None:
                self._hops[(t.subject, t.relation, t.object)] = ev
        self._forms.clear()
        self._ends = Counter(x for s, _r, o in self._hops for x in (s, o))

    @staticmethod
    def _pages(graph: Graph) -> dict[str, tuple[str, str, set[str], list[tuple[str, str]]]]:
        """entity id -> (article id, url, the page's words (lower case and normalized), [(sentence,
        folded sentence)])."""
        out = {}
        for eid, rels in graph.out.items():
            arts = [a for a in rels.get("described_by", ()) if a in graph.entities]
            if not arts:
                continue
            art = graph.entities[arts[0]]
            sents = [(s, f" {fold(s)} ") for s in split_sentences(art.description or "")]
            text = art.description or ""
            words = {*_WORDS.findall(normalize(text)), *_WORDS.findall(text.lower())}
            out[eid] = (art.id, art.page_url, words, sents)
        return out

    def _names(self, graph: Graph, eid: str) -> list[str]:
        forms = self._forms.get(eid)
        if forms is None:
            forms = self._forms[eid] = name_forms(graph, eid, self._titles)
        return forms

    def _longer(self, forms: Sequence[str]) -> list[str]:
        """Article titles that contain one of ``forms`` and are longer ("South Sudan" for Sudan)."""
        out = []
        for f in forms:
            first = f.split()[0]
            out += [t for t in self._by_word.get(first, ()) if len(t) > len(f) and f" {f} " in f" {t} "]
        return out

    @staticmethod
    def _maybe_on(graph: Graph, eid: str, words: set[str]) -> bool:
        """A cheap first test: every word of the name (or of an alias) is on the page."""
        e = graph.entities.get(eid)
        if e is None:
            return False
        return any(all(w in words for w in _quick_words(raw)) for raw in (e.name, *e.aliases))

    def _find(self, graph: Graph, pages, t: Triple) -> TextEvidence | None:
        for end, other in ((t.subject, t.object), (t.object, t.subject)):  # the subject's page first
            page = pages.get(end)
            if page is None or not self._maybe_on(graph, other, page[2]):
                continue
            art, url, _words, sents = page
            fa, fb = self._names(graph, t.subject), self._names(graph, t.object)
            for raw, norm in sents:
                if (any(f" {f} " in norm for f in fa) and any(f" {f} " in norm for f in fb)
                        and named_in(raw, fa, fb, self._longer([*fa, *fb]))):
                    return TextEvidence(art, url, raw)
        return None

    def states(self, graph: Graph, sentence: str, s: str, o: str) -> bool:
        """True when ``sentence`` names both ``s`` and ``o`` by the index's own rules (the audit's
        re-check of a stored sentence)."""
        fa, fb = self._names(graph, s), self._names(graph, o)
        return named_in(sentence, fa, fb, self._longer([*fa, *fb]))

    def hop(self, s: str, r: str, o: str) -> TextEvidence | None:
        """The text evidence of the triple ``s -r-> o`` (None: no summary sentence names both ends)."""
        return self._hops.get((s, r, o))

    def with_text(self, pool: Sequence[str]) -> list[str]:
        """The entities of ``pool`` with a text-grounded hop (kept per pool object)."""
        hit = self._pools.get(id(pool))
        if hit is None or hit[0] is not pool:
            hit = self._pools[id(pool)] = (pool, [e for e in pool if e in self._ends])
        return hit[1]

    def degree(self, eid: str) -> int:
        """Text-grounded triples ``eid`` is an end of."""
        return self._ends.get(eid, 0)

    def by_relation(self) -> dict[str, int]:
        """Text-grounded triples per relation (``crucible kg stats``)."""
        return dict(sorted(Counter(r for _s, r, _o in self._hops).items()))

    def __len__(self) -> int:
        return len(self._hops)


def text_index(graph: Graph) -> TextIndex:
    """The graph's :class:`TextIndex`, built on first use and kept on the graph object."""
    idx = getattr(graph, "_text_index", None)
    if idx is None:
        idx = TextIndex(graph)
        graph._text_index = idx  # type: ignore[attr-defined]
    return idx


def grounded_enough(flags: Sequence[bool]) -> bool:
    """The question-level rule over a path's hop flags (start first): at least half are grounded, and
    the last one (the hop into the answer) is."""
    return bool(flags) and flags[-1] and 2 * sum(flags) >= len(flags)


def chain_flags(index: TextIndex, chain: Sequence[Triple]) -> list[bool]:
    """Per hop of a sampled chain (seed first, the hop into the answer last): text-grounded or not."""
    return [index.hop(t.subject, t.relation, t.object) is not None for t in chain]


def chain_preference(index: TextIndex, chain: Sequence[Triple]) -> tuple[bool, float]:
    """How much the sampler prefers a chain for text: (grounded by the question rule, share of its
    hops grounded). Compared before the seed weight when ``browse.text_hop_weight`` is above 1."""
    flags = chain_flags(index, chain)
    return grounded_enough(flags), (sum(flags) / len(flags) if flags else 0.0)


def pick_hop(graph: Graph, rng, cur: str, options: Sequence[tuple[str, str, bool]], weight: float, last: bool = False):
    """One of the sampler's hop ``options`` (relation, next entity, inverse) out of ``cur``. A
    text-grounded hop weighs ``weight`` and a hop to an entity with a further grounded hop
    ``weight`` again (unless ``last``), any other 1; the ``last`` hop (into the answer) is a grounded
    one whenever one is offered. ``weight`` 1 draws uniformly, exactly as ``rng.choice`` (the same
    random stream as a sampler without text preference)."""
    if weight == 1:
        return rng.choice(options)
    idx = text_index(graph)
    grounded = [(idx.hop(o, r, cur) if inv else idx.hop(cur, r, o)) is not None for r, o, inv in options]
    if last and any(grounded):
        options = [x for x, g in zip(options, grounded, strict=True) if g]
        return rng.choice(options)
    ws = [(weight if g else 1.0) * (weight if not last and idx.degree(o) > g else 1.0)
          for (_r, o, _i), g in zip(options, grounded, strict=True)]
    return rng.choices(options, weights=ws, k=1)[0]


def pick_seed(graph: Graph, rng, pool: Sequence[str], weight: float) -> str:
    """A seed from ``pool``: with ``weight`` above 1, half of the draws come from the pool's entities
    with a text-grounded hop (a page whose sentences reach a neighbour), so a chain can be grounded
    from its first hop and its start described by its own summary; ``weight`` 1 is ``rng.choice``."""
    if weight == 1:
        return rng.choice(pool)
    texty = text_index(graph).with_text(pool)
    return rng.choice(texty if texty and rng.random() < 0.5 else pool)
