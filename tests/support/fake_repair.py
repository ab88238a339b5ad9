"""Fakes for ``crucible.pipelines.swe.llm_repair`` unit tests: a workspace whose suite passes once a named command ran, a
scripted policy, and a clock the test advances."""

from __future__ import annotations

import json
import re

from crucible.pipelines.agent.loop import Turn, new_call_id

JUNIT_ARG = re.compile(r"--junitxml=(\S+?)'?(?:\s|$)")
PASS_LOG = """============================= test session starts ==============================
collected 2 items

tests/test_demo.py ..                                                    [100%]
=========================== short test summary info ============================
PASSED tests/test_demo.py::test_one
PASSED tests/test_demo.py::test_two
============================== 2 passed in 0.01s ===============================
"""
PASS_JUNIT = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="0" '
              'skipped="0" tests="2"><testcase classname="tests.test_demo" name="test_one" file="tests/test_demo.py"/>'
              '<testcase classname="tests.test_demo" name="test_two" file="tests/test_demo.py"/></testsuite></testsuites>')
FAIL_LOG = """============================= test session starts ==============================
collected 0 items / 1 error

==================================== ERRORS ====================================
____________________ ERROR collecting tests/test_demo.py _______________________
ImportError while importing test module '/testbed/tests/test_demo.py'.
E   ModuleNotFoundError: No module named 'zz_helper'
=========================== short test summary info ============================
ERROR tests/test_demo.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
=============================== 1 error in 0.05s ===============================
"""
FAIL_JUNIT = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="0" '
              'skipped="0" tests="1"><testcase classname="" name="tests.test_demo">'
              '<error message="collection failure">ModuleNotFoundError</error></testcase></testsuite></testsuites>')


class FakeRepairWorkspace:
    """``exec``/``read_file`` like ``crucible.sandbox.workspace.ContainerWorkspace``. A test-script run (its
    ``--junitxml=`` argument) passes once a command containing ``fix`` ran with exit 0, else it fails at
    collection; other commands exit ``codes.get(substring, 0)``. Every command is kept in ``ran``."""

    def __init__(self, fix: str, codes: dict[str, int] | None = None, clock=None, cost_s: float = 0.0):
        self.fix, self.codes, self.clock, self.cost_s = fix, dict(codes or {}), clock, cost_s
        self.ran: list[tuple[str, int]] = []
        self.files: dict[str, bytes] = {}
        self.fixed = False

    def exec(self, command: str, timeout_s: int = 60) -> tuple[int, str]:
        self.ran.append((command, timeout_s))
        if self.clock is not None:
            self.clock.advance(self.cost_s)
        m = JUNIT_ARG.search(command)
        if m:
            path = m.group(1)
            self.files[path] = (PASS_JUNIT if self.fixed else FAIL_JUNIT).encode()
            return (0, PASS_LOG) if self.fixed else (2, FAIL_LOG)
        code = next((c for s, c in self.codes.items() if s in command), 0)
        if self.fix in command and code == 0:
            self.fixed = True
        return code, f"ran: {command[-80:]}\n"

    def read_file(self, path: str) -> bytes:
        return self.files[path]


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class ScriptedPolicy:
    """Proposes ``calls`` ((tool, arguments) pairs) in order, one per turn; then ``done``."""

    def __init__(self, calls: list[tuple[str, dict]]):
        self.calls = list(calls)
        self.steps = 0

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False) -> Turn:
        i = self.steps
        self.steps += 1
        name, args = self.calls[i] if i < len(self.calls) else ("done", {"summary": "scripted end"})
        call = {"id": new_call_id(len(messages), name, args), "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)}}
        return Turn(content=None, tool_calls=[call])
