"""``crucible browse audit``: precision proxies of a synth-browse store, recomputed from the rows.

Every number is recomputed from the stored rows (and, where a graph is given, re-checked against it)
rather than read back from the verdicts the pipeline wrote, so an audit can disagree with the
pipeline. The hard lines (must be 0 / must hold for a store to be trusted):

- ``contradicted``: kept rows (split not ``none``) marked correct whose answer resolves, in the graph,
  to an entity other than the gold;
- ``type_mismatch``: questions whose asked type ("which country ...") contradicts the answer's type;
- ``sft_strict_violations``: SFT rows that carry a drop reason or fail the strict SFT checks that can be
  recomputed from the row alone (repeated identical tool calls, a forced final answer, no observation
  containing the answer);
- ``findability``: questions without a findable entry (must be 0) and the share of findable clues (at least
  ``FINDABLE_CLUE_SHARE_MIN``), recomputed by :func:`crucible.pipelines.browse.findable.audit_findability` from the
  stored queries: re-run against the search backend when one is given (``source: rerun``), else from the
  stored ranks (``source: stored``); the verdicts come from the ranks either way, not from the row's flags.

Also (issue #23): text-grounded questions (``grounding.recheck_row``), entities pinned by ranges alone,
answers repeated. The soft lines describe the data: verified by rule / graph / judge, hardening acceptance (questions with
at least one accepted edit after the first write), hub concentration (the entity on most chains), the
histogram of final pass rates and drop reasons.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from crucible.pipelines.browse.audit_checks import (
    Resolver,
    TypeCheck,
    WorldCheck,
    contradicted_rows,
    gold_entity,
    graph_only_rows,
    sft_violation_rows,
    type_mismatch_rows,
)
from crucible.pipelines.browse.findable import audit_findability
from crucible.pipelines.browse.grounding import row_draft
from crucible.pipelines.browse.harden import ranges_pin_alone
from crucible.pipelines.store.records import record_type

# question row -> its text grounding recomputed from the row and the corpus pages (grounding.recheck_row)
TextCheck = Callable[[Mapping], Mapping]

PASS_RATE_BINS = ((0.0, 0.0, "0"), (0.0, 0.5, "(0, 0.5)"), (0.5, 1.0, "[0.5, 1)"), (1.0, 1.0, "1"))
HUB_SHARE_MAX = 0.20  # issue #23: no entity on more than 2 of 10 chains
TEXT_GROUNDED_SHARE_MIN = 0.50  # issue #23: at least 5 of 10 questions text-grounded
ANSWER_REPEAT_SHARE = 0.20  # issue #23: no answer more than twice in 10 questions
HARDENED_SHARE_MIN = 0.50
FINDABLE_CLUE_SHARE_MIN = 0.90


def _is_kept(split: str | None) -> bool:
    return bool(split) and split != "none"


def _is_sft(split: str | None) -> bool:
    return bool(split) and "sft" in split


def chain_entities(question: Mapping) -> set[str]:
    """The graph entities a question's chain passes through: its binding's values and the named
    constants of its formalization (each counted once per question)."""
    form = question.get("formalization") or {}
    ents = {str(v) for v in (form.get("binding") or {}).values()}
    for t in form.get("triples") or []:
        for term in (t[0], t[2]):
            if isinstance(term, str) and not term.startswith("?"):
                ents.add(term)
    return ents


def pass_rate_histogram(rates: Iterable[float | None]) -> dict[str, int]:
    hist = {label: 0 for _, _, label in PASS_RATE_BINS}
    hist["none"] = 0
    for r in rates:
        if r is None:
            hist["none"] += 1
        elif r <= 0:
            hist["0"] += 1
        elif r >= 1:
            hist["1"] += 1
        elif r < 0.5:
            hist["(0, 0.5)"] += 1
        else:
            hist["[0.5, 1)"] += 1
    return hist


EDIT_OPERATORS = frozenset({"obfuscate", "blur", "add_hop", "drop_clue"})


def accepted_edits(question: Mapping) -> int:
    """Accepted hardening edits of a question, counted from its lineage (not read back from
    ``n_accepted_edits``): accepted obfuscate / blur / add_hop / drop_clue steps."""
    return sum(1 for e in question.get("lineage") or [] if e.get("accepted") and e.get("operator") in EDIT_OPERATORS)


def audit_rows(questions: Sequence[Mapping], trajectories: Sequence[Mapping], failures: Sequence[Mapping] = (),
               *, resolve: Resolver | None = None, type_check: TypeCheck | None = None,
               world_check: WorldCheck | None = None, findable_search=None,
               text_check: TextCheck | None = None) -> dict[str, Any]:
    """The audit of one store's rows (pure). ``resolve`` and ``type_check`` come from the graph;
    without them the graph-grounded lines are reported as ``None`` (not checked), never as 0.
    ``findable_search`` (a :data:`crucible.pipelines.browse.findable.Search`) re-runs the stored findability queries;
    ``text_check`` recomputes each question's text grounding (None: the line is not checked)."""

    by_q = {q["question_id"]: q for q in questions}
    kept = [t for t in trajectories if _is_kept(t.get("split"))]
    sft = [t for t in trajectories if _is_sft(t.get("split"))]

    contradicted = None if resolve is None else contradicted_rows(kept, by_q, resolve)
    mismatches = None if type_check is None else type_mismatch_rows(questions, type_check)
    graph_only = None if world_check is None else graph_only_rows(questions, world_check)
    hubs = ranked(Counter(e for q in questions for e in chain_entities(q)))
    top_hub, top_n = hubs[0] if hubs else (None, 0)
    tied = sum(1 for _, n in hubs[1:] if n == top_n)
    n_q = len(questions)
    hardened = sum(1 for q in questions if accepted_edits(q) > 0)
    sft_violations = sft_violation_rows(sft, questions)
    drop_reasons = Counter(r.split(":")[0] + (":" + r.split(":")[1].split("(")[0].strip() if ":" in r else "")
                           for t in trajectories for r in t.get("drop_reasons") or [])
    failure_reasons = Counter(f"{f.get('stage')}/{str(f.get('reason') or '')[:60]}" for f in failures
                              if f.get("pipeline") == "browse")
    return {
        "questions": n_q,
        "trajectories": len(trajectories),
        "kept_trajectories": len(kept),
        "sft_rows": len(sft),
        "kept_verified_by": dict(ranked(Counter(t.get("verdict_source") for t in kept if t.get("verdict") == "correct"))),
        "contradicted": None if contradicted is None else len(contradicted),
        "contradicted_rows": contradicted,
        "type_mismatch": None if mismatches is None else len(mismatches),
        "type_mismatch_rows": mismatches,
        "unique_in_graph_only": None if graph_only is None else len(graph_only),
        "unique_in_graph_only_rows": graph_only,
        "hardened_share": round(hardened / n_q, 4) if n_q else None,
        "questions_hardened": hardened,
        "accepted_edits_per_question": dict(sorted(Counter(accepted_edits(q) for q in questions).items())),
        "hub": {"entity": top_hub, "questions": top_n, "share": round(top_n / n_q, 4) if n_q else None,
                "tied": tied},
        "pass_rate_histogram": pass_rate_histogram(q.get("pass_rate") for q in questions),
        "sft_strict_violations": len(sft_violations),
        "sft_strict_violation_rows": sft_violations,
        "findability": audit_findability(questions, findable_search),
        "text_grounding": text_grounding_audit(questions, text_check),
        "range_only": range_only_audit(questions),
        "answer_repeats": answer_repeats(questions),
        "drop_reasons": dict(ranked(drop_reasons)),
        "failures": dict(ranked(failure_reasons, 12)),
    }


