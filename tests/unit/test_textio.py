"""Text inputs: a bad file is an error naming file, line and column, never a traceback."""

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.textio import InputError, read_jsonl, read_text


def test_non_utf8_names_line_and_column(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"run:\n  limit: \xff3\n")
    with pytest.raises(InputError, match=r"x.yaml: line 2, column 10: not UTF-8 text \(byte 0xff\)"):
        read_text(p, "config file")


def test_directory_missing_and_bom(tmp_path):
    with pytest.raises(InputError, match="is a directory; expected a config file"):
        read_text(tmp_path, "config file")
    with pytest.raises(InputError, match="no such input file"):
        read_text(tmp_path / "nope")
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfhello")
    assert read_text(tmp_path / "b.txt") == "hello"


def test_jsonl_names_the_bad_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n')
    it = read_jsonl(p)
    assert next(it) == (1, {"a": 1})
    with pytest.raises(InputError, match=r"rows.jsonl: line 3, column \d+: not valid JSON"):
        next(it)


@pytest.mark.parametrize("make, expect", [
    (lambda d: (d / "c.yaml").write_bytes(b"llm:\n  model: caf\xe9\n") and d / "c.yaml", "line 2, column 13: not UTF-8"),
    (lambda d: d, "is a directory"),
    (lambda d: (d / "p.yaml").write_bytes(b"extends: parent.yaml\n") and (d / "parent.yaml").write_bytes(b"\x80")
     and d / "p.yaml", "parent.yaml: line 1, column 1: not UTF-8"),
])
def test_config_inputs_exit_2_naming_the_file(tmp_path, capsys, make, expect):
    path = make(tmp_path)
    assert main(["config", "validate", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
