"""The hostile-input suite, inputs part (issue 25, item 4): files and configs a careless or hostile user
gives. Every case runs the real CLI in process (as tests/unit/test_bad_inputs.py does) in a thread that
may not block the suite: it must exit 2 with a one-line message naming the file and the line or field
and the fix, print no traceback and write nothing (the case folder, the output folder and the cache
folder unchanged). The good-result cases exit 0 with the right answer. Every defense gets a switch-off
test in tests/unit/test_hostile_inputs_defenses.py showing what gets through without it (a
RecursionError, a hang, a billion-laughs expansion, a silently overridden key...).

A case is ``(id, files, argv, expect)`` or ``(id, files, argv, expect, limits)``: ``files`` as in
test_bad_inputs plus FIFO, SOCKET and ``Link(target)``; ``limits`` lowers textio's limits for the case
(``{"MAX_LINE_CHARS": 1000}``) so that the over-limit file stays small.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from crucible.pipelines import textio
from crucible.pipelines.cli import main
from tests.unit.test_bad_inputs import DIR, _tree, judge, swe
from tests.unit.test_bad_inputs import _materialize as _write_plain

FIFO, SOCKET = object(), object()
WAIT_S = 120  # a case still running after this is a hang (it never is when the defenses hold)


class Link:
    def __init__(self, target: str):
        self.target = target


def deep(n: int, open_="[", close="]", inner: str = "") -> str:
    return open_ * n + inner + close * n


def deep_obj(n: int) -> str:
    return '{"a": ' * n + "1" + "}" * n


BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi")))
FLOW_BOMB = ("[&a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"
             + "".join(f", &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi")) + "]")
MSG = {"role": "user", "content": "hi"}
ASSIST = {"role": "assistant", "content": "<answer>Lima</answer>"}


def call(args: str) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": args}}]}


def rows(*values) -> str:
    return "".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in values)


JUDGE = ["browse", "judge", "{d}/j.jsonl", "--rules-only", "--no-graph"]  # the graph is not under test: fast
JUDGE_GZ = ["browse", "judge", "{d}/j.jsonl.gz", "--rules-only", "--no-graph"]
PARSE = ["parse", "{d}/r.jsonl"]
SCORE = ["score", "--input", "{d}/s.jsonl", "--output", "{d}/out.jsonl"]
VALIDATE = ["config", "validate", "-c", "{d}/c.yaml"]
KG = ["kg", "build", "--out", "{d}/kg", "--set", "search.kg.embedded=false", "--set", "search.kg.extra=[{d}/g.jsonl]"]
PAGES = ["search", "index", "--pages", "{d}/pages.jsonl", "--out", "{d}/corpus"]
GRADE = ["swe", "grade", "--instances", "{d}/i.jsonl", "--predictions", "{d}/p.jsonl", "--out", "{d}/out"]
DIFF = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
PRED = {"instance_id": "o__r-1", "model_name_or_path": "m", "model_patch": DIFF}
INST = rows(swe())
DEEP_LINE = "deeper than 100 levels"
DEEP_100K = deep(100_000)
GOOD_J = judge()

CASES = [
    # ---- nesting: 100,000 levels was a RecursionError traceback in judge, parse and score
    ("judge-deep-100k", {"j.jsonl": rows(f'{{"question": "q", "gold": {DEEP_100K}, "prediction": "x"}}')}, JUDGE,
     ["{d}/j.jsonl: line 1: JSON", DEEP_LINE, "check what wrote this file"]),
    ("judge-deep-objects", {"j.jsonl": rows(GOOD_J, deep_obj(50_000))}, JUDGE, ["{d}/j.jsonl: line 2:", DEEP_LINE]),
    ("judge-deep-101", {"j.jsonl": rows(GOOD_J, GOOD_J, '{"evidence": ' + deep(101) + "}")}, JUDGE,
     ["{d}/j.jsonl: line 3:", DEEP_LINE]),
    ("parse-deep-100k", {"r.jsonl": rows('{"text": ' + DEEP_100K + "}")}, PARSE, ["{d}/r.jsonl: line 1:", DEEP_LINE]),
    ("parse-deep-text-file", {"r.txt": DEEP_100K}, ["parse", "{d}/r.txt"], ["{d}/r.txt: JSON", DEEP_LINE]),
    ("parse-deep-string-field", {"r.jsonl": rows({"text": DEEP_100K})}, PARSE, ["{d}/r.jsonl:1: JSON", DEEP_LINE]),
    ("parse-deep-tool-arguments", {"r.jsonl": rows({"messages": [MSG, call(deep_obj(5000))]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[1].tool_calls[0].function.arguments: JSON", DEEP_LINE]),
    ("parse-react-deep-tool-call", {"r.jsonl": rows({"text": "<tool_call>" + deep_obj(5000) + "</tool_call>"})}, PARSE,
     ["{d}/r.jsonl:1: a tool call nests deeper than the parser can follow", "check what wrote this text"]),
    ("score-deep-100k", {"s.jsonl": rows('{"messages": ' + DEEP_100K + "}")}, SCORE, ["{d}/s.jsonl: line 1:", DEEP_LINE]),
    ("score-deep-tool-arguments", {"s.jsonl": rows({"messages": [MSG, call(deep(3000))]})}, SCORE,
     ["{d}/s.jsonl:1: field messages[1].tool_calls[0].function.arguments: JSON", DEEP_LINE]),
    ("kg-extra-deep", {"g.jsonl": rows('{"id": ' + DEEP_100K + "}")}, KG, ["{d}/g.jsonl: line 1:", DEEP_LINE]),
    ("pages-deep", {"pages.jsonl": rows('{"url": ' + DEEP_100K + "}")}, PAGES, ["{d}/pages.jsonl: line 1:", DEEP_LINE]),
    ("swe-instances-deep", {"i.jsonl": rows('{"repo": ' + DEEP_100K + "}"), "p.jsonl": rows(PRED)}, GRADE,
     ["{d}/i.jsonl:1: JSON", DEEP_LINE]),
    ("swe-predictions-deep", {"i.jsonl": INST, "p.jsonl": rows('{"model_patch": ' + DEEP_100K + "}")}, GRADE,
     ["{d}/p.jsonl:1: JSON", DEEP_LINE]),
    ("kg-query-file-deep", {"f.json": DEEP_100K}, ["kg", "query", "@{d}/f.json"], ["{d}/f.json: JSON", DEEP_LINE]),
    ("llm-schema-deep", {"s.json": deep_obj(20_000)}, ["llm", "chat", "hi", "--schema", "{d}/s.json"],
     ["{d}/s.json: JSON", DEEP_LINE]),
    # ---- `messages` holding non-objects was an AttributeError
    ("parse-messages-strings", {"r.jsonl": rows({"messages": ["hi", 3]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[0]: must be object, got a string", '{"role": "user", "content": "..."}']),
    ("parse-messages-number-second", {"r.jsonl": rows({"messages": [MSG, 7]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[1]: must be object, got a number"]),
    ("parse-messages-null-entry", {"r.jsonl": rows({"messages": [MSG, ASSIST, None]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[2]: must be object, got null"]),
    ("parse-message-role-number", {"r.jsonl": rows({"messages": {"role": 3}})}, PARSE,
     ["{d}/r.jsonl:1: field messages.role: 3 is not allowed", "roles: system, user, assistant, tool"]),
    ("parse-message-without-role", {"r.jsonl": rows({"messages": [{"content": "x"}]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[0].role: required field missing"]),
    ("parse-message-unknown-role", {"r.jsonl": rows({"messages": [{"role": "robot", "content": "x"}]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[0].role: 'robot' is not allowed"]),
    ("parse-content-parts", {"r.jsonl": rows({"messages": [{"role": "user", "content": [{"type": "text"}]}]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[0].content: must be string or null", "content parts are not read"]),
    ("parse-tool-calls-strings", {"r.jsonl": rows({"messages": [dict(call("{}"), tool_calls=["search"])]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[0].tool_calls[0]: must be object, got a string", "a tool call is"]),
    ("parse-tool-function-string", {"r.jsonl": rows({"messages": [dict(call("{}"), tool_calls=[{"function": "f"}])]})},
     PARSE, ["{d}/r.jsonl:1: field messages[0].tool_calls[0].function: must be object"]),
    ("parse-tool-arguments-not-json", {"r.jsonl": rows({"messages": [MSG, call("{oops")]})}, PARSE,
     ["{d}/r.jsonl:1: field messages[1].tool_calls[0].function.arguments: not valid JSON",
      "a JSON-encoded string of one"]),
    ("parse-text-file-list-of-numbers", {"r.txt": "[1, 2]"}, ["parse", "{d}/r.txt"],
     ["{d}/r.txt: field [0]: must be object, got a number"]),
    ("parse-field-messages-numbers", {"r.jsonl": rows({"response": "x", "m": [1]})}, ["parse", "{d}/r.jsonl", "--field", "m"],
     ["{d}/r.jsonl:1: field m[0]: must be object, got a number"]),
    ("score-messages-strings", {"s.jsonl": rows({"messages": [MSG, ASSIST]}, {"messages": ["hi"]})}, SCORE,
     ["{d}/s.jsonl:2: field messages[0]: must be object, got a string"]),
    ("score-messages-missing", {"s.jsonl": rows({"id": 1})}, SCORE, ["{d}/s.jsonl:1: field messages: required field"]),
    ("score-messages-empty-list", {"s.jsonl": rows({"messages": []})}, SCORE,
     ["{d}/s.jsonl:1: field messages: must hold at least 1 item(s)", "non-empty list of OpenAI chat messages"]),
    ("score-messages-a-string", {"s.jsonl": rows({"messages": "hi"})}, SCORE,
     ["{d}/s.jsonl:1: field messages: must be array, got a string"]),
    ("score-row-a-list", {"s.jsonl": rows([MSG])}, SCORE, ["{d}/s.jsonl:1: a row must be a JSON object, got a list"]),
    ("score-content-number", {"s.jsonl": rows({"messages": [{"role": "user", "content": 5}]})}, SCORE,
     ["{d}/s.jsonl:1: field messages[0].content: must be string or null"]),
    ("score-tool-arguments-not-json", {"s.jsonl": rows({"messages": [MSG, call("{'q': 1}")]})}, SCORE,
     ["{d}/s.jsonl:1: field messages[1].tool_calls[0].function.arguments: not valid JSON"]),
    # ---- JSON that Python reads but nothing else should: NaN, a key twice, a lone surrogate, huge integers
    ("judge-nan", {"j.jsonl": rows('{"question": "q", "gold": ["1"], "prediction": NaN}')}, JUDGE,
     ["{d}/j.jsonl: line 1: NaN is not JSON; write null, a number or a string"]),
    ("score-infinity", {"s.jsonl": rows('{"messages": [{"role": "user", "content": "x"}], "w": Infinity}')}, SCORE,
     ["{d}/s.jsonl: line 1: Infinity is not JSON"]),
    ("score-minus-infinity", {"s.jsonl": rows('{"messages": [], "w": -Infinity}')}, SCORE,
     ["{d}/s.jsonl: line 1: -Infinity is not JSON"]),
    ("judge-key-twice", {"j.jsonl": rows('{"question": "q", "gold": ["Lima"], "gold": ["Cusco"], "prediction": "Lima"}')},
     JUDGE, ["{d}/j.jsonl: line 1: key 'gold' appears twice in one object; keep one"]),
    ("parse-key-twice-nested", {"r.jsonl": rows('{"messages": [{"role": "user", "role": "tool", "content": "x"}]}')},
     PARSE, ["{d}/r.jsonl: line 1: key 'role' appears twice"]),
    ("score-lone-surrogate", {"s.jsonl": rows('{"messages": [{"role": "user", "content": "a\\ud800b"}]}')}, SCORE,
     ["{d}/s.jsonl: line 1: a lone UTF-16 surrogate (\\ud800) in a string is not text", "surrogate pair"]),
    ("judge-lone-surrogate-key", {"j.jsonl": rows('{"question": "q", "gold": ["x"], "prediction": "x", "\\udfff": 1}')},
     JUDGE, ["{d}/j.jsonl: line 1: a lone UTF-16 surrogate (\\udfff)"]),
    ("judge-integer-5000-digits", {"j.jsonl": rows('{"question": "q", "gold": ["1"], "prediction": "1", "kind": '
                                                   + "9" * 5000 + "}")}, JUDGE,
     ["{d}/j.jsonl: line 1: an integer of more than 4300 digits; write it as a string"]),
    ("swe-predictions-nan", {"i.jsonl": INST, "p.jsonl": rows('{"instance_id": "o__r-1", "model_name_or_path": NaN}')},
     GRADE, ["{d}/p.jsonl:1: NaN is not JSON"]),
    ("kg-extra-key-twice", {"g.jsonl": rows('{"id": "city/a", "type": "city", "name": "A", "name": "B"}')}, KG,
     ["{d}/g.jsonl: line 1: key 'name' appears twice"]),
    ("judge-old-mac-line-ends", {"j.jsonl": json.dumps(GOOD_J) + "\r" + json.dumps(GOOD_J) + "\r"}, JUDGE,
     ["{d}/j.jsonl: line 1, column", "not valid JSON (Extra data)", "one JSON object per line"]),
    # ---- not a regular file: a FIFO hung, a device never ends; refused by name before opening
    ("judge-fifo", {"j.jsonl": FIFO}, JUDGE, ["{d}/j.jsonl: is a FIFO (named pipe), not a regular file",
                                              "save a stream to a file first"]),
    ("parse-fifo", {"r.jsonl": FIFO}, PARSE, ["{d}/r.jsonl: is a FIFO (named pipe)"]),
    ("parse-text-fifo", {"r.txt": FIFO}, ["parse", "{d}/r.txt"], ["{d}/r.txt: is a FIFO (named pipe)"]),
    ("score-fifo", {"s.jsonl": FIFO}, SCORE, ["{d}/s.jsonl: is a FIFO (named pipe)"]),
    ("config-fifo", {"c.yaml": FIFO}, VALIDATE, ["{d}/c.yaml: is a FIFO (named pipe)"]),
    ("config-extends-fifo", {"c.yaml": "extends: p.yaml\n", "p.yaml": FIFO}, VALIDATE, ["{d}/p.yaml: is a FIFO"]),
    ("kg-extra-fifo", {"g.jsonl": FIFO}, KG, ["{d}/g.jsonl: is a FIFO"]),
    ("kg-extra-parquet-fifo", {"g.parquet": FIFO}, [*KG[:-1], "search.kg.extra=[{d}/g.parquet]"],
     ["{d}/g.parquet: is a FIFO"]),
    ("swe-instances-fifo", {"i.jsonl": FIFO, "p.jsonl": rows(PRED)}, GRADE, ["{d}/i.jsonl: is a FIFO"]),
    ("swe-instances-parquet-fifo", {"i.parquet": FIFO, "p.jsonl": rows(PRED)},
     [*GRADE[:3], "{d}/i.parquet", *GRADE[4:]], ["{d}/i.parquet: is a FIFO"]),
    ("swe-predictions-fifo", {"i.jsonl": INST, "p.jsonl": FIFO}, GRADE, ["{d}/p.jsonl: is a FIFO"]),
    ("pages-fifo", {"pages.jsonl": FIFO}, PAGES, ["{d}/pages.jsonl: is a FIFO"]),
    ("kg-query-fifo", {"f.json": FIFO}, ["kg", "query", "@{d}/f.json"], ["{d}/f.json: is a FIFO"]),
    ("judge-socket", {"j.jsonl": SOCKET}, JUDGE, ["{d}/j.jsonl: is a socket, not a regular file"]),
    ("judge-link-to-fifo", {"f": FIFO, "j.jsonl": Link("f")}, JUDGE, ["{d}/j.jsonl: is a FIFO"]),
    ("judge-dev-zero", {"j.jsonl": Link("/dev/zero")}, JUDGE, ["{d}/j.jsonl: is a character device, not a regular file"]),
    ("parse-dev-urandom", {"r.txt": Link("/dev/urandom")}, ["parse", "{d}/r.txt"], ["{d}/r.txt: is a character device"]),
    ("score-dev-null", {"s.jsonl": Link("/dev/null")}, SCORE, ["{d}/s.jsonl: is a character device"]),
    ("config-dev-zero", {"c.yaml": Link("/dev/zero")}, VALIDATE, ["{d}/c.yaml: is a character device"]),
    ("score-output-directory", {"s.jsonl": rows({"messages": [MSG]}), "out.jsonl": DIR}, SCORE,
     ["{d}/out.jsonl: is a directory; the --output file must be a file path"]),
    ("score-output-fifo", {"s.jsonl": rows({"messages": [MSG]}), "out.jsonl": FIFO}, SCORE,
     ["{d}/out.jsonl: is a FIFO (named pipe); the --output file must be a file path"]),
    # ---- sizes: a line, a file, a gzip bomb (limits lowered for the case so the files stay small)
    ("judge-line-too-long", {"j.jsonl": rows(GOOD_J, judge(question="q" * 2000))}, JUDGE,
     ["{d}/j.jsonl: line 2: 2,", "over the 1,000 limit (textio.MAX_LINE_CHARS)", "split the value"],
     {"MAX_LINE_CHARS": 1000}),
    ("score-file-too-big", {"s.jsonl": rows(*[{"messages": [MSG]}] * 400)}, SCORE,
     ["{d}/s.jsonl: 20,000 bytes, over the 10,000-byte limit for a trajectories file (textio.MAX_FILE_BYTES)",
      "split it into smaller files"], {"MAX_FILE_BYTES": 10_000}),
    ("judge-gzip-bomb", {"j.jsonl.gz": gzip.compress(b" " * 4_000_000 + b"\n")}, JUDGE_GZ,
     ["{d}/j.jsonl.gz: unpacks to more than 1,000,000 bytes"], {"MAX_FILE_BYTES": 1_000_000}),
    ("config-too-big", {"c.yaml": "# pad\n" * 200_000}, VALIDATE,
     ["{d}/c.yaml: 1,200,000 characters of YAML, over the 1,048,576 limit", "a config is a few kilobytes"]),
    # ---- YAML: an alias bomb grew memory until killed
    ("config-alias-bomb", {"c.yaml": BOMB}, VALIDATE,
     ["{d}/c.yaml: YAML aliases (*name) expand to 490,329,036 extra nodes", "over the 10,000 limit", "alias bomb"]),
    ("config-alias-bomb-in-section", {"c.yaml": "run:\n  beam_args: &x [a, a, a, a, a, a, a, a, a, a]\n"
                                      + "".join(f"  k{i}: &x{i} [" + ", ".join(["*x" if i == 0 else f"*x{i - 1}"] * 10)
                                                + "]\n" for i in range(5))}, VALIDATE,
     ["{d}/c.yaml: YAML aliases (*name) expand to", "over the 10,000 limit"]),
    ("config-recursive-alias", {"c.yaml": "run: &a {beam_args: [*a]}\n"}, VALIDATE,
     ["{d}/c.yaml: line 1: an alias refers to the node that holds it", "write the value out instead"]),
    ("config-deep-yaml", {"c.yaml": "run: " + deep(10_000) + "\n"}, VALIDATE,
     ["{d}/c.yaml: line 1: YAML nested deeper than 100 levels", "a config nests a few levels"]),
    ("config-deep-block-yaml", {"c.yaml": "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "x\n"},
     VALIDATE, ["{d}/c.yaml: line 10", "YAML nested deeper than 100 levels"]),
    ("config-duplicate-section", {"c.yaml": "llm:\n  max_concurrency: 2\nrun:\n  limit: 1\nllm:\n  max_concurrency: 9\n"},
     VALIDATE, ["{d}/c.yaml: line 5: key 'llm' appears twice in one mapping (first at line 1); keep one"]),
    ("config-duplicate-key", {"c.yaml": "llm:\n  max_concurrency: 2\n  max_concurrency: 3\n"}, VALIDATE,
     ["{d}/c.yaml: line 3: key 'max_concurrency' appears twice"]),
    ("config-integer-key", {"c.yaml": "llm:\n  1: a\n"}, VALIDATE,
     ["{d}/c.yaml: llm: key 1 is not a name; config keys are strings (quote it: '1')"]),
    ("config-boolean-top-key", {"c.yaml": "true: 1\n"}, VALIDATE, ["{d}/c.yaml: <top level>: key True is not a name"]),
    ("config-python-tag", {"c.yaml": "run: !!python/object/apply:os.system [echo hi]\n"}, VALIDATE,
     ["{d}/c.yaml: not valid YAML", "could not determine a constructor"]),
    ("config-parent-bomb", {"c.yaml": "extends: p.yaml\n", "p.yaml": BOMB}, VALIDATE,
     ["{d}/p.yaml: YAML aliases (*name) expand to"]),
    ("set-alias-bomb", {}, ["config", "validate", "--set", "run.beam_args=" + FLOW_BOMB],
     ["--set run.beam_args: YAML aliases (*name) expand to 490,329,036 extra nodes"]),
    ("set-recursive-alias", {}, ["config", "validate", "--set", "run.beam_args=&a [*a]"],
     ["--set run.beam_args: line 1: an alias refers to the node that holds it"]),
    ("set-deep", {}, ["config", "validate", "--set", "run.beam_args=" + deep(5000)],
     ["--set run.beam_args: line 1: YAML nested deeper than 100 levels"]),
    ("set-integer-key", {}, ["config", "validate", "--set", "llm={1: a}"],
     ["(with --set overrides): llm: key 1 is not a name"]),
    ("set-too-big", {}, ["config", "validate", "--set", "run.run_id=" + "x" * 1_100_000],
     ["--set run.run_id: 1,100,000 characters of YAML, over the 1,048,576 limit"]),
    # ---- empty inputs, where an empty result would be silent
    ("score-empty", {"s.jsonl": ""}, SCORE, ["{d}/s.jsonl: the trajectories file is empty (no JSON rows)"]),
    ("score-blank-lines", {"s.jsonl": "\n \n\r\n"}, SCORE, ["{d}/s.jsonl: the trajectories file is empty"]),
    ("score-empty-gz", {"s.jsonl.gz": gzip.compress(b"")},
     ["score", "--input", "{d}/s.jsonl.gz", "--output", "{d}/out.jsonl"], ["{d}/s.jsonl.gz: the trajectories file is empty"]),
    ("parse-empty-jsonl", {"r.jsonl": "\n"}, PARSE, ["{d}/r.jsonl: the responses file is empty"]),
    ("parse-empty-text", {"r.txt": " \n"}, ["parse", "{d}/r.txt"], ["{d}/r.txt: is empty; nothing to parse"]),
    ("parse-empty-field", {"r.jsonl": rows({"text": ""})}, ["parse", "{d}/r.jsonl", "--field", "text"],
     ["{d}/r.jsonl:1: field text is empty; nothing to parse"]),
    ("judge-blank-lines", {"j.jsonl": "\r\n\n"}, JUDGE, ["{d}/j.jsonl: the judge rows file is empty"]),
]


def _materialize(d: Path, files: dict) -> None:
    special = {k: v for k, v in files.items() if v is FIFO or v is SOCKET or isinstance(v, Link)}
    _write_plain(d, {k: v for k, v in files.items() if k not in special})
    for name, kind in special.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind is FIFO:
            os.mkfifo(p)
        elif kind is SOCKET:  # bound through a relative path: AF_UNIX paths are short
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.relpath(p))
            s.close()
        else:
            os.symlink(kind.target, p)


def _unblock(d: Path) -> None:
    for p in d.rglob("*"):
        if p.is_fifo():
            os.close(os.open(p, os.O_RDWR | os.O_NONBLOCK))  # a reader blocked in open() goes on, then sees EOF


def run_cli(argv: list[str], d: Path) -> int:
    """``main(argv)`` in a daemon thread; a case still running after WAIT_S is a hang: fail (unblocking
    the FIFOs of ``d`` so that the thread ends)."""
    out: list = []

    def target():
        try:
            out.append(main(argv))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(WAIT_S)
    if t.is_alive():
        _unblock(d)
        t.join(10)
        pytest.fail(f"crucible {' '.join(argv)[:200]} still running after {WAIT_S} s: a hang")
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _args(argv, d: Path) -> list[str]:
    return [a.replace("{d}", str(d)) for a in argv]


def test_the_suite_has_at_least_50_distinct_cases():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_exits_2_naming_file_and_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    _, files, argv, expect, *limits = case
    for name, value in (limits[0] if limits else {}).items():
        monkeypatch.setattr(textio, name, value)
    d = tmp_path / "case"
    d.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    _materialize(d, files)
    before = _tree(tmp_path)
    rc = run_cli(_args(argv, d), d)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    wanted = [e.replace("{d}", str(d)) for e in expect]
    assert any(all(e in line for e in wanted) for line in err.splitlines()), err[-3000:]  # one line says it all
    assert _tree(tmp_path) == before  # nothing written: no output folder, no cache, no file touched
    assert not cache.exists()


# ---- hostile but legal: the right result

GOOD = [
    ("judge-u2028-in-question", {"j.jsonl": rows(json.dumps(judge(question="Capital\u2028of Peru?"), ensure_ascii=False))},
     JUDGE, ['"verdict": "correct"'], 1),
    ("judge-crlf", {"j.jsonl": json.dumps(GOOD_J) + "\r\n" + json.dumps(GOOD_J) + "\r\n"}, JUDGE,
     ['"verdict": "correct"'], 2),
    ("parse-line-breaks-in-strings", {"r.jsonl": rows(json.dumps(
        {"text": "a\u2028b\u2029c\x1c\x1d\x1e\x85\x0b\x0c <answer>Lima</answer>"}, ensure_ascii=False))}, PARSE,
     ['"final_answer": "Lima"'], 1),
    ("parse-surrogate-pair", {"r.jsonl": rows('{"text": "<answer>\\ud83d\\ude00</answer>"}')}, PARSE,
     ['"final_answer": "\U0001F600"'], 1),
    ("parse-messages", {"r.jsonl": rows({"messages": [MSG, call('{"q": "Peru"}'), ASSIST]})}, PARSE,
     ['"name": "search"', '"final_answer": "<answer>Lima</answer>"'], 1),
    ("parse-depth-100", {"r.jsonl": rows({"messages": [MSG, call(json.dumps({"q": json.loads(deep(95))}))]})}, PARSE,
     ['"name": "search"'], 1),
    ("judge-gz", {"j.jsonl.gz": gzip.compress(rows(GOOD_J).encode())}, JUDGE_GZ, ['"verdict": "correct"'], 1),
    ("config-small-anchors", {"c.yaml": "run: &r {limit: 3}\nllm: {max_concurrency: 2}\n"}, VALIDATE, ["ok: "], 1),
]


@pytest.mark.parametrize("files, argv, expect, n", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_hostile_but_legal_input_gives_the_right_result(tmp_path, capsys, monkeypatch, files, argv, expect, n):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    _materialize(tmp_path, files)
    rc = run_cli(_args(argv, tmp_path), tmp_path)
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert len(lines) == n, out.out
    for e in expect:
        assert e in out.out, out.out


def test_score_reads_u2028_rows_and_refuses_none(tmp_path, capsys):
    from tests.support.fake_pooling import FakePoolingServer, expected_score

    conv = [{"role": "user", "content": "q\u2028?"}, {"role": "assistant", "content": "a\u2029b correct"}]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "messages": conv}, ensure_ascii=False) + "\r\n", encoding="utf-8")
    with FakePoolingServer() as srv:
        rc = main(["score", "--input", str(src), "--output", str(dst), "--out", str(tmp_path),
                   "--set", "llm.reward_model.backend=pooling", "--set", f"llm.reward_model.base_url={srv.url}",
                   "--set", "llm.reward_model.model=rm"])
    assert rc == 0, capsys.readouterr().err
    out = [json.loads(x) for x in dst.read_text(encoding="utf-8").split("\n") if x]
    assert [(r["id"], r["reward_model_score"]) for r in out] == [(1, expected_score(conv))]
