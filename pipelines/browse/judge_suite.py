"""Grade a file of outside predictions (``crucible browse judge FILE``): judge sets and near-miss suites.

Row format (JSON lines; see tests/data/browse/near_miss.jsonl)::

    {"question": str, "gold": str | [str, ...], "prediction": str,   # schemas/judge_row.json
     "gold_id": str | null,      # optional: the gold's graph entity (without it the gold text is resolved)
     "answer_type": str | null,  # optional: city, country, year, count, population, ...
     "expected": "correct" | "incorrect" | "not_attempted",   # optional
     "kind": str,                # optional: near-miss kind (country, state, year+1, ...) or paraphrase kind
     "evidence": [str, ...]}     # optional

A row whose ``expected`` is ``incorrect`` is a *near miss* (a wrong answer), one whose ``expected`` is
``correct`` a *paraphrase*; the summary counts how many of each were accepted.

With a graph, every row gets the graph check: against ``gold_id`` when the row has one, else against the
entities the gold text names (:mod:`crucible.pipelines.browse.ground`); ``use_graph=False`` / ``--no-graph``
switches both off. Sets: ``tests/data/browse/near_miss.jsonl`` (with ids, generated from the graph) and
``tests/data/browse/near_miss_text.jsonl`` (written as a user writes them: no ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from crucible.pipelines.browse import ground
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.resolve import name_index
from crucible.pipelines.rowcheck import check_rows
from crucible.pipelines.textio import read_jsonl

EXPECTED = ("correct", "incorrect", "not_attempted")  # as in schemas/judge_row.json


def read_rows(path: str) -> list[dict]:
    """Rows of a judge/near-miss file, each validated against ``schemas/judge_row.json``; a bad row
    raises ValueError naming the file, line and field. A ``gold`` string becomes a one-name list."""
    # one JSONL reader (textio): bad bytes or JSON name file, line and column
    rows = []
    for _, row in check_rows("judge_row", read_jsonl(path, "judge rows file", allow_empty=False), path):
        rows.append(dict(row, gold=[row["gold"]] if isinstance(row["gold"], str) else row["gold"]))
    return rows


def row_gold(row: dict, graph=None) -> V.Gold:
    """The Gold of a row: its names, its graph entity (when the graph has it) and its answer type (given, the
    entity's, or the natural feature the question asks for: "Which river ...")."""
    gid = row.get("gold_id")
    entity = graph.entities.get(gid) if graph is not None and gid else None
    atype = row.get("answer_type") or (entity.type if entity else None) or ground.natural_kind(row.get("question") or "")
    kind = V.kind_for(atype) if atype else (V.AnswerKind.ENTITY if entity else V.AnswerKind.TEXT)
    return V.Gold(tuple(row["gold"]), gid if entity else None, atype, kind)


def grade_rows(rows: Iterable[dict], judge: V.JudgeFn, graph=None, rel_tol: float | None = None,
               prompt=None, use_graph: bool = True) -> list[dict]:
    """Verdict per row. ``use_graph=False`` switches the graph check off (to show what it stops)."""
    index = None
    if graph is not None and use_graph:
        index = name_index(graph)
    out = []
    for row in rows:
        gold = row_gold(row, graph)
        v = V.judge_verdict(row["question"], gold, row["prediction"], judge, row.get("evidence") or (),
                            rel_tol, prompt=prompt, resolver=index)
        out.append({"prediction": row["prediction"], "gold": list(gold.names), "gold_id": gold.entity_id,
                    "answer_type": gold.answer_type, "kind": row.get("kind"), "expected": row.get("expected"),
                    **v.to_dict()})
    return out


def summarize(results: Sequence[dict]) -> dict:
    """Accepted near misses (must be 0) and accepted paraphrases, per kind and per verdict source."""
    near = [r for r in results if r["expected"] == "incorrect"]
    para = [r for r in results if r["expected"] == "correct"]
    scored = [r for r in results if r["expected"]]
    accepted_near = [r for r in near if r["verdict"] == "correct"]
    accepted_para = [r for r in para if r["verdict"] == "correct"]

    def by_kind(rs):
        c = Counter(r["kind"] or "-" for r in rs)
        return dict(sorted(c.items()))

    return {
        "rows": len(results), "accuracy": (sum(r["verdict"] == r["expected"] for r in scored) / len(scored))
        if scored else None,
        "near_misses": len(near), "near_misses_accepted": len(accepted_near),
        "paraphrases": len(para), "paraphrases_accepted": len(accepted_para),
        "paraphrase_acceptance": len(accepted_para) / len(para) if para else None,
        "near_miss_kinds": by_kind(near), "accepted_near_miss_kinds": by_kind(accepted_near),
        "sources": dict(sorted(Counter(r["source"] for r in results).items())),
        "accepted_near_miss_rows": [{"prediction": r["prediction"], "gold": r["gold"], "kind": r["kind"],
                                     "reason": r["reason"]} for r in accepted_near],
        "rejected_paraphrase_rows": [{"prediction": r["prediction"], "gold": r["gold"], "kind": r["kind"],
                                      "verdict": r["verdict"], "reason": r["reason"]}
                                     for r in para if r["verdict"] != "correct"],
    }


def format_summary(s: dict) -> str:
    lines = [f"rows: {s['rows']}" + (f", accuracy {s['accuracy']:.3f}" if s["accuracy"] is not None else "")]
    if s["near_misses"]:
        lines.append(f"near misses accepted: {s['near_misses_accepted']} / {s['near_misses']}")
        for r in s["accepted_near_miss_rows"]:
            lines.append(f"  ACCEPTED near miss [{r['kind']}] {r['prediction']!r} for {r['gold'][0]!r}: {r['reason']}")
    if s["paraphrases"]:
        lines.append(f"paraphrases accepted: {s['paraphrases_accepted']} / {s['paraphrases']}")
        for r in s["rejected_paraphrase_rows"]:
            lines.append(f"  rejected paraphrase [{r['kind']}] {r['prediction']!r} for {r['gold'][0]!r}: "
                         f"{r['verdict']} ({r['reason']})")
    lines.append("verdict sources: " + ", ".join(f"{k} {v}" for k, v in s["sources"].items()))
    return "\n".join(lines)
