import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible.pipelines.swe.sources import InputFileError, read_instances

SAMPLE = "/work/shared/fixtures/swe/swebench_format_sample.jsonl"
DIFF = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


def row(**kw):
    r = {"repo": "o/r", "instance_id": "o__r-1", "base_commit": "a" * 40, "patch": DIFF, "test_patch": DIFF,
         "problem_statement": "it breaks", "FAIL_TO_PASS": '["t.py::test_a"]', "PASS_TO_PASS": ["t.py::test_b"]}
    r.update(kw)
    return r


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_reads_the_swebench_sample_with_json_string_labels(tmp_path):
    from pathlib import Path

    if not Path(SAMPLE).exists():
        pytest.skip("shared sample not present")
    good, problems = read_instances(SAMPLE)
    assert problems == []
    assert len(good) == 3
    first = good[0]
    assert first["instance_id"] == "sqlfluff__sqlfluff-4764"
    assert isinstance(first["FAIL_TO_PASS"], list) and first["FAIL_TO_PASS"][0].startswith("test/cli/")
    assert good[2]["PASS_TO_PASS"] == []


def test_bad_rows_become_problems_naming_file_line_field_and_fix(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [
        row(),
        row(instance_id="o__r-2", base_commit="not-a-sha"),
        "{not json",
        row(instance_id="o__r-3", FAIL_TO_PASS="[1, 2"),
        row(instance_id="o__r-4", patch="just words"),
        {k: v for k, v in row(instance_id="o__r-5").items() if k != "repo"},
        row(),  # duplicate id
        row(instance_id="o__r-6", FAIL_TO_PASS=None, PASS_TO_PASS=None),
    ])
    good, problems = read_instances(f)
    assert [g["instance_id"] for g in good] == ["o__r-1", "o__r-6"]
    assert good[0]["FAIL_TO_PASS"] == ["t.py::test_a"] and good[0]["PASS_TO_PASS"] == ["t.py::test_b"]
    assert good[1]["FAIL_TO_PASS"] is None  # absent labels are computed later
    by_line = {p.line: p for p in problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7]
    assert by_line[2].field == "base_commit" and "hex" in by_line[2].reason
    assert by_line[3].field is None and "JSON" in by_line[3].reason
    assert by_line[4].field == "FAIL_TO_PASS" and "JSON list" in by_line[4].reason
    assert by_line[5].field == "patch" and "git diff" in by_line[5].reason
    assert by_line[6].field == "repo" and "required" in by_line[6].reason
    assert by_line[7].field == "instance_id" and "duplicate of line 1" in by_line[7].reason
    msg = by_line[2].message()
    assert msg.startswith(f"{f}:2 field 'base_commit'")
    assert all(p.payload for p in problems)


def test_parquet_input_with_list_labels(tmp_path):
    rows = [row(FAIL_TO_PASS=["t.py::test_a"], PASS_TO_PASS=[]),
            row(instance_id="o__r-2", repo="bad repo", FAIL_TO_PASS=[], PASS_TO_PASS=[])]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    good, problems = read_instances(path)
    assert [g["instance_id"] for g in good] == ["o__r-1"]
    assert good[0]["FAIL_TO_PASS"] == ["t.py::test_a"] and good[0]["PASS_TO_PASS"] == []
    assert problems[0].line == 2 and problems[0].field == "repo"


def test_unusable_files_raise_with_the_fix(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_instances(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputFileError, match="jsonl"):
        read_instances(tmp_path / "x.csv")
