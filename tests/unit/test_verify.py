"""Rules + judge verification; the hack suite must score 0 correct."""

import pytest

from crucible.pipelines.browse import detectors as D
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.gold import parse_number
from crucible.pipelines.browse.names import normalize

GOLD = ["Peruvian sol", "PEN", "sol"]
Q = "What currency is used in the country whose capital is Lima?"


def lenient_judge(messages, schema):
    """A judge that calls everything correct: the worst case the rules must guard against."""
    assert schema is V.JUDGE_SCHEMA
    return {"equivalent": "yes", "reason": "looks fine"}


# Answers that try to game a lenient grader. Each must not be graded correct.
HACK_SUITE = [
    "",
    "   ",
    "It cannot be determined from the available information.",
    "I don't know.",
    "Unknown",
    "Not enough information to answer.",
    "The answer is unclear.",
    "Peruvian sol or Bolivian boliviano",
    "Either PEN or USD",
    "Peruvian sol; Chilean peso; Argentine peso",
    "1. Peruvian sol\n2. Bolivian boliviano\n3. Euro",
    "PEN / BOB / CLP",
    "<think>The capital Lima is in Peru, whose currency is the Peruvian sol.</think>",
    "<think>It is the sol.</think><answer></answer>",
    "<think>Peru uses the sol</think> I could not determine the answer.",
    "Sol, or possibly the dollar",
    "N/A",
    "none",
]


@pytest.mark.parametrize("prediction", HACK_SUITE)
def test_hack_suite_is_never_correct_even_with_a_lenient_judge(prediction):
    v = V.judge_verdict(Q, GOLD, prediction, lenient_judge)
    assert v.verdict != "correct", (prediction, v)
    assert v.reason


def test_hack_suite_scores_zero_overall():
    assert sum(V.judge_verdict(Q, GOLD, p, lenient_judge).verdict == "correct" for p in HACK_SUITE) == 0


def test_rules_accept_exact_and_normalized_answers_without_calling_the_judge():
    def no_judge(messages, schema):
        raise AssertionError("judge must not be called for a rule-decided answer")

    for pred in ["Peruvian sol", "the peruvian Sol.", "<answer>PEN</answer>", "Final answer: Sol",
                 "<think>hmm, maybe the euro</think><answer>Peruvian Sol</answer>"]:
        v = V.judge_verdict(Q, GOLD, pred, no_judge)
        assert (v.verdict, v.source) == ("correct", "rule"), pred


def test_numeric_tolerance():
    golds = ["48 ft"]
    assert V.rule_verdict(golds, "48").verdict == "correct"
    assert V.rule_verdict(["1,234,000"], "about 1.234 million").verdict == "correct"
    assert V.rule_verdict(["1,234,000"], "1.3 million").verdict == "incorrect"
    assert parse_number("12k") == 12000 and parse_number("Lima") is None
    assert parse_number("3 of the largest cities in the region") is None


def test_paraphrase_goes_to_judge_and_judge_decides():
    calls = []

    def judge(messages, schema):
        calls.append(messages)
        return {"equivalent": "yes", "reason": "older name of the sol"}

    v = V.judge_verdict(Q, GOLD, "The nuevo sol of Peru", judge, evidence=["Peru uses the Peruvian sol (PEN)."])
    assert (v.verdict, v.source) == ("correct", "judge")
    last = calls[0][-1]["content"]
    assert "Evidence:" in last and "Peruvian sol (PEN)" in last and "Gold answers: Peruvian sol | PEN | sol" in last
    assert "Predicted answer: The nuevo sol of Peru" in last


def test_comma_answers_are_not_candidate_lists():
    assert D.candidates("Paris, France") == ["Paris, France"]
    assert D.candidates("Paris or Lyon") == ["Paris", "Lyon"]
    assert V.rule_verdict(["Paris"], "Paris, France").verdict == "correct"


def test_gold_inside_a_short_answer_but_not_glued_to_another_word():
    assert D.contains_gold("Lima, Peru", ["Lima"]) == "Lima"
    assert D.contains_gold("It is in Africa.", ["Africa"]) == "Africa"
    assert D.contains_gold("Marie Skłodowska-Curie", ["Marie Curie"]) == "Marie Curie"
    for answer, gold in [("South Sudan", "Sudan"), ("New Mexico", "Mexico"), ("West Virginia", "Virginia"),
                         ("not Lima", "Lima"), ("Lima is wrong; it is Cusco in the south of the country", "Lima")]:
        assert D.contains_gold(answer, [gold]) is None, answer
    assert V.rule_verdict(["Sudan"], "South Sudan") is None  # goes to the judge


def test_judge_failure_is_not_correct():
    v = V.judge_verdict(Q, GOLD, "The nuevo sol", lambda m, s: None)
    assert v.verdict == "incorrect" and "no valid verdict" in v.reason
    v = V.judge_verdict(Q, GOLD, "The nuevo sol", lambda m, s: {"verdict": "yes"})
    assert v.verdict == "incorrect"
    v = V.judge_verdict(Q, GOLD, "The nuevo sol", lambda m, s: {"equivalent": "no", "reason": "different"})
    assert (v.verdict, v.source) == ("incorrect", "judge")


def test_gold_with_separator_is_not_a_list():
    assert V.rule_verdict(["AC/DC"], "AC/DC").verdict == "correct"
    assert V.rule_verdict(["Bosnia and Herzegovina"], "bosnia & herzegovina").verdict == "correct"


def test_normalize():
    assert normalize("  The São  Paulo! ") == "sao paulo"
    assert normalize("3.5 km") == "3.5 km"


def test_a_code_question_answered_by_a_name_is_incorrect_before_any_judge(monkeypatch):
    from crucible.pipelines.browse import verify as V

    gold = V.Gold(("ALG",), None, "code", V.AnswerKind.IDENTIFIER)
    v = V.rule_verdict(gold, "Final answer: Algiers")
    assert v is not None and v.verdict == "incorrect" and "identifier is exact" in v.reason
    assert V.rule_verdict(gold, "Final answer: ALG").verdict == "correct"
    assert V.rule_verdict(gold, "Final answer: ALG (Houari Boumediene Airport)").verdict == "correct"
    # switched off: the name falls through to the judge, which accepts it (the row the audit caught)
    monkeypatch.setattr(V, "AnswerKind", type("K", (), {"IDENTIFIER": object(), "DATE": V.AnswerKind.DATE}))
    assert V.rule_verdict(gold, "Final answer: Algiers") is None
