"""The SWE rollout prompt asks for what the SFT filters keep (issue 24 item 2): the failure reproduced before
the first edit (``crucible.pipelines.swe.filters.f_reproduced``: a test run or a python run that shows it), the tests
run again after the edit."""

from crucible.pipelines.swe.rollout import task_messages


def test_the_task_asks_to_reproduce_the_failure_before_editing_and_to_test_after():
    text = task_messages({"repo": "acme/tiny", "problem_statement": "add() subtracts"})[1]["content"]
    first, _, rest = text.partition("then find the code")
    assert "reproduce the failure before any edit" in first and "python -m pytest" in first
    assert "str_replace" in rest and "run the tests again" in rest and rest.index("str_replace") < rest.index("submit")
