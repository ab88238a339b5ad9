"""The input-row validator: first error as (field, reason) with the fix; closest names; duplicate ids."""

import jsonschema
import pytest

from crucible.pipelines.rowcheck import RowError, check_rows, check_unique, row_problem, schema_of
from crucible.pipelines.textio import closest

DIFF = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
ROW = {"repo": "o/r", "instance_id": "o__r-1", "base_commit": "a" * 40, "patch": DIFF, "test_patch": DIFF}


def test_closest_names_typos_and_case():
    known = ["FAIL_TO_PASS", "PASS_TO_PASS", "patch", "test_patch"]
    assert closest("FAIL_TO_PAS", known) == "FAIL_TO_PASS"
    assert closest("fail_to_pass", known) == "FAIL_TO_PASS"
    assert closest("zzz", known) is None


def test_unknown_field_is_an_error_and_without_the_check_it_would_pass_silently():
    row = dict(ROW, FAIL_TO_PAS=["t.py::test_a"])
    assert row_problem("swebench_row", row) == ("FAIL_TO_PAS", "unknown field; did you mean 'FAIL_TO_PASS'?")
    assert row_problem("swebench_row", ROW) is None
    off = dict(schema_of("swebench_row"), additionalProperties=True)  # the check switched off
    assert not list(jsonschema.Draft202012Validator(off).iter_errors(row))  # the typo's labels would be lost


def test_first_error_order_row_level_then_schema_order():
    assert row_problem("judge_row", [1]) == (None, "a row must be a JSON object, got a list")
    field, why = row_problem("judge_row", {"question": 3, "gold": [], "prediction": "x"})
    assert field == "question" and why.startswith("must be string, got a number")
    field, why = row_problem("kg_entity", {"id": "a", "type": "t", "name": "n", "aliases": ["x", 2]})
    assert field == "aliases[1]" and "must be string" in why


def test_check_rows_names_file_and_line_and_check_unique_both_places():
    rows = [(1, {"question": "q", "gold": "x", "prediction": "p"}), (4, {"question": "q", "prediction": "p"})]
    it = check_rows("judge_row", rows, "f.jsonl")
    assert next(it)[0] == 1
    with pytest.raises(RowError, match=r"f.jsonl:4: field gold: required field missing .*schemas/judge_row.json"):
        next(it)
    seen = check_unique([("a", "f:1"), ("b", "f:2")], "id")
    with pytest.raises(RowError, match="g:7: duplicate id 'a', already at f:1"):
        check_unique([("a", "g:7")], "id", seen=seen)
