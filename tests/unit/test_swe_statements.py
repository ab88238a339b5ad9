from crucible.pipelines.llm import LLMClient, load_prompt
from crucible.pipelines.swe.patches import file_diff
from crucible.pipelines.swe.statements import leak_check, scrub_failure, write_statement
from tests.support.fake_llm_server import FakeOpenAIServer, Reply
from tests.support.local_repro import grounding

PATCH = file_diff("toolz/itertoolz.py", "    return itertools.islice(seq, 1, None, n)\n",
                  "    return itertools.islice(seq, 0, None, n)\n")
INST = {"repo": "pypi/toolz", "instance_id": "i1", "problem_statement": "", "patch": PATCH,
        "FAIL_TO_PASS": ["toolz/tests/test_itertoolz.py::test_take_nth[2]"],
        "PASS_TO_PASS": ["toolz/tests/test_itertoolz.py::test_first"],
        "meta": {"function": "take_nth", "path": "toolz/itertoolz.py",
                 "failing_output": "toolz/tests/test_itertoolz.py::test_take_nth FAILED\n"
                                   "E   assert [20, 40] == [10, 30, 50]\n===== short test summary info =====\n"}}
GOOD = ("When I call take_nth(2, [10, 20, 30, 40, 50]) I get [20, 40], but the documentation says the result "
        "is [10, 30, 50]. It looks like the first element is skipped.")


def test_leak_check_rejects_test_names_pytest_and_fix_lines():
    assert leak_check(GOOD, INST) == (True, None)
    assert leak_check(GOOD + " Found by test_take_nth.", INST)[1] == "leak: names the test test_take_nth"
    assert leak_check(GOOD + " Run pytest to see.", INST)[1].startswith("leak: mentions")
    assert leak_check(GOOD + " Use `return itertools.islice(seq, 0, None, n)`.", INST)[1].startswith("leak: quotes")
    assert leak_check("broken", INST)[1].startswith("too_short")
    for tail in (" This issue can be fixed by changing the start to 0.", " Here's the updated code: ...",
                 " To fix this, start at the first item.", " The solution is to start at index 0.",
                 # the embedded model's own words in a default run (kept before: a statement that gives the fix)
                 " The correct approach is to simply return an empty iterator when obj is None.",
                 " This fix ensures that the library behaves as expected."):
        assert leak_check(GOOD + tail, INST)[1].startswith("leak: proposes a fix"), tail


def test_fix_words_leave_plain_reports_alone():
    """The tighter fix check must not reject what a user writes about the symptom."""
    for ok in (GOOD, GOOD + " I expected the documented output; the fixture data is in the example above.",
               GOOD + " Is there a way to get the documented behaviour?", GOOD + " Just calling it twice shows it."):
        assert leak_check(ok, INST) == (True, None), ok


def test_scrub_failure_removes_test_names_and_paths():
    s = scrub_failure(INST["meta"]["failing_output"], INST)
    assert "test_take_nth" not in s and "tests/" not in s and "short test summary" not in s
    assert "assert [20, 40] == [10, 30, 50]" in s


def test_issue_text_is_kept_and_without_a_reproduction_there_is_no_statement():
    kept = write_statement(dict(INST, problem_statement="Real issue text."))
    assert kept["statement_origin"] == "issue" and kept["problem_statement"] == "Real issue text."
    none = write_statement(INST)
    assert none["problem_statement"] is None and none["reason"] == "not grounded"
    dropped = write_statement(INST, grounding=grounding(reproduced=False))
    assert dropped["problem_statement"] is None and dropped["reason"].startswith("not_reproduced: before and after")
    t = write_statement(INST, grounding=grounding())
    assert t["statement_origin"] == "observed" and t["reason"] == "no_llm"
    assert "`[20, 40]`" in t["problem_statement"] and leak_check(t["problem_statement"], INST)[0]
    assert "toolz/itertoolz.py" not in t["problem_statement"]  # no location in the default (issue) style


def test_llm_statement_with_leak_is_refused_and_clean_one_is_kept():
    prompt = load_prompt("swe_statement")
    with FakeOpenAIServer() as srv:
        c = LLMClient([srv.base_url], "m", cache=False, backoff_initial_s=0.01)
        srv.script(Reply(content=GOOD + " The check test_take_nth fails."), Reply(content=GOOD))
        leaked = write_statement(INST, c, prompt, grounding=grounding())
        clean = write_statement(INST, c, prompt, sample_index=1, grounding=grounding())
        sent = srv.chat_requests[0]["messages"]
    assert leaked["statement_origin"] == "observed" and leaked["reason"].startswith("leak")
    assert leaked["rejected"] == [leaked["reason"]]
    assert clean["statement_origin"] == "llm" and clean["statement_prompt_version"] == "swe_statement@2"
    assert clean["problem_statement"].startswith(GOOD) and "print(repr(list(take_nth" in clean["problem_statement"]
    user = sent[-1]["content"]
    assert "islice(seq, 0, None, n)" in user and "test_take_nth" not in user  # fix shown, tests hidden
    assert "prints [20, 40]" in user and "prints [10, 30, 50]" in user  # and the observed runs


def test_a_refused_sample_is_followed_by_the_next_one_before_the_observed_statement():
    prompt = load_prompt("swe_statement")
    with FakeOpenAIServer() as srv:
        c = LLMClient([srv.base_url], "m", cache=False, backoff_initial_s=0.01)
        srv.script(Reply(content=GOOD + " It can be fixed by starting at 0."), Reply(content=GOOD),
                   Reply(content=GOOD + " See test_take_nth."), Reply(content="too short"))
        second = write_statement(INST, c, prompt, attempts=2, grounding=grounding())
        exhausted = write_statement(INST, c, prompt, sample_index=5, attempts=2, grounding=grounding())
        n_requests = len(srv.chat_requests)
    assert second["statement_origin"] == "llm" and second["problem_statement"].startswith(GOOD)
    assert exhausted["statement_origin"] == "observed" and exhausted["reason"].startswith("too_short")
    assert len(exhausted["rejected"]) == 2
    assert n_requests == 4  # two samples each, no more
