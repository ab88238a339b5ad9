"""Text grounding of a question: which hops of its path a Wikipedia summary sentence states.

The definition is :mod:`crucible.pipelines.browse.kg.textlinks`' (a hop is text-grounded when a sentence of the
summary page of one of its ends names both ends; a question when at least half of its path hops are, the
hop into the answer among them). Here:

- :func:`text_grounding`: the question row's ``text_grounding`` field, built from the draft at synthesis
  time (per path hop: the triple, and the page and sentence that state it, or null);
- :func:`recheck_row`: the audit's recomputation from a stored row alone plus the corpus pages: the path
  hops are recomputed from the row's formalization and binding (not read from ``text_grounding.hops``),
  and a hop counts only when its stored sentence is on the stored page of the corpus and that sentence
  names both ends (their names from the graph); the pipeline's ``text_grounded`` flag is never read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crucible.pipelines.browse.corpus import render_entity
from crucible.pipelines.browse.draft import Draft, bound, path_steps
from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.kg.textlinks import grounded_enough, split_sentences, text_index

# url -> the page's text in the corpus (None: no such page)
PageText = Callable[[str], "str | None"]


def path_triples(draft: Draft) -> list[tuple[str, str, str]]:
    """The path's hops as graph triples (subject, relation, object), start first, the hop into the
    answer last (an inverse hop "the airport serving X" is the triple airport -serves_city-> X)."""
    out = []
    for prev, rel, nxt, inverse in path_steps(draft):
        a, b = bound(draft, prev), bound(draft, nxt)
        out.append((b, rel, a) if inverse else (a, rel, b))
    return out


def text_grounding(graph: Graph, draft: Draft) -> dict:
    """The ``text_grounding`` field of a question row (schemas/question.json)."""
    idx = text_index(graph)
    hops = []
    for i, (s, r, o) in enumerate(path_triples(draft)):
        ev = idx.hop(s, r, o)
        hops.append({"hop": i, "subject": s, "relation": r, "object": o, "article": ev.article if ev else None,
                     "url": ev.url if ev else None, "sentence": ev.sentence if ev else None})
    flags = [h["sentence"] is not None for h in hops]
    return {"hops": hops, "grounded_hops": sum(flags), "path_hops": len(flags), "text_grounded": grounded_enough(flags)}


def row_draft(row: Mapping) -> Draft:
    """The draft of a stored question row (its formalization holds the binding)."""
    form = dict(row["formalization"])
    binding = form.pop("binding")
    return Draft(form, binding, row.get("seed_entity") or "")


def recheck_row(graph: Graph, row: Mapping, page_text: PageText) -> dict:
    """``{"text_grounded", "grounded_hops", "path_hops", "problems"}`` recomputed from the row: each path
    hop (from the formalization) is grounded when the row states a sentence for that very triple, the
    sentence is one of the sentences of its page in the corpus, and it names both ends."""
    stored = {(h.get("subject"), h.get("relation"), h.get("object")): h
              for h in ((row.get("text_grounding") or {}).get("hops") or [])}
    flags, problems = [], []
    for s, r, o in path_triples(row_draft(row)):
        h = stored.get((s, r, o)) or {}
        sent, url = h.get("sentence"), h.get("url")
        why = None
        if not sent or not url:
            why = "no sentence stored"
        else:
            text = page_text(url)
            if text is None:
                why = f"page {url} not in the corpus"
            elif sent.strip() not in split_sentences(text):
                why = f"sentence not on {url}"
            elif not text_index(graph).states(graph, sent, s, o):
                why = "sentence does not name both ends"
        flags.append(why is None)
        if why and sent:
            problems.append(f"{s} -{r}-> {o}: {why}")
    return {"text_grounded": grounded_enough(flags), "grounded_hops": sum(flags), "path_hops": len(flags),
            "problems": problems}


def graph_page_text(graph: Graph) -> PageText:
    """url -> the text of a Wikipedia summary page as the local corpus renders it from the graph
    (:func:`crucible.pipelines.browse.corpus.render_entity`); None for any other URL."""
    by_url = {e.page_url: e for e in graph.entities.values() if e.type == "article"}

    def text(url: str) -> str | None:
        e = by_url.get(url)
        return render_entity(graph, e).text if e is not None else None

    return text
