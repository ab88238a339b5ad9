"""Findable clues: every entity a question hides is reached by a fact a search can find.

A *link* is one triple of a question's formalization that reaches a hidden entity (a variable, the
*sought* end) from another term (the *given* end: a named constant, or a variable found before):

- a hop of the path (``prev -r-> next``, or an inverse hop) seeks ``next`` given ``prev``;
- a clue (``?v -r-> o`` off the path) seeks ``?v`` given ``o`` (a named entity, or an obfuscated one).

Its *query* is made of the link's own words only: the type word of the sought entity ("city") and the
fact sentence of the triple (``synth.fact_sentence``) with the names and aliases of every hidden entity
but the given end cut out (:func:`clue_query`; a query that would still name one is never built). A
relation whose fact sentence holds words the question never gives (:data:`QUESTION_WORDED`: a
``summary_mentions`` clue states only "whose Wikipedia summary mentions Seoul", not the summary's
sentence) is searched with the question's own phrase instead (:func:`link_words`). Its
*rank* is the best position, in the top ``k`` results of the search backend the agent uses (through the
env's tool cache and leak filter, as the agent sees them), of a page that states the link
(:func:`stating_pages`: the page of its fact, ``corpus.evidence_url``, or the given entity's page where
it names the sought one; for a path hop also the Wikipedia summary whose sentence names both ends,
``kg.textlinks``); None when none is there.

A hidden entity is *found* when a link with a rank seeks it from a named constant or from an entity
already found (a fixpoint, :func:`verdict`). The question is *findable* when every hidden entity is
found; its *entry* (the first hidden node of the path, where a reader starts) is findable when it is
found. Numeric ranges are not links: they may narrow an entity a link reaches, never reach one.
Pure functions over a ``Search`` callable; :func:`check` is the synthesis-time gate of ``stages``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from crucible.pipelines.browse.corpus import evidence_url, render_entity
from crucible.pipelines.browse.kg.textlinks import text_index
from crucible.pipelines.browse.render import clue_phrase
from crucible.pipelines.browse.search.cache import normalize_url
from crucible.pipelines.browse.synth import entity_name, fact_sentence, path_steps
from crucible.pipelines.browse.verify import normalize

# query, top_k -> the result URLs, best first (raises on a backend failure)
Search = Callable[[str, int], Sequence[str]]
# relations whose fact sentence says more than the question does: searched with the question's phrase
QUESTION_WORDED = frozenset({"summary_mentions"})
# a short alias ("IS", "NL") is an ordinary word, neither cut out of a query nor a leak in one
MIN_ALIAS_CHARS = 3
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchFailed(RuntimeError):
    """The backend could not answer a findability query (the question's findability is not measured)."""


def hidden_names(graph, eid: str) -> list[str]:
    """Name and aliases of an entity (aliases shorter than :data:`MIN_ALIAS_CHARS` left out), and for
    an entity with a Wikipedia article the article's title."""
    e = graph.entities.get(eid)
    if e is None:
        return [eid]
    names = [e.name, *(a for a in e.aliases if len(normalize(a)) >= MIN_ALIAS_CHARS)]
    for art in graph.objects(eid, "described_by"):
        if art in graph.entities:
            names.append(graph.entities[art].name)
    return list(dict.fromkeys(n for n in names if normalize(n)))


def names_in(text: str, names: Iterable[str]) -> str | None:
    """The first of ``names`` that ``text`` contains as whole words after ``normalize`` (None: none)."""
    t = f" {normalize(text)} "
    return next((n for n in names if f" {normalize(n)} " in t), None)


def clue_query(fact: str, type_word: str, forbidden: Sequence[str]) -> tuple[str | None, str | None]:
    """(query, None) made of ``type_word`` and the words of ``fact`` with every ``forbidden`` name cut
    out (whole words, compared after ``normalize``: case, accents and articles do not hide a name), or
    (None, why) when no query can be built: no fact, nothing left, or a forbidden name still in it."""
    if not fact.strip():
        return None, "no fact sentence states this link"
    words = _WORD.findall(fact.replace("&", " and "))
    norm = [normalize(w) for w in words]
    cut = [n.split() for n in sorted(set(map(normalize, forbidden)), key=len, reverse=True) if n]
    keep, i = [], 0
    while i < len(words):
        for toks in cut:
            j, k = i, 0  # match the name's tokens, skipping words that normalize to nothing ("the")
            while j < len(words) and k < len(toks) and (norm[j] == "" or norm[j] == toks[k]):
                k += norm[j] != ""
                j += 1
            if k == len(toks) and norm[i] != "":
                i = j
                break
        else:
            keep.append(words[i])
            i += 1
    query = " ".join([type_word, *keep]).strip()
    if not any(len(w) >= 3 for w in keep):
        return None, "nothing but hidden names in the fact"
    leak = names_in(query, forbidden)
    if leak:
        return None, f"the query would name a hidden entity ({leak})"
    return query, None


def link_words(graph, t, given: str) -> str:
    """The words a reader has for link ``t`` from its ``given`` end: the fact sentence, or for a
    :data:`QUESTION_WORDED` relation the question's own phrase (the summary sentence is what the
    reader must find, not what the question says)."""
    if t.relation in QUESTION_WORDED:
        return clue_phrase(t.relation, entity_name(graph, given))
    return fact_sentence(graph, t)


def links(draft) -> list[dict]:
    """Every link of the draft: {kind, var (sought), given, triple} (bound ids in ``triple``)."""

    b = draft.binding
    out, on_path = [], set()
    for prev, rel, nxt, inverse in path_steps(draft):
        s, o = (nxt, prev) if inverse else (prev, nxt)
        on_path.add((s, rel, o))
        if nxt.startswith("?"):
            out.append({"kind": "hop", "var": nxt, "given": prev, "triple": [b.get(s, s), rel, b.get(o, o)]})
    for s, rel, o in draft.formalization["triples"]:
        if (s, rel, o) in on_path or not (s.startswith("?") or o.startswith("?")):
            continue
        var, given = (s, o) if s.startswith("?") else (o, s)
        out.append({"kind": "clue", "var": var, "given": given, "triple": [b.get(s, s), rel, b.get(o, o)]})
    return out


def entry_var(draft) -> str | None:
    """The first hidden node of the path (a reader's way in), or None when nothing is hidden."""

    steps = path_steps(draft)
    nodes = [steps[0][0], *(t for _p, _r, t, _i in steps)] if steps else [draft.target]
    return next((n for n in nodes if n.startswith("?")), None)


def rank_of(urls: Sequence[str], url: str) -> int | None:
    """1-based position of ``url`` among ``urls`` (normalized), None when absent."""
    want = normalize_url(url)
    return next((i for i, u in enumerate(urls, 1) if normalize_url(u) == want), None)


def stating_pages(graph, primary: str, sought: str, given: str) -> list[str]:
    """Pages that state a link: ``primary`` (the page of its fact, ``corpus.evidence_url``), then the
    given entity's own page when it names the sought entity (its list of inbound facts: "Cities in
    Ireland include Cork, ...", "Cork is served by Cork Airport"): a reader who finds that page reads
    the sought name there."""

    urls = [primary] if primary else []
    e, want = graph.entities.get(given), graph.entities.get(sought)
    if e is not None and want is not None and e.type != "article" and e.page_url not in urls:
        if names_in(render_entity(graph, e).text, [want.name]):
            urls.append(e.page_url)
    return urls


def _record(graph, draft, link: Mapping, search: Search, k: int) -> dict:
    s, rel, o = link["triple"]
    t = graph.triple(s, rel, o)
    given = draft.binding.get(link["given"], link["given"])
    sought = draft.binding[link["var"]]
    rec = {"kind": link["kind"], "var": link["var"], "entity": sought, "given": link["given"],
           "clue": f"{entity_name(graph, s)} -{rel}-> {entity_name(graph, o)}", "query": None,
           "evidence_url": "", "rank": None, "reason": None}
    if t is None or s not in graph.entities:
        rec["reason"] = "no fact in the graph"
        return rec
    pages = stating_pages(graph, evidence_url(graph, t), sought, given)
    text = text_index(graph).hop(s, rel, o) if link["kind"] == "hop" else None
    if text is not None and text.url not in pages:  # the summary sentence that names both ends states it too
        pages.append(text.url)
    rec["evidence_url"] = pages[0] if pages else ""
    forbidden = [n for e in dict.fromkeys(draft.binding.values()) if e != given for n in hidden_names(graph, e)]
    etype = graph.entities[sought].type.replace("_", " ") if sought in graph.entities else ""
    rec["query"], rec["reason"] = clue_query(link_words(graph, t, given), etype, forbidden)
    if rec["query"] is None or not rec["evidence_url"]:
        rec["reason"] = rec["reason"] or "no page states this link"
        return rec
    try:
        urls = list(search(rec["query"], k))
        ranked = sorted((r, u) for u in pages if (r := rank_of(urls, u)) is not None)
        if ranked:
            rec["rank"], rec["evidence_url"] = ranked[0]
    except Exception as exc:  # a failed search measures nothing: the question is not judged on it
        rec["reason"] = f"search failed: {type(exc).__name__}: {str(exc)[:120]}"
        return rec
    if rec["rank"] is None:
        rec["reason"] = f"evidence page not in the top {k}"
    return rec


def measure(graph, draft, search: Search, k: int) -> dict:
    """The findability of a draft: ``{top_k, entry, hidden, clues: [record per link]}`` then
    :func:`verdict`'s ``entry_findable``, ``findable`` and ``unfound``. A record: {kind, var, entity,
    given, clue, query, evidence_url, rank, reason}."""
    out = {"top_k": int(k), "entry": entry_var(draft),
           "hidden": sorted(v for v in dict.fromkeys(draft.binding) if v.startswith("?")),
           "clues": [_record(graph, draft, lk, search, k) for lk in links(draft)]}
    return {**out, **verdict(out)}


def verdict(findability: Mapping, ranks: Sequence[int | None] | None = None) -> dict:
    """``{entry_findable, findable, unfound}`` of a findability record (``ranks`` replaces the stored
    ranks, e.g. re-run by the audit): the fixpoint of "a link with a rank <= top_k from a named
    constant or a found entity finds its entity". None for both when a search failed."""
    clues = findability["clues"]
    ranks = [c["rank"] for c in clues] if ranks is None else list(ranks)
    if any((c.get("reason") or "").startswith("search failed") for c in clues):
        return {"entry_findable": None, "findable": None, "unfound": []}
    k = int(findability["top_k"])
    found: set[str] = set()
    grew = True
    while grew:
        grew = False
        for c, r in zip(clues, ranks):
            known = not c["given"].startswith("?") or c["given"] in found
            if c["var"] not in found and known and r is not None and r <= k:
                found.add(c["var"])
                grew = True
    unfound = [v for v in findability["hidden"] if v not in found]
    entry = findability["entry"]
    return {"entry_findable": entry is None or entry in found, "findable": not unfound, "unfound": unfound}


def env_search(env, question: str) -> Search:
    """A :data:`Search` over the agent's own env: the same backend, tool cache and leak filter (the
    question's text forbidden, as in a rollout), so a rerun costs no backend call."""
    def search(query: str, k: int) -> list[str]:
        obs = env.session(forbidden_texts=[question]).search({"query": query, "top_k": k})
        if obs.error:
            raise SearchFailed(obs.content)
        return [r["url"] for r in (obs.meta or {}).get("results", [])]

    return search


def check(env, graph, draft, question: str, opts: Mapping) -> tuple[dict | None, bool | None, str | None]:
    """(findability, findable for the RL gate, why the question is dropped). Not measured (None, None,
    None) without an env. With ``findable_check`` off the ranks are still measured and stored, nothing
    is dropped and the gate is not set."""
    if env is None:
        return None, None, None
    fa = measure(graph, draft, env_search(env, question), int(opts["findable_top_k"]))
    if not opts["findable_check"]:
        return fa, None, None
    if fa["entry_findable"] is False:
        bad = [c for c in fa["clues"] if c["var"] == fa["entry"]]
        why = "; ".join(f"{c['clue']}: {c['reason']}" for c in bad) or "no relation or hop reaches it (its type and numeric ranges only)"
        return fa, False, f"entry {fa['entry']} not findable in the top {fa['top_k']}: {why}"[:500]
    return fa, fa["findable"], None


def _rerun(search: Search, fa: Mapping) -> list[int | None]:
    k = int(fa["top_k"])
    return [rank_of(list(search(c["query"], k)), c["evidence_url"]) if c["query"] else None for c in fa["clues"]]


def audit_findability(questions: Sequence[Mapping], search: Callable[[str], Search] | None = None) -> dict[str, Any]:
    """Findability of stored question rows, recomputed: with ``search`` (question text -> :data:`Search`,
    e.g. :func:`env_search` of the run's env) every stored query is run again (``source: rerun``; if the
    backend fails, the stored ranks), without it the stored ranks are read (``source: stored``); the
    verdicts come from :func:`verdict` either way, never from the row's own flags."""
    rows = [q for q in questions if q.get("findability")]
    source = "stored"
    if search is not None:
        try:
            reran = [_rerun(search(q["question"]), q["findability"]) for q in rows]
            source = "rerun"
        except Exception:  # the backend cannot answer now: the stored ranks, said so
            reran = None
    n_clues = n_ok = 0
    no_entry, unfindable = [], 0
    for i, q in enumerate(rows):
        fa = q["findability"]
        k = int(fa["top_k"])
        ranks = reran[i] if source == "rerun" else [c["rank"] for c in fa["clues"]]
        n_clues += len(ranks)
        n_ok += sum(r is not None and r <= k for r in ranks)
        v = verdict(fa, ranks)
        unfindable += v["findable"] is False
        if v["entry_findable"] is False:
            no_entry.append({"question_id": q["question_id"], "entry": fa["entry"], "unfound": v["unfound"]})
    return {"source": source, "questions_measured": len(rows),
            "questions_not_measured": len(questions) - len(rows), "clues": n_clues, "clues_findable": n_ok,
            "clue_share": round(n_ok / n_clues, 4) if n_clues else None,
            "without_findable_entry": len(no_entry) if rows else None, "without_findable_entry_rows": no_entry,
            "not_findable": unfindable if rows else None}
