"""A small store for the trainer tests (verl kit, TRL export): questions over the hand-made graph of
``tests/unit/browse_helpers.small_graph`` (the capital of Iceland, an airport code), SFT trajectories in the
rollouts' own form (reasoning, search + visit calls, observations with the hint and turn note), a pages file
for the local search corpus, and a fake SWE grader."""

from __future__ import annotations

import json
from pathlib import Path

from crucible.pipelines.agent.loop import observation_text
from crucible.pipelines.browse.stages import OBSERVATION_SUFFIX, TURN_NOTE
from crucible.pipelines.llm.prompts import load_prompt
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from tests.support import samples

CAPITAL_Q = "Which city is the capital of the country whose currency is the Iceland Krona?"
CODE_Q = "What is the ICAO code of the airport that serves the capital of Iceland?"
PAGES = [
    {"url": "https://kb.local/city/5", "title": "Reykjavík",
     "text": "Reykjavík is the capital and largest city of Iceland. Its airport is Reykjavik Airport (BIRK)."},
    {"url": "https://kb.local/country/IS", "title": "Iceland",
     "text": "Iceland is a Nordic island country. Its currency is the Iceland Krona. Its capital is Reykjavík."},
    {"url": "https://kb.local/city/6", "title": "Kópavogur", "text": "Kópavogur is a town in Iceland near Reykjavík."},
]


def question(qid: str, text: str, answer: str, aliases: list[str], answer_type: str, binding: dict, split: str,
             evidence: list[dict]) -> dict:
    row = samples.question(0)
    row.update(question_id=qid, question=text, answer=answer, answer_aliases=aliases, answer_type=answer_type,
               hops=2, seed_entity="currency/ISK", split=split, evidence=evidence,
               formalization={"triples": [["?x0", "currency", "currency/ISK"], ["?x0", "capital", "?x1"]],
                              "target": "?x1", "constraints": [], "distinct": True, "binding": binding})
    return row


def questions() -> list[dict]:
    ev = [{"hop": 0, "url": "https://kb.local/country/IS", "fact": "Iceland uses the Iceland Krona",
           "subject": "country/IS", "relation": "currency", "object": "Iceland Krona"},
          {"hop": 1, "url": "https://kb.local/city/5", "fact": "Reykjavík is the capital of Iceland",
           "subject": "country/IS", "relation": "capital", "object": "Reykjavík"}]
    return [
        question("q-capital", CAPITAL_Q, "Reykjavík", ["Reykjavik"], "entity", {"?x0": "country/IS", "?x1": "city/5"},
                 "rl", ev),
        question("q-code", CODE_Q, "BIRK", [], "code", {"?x0": "country/IS", "?x1": "airport/BIRK"}, "sft+rl", ev),
        question("q-sft-only", "Which country uses the Euro and borders Belgium?", "Netherlands", ["Holland"],
                 "entity", {"?x0": "country/NL", "?x1": "country/NL"}, "sft", ev),
    ]


def obs(text: str, turn: int, max_turns: int = 6) -> str:
    return observation_text(text, max_chars=6000, suffix=OBSERVATION_SUFFIX, turn_note=TURN_NOTE, turn=turn,
                            max_turns=max_turns)


def trajectory_messages(question_text: str) -> list[dict]:
    """A rollout as the browse pipeline stores it (prompt, reasoning, one call per turn, hinted observations)."""
    call = {"id": "call_a", "type": "function",
            "function": {"name": "search", "arguments": json.dumps({"query": "Iceland Krona capital"})}}
    visit = {"id": "call_b", "type": "function",
             "function": {"name": "visit", "arguments": json.dumps({"url": "https://kb.local/city/5"})}}
    return [
        *load_prompt("browse_agent").render(question=question_text),
        {"role": "assistant", "content": "The currency points to Iceland.", "tool_calls": [call],
         "reasoning_content": "Iceland Krona is Iceland's currency; find its capital."},
        {"role": "tool", "tool_call_id": "call_a", "name": "search",
         "content": obs('Search results for "Iceland Krona capital":\n1. Iceland\n   URL: https://kb.local/country/IS', 1)},
        {"role": "assistant", "content": None, "tool_calls": [visit]},
        {"role": "tool", "tool_call_id": "call_b", "name": "visit", "content": obs(PAGES[0]["text"], 2)},
        {"role": "assistant", "content": "Reykjavík"},
    ]


def trajectory(i: int, q: dict, split: str) -> dict:
    from crucible.pipelines.browse.search.env import TOOL_SCHEMAS

    row = samples.browse_trajectory(i)
    row.update(traj_id=f"t-{q['question_id']}-{i}", question_id=q["question_id"], question=q["question"],
               answer=q["answer"], messages=trajectory_messages(q["question"]), tools=list(TOOL_SCHEMAS),
               split=split, prediction="Reykjavík", extracted_answer="Reykjavík", verdict="correct")
    return row


def write_store(out: Path, with_trajectories: bool = True) -> Path:
    ensure_layout(str(out))
    qs = questions()
    item = ItemResult("trainer-rows")
    for q in qs:
        item.add("questions", q)
    if with_trajectories:
        item.add("browse_trajectories", trajectory(0, qs[0], "sft+rl"))
        item.add("browse_trajectories", trajectory(1, qs[0], "sft"))
        item.add("browse_trajectories", trajectory(2, qs[0], "rl"))  # not an SFT row
    commit_items(str(out), "browse", samples.RUN, [item])
    refresh_catalog(str(out))
    return out


def search_overrides(tmp: Path) -> list[str]:
    """``--set`` items for a local corpus of :data:`PAGES` under ``tmp``."""
    pages = tmp / "pages.jsonl"
    pages.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PAGES), encoding="utf-8")
    return [f"search.local.pages={pages}", f"search.local.dir={tmp / 'corpus'}", f"search.cache.dir={tmp / 'cache'}"]


def write_graph_dir(out: Path) -> Path:
    from crucible.pipelines.browse.kg.model import write_graph
    from tests.unit.browse_helpers import small_graph

    write_graph(small_graph(), out, {"key": "trainer-rows"})
    return out


class FakeGrader:
    """Stands in for ``crucible.pipelines.swe.grade.grade_patch`` (no Docker): resolved iff the patch contains
    ``fixed_marker``; records what it was asked to grade."""

    def __init__(self, fixed_marker: str = "return a + b"):
        self.marker, self.calls = fixed_marker, []

    def __call__(self, inst: dict, patch: str) -> dict:
        self.calls.append((inst, patch))
        f2p, p2p = inst["FAIL_TO_PASS"], inst["PASS_TO_PASS"]
        if not patch.strip():
            return {"resolved": False, "grade": "empty_patch", "grade_reason": "empty_patch", "f2p_passed": 0,
                    "f2p_total": len(f2p), "p2p_passed": 0, "p2p_total": len(p2p), "dropped_files": []}
        ok = self.marker in patch
        return {"resolved": ok, "grade": "resolved" if ok else "tests_failing", "grade_reason": None,
                "f2p_passed": len(f2p) if ok else 0, "f2p_total": len(f2p), "p2p_passed": len(p2p),
                "p2p_total": len(p2p), "dropped_files": []}