def text_grounding_audit(questions: Sequence[Mapping], text_check: TextCheck | None) -> dict[str, Any]:
    """Questions text-grounded by :func:`crucible.pipelines.browse.grounding.recheck_row` (recomputed from each
    row's path and the corpus pages, never from the row's own ``text_grounded`` flag) and their share;
    ``None`` counts when no check is given."""
    if text_check is None:
        return {"checked": False, "text_grounded": None, "share": None, "problems": []}
    grounded, probs = 0, []
    for q in questions:
        try:
            r = text_check(q)
        except (KeyError, TypeError, ValueError) as exc:  # a row the check cannot read is not grounded
            r = {"text_grounded": False, "problems": [f"cannot check: {type(exc).__name__}: {exc}"]}
        grounded += bool(r["text_grounded"])
        probs += [{"question_id": q["question_id"], "why": p} for p in r.get("problems") or []]
    n = len(questions)
    return {"checked": True, "text_grounded": grounded, "share": round(grounded / n, 4) if n else None,
            "problems": probs}


def range_only_audit(questions: Sequence[Mapping]) -> dict[str, Any]:
    """Hidden entities pinned by numeric ranges alone (:func:`crucible.pipelines.browse.harden.ranges_pin_alone`),
    recomputed from each row's formalization: ``{"entities", "questions", "rows"}``."""
    rows, unmeasured = [], 0
    for q in questions:
        form = q.get("formalization") or {}
        if not form.get("triples"):  # nothing to recompute from
            continue
        if "binding" not in form:  # which entity a range pins cannot be told: counted, never passed as 0
            unmeasured += 1
            continue
        d = row_draft(q)
        for var in dict.fromkeys(c["var"] for c in d.formalization.get("constraints", []) if "attr" in c):
            if ranges_pin_alone(d, var):
                rows.append({"question_id": q["question_id"], "var": var, "entity": d.binding.get(var)})
    return {"entities": len(rows), "questions": len({r["question_id"] for r in rows}), "rows": rows,
            "not_measured": unmeasured}


