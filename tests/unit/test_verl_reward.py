"""The verl kit's compute_score: the pipeline's own verification on verl's decoded responses (no verl needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from crucible.pipelines.integrations.export_verl import verl_rows
from crucible.pipelines.integrations.verl import reward as K
from tests.support import trainer_rows as TR
from tests.support.judges import AlwaysYesJudge

# verl's decoded multi-turn response (Qwen template, special tokens skipped): calls, responses behind role words
CALLS = ('<think>The krona is Iceland\'s currency.</think>\n<tool_call>\n{"name": "search", "arguments": '
         '{"query": "Iceland Krona capital"}}\n</tool_call>\nuser\n<tool_response>\nIceland: its currency is the Iceland Krona, its capital Reykjavík.'
         '\n</tool_response>\nassistant\n<tool_call>\n{"name": "visit", "arguments": {"url": "https://kb.local/city/5"}}'
         '\n</tool_call>\nuser\n<tool_response>\nReykjavík is the capital of Iceland\n</tool_response>\nassistant\n')


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    store = TR.write_store(tmp_path_factory.mktemp("store"), with_trajectories=False)
    return {r["extra_info"]["id"]: r for r in verl_rows(str(store))}


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return str(TR.write_graph_dir(tmp_path_factory.mktemp("graph")))


OUTCOME = {"formula": "outcome * format"}  # no clue shaping: a wrong answer scores exactly 0


def score(row, response, **kw):
    return K.compute_score(row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"], **kw)


@pytest.mark.parametrize("final", ["Reykjavík", "reykjavik", "Reykjavik, Iceland", "<answer>Reykjavík</answer>",
                                   '{"thought": "found it", "tool": "answer", "arguments": {"answer": "Reykjavík"}}'])
def test_a_correct_answer_in_any_form_scores_outcome_format_and_clue(rows, graph_dir, final):
    out = score(rows["q-capital"], CALLS + final, graph_dir=graph_dir)
    assert out["correct"] == 1.0 and out["format"] == 1.0
    # both evidence hops surfaced (the country page's fact text, the visited capital page): clue recall 1
    assert out["clue"] == 1.0
    assert out["score"] == pytest.approx(1.1)  # browse.reward_formula: outcome * format + 0.1 * clue * format
    assert set(out) >= {"score", "outcome", "format", "clue"} and all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize("final,why", [
    ("Iceland", "the country of the capital: another graph entity"),
    ("Kópavogur", "a sibling city of the same country"),
    ("Reykjavík or Kópavogur", "a list of candidates"),
])
def test_near_misses_score_zero(rows, graph_dir, final, why):
    out = score(rows["q-capital"], CALLS + final, graph_dir=graph_dir, **OUTCOME)
    assert out["outcome"] == 0.0 and out["score"] == 0.0, why
    # the default formula (browse.reward_formula) keeps only the clue shaping: 0.1 x clue, never the outcome
    assert score(rows["q-capital"], CALLS + final, graph_dir=graph_dir)["score"] == pytest.approx(0.1)


def test_the_graph_decides_a_near_miss_even_when_the_judge_would_accept_it(rows, graph_dir):
    row = rows["q-capital"]
    on = score(row, CALLS + "Iceland", graph_dir=graph_dir, judge=AlwaysYesJudge(), **OUTCOME)
    assert on["score"] == 0.0 and on["graph_decided"] == 1.0
    # switched off (no gold entity to ground in): the lenient judge lets the country through
    off_row = {**row, "extra_info": {**row["extra_info"], "answer_entity": None}}
    off = score(off_row, CALLS + "Iceland", judge=AlwaysYesJudge())
    assert off["correct"] == 1.0


@pytest.mark.parametrize("final", ["I cannot determine the answer from these pages.", "unknown", ""])
def test_hedges_and_no_answer_score_zero_as_not_attempted(rows, graph_dir, final):
    out = score(rows["q-capital"], CALLS + final, graph_dir=graph_dir, judge=AlwaysYesJudge(), **OUTCOME)
    assert out["score"] == 0.0 and out["not_attempted"] == 1.0


def test_answer_only_in_the_reasoning_is_not_an_answer(rows, graph_dir):
    out = score(rows["q-capital"], CALLS + "<think>It is Reykjavík.</think>", graph_dir=graph_dir)
    assert out["outcome"] == 0.0 and out["format"] == 0.0


def test_what_the_rules_cannot_decide_scores_zero_unless_a_judge_is_switched_on(rows, graph_dir):
    vague = CALLS + "the northernmost national capital"
    assert score(rows["q-capital"], vague, graph_dir=graph_dir, **OUTCOME)["score"] == 0.0  # judge off by default
    assert score(rows["q-capital"], vague, graph_dir=graph_dir, judge=AlwaysYesJudge())["correct"] == 1.0


@pytest.mark.parametrize("bad", [
    '<tool_call>\n{"name": "search", "arguments": {"query": "x"\n</tool_call>\nassistant\nReykjavík',  # not JSON
    '<tool_call>\n{"name": "browse", "arguments": {"q": "x"}}\n</tool_call>\nuser\n<tool_response>\nerr\n'
    '</tool_response>\nassistant\nReykjavík',  # an unknown tool
])
def test_a_malformed_trajectory_loses_the_format_term_and_with_it_the_reward(rows, graph_dir, bad):
    out = score(rows["q-capital"], bad, graph_dir=graph_dir)
    assert out["outcome"] == 1.0 and out["format"] == 0.0 and out["score"] == 0.0


def test_value_answers_match_exactly(rows):
    row = rows["q-code"]
    assert row["extra_info"]["answer_entity"] is None and row["extra_info"]["answer_type"] == "code"
    assert score(row, CALLS + "BIRK")["correct"] == 1.0
    assert score(row, CALLS + "RKV", **OUTCOME)["score"] == 0.0  # the airport's IATA code is not the ICAO code asked


def test_unknown_data_source_is_a_clear_error(rows):
    with pytest.raises(K.UnknownSource, match="crucible/browse, crucible/swe"):
        K.compute_score("openai/gsm8k", "42", "42", {})


def test_a_named_graph_dir_without_a_graph_is_a_clear_error(rows, tmp_path):
    with pytest.raises(FileNotFoundError, match="crucible kg build"):
        score(rows["q-capital"], CALLS + "Reykjavík", graph_dir=str(tmp_path))


# ------------------------------------------------------------------ swe

SWE_GT = json.dumps({"FAIL_TO_PASS": ["t.py::test_add"], "PASS_TO_PASS": ["t.py::test_ok"]})
SWE_EXTRA = {"instance": json.dumps({"instance_id": "demo__calc-1", "repo": "demo/calc", "base_commit": "0" * 40,
                                     "FAIL_TO_PASS": ["stale"], "PASS_TO_PASS": []})}
GOOD = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-    return a - b\n+    return a + b\n"


def test_swe_grades_the_submitted_patch_with_the_tests_of_the_ground_truth():
    g = TR.FakeGrader()
    out = K.compute_score("crucible/swe", "...", SWE_GT, {**SWE_EXTRA, K.PATCH_KEY: GOOD}, grader=g)
    assert out["score"] == 1.0 and out["resolved"] == 1.0
    inst, patch = g.calls[0]
    assert patch == GOOD and inst["FAIL_TO_PASS"] == ["t.py::test_add"]  # the row's tests, not a stale copy


def test_swe_reads_the_patch_from_the_submit_result_when_no_tool_recorded_it():
    g = TR.FakeGrader()
    text = f'<tool_call>\n{{"name": "submit", "arguments": {{}}}}\n</tool_call>\nuser\n<tool_response>\n{GOOD}</tool_response>'
    assert K.compute_score("crucible/swe", text, SWE_GT, SWE_EXTRA, grader=g)["score"] == 1.0
    assert g.calls[0][1].startswith("diff --git a/calc.py")


def test_swe_wrong_or_missing_patches_earn_what_reward_of_gives():
    g = TR.FakeGrader()
    wrong = GOOD.replace("a + b", "a * b")
    assert K.compute_score("crucible/swe", "", SWE_GT, {**SWE_EXTRA, K.PATCH_KEY: wrong}, grader=g)["score"] == 0.25
    assert K.compute_score("crucible/swe", "no submit", SWE_GT, SWE_EXTRA, grader=g)["score"] == 0.0
    with pytest.raises(ValueError, match="extra_info.instance"):
        K.compute_score("crucible/swe", "", SWE_GT, {}, grader=g)


def test_importing_the_reward_loads_neither_docker_nor_beam_nor_verl():
    """The module contract behind the scorers' lazy import: a fresh interpreter importing the reward has none
    of them loaded; importing the swe scorer (what a first swe row does) loads Docker's client."""
    probe = ("import sys, crucible.pipelines.integrations.verl.reward as K; "
             "print(sorted(m for m in ('docker', 'apache_beam', 'verl') if m in sys.modules)); "
             "import crucible.pipelines.integrations.verl.reward_swe; print('docker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
