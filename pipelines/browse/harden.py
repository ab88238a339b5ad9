"""Hardening: edit a draft round by round while the answer stays unique and supported.

Operators (each ``op(graph, draft, rng) -> Draft | None``; None = not applicable):

- ``obfuscate`` (:mod:`crucible.pipelines.browse.obfuscate`): replace a named entity by a variable plus a
  description (its type, a relation to another named entity, a numeric attribute blurred into a
  range), adding clues until the description picks out that entity alone.
- ``blur``: widen a numeric range (dates, populations, elevations) as far as uniqueness allows.
- ``add_hop``: reach the first node through one more hop from a new named entity.
- ``drop_clue``: remove a clue that uniqueness does not need (a shortcut).

After every edit the checks run: (a) uniqueness, executed against the graph; (b) support:
every clue is a fact of the intended binding; (c) closed-book: a model without tools must
not solve it (optional; given as a function). Rejected edits are kept in the lineage too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum

from crucible.pipelines.browse.kg.cards import clue_problem, hop_problem, load_cards
from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.obfuscate import (  # noqa: F401  (re-exported: the operators live here as one table)
    CLUE_RELATIONS,
    NAMING_RELATIONS,
    RANGE_WIDTHS,
    ambiguous_names,
    fresh_var,
    names_hidden,
    numeric_range,
    obfuscate,
    ranges_pin_alone,
    replace_term,
    summary_readings,
)
from crucible.pipelines.browse.resolve import name_index
from crucible.pipelines.browse.synth import (
    REL_PHRASE,
    WEAK_RELATIONS,
    Draft,
    check_supported,
    is_unique,
    named_constants,
    path_length,
    path_steps,
)
from crucible.pipelines.browse.verify import AnswerKind, Gold, rule_verdict


def blur(graph: Graph, draft: Draft, rng: random.Random) -> Draft | None:
    idx = [i for i, c in enumerate(draft.formalization.get("constraints", [])) if "min" in c and "max" in c]
    if not idx:
        return None
    i = rng.choice(idx)
    for factor in (3.0, 2.0, 1.5):
        d = draft.copy()
        c = d.formalization["constraints"][i]
        lo, hi = c["min"], c["max"]
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * factor
        new_lo, new_hi = mid - half, mid + half
        if isinstance(lo, int):
            new_lo, new_hi = int(new_lo), int(new_hi)
        if c["attr"] in ("population", "elevation_ft", "area_km2") and lo >= 0:
            new_lo = max(new_lo, 0)
        c["min"], c["max"] = new_lo, new_hi
        if is_unique(graph, d):
            return d
    return None


def hop_starts(f: dict, binding: dict) -> list[str]:
    """Where a new hop may enter: the named subjects of the chain, the named entities that pin a variable
    ("the country whose capital is Port-au-Prince": Port-au-Prince), and the variables nothing reaches.
    A variable a named entity already pins is no start: a hop into it ("the country where Les Cayes Airport
    is located (whose capital is Port-au-Prince)") adds a clue the reader never needs."""
    named = [t for t in f["triples"] if t[0].startswith("?") != t[2].startswith("?")]
    pinned = {t[0] if t[0].startswith("?") else t[2] for t in named}
    starts = [t[0] for t in f["triples"] if not t[0].startswith("?")]
    starts += [t[2] for t in named if t[0].startswith("?")]
    starts += [v for v in binding if v not in pinned and not any(t[2] == v for t in f["triples"])]
    return starts


def add_hop(graph: Graph, draft: Draft, rng: random.Random) -> Draft | None:
    """Reach the chain's first node through a new named entity Z with Z -r-> node, r functional
    from Z ("the city served by Z"), so naming Z identifies the node. Z must not give a hidden
    entity away by its name (an airport named after its city), and r is not a weak relation."""
    starts = list(dict.fromkeys(hop_starts(draft.formalization, draft.binding)))
    rng.shuffle(starts)
    cards = load_cards()
    for term in starts:
        node = draft.binding.get(term, term)
        hidden = draft.copy()
        hidden.binding.setdefault("?node", node)  # the node becomes hidden: Z must not name it
        options = []
        for r, subs in graph.inn.get(node, {}).items():
            if r not in REL_PHRASE or r in WEAK_RELATIONS:
                continue
            for z in subs:
                if (z in draft.binding.values() or z == node or z not in graph.entities
                        or len(graph.objects(z, r)) != 1 or hop_problem(graph, cards, z, r, node, False)):
                    continue
                options.append((r, z))
        rng.shuffle(options)
        for r, z in options[:20]:
            if names_hidden(graph, hidden, z):
                continue
            d = draft.copy()
            if term.startswith("?"):
                var = term
            else:
                var = fresh_var(d)
                replace_term(d, term, var)
                d.binding[var] = node
            d.formalization["triples"].insert(0, [z, r, var])
            if is_unique(graph, d):
                return d
    return None


def drop_clue(graph: Graph, draft: Draft, rng: random.Random) -> Draft | None:
    """Remove one clue that uniqueness does not need (a shortcut), if there is one."""
    f = draft.formalization
    chain_objs = {}
    for i, (_s, _r, o) in enumerate(f["triples"]):
        chain_objs.setdefault(o, i)
    candidates = [("c", i) for i, c in enumerate(f.get("constraints", [])) if "attr" in c]
    # clue triples: variable subject, constant object, not the triple that introduces a path variable
    candidates += [("t", i) for i, (s, _r, o) in enumerate(f["triples"]) if s.startswith("?") and not o.startswith("?")]
    rng.shuffle(candidates)
    for kind, i in candidates:
        d = draft.copy()
        if kind == "c":
            del d.formalization["constraints"][i]
        else:
            del d.formalization["triples"][i]
        try:
            ok = is_unique(graph, d)
        except ValueError:
            continue
        if ok:
            return d
    return None


OPERATORS: dict[str, Callable[[Graph, Draft, random.Random], Draft | None]] = {
    "obfuscate": obfuscate,
    "blur": blur,
    "add_hop": add_hop,
    "drop_clue": drop_clue,
}

# closed-book check: question -> k predictions by a model without tools
ClosedBook = Callable[[str], Sequence[str]]
# question writer: draft -> (question text, origin) ; origin "llm" or "template"
Writer = Callable[[Draft], tuple[str, str]]


def checks(graph: Graph, draft: Draft, question: str, answer: str, aliases: Sequence[str],
           closed_book: ClosedBook | None) -> dict:
    ambiguous = ambiguous_names(graph, draft)
    world = world_problems(graph, draft)
    unique = not ambiguous and not world and is_unique(graph, draft)
    supported, why = check_supported(graph, draft)
    solved = None
    if closed_book is not None and unique and supported:
        preds = list(closed_book(question))
        e = None if draft.answer_attr else graph.entities.get(draft.answer_id)
        gold = Gold((answer, *aliases), draft.answer_id if e else None, e.type if e else None,
                    AnswerKind.ENTITY if e else AnswerKind.TEXT)
        index = name_index(graph) if e else None
        solved = any((v := rule_verdict(gold, p, resolver=index)) is not None and v.verdict == "correct" for p in preds)
    return {"unique": unique, "ambiguous_names": ambiguous, "world_problems": world, "supported": supported,
            "support_reason": why, "closed_book_solved": solved}


def world_problems(graph: Graph, draft: Draft) -> list[str]:
    """Why the question is unique in the graph only, per the relation cards: a hop the world does
    not pin (several capitals, several airports, "US state" answered by a federal district), a
    clue whose subject list the graph does not complete, or a hidden entity pinned by numeric
    ranges alone. Empty when the question is one a reader of the world can answer uniquely."""
    cards = load_cards()
    f = draft.formalization
    out = []
    for prev, rel, nxt, inverse in path_steps(draft):
        a, b = draft.binding.get(prev, prev), draft.binding.get(nxt, nxt)
        why = hop_problem(graph, cards, b, rel, a, True) if inverse else hop_problem(graph, cards, a, rel, b, False)
        if why:
            out.append(f"hop {a} -{rel}-> {b}: {why}" if not inverse else f"hop {b} -{rel}-> {a}: {why}")
    path = {(p, r, n) for p, r, n, inv in path_steps(draft) if not inv} | {(n, r, p) for p, r, n, inv in path_steps(draft) if inv}
    for s_, r, o in f["triples"]:
        if s_.startswith("?") and not o.startswith("?") and (s_, r, o) not in path:
            why = clue_problem(cards, r, o)
            if why:
                out.append(f"clue {s_} -{r}-> {o}: {why}")
    for var in dict.fromkeys(c["var"] for c in f.get("constraints", []) if "attr" in c):
        if ranges_pin_alone(draft, var):
            out.append(f"{var} ({draft.binding.get(var)}) is pinned by numeric ranges alone")
    return out


class Phase(StrEnum):
    """When a lineage step happened: the question was written, hardened before any rollout,
    rolled out (the pass rate is measured), or hardened again because the solver found it too easy."""

    WRITE = "write"
    PRE_ROLLOUT = "pre_rollout"
    ROLLOUT = "rollout"
    SOLVER = "solver"


class Operator(StrEnum):
    WRITE = "write"
    OBFUSCATE = "obfuscate"
    BLUR = "blur"
    ADD_HOP = "add_hop"
    DROP_CLUE = "drop_clue"
    ROLLOUT = "rollout"


EDIT_OPERATORS = (Operator.OBFUSCATE, Operator.BLUR, Operator.ADD_HOP, Operator.DROP_CLUE)
# after a too-easy rollout: hide a name, add a hop, blur a number (then drop a shortcut clue)
SOLVER_OPERATORS = (Operator.OBFUSCATE, Operator.ADD_HOP, Operator.BLUR, Operator.DROP_CLUE)


def lineage_entry(rnd: int, phase: Phase, operator: str, before: str | None, after: str | None,
                  accepted: bool, checks: dict | None, **extra) -> dict:
    """One lineage item (schemas/question.json#/properties/lineage)."""
    return {"round": rnd, "phase": str(phase), "operator": str(operator), "question_before": before,
            "question_after": after, "accepted": accepted, "checks": checks or {}, **extra}


def harden_round(graph: Graph, cur: Draft, rng: random.Random, *, rnd: int, phase: Phase, writer: Writer,
                 answer: str, aliases: Sequence[str], closed_book: ClosedBook | None,
                 operators: Sequence[str]) -> tuple[Draft, dict | None]:
    """One round of edits: operators in a random order (obfuscate first while a named entity is
    left: names are the biggest shortcut); the first edit that passes the checks is kept. Every try
    goes into the lineage: not applicable, rejected (with its checks) or accepted. Returns the new
    draft and its checks, or ``cur`` (with the tries recorded) and None when no edit was accepted."""
    ops = list(operators)
    rng.shuffle(ops)
    if named_constants(cur) and Operator.OBFUSCATE in ops:
        ops.remove(Operator.OBFUSCATE)
        ops.insert(0, Operator.OBFUSCATE)
    for name in ops:
        new = OPERATORS[name](graph, cur, rng)
        if new is None:
            cur.lineage.append(lineage_entry(rnd, phase, name, cur.question, None, False, {"applicable": False}))
            continue
        nq, origin = writer(new)
        st = checks(graph, new, nq, answer, aliases, closed_book)
        ok = bool(st["unique"] and st["supported"])
        entry = lineage_entry(rnd, phase, name, cur.question, nq, ok, {"applicable": True, **st, "origin": origin})
        if ok:
            new.question = nq
            new.lineage = list(cur.lineage) + [entry]
            return new, st
        cur.lineage.append(entry)
    return cur, None


def harden(graph: Graph, draft: Draft, rng: random.Random, *, rounds: int, writer: Writer,
           answer: str, aliases: Sequence[str], closed_book: ClosedBook | None = None,
           operators: Sequence[str] = EDIT_OPERATORS, min_hops: int = 3) -> tuple[Draft, dict]:
    """Write the question, then apply up to ``rounds`` rounds of edits before any rollout. Stops
    early once the question is long enough, carries at least one accepted edit and the closed-book
    model fails it (with no closed-book model, every round runs). A round that accepts no edit
    ends the loop (the next one would try the same edits on the same draft). Returns the
    final draft and its checks."""
    cur = draft
    q, origin = writer(cur)
    cur.question = q
    state = checks(graph, cur, q, answer, aliases, closed_book)
    cur.lineage.append(lineage_entry(0, Phase.WRITE, Operator.WRITE, None, q,
                                     bool(state["unique"] and state["supported"]), {**state, "origin": origin}))
    for rnd in range(1, rounds + 1):
        if (state["closed_book_solved"] is False and path_length(cur) >= min_hops
                and accepted_edits(cur.lineage) >= 1):
            break
        cur, st = harden_round(graph, cur, rng, rnd=rnd, phase=Phase.PRE_ROLLOUT, writer=writer, answer=answer,
                               aliases=aliases, closed_book=closed_book, operators=operators)
        if st is None:
            break
        state = st
    return cur, state


def accepted_edits(lineage: Sequence[dict]) -> int:
    """Accepted hardening edits in a lineage (the write step and rollouts are not edits)."""
    return sum(1 for e in lineage if e["accepted"] and e["operator"] in {str(o) for o in EDIT_OPERATORS})


def hardening_summary(questions: Sequence[dict]) -> dict:
    """Per-run hardening numbers from question rows: the share with at least one accepted edit
    (``n_accepted_edits >= 1``), solver rounds, and the histogram of final pass rates
    (``pass_rate`` rounded to 2 places; "none" = no trajectory was verified)."""
    n = len(questions)
    edited = sum(1 for q in questions if (q.get("n_accepted_edits") or 0) >= 1)
    hist: dict[str, int] = {}
    for q in questions:
        pr = q.get("pass_rate")
        key = "none" if pr is None else f"{pr:.2f}"
        hist[key] = hist.get(key, 0) + 1
    return {"questions": n, "with_accepted_edit": edited, "share_with_accepted_edit": round(edited / n, 3) if n else None,
            "solver_rounds": sum(int(q.get("n_solver_rounds") or 0) for q in questions),
            "pass_rate_histogram": dict(sorted(hist.items()))}


def row_world_problems(graph: Graph, row: Mapping) -> list[str]:
    """:func:`world_problems` of a stored question row (``formalization`` holds the binding), for
    ``crucible browse audit``: recomputed from the row and today's cards, not read from the lineage."""
    form = dict(row["formalization"])
    binding = form.pop("binding")
    return world_problems(graph, Draft(form, binding, row.get("seed_entity") or ""))