def answer_repeats(questions: Sequence[Mapping]) -> dict[str, Any]:
    """Answers given by several questions (the gold entity, or the answer text of an attribute answer),
    most repeated first, and the most one answer may have: ``ANSWER_REPEAT_SHARE`` of the questions, at
    least 2."""
    c = Counter((gold_entity(q) if q.get("answer_type") in (None, "entity") else None) or str(q.get("answer"))
                for q in questions)
    allowed = max(2, int(ANSWER_REPEAT_SHARE * len(questions) + 1e-9))
    top = ranked(Counter({a: n for a, n in c.items() if n > 1}))
    return {"allowed": allowed, "top": top[:5], "over": [a for a, n in top if n > allowed]}


def problems(audit: Mapping) -> list[str]:
    """The acceptance lines a store fails (empty = every hard line holds)."""
    out = []
    if audit["contradicted"]:
        out.append(f"{audit['contradicted']} kept correct rows resolve to another entity than the gold")
    if audit["contradicted"] is None:
        out.append("graph check not run (no graph)")
    if audit["type_mismatch"]:
        out.append(f"{audit['type_mismatch']} questions ask for another type than their answer's")
    if audit["unique_in_graph_only"]:
        out.append(f"{audit['unique_in_graph_only']} questions are unique in the graph only (relation cards, "
                   "ranges that pin alone)")
    if audit["sft_strict_violations"]:
        out.append(f"{audit['sft_strict_violations']} SFT rows fail the strict SFT checks")
    fa = audit.get("findability") or {}
    if fa.get("without_findable_entry"):
        out.append(f"{fa['without_findable_entry']} questions have no findable entry")
    if fa.get("clue_share") is not None and fa["clue_share"] < FINDABLE_CLUE_SHARE_MIN:
        out.append(f"only {fa['clue_share']:.0%} of clues are findable (< {FINDABLE_CLUE_SHARE_MIN:.0%})")
    tg = audit.get("text_grounding") or {}
    if tg.get("share") is not None and tg["share"] < TEXT_GROUNDED_SHARE_MIN:
        out.append(f"only {tg['share']:.0%} of questions are text-grounded (< {TEXT_GROUNDED_SHARE_MIN:.0%})")
    if (audit.get("range_only") or {}).get("entities"):
        out.append(f"{audit['range_only']['entities']} hidden entities are pinned by numeric ranges alone")
    if (audit.get("range_only") or {}).get("not_measured"):
        out.append(f"{audit['range_only']['not_measured']} questions carry no binding: ranges pinning alone not measured")
    if (audit.get("answer_repeats") or {}).get("over"):
        out.append(f"answers on more than {audit['answer_repeats']['allowed']} questions: "
                   + ", ".join(map(str, audit["answer_repeats"]["over"][:3])))
    share = audit["hub"]["share"]
    if share is not None and share > HUB_SHARE_MAX and audit["questions"] >= 4:
        out.append(f"entity {audit['hub']['entity']} is on {share:.0%} of chains (> {HUB_SHARE_MAX:.0%})")
    hs = audit["hardened_share"]
    if hs is not None and hs < HARDENED_SHARE_MIN:
        out.append(f"only {hs:.0%} of questions have an accepted hardening edit (< {HARDENED_SHARE_MIN:.0%})")
    return out


