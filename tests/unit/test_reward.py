import json

import pytest

from crucible.pipelines.browse import reward as R


def _msgs(args='{"query": "lima"}', final="Peruvian sol", name="search"):
    return [
        {"role": "system", "content": "s"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Peru ... currency is the Peruvian sol"},
        {"role": "assistant", "content": final},
    ]


def test_format_reward_accepts_well_formed_and_names_problems():
    assert R.format_reward(_msgs(), ["search", "visit"]) == (1.0, [])
    score, probs = R.format_reward(_msgs(args="{bad"), ["search", "visit"])
    assert score == 0.0 and "not valid JSON" in probs[0]
    score, probs = R.format_reward(_msgs(name="browse"), ["search", "visit"])
    assert score == 0.0 and "unknown tool 'browse'" in probs[0]
    score, probs = R.format_reward(_msgs(final=""), ["search", "visit"])
    assert "no final answer" in probs
    orphan = _msgs()[:2] + [{"role": "tool", "tool_call_id": "zz", "content": "x"}, {"role": "assistant", "content": "a"}]
    assert "without a matching call" in R.format_reward(orphan, ["search"])[1][0]


def test_clue_recall_by_url_or_fact():
    evidence = [{"hop": 0, "url": "https://kb.local/city/lima", "fact": "Lima is the capital of Peru", "object": "Peru"},
                {"hop": 1, "url": "https://kb.local/country/peru", "fact": "Peru uses the Peruvian sol", "object": "Peruvian sol"}]
    assert R.clue_recall(evidence, ["https://kb.local/city/lima/"], []) == 0.5
    assert R.clue_recall(evidence, [], ["... currency is the Peruvian sol ..."]) == 0.5
    assert R.clue_recall(evidence, ["https://kb.local/city/lima"], ["the PERUVIAN  sol"]) == 1.0
    assert R.clue_recall([], [], []) == 0.0


def test_formula_combines_terms_safely():
    terms = {"outcome": 1.0, "format": 1.0, "clue": 0.5, "rm": 0.0}
    assert R.combine(terms) == pytest.approx(1.05)
    assert R.combine({**terms, "format": 0.0}) == 0.0
    assert R.combine(terms, "max(outcome, clue) - 0.5 * (format < 1)") == 1.0
    with pytest.raises(R.FormulaError, match="unknown name 'bonus'"):
        R.combine(terms, "outcome + bonus")
    with pytest.raises(R.FormulaError, match="not allowed"):
        R.combine(terms, "__import__('os').system('true')")
    with pytest.raises(R.FormulaError, match="not allowed"):
        R.combine(terms, "outcome.real")


def test_outcome():
    assert R.outcome_reward("correct") == 1.0 and R.outcome_reward("not_attempted") == 0.0
    assert json.dumps(R.DEFAULT_FORMULA)
