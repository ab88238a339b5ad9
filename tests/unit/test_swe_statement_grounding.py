"""Statements grounded in the observed failure (no Docker): a failing test reduced to a snippet, the snippet's
runs before/after the fix (here with this Python on small trees: tests/support/local_repro.py), the default
statement written from them, and LLM statements checked against them (the hand-labelled set)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import crucible.pipelines.swe.statement_repro as sr
from crucible.pipelines.swe import statement_facts as sf
from crucible.pipelines.swe import statement_log as sl
from crucible.pipelines.swe.patches import file_diff
from crucible.pipelines.swe.statement_source import Unreducible, reduce_test, render
from crucible.pipelines.swe.statements import write_statement
from tests.support.local_repro import run_code_locally
from tests.support.trees import write_tree

DATA = Path(__file__).resolve().parent.parent / "data" / "swe"
LIB_GOOD = "def take_every(n, seq):\n    return list(seq)[0::n]\n\n\ndef _check(n):\n    if n < 1:\n" \
           "        raise ValueError('n must be positive')\n\n\ndef head(seq):\n    _check(1)\n    return seq[0]\n\n\n" \
           "def check_size(n):\n    _check(n)\n    return n\n"
LIB_BUG = LIB_GOOD.replace("[0::n]", "[1::n]").replace("return seq[0]", "return seq[5]").replace("if n < 1", "if n < 0")
TESTS = '''import unittest

import pytest

from lib import check_size, head, take_every, _check


def test_take_every():
    data = [10, 20, 30, 40, 50]
    assert len(data) == 5
    assert take_every(2, data) == [10, 30, 50]


@pytest.mark.parametrize("seq, first", [([1, 2], 1), ("ab", "a")])
def test_head(seq, first):
    assert head(seq) == first


@pytest.mark.parametrize("seq, first", [("x y", "x")])
def test_head_words(seq, first):
    assert head(seq) == first


def test_private():
    with pytest.raises(ValueError):
        _check(0)


def test_fixture(tmp_path):
    assert tmp_path


class Base:
    Seq = list

    def test_head_seq(self):
        self.assertEqual(1, head(self.Seq([1, 2])))


class HeadTest(unittest.TestCase, Base):
    def test_raises(self):
        with self.assertRaises(ValueError):
            check_size(0)
'''


def tree(tmp_path, lib: str, name: str) -> Path:
    return write_tree(tmp_path / name, {"lib.py": lib, "tests/test_lib.py": TESTS})


def inst(f2p, log: str = "") -> dict:
    return {"instance_id": "demo-1", "repo": "demo/lib", "base_commit": "b", "test_patch": "",
            "patch": file_diff("lib.py", LIB_BUG, LIB_GOOD), "FAIL_TO_PASS": f2p, "PASS_TO_PASS": [],
            "env_image": "img", "recipe": {"test_cmd": "python -m pytest"}, "problem_statement": "",
            "meta": {"function": "take_every", "path": "lib.py", "failing_output": log}}


@pytest.fixture
def local(monkeypatch, tmp_path):
    """ground() on the small trees, each snippet run with this Python instead of a container."""
    before, after = tree(tmp_path, LIB_BUG, "before"), tree(tmp_path, LIB_GOOD, "after")
    monkeypatch.setattr(sr, "_trees", lambda ctx, i, tmp: (before, after))
    monkeypatch.setattr(sr, "run_code", run_code_locally)
    return SimpleNamespace(workdir=tmp_path), before


SCFG = {"repro_timeout_s": 30, "repro_max_tests": 3, "attempts": 1, "style": "issue"}


# ---------------------------------------------------------------- reduction


def test_reduce_module_function_param_binding_and_unittest_mixin(tmp_path):
    t = tree(tmp_path, LIB_GOOD, "t")
    r = reduce_test(t, "tests/test_lib.py::test_take_every")
    assert r.imports == ["from lib import take_every"] and [s.code for s in r.steps][-1].startswith("assert take_every")
    assert render(r, 2, "value").endswith("print(repr(take_every(2, data)))\n")
    h = reduce_test(t, "tests/test_lib.py::test_head[ab-a]")
    assert h.prelude == ["seq = 'ab'", "first = 'a'"]
    m = reduce_test(t, "tests/test_lib.py::HeadTest::test_head_seq")  # inherited, self.assertEqual, self.Seq
    assert m.steps[0].code == "assert 1 == head(list([1, 2]))"
    assert render(m, 0, "value").endswith("print(repr(head(list([1, 2]))))\n")  # the literal side is the expected
    rz = reduce_test(t, "tests/test_lib.py::HeadTest::test_raises")
    assert rz.steps[0].raises == "ValueError" and render(rz, 0, "no_raise").endswith("check_size(0)\n")


@pytest.mark.parametrize("tid, why", [
    ("tests/test_lib.py::test_fixture", "uses fixtures (tmp_path)"),
    ("tests/test_lib.py::test_head", "parametrized test without its id"),
    ("tests/test_lib.py::test_head[zz]", "matches 0 rows"),
    ("tests/test_lib.py::test_nope", "not found"),
])
def test_reduce_refuses_what_it_cannot_run_honestly(tmp_path, tid, why):
    with pytest.raises(Unreducible, match=why.replace("(", r"\(").replace(")", r"\)")):
        reduce_test(tree(tmp_path, LIB_GOOD, "t"), tid)


def test_reduce_refuses_test_helpers_and_other_pytest_use(tmp_path):
    t = write_tree(tmp_path / "t", {"tests/test_x.py": "import pytest\nfrom .helpers import make\n\n"
                                    "def _mk():\n    return 1\n\ndef test_a():\n    assert make() == 1\n\n"
                                    "def test_b():\n    assert _mk() == 1\n\ndef test_c():\n    pytest.skip('x')\n"})
    for tid, why in (("test_a", "comes from test code"), ("test_b", "helper _mk"), ("test_c", "uses pytest")):
        with pytest.raises(Unreducible, match=why):
            reduce_test(t, f"tests/test_x.py::{tid}")


# ---------------------------------------------------------------- facts from logs and runs


def test_log_failure_reads_pytest_summary_lines():
    log = ("FAILED tests/t.py::test_a - assert [20, 40] == [10, 30, 50]\n"
           "FAILED tests/t.py::K::test_b - KeyError: 1\n"
           "FAILED tests/t.py::test_c[x] - Failed: DID NOT RAISE <class 'ValueError'>\n")
    assert sl.log_failure(log, "tests/t.py::test_a")["exc_type"] == "AssertionError"
    assert sl.log_failure(log, "tests/t.py::K::test_b")[("exc_type")] == "KeyError"
    assert sl.log_failure(log, "tests/t.py::test_c[x]")["did_not_raise"] == "ValueError"
    assert sl.log_failure(log, "tests/t.py::test_z")["source"] == "absent"


def test_reproduced_rejects_each_way_a_snippet_can_disagree():
    ok = {"exit_code": 0, "exc_type": None, "message": None, "value": "1", "timed_out": False}
    ke = dict(ok, exit_code=1, exc_type="KeyError", value=None)
    te = dict(ke, exc_type="TypeError")
    assert sf.reproduced("raise", ke, ok, {"exc_type": "KeyError"})[0] is True
    assert "statement says KeyError" in sf.reproduced("raise", te, ok, {"exc_type": "KeyError"})[1]
    assert "still fails" in sf.reproduced("raise", ke, ke, {"exc_type": "KeyError"})[1]
    assert "both print" in sf.reproduced("value", ok, ok, {"got": None})[1]
    assert sf.reproduced("value", dict(ok, value="2"), ok, {"got": None})[0] is True
    assert "says nothing is raised" in sf.reproduced("no_raise", ke, ok, {"expected_raises": "KeyError"})[1]
    assert sf.reproduced("no_raise", ok, dict(ke, exc_type="ValueError"), {"expected_raises": "ValueError"})[0]
    assert sf.reproduced("raise", dict(ke, timed_out=True), ok, {"exc_type": "KeyError"}) == (False, "timed out")


def test_claim_must_agree_with_the_before_log(local):
    ctx, before = local
    red = reduce_test(before, "tests/test_lib.py::test_take_every")
    found = sr.discover(ctx, SimpleNamespace(), before, red, 30)
    assert found["index"] == 2 and found["exc_type"] == "AssertionError"
    claim, why = sr.claim_of(red, found, sl.log_failure("FAILED tests/test_lib.py::test_take_every - TypeError: x",
                                                        "tests/test_lib.py::test_take_every"))
    assert claim is None and why == "the snippet raises AssertionError; the test failed with TypeError"
    claim, _ = sr.claim_of(red, found, sl.log_failure("", "tests/test_lib.py::test_take_every"))
    assert claim["kind"] == "value"


# ---------------------------------------------------------------- ground + the default statement


def test_ground_value_failure_and_its_statement(local):
    ctx, _ = local
    i = inst(["tests/test_lib.py::test_fixture", "tests/test_lib.py::test_take_every"],
             log="FAILED tests/test_lib.py::test_take_every - assert [20, 40] == [10, 30, 50]\n")
    g = sr.ground(ctx, i, SCFG)
    rec = g.record
    assert rec["reproduced"] is True and rec["kind"] == "value" and rec["test_id"].endswith("test_take_every")
    assert rec["before"]["value"] == "[20, 40]" and rec["after"]["value"] == "[10, 30, 50]"
    assert rec["tried"] == ["tests/test_lib.py::test_fixture: uses fixtures (tmp_path)"]
    assert rec["log"]["exc_type"] == "AssertionError"
    st = write_statement(i, grounding=g)
    text = st["problem_statement"]
    assert st["statement_origin"] == "observed" and "`[20, 40]`" in text and "`[10, 30, 50]`" in text
    assert rec["snippet"].strip() in text and "lib.py" not in text and sf.name_leaks(text, i, g.facts["names"]) == []
    located = write_statement(i, grounding=g, style="located")["problem_statement"]
    assert "`take_every` (`lib.py`)" in located


def test_ground_raise_and_no_raise_failures(local):
    ctx, _ = local
    g = sr.ground(ctx, inst(["tests/test_lib.py::test_head[ab-a]"]), SCFG)
    assert g.record["kind"] == "raise" and g.record["before"]["exc_type"] == "IndexError"
    assert write_statement(inst([]), grounding=g)["problem_statement"].startswith(
        "`head(seq)` raises where it should not: the snippet below ends with `IndexError: string index out of range`")
    g = sr.ground(ctx, inst(["tests/test_lib.py::HeadTest::test_raises"]), SCFG)
    assert g.record["kind"] == "no_raise" and g.facts["expected_raises"] == "ValueError"
    assert g.record["after"]["exc_type"] == "ValueError" and g.record["before"]["exit_code"] == 0


CUT = "tests/test_lib.py::test_head_words[x"  # SWE-bench's -rA parser splits "test_head_words[x y-x]" on the space
WORDS_LOG = "FAILED tests/test_lib.py::test_head_words[x y-x] - IndexError: string index out of range\n"


def test_full_test_id_recovers_a_cut_swebench_id_only_when_the_log_names_one():
    assert sl.full_test_id("", "t.py::test_a[1-2]") == "t.py::test_a[1-2]"  # complete ids are themselves
    assert sl.full_test_id(WORDS_LOG, CUT) == "tests/test_lib.py::test_head_words[x y-x]"
    assert sl.full_test_id("", CUT) is None  # absent from the log
    two = WORDS_LOG + "FAILED tests/test_lib.py::test_head_words[x z-x] - IndexError: out of range\n"
    assert sl.full_test_id(two, CUT) is None  # ambiguous: never guessed
    assert sl.log_failure(WORDS_LOG, "tests/test_lib.py::test_head_words[x y-x]")["exc_type"] == "IndexError"


def test_ground_reproduces_a_cut_parametrized_id_through_its_full_node_id(local):
    ctx, _ = local
    g = sr.ground(ctx, inst([CUT], log=WORDS_LOG), SCFG)
    assert g.record["reproduced"] is True and g.record["kind"] == "raise"
    assert g.record["test_id"] == "tests/test_lib.py::test_head_words[x y-x]"
    assert g.record["before"]["exc_type"] == "IndexError"
    g = sr.ground(ctx, inst([CUT], log=""), SCFG)  # the log does not show the whole id: skipped with a reason
    assert g.facts is None and "does not show" in g.record["tried"][0]


def test_cut_ids_switched_off_are_not_found(local, monkeypatch):
    ctx, _ = local
    monkeypatch.setattr(sr, "full_test_id", lambda log, tid: tid)
    g = sr.ground(ctx, inst([CUT], log=WORDS_LOG), SCFG)
    assert g.facts is None and "test function of" in g.record["tried"][0] and "not found" in g.record["tried"][0]


def test_statement_naming_a_private_name_of_the_fix_is_dropped_unless_located(local):
    ctx, _ = local
    i = dict(inst(["tests/test_lib.py::test_private"]), meta=dict(inst([])["meta"], function="_check"))
    g = sr.ground(ctx, i, SCFG)  # it reproduces (calling _check(0) raises nothing with the bug), but says _check
    assert g.facts is None and g.record["reason"].endswith("located: names a private name '_check'")
    st = write_statement(i, grounding=g)
    assert st["problem_statement"] is None and st["reason"].startswith("not_reproduced:")
    # with another F2P test that needs no private name, that one is used
    both = dict(i, FAIL_TO_PASS=["tests/test_lib.py::test_private", "tests/test_lib.py::test_take_every"])
    g = sr.ground(ctx, both, SCFG)
    assert g.record["test_id"].endswith("test_take_every") and g.record["tried"][0].endswith("private name '_check'")
    located = sr.ground(ctx, i, dict(SCFG, style="located"))
    assert "_check(0)" in write_statement(i, grounding=located, style="located")["problem_statement"]


def test_name_leaks_switched_off_lets_the_private_name_through(local, monkeypatch):
    ctx, _ = local
    i = dict(inst(["tests/test_lib.py::test_private"]), meta=dict(inst([])["meta"], function="_check"))
    monkeypatch.setattr(sf, "name_leaks", lambda *a, **k: [])
    g = sr.ground(ctx, i, SCFG)
    assert "_check(0)" in write_statement(i, grounding=g)["problem_statement"]


def test_not_reproduced_drops_the_statement_and_switched_off_keeps_a_wrong_one(local, monkeypatch):
    ctx, before = local
    # a test that passes with the bug too: its snippet does not fail before
    (before / "tests" / "test_lib.py").write_text(TESTS + "\n\ndef test_same():\n    assert check_size(3) == 3\n")
    i = inst(["tests/test_lib.py::test_same"])
    g = sr.ground(ctx, i, SCFG)
    assert g.facts is None and "every step passes outside the test runner" in g.record["reason"]
    st = write_statement(i, grounding=g)
    assert st["problem_statement"] is None and st["reason"].startswith("not_reproduced:")
    # switched off (the after run taken as proof enough): a statement that says the after run's output is wrong
    monkeypatch.setattr(sr, "reproduced", lambda *a: (True, "not checked"))
    monkeypatch.setattr(sr, "claim_of", lambda red, found, logged: ({"kind": "value", "index": 0, "got": None}, None))
    g = sr.ground(ctx, i, SCFG)
    bad = write_statement(i, grounding=g)["problem_statement"]
    assert "returns `3`, expected `3`" in bad  # the wrong statement gets through without the check


# ---------------------------------------------------------------- LLM statements


def labelled():
    failures = json.loads((DATA / "statement_failures.json").read_text())["failures"]
    rows = [json.loads(ln) for ln in (DATA / "statement_llm_labels.jsonl").read_text().splitlines() if ln.strip()]
    return failures, rows


def test_hand_labelled_llm_statements_contradicting_ones_caught_right_ones_kept():
    failures, rows = labelled()
    assert len(rows) >= 12 and len({r["failure"] for r in rows}) >= 3
    assert sum(r["label"] == "contradicts" for r in rows) * 2 == len(rows)
    outcome = {}
    for r in rows:
        f = failures[r["failure"]]
        reasons = sf.check_llm(r["statement"], f["facts"], set(f["symbols"]))
        outcome[r["id"]] = reasons
        if r["label"] == "right":
            assert reasons == [], (r["id"], reasons)
        else:
            assert reasons and any(x.startswith(r["contradiction"]) for x in reasons), (r["id"], reasons)
    caught = sum(bool(outcome[r["id"]]) for r in rows if r["label"] == "contradicts")
    kept = sum(not outcome[r["id"]] for r in rows if r["label"] == "right")
    assert (caught, kept) == (len(rows) // 2, len(rows) // 2)


def test_hand_labelled_set_with_the_check_switched_off_keeps_every_contradiction(monkeypatch):
    from crucible.pipelines.swe import statements

    failures, rows = labelled()
    monkeypatch.setattr(sf, "check_llm", lambda *a, **k: [])
    monkeypatch.setattr(sf, "name_leaks", lambda *a, **k: [])
    for r in rows:
        f = failures[r["failure"]]
        g = sr.Grounding(f["facts"], {}, set(f["symbols"]))
        assert statements.llm_check(r["statement"], {"patch": ""}, g, "issue") is None  # all kept, wrong ones too


class Scripted:
    def __init__(self, *texts):
        self.texts, self.calls = list(texts), []

    def chat(self, msgs, prompt=None, sample_index=0):
        self.calls.append(msgs)
        return SimpleNamespace(text=self.texts[sample_index], error=None)


def test_llm_statement_kept_with_its_snippet_and_a_contradicting_one_recorded(local):
    from crucible.pipelines.llm import load_prompt

    ctx, _ = local
    i = inst(["tests/test_lib.py::test_take_every"])
    g = sr.ground(ctx, i, SCFG)
    wrong = "`take_every(2, data)` raises IndexError for five items; I expected it to return [10, 30, 50] instead."
    right = "`take_every(2, data)` returns [20, 40] for a five item list, but it should return [10, 30, 50] here."
    llm = Scripted(wrong, right)
    prompt = load_prompt("swe_statement")
    st = write_statement(i, llm, prompt, attempts=2, grounding=g)
    assert st["statement_origin"] == "llm" and st["problem_statement"].startswith(right)
    assert g.facts["snippet"].strip() in st["problem_statement"] and st["statement_prompt_version"] == "swe_statement@2"
    assert st["rejected"] == ["wrong_error: names IndexError, the observed failure is no exception (a wrong value)"]
    assert "print(repr(take_every(2, data)))" in llm.calls[0][-1]["content"]  # the model saw the snippet and runs
    only_wrong = write_statement(i, Scripted(wrong), prompt, grounding=g)
    assert only_wrong["statement_origin"] == "observed" and only_wrong["rejected"] and \
        only_wrong["reason"].startswith("wrong_error")


# ---------------------------------------------------------------- curation


def test_curate_drops_an_instance_whose_statement_does_not_reproduce(monkeypatch):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe import curate
    from tests.support import samples
    from tests.support.local_repro import grounding

    rolled = []
    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", lambda *a, **k: rolled.append(a))
    monkeypatch.setattr("crucible.pipelines.swe.statement_repro.ground", lambda ctx, i, scfg: grounding(reproduced=False))
    cfg = load_config("swe", ["swe.statements.use_llm=false"]).to_dict()
    res = curate.curate_instance(None, dict(samples.swe_instance(1), problem_statement=""),
                                 samples.swe_validation(1), cfg=cfg, run_id="r1")
    assert "swe_instances" not in res.rows and not rolled  # no statement, no instance, no rollout
    (v,) = res.rows["swe_validations"]
    assert (v["status"], v["failed_at"], v["failure_kind"]) == ("invalid", "statement", "filtered")
    (f,) = res.rows["failures"]
    assert f["stage"] == "statement" and f["reason"] == v["reason"]
    assert f["reason"] == "not_reproduced: before and after both print [10, 30, 50]"


def test_reduce_stacked_and_named_parametrize_subtests_and_raises_regex(tmp_path):
    t = write_tree(tmp_path / "t", {"tests/test_p.py": '''import unittest

import pytest

from lib import head

ROWS = [([1], 1), ([2, 3], 2)]
TWICE = [1]
TWICE += [2]


@pytest.mark.parametrize("a", [1, 2])
@pytest.mark.parametrize("b", ["x", "y"])
def test_stacked(a, b):
    assert head([a, b]) == a


@pytest.mark.parametrize("seq, first", ROWS)
def test_named(seq, first):
    assert head(seq) == first


@pytest.mark.parametrize("v", TWICE)
def test_rebound(v):
    assert head([v]) == v


@pytest.mark.parametrize("v", [0, 0])
def test_dup(v):
    assert head([v]) == v


class T(unittest.TestCase):
    def test_sub(self):
        for seq in ([1], [2]):
            with self.subTest(seq=seq):
                self.assertEqual(head(seq), seq[0])
        with self.assertRaisesRegex(IndexError, "out of range"):
            head([])
'''})
    st = reduce_test(t, "tests/test_p.py::test_stacked[y-1]")  # bottom decorator first in pytest's id
    assert st.prelude == ["b = 'y'", "a = 1"]
    assert reduce_test(t, "tests/test_p.py::test_named[seq1-2]").prelude == ["seq = [2, 3]", "first = 2"]
    assert reduce_test(t, "tests/test_p.py::test_dup[01]").prelude == ["v = 0"]
    with pytest.raises(Unreducible, match="computed"):  # TWICE is rebound: which value depends on the line
        reduce_test(t, "tests/test_p.py::test_rebound[2]")
    sub = reduce_test(t, "tests/test_p.py::T::test_sub")
    assert "subTest" not in sub.steps[0].code and "assert head(seq) == seq[0]" in sub.steps[0].code
    assert sub.steps[1].raises == "IndexError" and sub.steps[1].code == "head([])"


def test_prune_leaves_out_read_only_checks_before_the_failing_step(tmp_path):
    from crucible.pipelines.swe.statement_source import is_check

    r = reduce_test(tree(tmp_path, LIB_GOOD, "t"), "tests/test_lib.py::test_take_every")
    assert "assert len(data) == 5" not in render(r, 2, "value", prune=True)
    assert "assert len(data) == 5" in render(r, 2, "value")
    assert is_check("assert len(x) == 2") and not is_check("assert c[1] == 1") and not is_check("assert f(1)")


def test_a_printed_value_the_test_never_saw_is_no_reproduction(local, monkeypatch):
    ctx, _ = local
    seen = "FAILED tests/test_lib.py::test_take_every - assert [20, 40] == [10, 30, 50]\n"
    other = "FAILED tests/test_lib.py::test_take_every - assert [99] == [10, 30, 50]\n"
    assert sr.ground(ctx, inst(["tests/test_lib.py::test_take_every"], log=seen), SCFG).record["reproduced"]
    g = sr.ground(ctx, inst(["tests/test_lib.py::test_take_every"], log=other), SCFG)
    assert g.facts is None and "the snippet prints [20, 40]; the test saw assert [99] == [10, 30, 50]" in g.record["reason"]
    monkeypatch.setattr(sr, "log_disagrees", lambda *a: None)  # switched off: the log is not consulted
    assert sr.ground(ctx, inst(["tests/test_lib.py::test_take_every"], log=other), SCFG).record["reproduced"]
    assert sl.log_disagrees({"message": "assert <Foo object> == 2"}, {"value": "3"}) is None  # cannot tell


def test_a_value_too_long_to_read_keeps_the_assertion(local, monkeypatch):
    ctx, _ = local
    monkeypatch.setattr(sr, "MAX_VALUE_CHARS", 5)
    g = sr.ground(ctx, inst(["tests/test_lib.py::test_take_every"]), SCFG)
    assert g.record["kind"] == "raise" and g.record["before"]["exc_type"] == "AssertionError"
    assert g.record["snippet"].endswith("assert take_every(2, data) == [10, 30, 50]\n")
    assert "fails its check" in write_statement(inst([]), grounding=g)["problem_statement"]


def test_render_redacts_private_names_in_error_messages_and_quotes_the_failing_line():
    facts = {"kind": "raise", "snippet": "from c import MRU\n\ncache = MRU(2)\ndel cache[1]\n", "call": "MRU",
             "before": {"exc_type": "AttributeError", "message": "'MRU' object has no attribute '_MRU__order'"},
             "after": {"exit_code": 0}}
    text = sf.render(facts)
    assert text.startswith("`del cache[1]` raises where it should not: the snippet below ends with "
                           "`AttributeError`;")  # the message names the fix's internals: the type only
    assert "_MRU__order" not in text and "<private>" not in text
    assert sf.name_leaks(text, {"patch": ""}) == []
    plain = dict(facts, before={"exc_type": "KeyError", "message": "1"})
    assert "ends with `KeyError: 1`;" in sf.render(plain)  # a message without private names stays
    block = dict(facts, snippet="from c import MRU\n\nfor k in (1, 2):\n    del MRU(2)[k]\n")
    assert sf.render(block).startswith("`MRU` raises")  # a block of lines is no quotable line: the call
    assert sf.redact("bad __init__, _x, a_b, obj._y") == "bad __init__, <private>, a_b, obj.<private>"


def test_render_quotes_the_expression_not_the_assignment_and_the_call_behind_a_printed_variable():
    base = {"kind": "raise", "call": "mru_cache", "before": {"exc_type": "TypeError", "message": "bad"},
            "after": {"exit_code": 0}}
    text = sf.render(dict(base, snippet="import c\n\ncached = c.mru_cache(2)(len)\n"))
    assert text.startswith("`c.mru_cache(2)(len)` raises where it should not")
    value = {"kind": "value", "call": "substrings", "before": {"value": "[]"}, "after": {"value": "[[0]]"},
             "snippet": "import mi\n\nseq = [0]\nactual = list(mi.substrings(seq))\nexpected = [[0]]\n"
                        "print(repr(actual))\n"}
    assert sf.render(value).startswith("`list(mi.substrings(seq))` returns `[]`, expected `[[0]]`")


def test_truncated_summary_lines_agree_by_prefix():
    line = "FAILED a.py::T::t - {}\n"
    cases = [("Attr...", "AttributeError", "x", True), ("Key...", "AttributeError", "x", False),
             ("asse...", "AssertionError", "", True), ("AssertionError: 2 != ...", "AssertionError", "", True),
             ("semver.version.VersionErr...", "VersionError", "x", True), ("ValueError: bad v...", "ValueError",
                                                                          "other", False)]
    for text, exc, msg, want in cases:
        logged = sl.log_failure(line.format(text), "a.py::T::t")
        assert logged["source"] == "truncated" and sl.log_agrees(logged, exc, msg) is want, text
    dnr = sl.log_failure(line.format("Failed: DID NOT RAISE <cl..."), "a.py::T::t")
    assert sl.log_agrees(dnr, None, None, "ValueError") and not sl.log_agrees(dnr, "KeyError", "1")


def test_helper_methods_that_only_return_are_inlined(tmp_path):
    t = write_tree(tmp_path / "t", {"tests/test_d.py": '''import unittest

import lib


class Mixin:
    def make(self, n, **kw):
        return self.FACTORY(n, **kw)

    def busy(self, n):
        x = n
        return x

    def test_make(self):
        self.assertEqual(self.make(2, strict=True), 2)

    def test_busy(self):
        self.assertEqual(self.busy(2), 2)


class T(unittest.TestCase, Mixin):
    FACTORY = staticmethod(lib.check_size)
'''})
    r = reduce_test(t, "tests/test_d.py::T::test_make")
    assert r.imports == ["import lib"] and r.steps[0].code == "assert lib.check_size(2, strict=True) == 2"
    with pytest.raises(Unreducible, match="uses self.busy"):  # more than a return: not inlined
        reduce_test(t, "tests/test_d.py::T::test_busy")


def test_function_valued_params_use_their_name_and_snippet_variables_are_no_private_api(tmp_path):
    t = write_tree(tmp_path / "t", {"tests/test_f.py": "import pytest\n\nfrom lib import head, check_size\n\n\n"
                                    "@pytest.mark.parametrize('fn, arg', [(head, [1]), (check_size, 2)])\n"
                                    "def test_fn(fn, arg):\n    assert fn(arg)\n"})
    assert reduce_test(t, "tests/test_f.py::test_fn[check_size-2]").prelude == ["fn = check_size", "arg = 2"]
    text = "x\n\n```python\nc = Cache(2, ttu=lambda _key, v: 1)\nc._data\n```"
    assert sf.name_leaks(text, {"patch": ""}) == ["names a private name '_data'"]  # _key is the snippet's own


LOOP_TESTS = '''from lib import take_every


def test_take_every_loop():
    for n in (1, 2):
        got = take_every(n, [10, 20, 30, 40, 50])
        assert len(got) >= 3
        assert got[0] == 10
'''


def test_a_failed_assertion_in_a_block_is_named_in_the_headline(monkeypatch, tmp_path):
    """The snippet is a loop of several checks: the headline names the one that failed (the run's traceback
    line in the snippet), not only "fails its check"."""
    before = write_tree(tmp_path / "before", {"lib.py": LIB_BUG, "tests/test_lib.py": LOOP_TESTS})
    after = write_tree(tmp_path / "after", {"lib.py": LIB_GOOD, "tests/test_lib.py": LOOP_TESTS})
    monkeypatch.setattr(sr, "_trees", lambda ctx, i, tmp: (before, after))
    monkeypatch.setattr(sr, "run_code", run_code_locally)
    g = sr.ground(SimpleNamespace(workdir=tmp_path), inst(["tests/test_lib.py::test_take_every_loop"]), SCFG)
    assert g.facts is not None and g.facts["kind"] == "raise" and g.facts["check"] == "assert got[0] == 10"
    text = write_statement(inst([]), grounding=g)["problem_statement"]
    assert text.startswith("`take_every` fails the check `assert got[0] == 10` where it should not: the snippet "
                           "below ends with `AssertionError`;")
    assert "line" not in g.record["before"]  # the stored record keeps the schema's fields
    # switched off (no traceback line read): the headline cannot say which of the loop's checks failed
    monkeypatch.setattr(sf, "SNIPPET_FRAME", sf.re.compile(r"(?!)"))
    g = sr.ground(SimpleNamespace(workdir=tmp_path), inst(["tests/test_lib.py::test_take_every_loop"]), SCFG)
    assert g.facts["check"] is None
    assert write_statement(inst([]), grounding=g)["problem_statement"].startswith("`take_every` fails its check")


def test_failed_check_quotes_only_a_whole_short_assert_of_the_snippet():
    snippet = "x = 1\nassert (x ==\n    2)\nassert x == 2\nprint(x)\n"
    run = {"exc_type": "AssertionError", "line": 4}
    assert sf.failed_check(snippet, run) == "assert x == 2"
    assert sf.failed_check(snippet, dict(run, line=2)) is None  # the first line of a split assert
    assert sf.failed_check(snippet, dict(run, line=5)) is None  # not an assert
    assert sf.failed_check(snippet, dict(run, line=9)) is None  # not in the snippet
    assert sf.failed_check(snippet, dict(run, exc_type="KeyError")) is None
    assert sf.failed_check("assert " + "x" * 120 + " == 1\n", dict(run, line=1)) is None  # too long to quote
    out = 'Traceback (most recent call last):\n  File "<stdin>", line 4, in <module>\n  File "/t/lib.py", line 9, ' \
          'in f\nAssertionError\n'
    assert sf.parse_run(1, out)["line"] == 4 and sf.parse_run(0, "ok\n")["line"] is None