def format_audit(audit: Mapping) -> str:
    def show(v):
        return "not checked" if v is None else v

    hub = audit["hub"]
    lines = [
        "browse audit",
        f"  questions {audit['questions']}, trajectories {audit['trajectories']} "
        f"(kept {audit['kept_trajectories']}, SFT {audit['sft_rows']})",
        f"  kept correct rows verified by: {audit['kept_verified_by'] or {}}",
        f"  kept rows contradicted by the graph (must be 0): {show(audit['contradicted'])}",
        f"  questions whose asked type mismatches the answer (must be 0): {show(audit['type_mismatch'])}",
        f"  questions unique in the graph only (must be 0): {show(audit['unique_in_graph_only'])}",
        f"  SFT rows failing strict checks (must be 0): {audit['sft_strict_violations']}",
        _findable_line(audit.get("findability") or {}),
        f"  questions with >= 1 accepted hardening edit: {audit['questions_hardened']}/{audit['questions']}"
        + (f" ({audit['hardened_share']:.0%})" if audit["hardened_share"] is not None else ""),
        f"  accepted edits per question: {audit['accepted_edits_per_question']}",
        _text_line(audit.get("text_grounding") or {}, audit["questions"]),
        f"  hidden entities pinned by numeric ranges alone (must be 0): {(audit.get('range_only') or {}).get('entities')}"
        f" (rows without a binding, not measured: {(audit.get('range_only') or {}).get('not_measured', 0)})",
        f"  answers repeated (at most {(audit.get('answer_repeats') or {}).get('allowed')} each): "
        f"{(audit.get('answer_repeats') or {}).get('top')}",
        f"  hub: {hub['entity']} on {hub['questions']} chains"
        + (f" ({hub['share']:.0%})" if hub["share"] is not None else "")
        + (f", tied with {hub['tied']} other(s) (first by name shown)" if hub.get("tied") else "")
        + f" (at most {HUB_SHARE_MAX:.0%})",
        f"  final pass rates: {audit['pass_rate_histogram']}",
        f"  trajectory drop reasons: {audit['drop_reasons']}",
        f"  failures: {audit['failures']}",
    ]
    for key in ("contradicted_rows", "type_mismatch_rows", "unique_in_graph_only_rows", "sft_strict_violation_rows"):
        for r in (audit.get(key) or [])[:5]:
            lines.append(f"    {key[:-5]}: {json.dumps(r, ensure_ascii=False)}")
    for r in ((audit.get("findability") or {}).get("without_findable_entry_rows") or [])[:5]:
        lines.append(f"    without_findable_entry: {json.dumps(r, ensure_ascii=False)}")
    probs = problems(audit)
    lines.append("  verdict: " + ("every hard line holds" if not probs else "; ".join(probs)))
    return "\n".join(lines)


def _text_line(tg: Mapping, n: int) -> str:
    if not tg.get("checked"):
        return "  text-grounded questions: not checked (no graph)"
    return (f"  text-grounded questions (recomputed; >= {TEXT_GROUNDED_SHARE_MIN:.0%}): {tg['text_grounded']}/{n}"
            + (f" ({tg['share']:.0%})" if tg.get("share") is not None else "")
            + (f"; stored sentences that fail the re-check: {len(tg['problems'])}" if tg.get("problems") else ""))


def _findable_line(fa: Mapping) -> str:
    if not fa.get("questions_measured"):
        return "  findable clues: not measured (no question carries findability)"
    return (f"  findable clues ({fa['source']}): {fa['clues_findable']}/{fa['clues']} ({fa['clue_share']:.0%}); "
            f"questions without a findable entry (must be 0): {fa['without_findable_entry']}; not findable "
            f"(not RL rows): {fa['not_findable']}; not measured: {fa['questions_not_measured']}")


def load_rows(con) -> tuple[list[dict], list[dict], list[dict]]:
    """questions, browse_trajectories and browse failures of a store, decoded through the record types."""

    def rows(table: str, key: str, where: str = "true") -> list[dict]:
        cur = con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY {key}")  # same rows, same order
        cols = [d[0] for d in cur.description]
        rt = record_type(table)
        return [rt.decode(dict(zip(cols, r))) for r in cur.fetchall()]

    return (rows("questions", "question_id"), rows("browse_trajectories", "traj_id"),
            rows("failures", "failure_id", "pipeline = 'browse'"))


def ranked(counts: Counter, n: int | None = None) -> list[tuple[Any, int]]:
    """``counts`` most common first, ties by the key's text: the same rows give the same order (and
    the same maximum), whatever order they were read in (``Counter.most_common`` keeps insertion order)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]
