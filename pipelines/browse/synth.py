"""Structure first: sample chains of linked facts, turn them into formalized questions.

A *draft* (:mod:`crucible.pipelines.browse.draft`) is everything a question is made of before and during
hardening: its formalization, the intended binding and the lineage of edits. Chains are sampled by
:mod:`crucible.pipelines.browse.sampling`; the template question is rendered by :mod:`crucible.pipelines.browse.render`.

Here, a draft against the graph: is its answer unique, is every clue a fact, and the evidence (URL +
fact sentence per hop and per clue). Evidence and the template rendering are pure functions of the
draft, so they stay true after every edit.
"""

from __future__ import annotations

from crucible.pipelines.browse.corpus import attribute_sentence, evidence_url, page_fact, relation_sentence
from crucible.pipelines.browse.draft import (
    REL_PHRASE,
    Draft,
    answer_attr_options,
    answer_spec,
    attribute_answer,
    bound,
    chain_entities,
    chain_start,
    draft_from_chain,
    named_constants,
    path_length,
    path_steps,
    pattern_hash,
)
from crucible.pipelines.browse.kg.executor import execute, satisfies
from crucible.pipelines.browse.kg.model import Graph, Triple
from crucible.pipelines.browse.names import entity_name
from crucible.pipelines.browse.render import leaks_answer, missing_clues, render_question
from crucible.pipelines.browse.sampling import WEAK_RELATIONS, real_hops, sample_chain_weighted, seed_pools

# The question pipeline's one door to synthesis: stages.py, harden.py, findable.py, selection.py and
# commands/browse_cmd.py read these names here (defined in draft.py, sampling.py, render.py, names.py).
__all__ = [
    "NUMERIC_ATTRS", "REL_PHRASE", "WEAK_RELATIONS", "Draft", "answer_attr_options", "answer_spec", "answers",
    "chain_entities", "chain_start", "check_supported", "draft_from_chain", "entity_name", "evidence",
    "fact_sentence", "is_unique", "leaks_answer", "missing_clues", "named_constants", "path_length",
    "path_steps", "pattern_hash", "real_hops", "render_question", "sample_chain_weighted", "seed_pools",
]

NUMERIC_ATTRS = ("population", "elevation_ft", "area_km2", "discovery_year", "latitude", "longitude")


# ---------------------------------------------------------------- checks

def answers(graph: Graph, draft: Draft, cap: int = 2) -> set[str]:
    return execute(graph, draft.formalization, limit=cap)


def is_unique(graph: Graph, draft: Draft) -> bool:
    """Exactly one answer, and it is the intended one; and every intermediate node is pinned
    down too. Without the second part a chain that passes through a hub collapses: "the time
    zone of the capital of the country of *an airport in the US*" has one answer, but the
    airport clue does no work and the question is a shortcut to its last hops."""
    if answers(graph, draft, cap=2) != {draft.answer_id}:
        return False
    for var, eid in draft.binding.items():
        if var == draft.target:
            continue
        if execute(graph, {**draft.formalization, "target": var}, limit=2) != {eid}:
            return False
    return True


def check_supported(graph: Graph, draft: Draft) -> tuple[bool, str]:
    """Every triple holds for the intended binding and every constraint is true of its
    entity, so every clue has a page that states it."""
    for s, r, o in draft.formalization["triples"]:
        if graph.triple(bound(draft, s), r, bound(draft, o)) is None:
            return False, f"no fact {bound(draft, s)} -{r}-> {bound(draft, o)}"
    for c in draft.formalization.get("constraints", []):
        if not satisfies(graph, draft.binding[c["var"]], c):
            return False, f"constraint {c} is false for {draft.binding[c['var']]}"
    return True, "every clue is backed by a fact"


# ---------------------------------------------------------------- evidence

def fact_sentence(graph: Graph, t: Triple) -> str:
    """The sentence that states triple ``t`` (:func:`crucible.pipelines.browse.corpus.relation_sentence`)."""
    return relation_sentence(graph, t)


def evidence(graph: Graph, draft: Draft) -> list[dict]:
    """URL + fact for each hop and each attribute clue of the intended binding."""
    out = []
    for i, (s, r, o) in enumerate(draft.formalization["triples"]):
        sb, ob = bound(draft, s), bound(draft, o)
        t = graph.triple(sb, r, ob)
        if t is None:
            continue
        out.append({"hop": i, "url": evidence_url(graph, t) if sb in graph.entities else "",
                    "fact": fact_sentence(graph, t), "subject": entity_name(graph, sb), "relation": r,
                    "object": entity_name(graph, ob)})
    n = len(out)
    for j, c in enumerate(draft.formalization.get("constraints", [])):
        eid = draft.binding[c["var"]]
        e = graph.entities.get(eid)
        if e is None or "attr" not in c:
            continue
        v = e.attributes.get(c["attr"]) if c["attr"] not in ("name", "type") else getattr(e, c["attr"])
        out.append({"hop": n + j, "url": e.page_url, "fact": f"{e.name}: {c['attr'].replace('_', ' ')} {v}",
                    "subject": e.name, "relation": c["attr"], "object": str(v)})
    attr = draft.answer_attr
    if attr:  # the answer hop: the target's page states the value
        e = graph.entities[draft.answer_id]
        value = attribute_answer(graph, e.id, attr)
        if attr.startswith("count:"):
            rel = attr.split(":", 1)[1]
            objs = graph.objects(e.id, rel)
            fact = page_fact(graph, graph.triple(e.id, rel, objs[0]))  # one sentence lists them all
        else:
            fact = attribute_sentence(e.name, attr, e.attributes.get(attr)) or f"{e.name}: {attr} {value}"
        out.append({"hop": len(out), "url": e.page_url, "fact": fact, "subject": e.name, "relation": attr,
                    "object": value})
    return out
