"""The hostile-input suite, inputs part 2 (issue 25, item 4): ``run.out_dir`` outside the working tree
(warned once), ties broken by key where an audit or ``crucible stats`` reports a maximum, and each input
defense of tests/unit/test_hostile_inputs.py switched off, to show what gets through without it: a
RecursionError from judge and from the YAML composer, a FIFO read that blocks until the test plays the
writer, a gzip bomb unpacked, a YAML alias bomb expanded, a config that holds itself, a duplicate key that
wins silently, an AttributeError on a message that is a string, ``score`` exiting 0 on an empty file...
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from crucible.pipelines import textio
from crucible.pipelines.cli import main
from tests.unit.test_bad_inputs import judge
from tests.unit.test_hostile_inputs import ASSIST, BOMB, DEEP_100K, MSG, deep, deep_obj, rows

# ---- run.out_dir outside the working tree: a warning, once, naming the resolved path

def test_out_dir_outside_the_working_tree_is_warned_about_once(tmp_path, capsys, monkeypatch):
    from crucible.pipelines import config

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(config, "_WARNED_OUT_DIRS", set())
    for _ in range(2):
        assert main(["config", "validate", "--set", "run.out_dir=../../etc"]) == 0
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if "warning: run.out_dir" in ln]
    assert warnings == [f"crucible: warning: run.out_dir '../../etc' is {tmp_path / 'etc'}, outside the working "
                        f"directory {work}; using it (give --out a path inside the working directory if that was "
                        "not meant)"]
    for inside in ("data", str(work / "x"), str(tmp_path / "cache" / "runs"), "gs://bucket/run"):
        assert main(["config", "validate", "--set", f"run.out_dir={inside}"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert not (tmp_path / "etc").exists()  # a warning only: validating writes nothing


def test_out_dir_warning_switched_off_says_nothing(tmp_path, capsys, monkeypatch):
    from crucible.pipelines import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "warn_out_dir", lambda cfg: None)  # where the command calls it
    assert main(["config", "validate", "--set", "run.out_dir=../../etc"]) == 0
    assert capsys.readouterr().err == ""  # ../../etc accepted without a word


# ---- ties: the audit's hub line is the same for the same rows in any order

def _hub_questions(order):
    """Two hubs on two chains each: E:fr (q1, q4) and E:us (q2, q3)."""
    chains = {"q1": ["E:fr", "E:a"], "q2": ["E:us", "E:b"], "q3": ["E:us", "E:c"], "q4": ["E:fr", "E:d"]}
    return [{"question_id": q, "question": "?", "answer": "x", "answer_aliases": [], "pass_rate": 0.5,
             "formalization": {"target": "?x1", "triples": [[chains[q][0], "r", "?x1"]],
                               "binding": {"?x0": chains[q][0], "?x1": chains[q][1]}},
             "lineage": [{"operator": "write", "accepted": True}]} for q in order]


def test_audit_hub_ties_are_broken_by_name_whatever_the_row_order():
    from crucible.pipelines.browse import audit as A

    a1 = A.audit_rows(_hub_questions(["q1", "q2", "q3", "q4"]), [])
    a2 = A.audit_rows(_hub_questions(["q3", "q2", "q4", "q1"]), [])
    assert a1["hub"] == a2["hub"] == {"entity": "E:fr", "questions": 2, "share": 0.5, "tied": 1}
    line = [ln for ln in A.format_audit(a1).splitlines() if "hub:" in ln]
    assert line == ["  hub: E:fr on 2 chains (50%), tied with 1 other(s) (first by name shown) (at most 20%)"]
    assert A.format_audit(a1) == A.format_audit(a2)


def test_audit_ties_switched_off_the_hub_follows_the_row_order(monkeypatch):
    from crucible.pipelines.browse import audit as A

    monkeypatch.setattr(A, "ranked", lambda c, n=None: c.most_common(n))  # the old Counter.most_common
    a1 = A.audit_rows(_hub_questions(["q1", "q2", "q3", "q4"]), [])
    a2 = A.audit_rows(_hub_questions(["q3", "q2", "q4", "q1"]), [])
    assert (a1["hub"]["entity"], a2["hub"]["entity"]) == ("E:fr", "E:us")  # identical rows, another hub


def test_audit_counts_rank_ties_by_key():
    from crucible.pipelines.browse.audit import ranked

    assert ranked(Counter(["b", "a", "c", "c"])) == [("c", 2), ("a", 1), ("b", 1)]
    assert ranked(Counter({"x": 1, None: 1, "y": 1}), 2) == [(None, 1), ("x", 1)]


def _stats_con(keys):
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS k", [keys])
    return con


def _keys(seed):
    import random

    ks = [f"k{i}" for i in range(3000)] * 2
    random.Random(seed).shuffle(ks)
    return ks


def test_stats_count_ties_are_broken_by_key_whatever_the_row_order():
    from crucible.pipelines.store import stats

    sql = "SELECT k, count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
    got = [stats._pairs(_stats_con(_keys(seed)), sql) for seed in range(3)]
    assert got[0] == got[1] == got[2] == [["k0", 2], ["k1", 2], ["k10", 2], ["k100", 2], ["k1000", 2]]


def test_stats_ties_switched_off_the_top_rows_follow_the_row_order():
    sql = "SELECT k, count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
    got = {tuple(_stats_con(_keys(seed)).execute(sql).fetchall()) for seed in range(3)}
    assert len(got) > 1  # the same 6,000 rows, read in another order: other "top" keys


# ---- each defense switched off: what gets through without it

def _file(tmp_path: Path, name: str, content: str) -> str:
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    return str(p)


def _plain_loads(text, where, fix=""):
    return json.loads(text)


def test_depth_limit_switched_off_is_a_recursion_error(tmp_path, monkeypatch):
    path = _file(tmp_path, "j.jsonl", rows(f'{{"question": "q", "gold": {DEEP_100K}, "prediction": "x"}}'))
    monkeypatch.setattr(textio, "loads", _plain_loads)  # json.loads as before
    with pytest.raises(RecursionError):
        main(["browse", "judge", path, "--rules-only", "--no-graph"])


def test_depth_walk_switched_off_lets_a_150_deep_row_through(tmp_path, monkeypatch):
    path = _file(tmp_path, "r.jsonl", rows('{"text": ' + deep(150) + "}"))
    with pytest.raises(textio.InputError, match="deeper than 100 levels"):
        list(textio.read_jsonl(path))
    monkeypatch.setattr(textio, "MAX_DEPTH", 10**9)
    [(_, row)] = list(textio.read_jsonl(path))
    assert str(row["text"]).count("[") == 150


def test_parser_without_its_recursion_net_raises_recursion_error():
    from crucible.pipelines.agent.parse import parse

    with pytest.raises(RecursionError):  # what parse_cmd turns into a one-line error naming the row
        parse("<tool_call>" + deep_obj(5000) + "</tool_call>")


def test_yaml_depth_limit_switched_off_is_a_recursion_error(tmp_path, monkeypatch):
    path = _file(tmp_path, "c.yaml", "run: " + deep(10_000) + "\n")
    monkeypatch.setattr(textio, "MAX_DEPTH", 10**9)
    with pytest.raises(RecursionError):
        main(["config", "validate", "-c", path])


def test_splitlines_switched_off_refuses_valid_json_lines(tmp_path, capsys, monkeypatch):
    path = _file(tmp_path, "j.jsonl", json.dumps(judge(question="Capital\u2028of Peru?"), ensure_ascii=False) + "\n")
    monkeypatch.setattr(textio, "split_lines", lambda text, keepends=False: text.splitlines(keepends))
    assert main(["browse", "judge", path, "--rules-only", "--no-graph"]) == 2  # a valid line refused
    assert "j.jsonl: line 1, column 14: not valid JSON (Unterminated string" in capsys.readouterr().err


def _old_read_bytes(path, what="input file"):
    return Path(path).read_bytes()


def test_regular_file_check_switched_off_a_fifo_hangs(tmp_path, capsys, monkeypatch):
    """The reader blocks in open() until someone writes: the thread is still there after a second; the
    test then plays the writer (opens and closes the FIFO) so that it ends."""
    empty = _file(tmp_path, "e.jsonl", "")
    assert main(["browse", "judge", empty, "--rules-only", "--no-graph"]) == 2  # imports done: what follows waits on open()
    fifo = tmp_path / "j.jsonl"
    os.mkfifo(fifo)
    monkeypatch.setattr(textio, "read_bytes", _old_read_bytes)
    out: list = []
    t = threading.Thread(target=lambda: out.append(main(["browse", "judge", str(fifo), "--rules-only", "--no-graph"])),
                         daemon=True)
    t.start()
    t.join(1.0)
    assert t.is_alive() and not out  # hung on the FIFO
    for _ in range(100):  # the writer: open (the reader's open returns), close (it reads EOF)
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        t.join(0.2)
        if not t.is_alive():
            break
    assert out == [2] and "the judge rows file is empty" in capsys.readouterr().err


def test_a_fifo_swapped_in_after_the_check_is_still_refused_without_blocking(tmp_path, monkeypatch):
    fifo = tmp_path / "j.jsonl"
    os.mkfifo(fifo)
    monkeypatch.setattr(textio, "check_regular_file", lambda path, what="input file": None)  # the race
    with pytest.raises(textio.InputError, match="is a FIFO"):  # O_NONBLOCK open + fstat: no hang
        textio.read_text(fifo, "judge rows file")


def test_size_limits_switched_off_the_gzip_bomb_unpacks(tmp_path, monkeypatch):
    bomb = tmp_path / "j.jsonl.gz"
    bomb.write_bytes(gzip.compress(b" " * 4_000_000 + b"\n"))
    line = _file(tmp_path, "l.jsonl", json.dumps({"q": "x" * 2000}) + "\n")
    monkeypatch.setattr(textio, "MAX_FILE_BYTES", 1_000_000)
    monkeypatch.setattr(textio, "MAX_LINE_CHARS", 1000)
    with pytest.raises(textio.InputError, match="unpacks to more than 1,000,000 bytes"):
        textio.read_bytes(bomb)
    with pytest.raises(textio.InputError, match="over the 1,000 limit"):
        list(textio.read_jsonl(line))
    monkeypatch.setattr(textio, "MAX_FILE_BYTES", 10**12)
    monkeypatch.setattr(textio, "MAX_LINE_CHARS", 10**12)
    assert len(textio.read_bytes(bomb)) == 4_000_001  # 4 MB out of a 4 KB file
    assert len(next(textio.read_jsonl(line))[1]["q"]) == 2000


def _count(value) -> int:
    n, stack = 0, [value]
    while stack:
        node = stack.pop()
        n += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
    return n


def test_alias_limit_switched_off_a_modest_bomb_expands(monkeypatch):
    modest = "\n".join(BOMB.splitlines()[:6]) + "\n"  # six levels: 9^6 leaves
    with pytest.raises(textio.InputError, match="expand to 672,588 extra nodes"):
        textio.load_yaml(modest, "c.yaml")
    monkeypatch.setattr(textio, "MAX_YAML_ALIAS_NODES", 10**12)
    data = textio.load_yaml(modest, "c.yaml")
    assert len(modest) < 400 and _count(data) > 590_000  # what a 400-byte document becomes


def test_recursive_alias_check_switched_off_a_document_holds_itself(monkeypatch):
    monkeypatch.setattr(textio, "_alias_problem", lambda root: None)
    data = textio.load_yaml("run: &a {beam_args: [*a]}\n", "c.yaml")
    assert data["run"]["beam_args"][0] is data["run"]  # every walk of the config (validation, merging) loops


def test_yaml_duplicate_key_check_switched_off_the_last_one_wins(tmp_path, capsys, monkeypatch):
    import yaml

    path = _file(tmp_path, "c.yaml", "llm:\n  max_concurrency: 2\nrun:\n  limit: 1\nllm:\n  max_concurrency: 9\n")
    monkeypatch.setattr(textio, "_yaml_loader", lambda: yaml.SafeLoader)
    assert main(["config", "show", "-c", path]) == 0
    assert "max_concurrency: 9" in capsys.readouterr().out  # the first llm section dropped without a word


def test_config_key_check_switched_off_is_a_type_error(tmp_path, monkeypatch):
    from crucible.pipelines import config

    path = _file(tmp_path, "c.yaml", "llm:\n  1: a\n  b: 2\n")
    monkeypatch.setattr(config, "_check_keys", lambda data, where, at="": None)
    with pytest.raises(TypeError):
        main(["config", "validate", "-c", path])


def test_json_checks_switched_off_what_python_lets_through(tmp_path, monkeypatch):
    nan = _file(tmp_path, "n.jsonl", '{"w": NaN}\n')
    sur = _file(tmp_path, "s.jsonl", '{"w": "a\\ud800"}\n')
    monkeypatch.setattr(textio, "_constant", float)
    monkeypatch.setattr(textio, "_SURROGATE", textio.re.compile("(?!)"))
    [(_, row)] = list(textio.read_jsonl(nan))
    assert json.dumps(row) == '{"w": NaN}'  # written back, no strict JSON reader takes it
    [(_, row)] = list(textio.read_jsonl(sur))
    with pytest.raises(UnicodeEncodeError):
        json.dumps(row, ensure_ascii=False).encode("utf-8")  # fails when the output is written


def test_duplicate_json_key_check_switched_off_grades_against_the_last_gold(tmp_path, capsys, monkeypatch):
    path = _file(tmp_path, "j.jsonl", '{"question": "q", "gold": ["Lima"], "gold": ["Cusco"], "prediction": "Lima"}\n')
    monkeypatch.setattr(textio, "_pairs", dict)
    assert main(["browse", "judge", path, "--rules-only", "--no-graph"]) == 0
    assert '"verdict": "incorrect"' in capsys.readouterr().out  # graded against a gold nobody saw


def test_number_check_switched_off_the_error_names_no_file(tmp_path, capsys, monkeypatch):
    path = _file(tmp_path, "j.jsonl", '{"question": "q", "gold": ["1"], "prediction": "1", "kind": ' + "9" * 5000 + "}\n")
    monkeypatch.setattr(textio, "loads", _plain_loads)
    assert main(["browse", "judge", path, "--rules-only", "--no-graph"]) == 2
    err = capsys.readouterr().err
    assert "Exceeds the limit (4300 digits)" in err and "j.jsonl" not in err


def test_messages_check_switched_off_is_an_attribute_error(tmp_path, monkeypatch):
    from crucible.pipelines import rowcheck

    path = _file(tmp_path, "r.jsonl", rows({"messages": ["hi", 3]}))
    monkeypatch.setattr(rowcheck, "check_messages", lambda messages, *a, **k: messages)
    with pytest.raises(AttributeError):
        main(["parse", path])


def _score(tmp_path, src, dst, srv):
    return main(["score", "--input", str(src), "--output", str(dst), "--out", str(tmp_path),
                 "--set", "llm.reward_model.backend=pooling", "--set", f"llm.reward_model.base_url={srv.url}",
                 "--set", "llm.reward_model.model=rm"])


def test_empty_score_input_switched_off_exits_0_with_an_empty_file(tmp_path, capsys, monkeypatch):
    from crucible.pipelines.commands import score_cmd
    from tests.support.fake_pooling import FakePoolingServer

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(score_cmd, "read_rows", lambda path: [r for _, r in textio.read_jsonl(path)])
    with FakePoolingServer() as srv:
        assert _score(tmp_path, src, dst, srv) == 0
    assert dst.read_text() == "" and '"rows": 0' in capsys.readouterr().out  # silence


def test_output_check_switched_off_fails_after_the_model_ran(tmp_path, monkeypatch):
    from tests.support.fake_pooling import FakePoolingServer

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows({"messages": [MSG, ASSIST]}))
    dst.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(textio, "check_output_file", lambda path, what="": None)
    with FakePoolingServer() as srv, pytest.raises(IsADirectoryError):
        _score(tmp_path, src, dst, srv)
    assert len(srv.requests) == 1  # the scores were paid for, then lost


def test_empty_parse_input_switched_off_prints_an_empty_parse(tmp_path, capsys, monkeypatch):
    from crucible.pipelines.commands import parse_cmd

    path = _file(tmp_path, "r.txt", " \n")
    monkeypatch.setattr(parse_cmd, "checked", lambda value, where, field: value)
    assert main(["parse", path]) == 0
    assert '"final_answer": null' in capsys.readouterr().out


def test_prompt_files_are_read_under_the_yaml_limits(tmp_path, monkeypatch):
    from crucible.pipelines.llm.prompts import PromptError, load_prompt

    (tmp_path / "p.yaml").write_text("id: p\nversion: 1\nuser: hi\n" + BOMB)
    with pytest.raises(PromptError, match=r"p.yaml: YAML aliases \(\*name\) expand to 490,329,036 extra nodes"):
        load_prompt("p", tmp_path)
    (tmp_path / "q.yaml").write_text("id: q\nversion: 1\nuser: hi\nuser: bye\n")
    with pytest.raises(PromptError, match="q.yaml: line 4: key 'user' appears twice"):
        load_prompt("q", tmp_path)
    monkeypatch.setattr(textio, "_yaml_loader", lambda: __import__("yaml").SafeLoader)  # switched off
    assert load_prompt("q", tmp_path).user == "bye"  # the first user message dropped without a word
