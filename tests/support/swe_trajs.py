"""Crafted swe-curate trajectories (OpenAI messages with tool calls, as crucible.pipelines.agent.loop writes them) for
the trajectory filters: :func:`row` wraps steps into a graded swe_trajectories row; :func:`good_steps` is a
trajectory that shows the work (reproduce, read, edit a source file, test, submit)."""

from __future__ import annotations

import json

from tests.support import samples

GOLD_PATCH = ("diff --git a/pkg/core.py b/pkg/core.py\n--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1 +1 @@\n"
              "-    return a - b\n+    return a + b\n")
OTHER_PATCH = ("diff --git a/pkg/other.py b/pkg/other.py\n--- a/pkg/other.py\n+++ b/pkg/other.py\n@@ -1 +1 @@\n"
               "-x = 1\n+x = 2\n")
FAILING_RUN = ("exit code 1\n=== FAILURES ===\n>       assert add(1, 2) == 3\nE       assert -1 == 3\n"
               "FAILED tests/test_core.py::test_add - assert -1 == 3\n1 failed, 3 passed in 0.02s")
PASSING_RUN = "exit code 0\n....\n4 passed in 0.02s"
TEST_CMD = "python -m pytest -q tests/test_core.py"


def bash(command: str, obs: str) -> tuple[str, dict, str]:
    return "bash", {"command": command}, obs


def view(path: str, start: int = 1) -> tuple[str, dict, str]:
    return "view", {"path": path, "start_line": start}, f"    {start}  def add(a, b):\n    {start + 1}      return a - b"


def edit(path: str = "pkg/core.py", new: str = "    return a + b") -> tuple[str, dict, str]:
    return "str_replace", {"path": path, "old_str": "    return a - b", "new_str": new}, f"Edited {path}: replaced 1 occurrence."


def create(path: str, content: str = "print(1)\n") -> tuple[str, dict, str]:
    return "create", {"path": path, "content": content}, f"Wrote {path} ({len(content)} characters)."


SUBMIT = ("submit", {"summary": "add() subtracted; it adds now"}, GOLD_PATCH)


def good_steps() -> list[tuple[str, dict, str]]:
    """Reproduce (the failing test), read, edit the source, run the tests, submit."""
    return [bash(TEST_CMD, FAILING_RUN), bash("grep -rn 'def add' pkg", "pkg/core.py:1:def add(a, b):"),
            view("pkg/core.py"), edit(), bash(TEST_CMD, PASSING_RUN), SUBMIT]


def messages(steps) -> list[dict]:
    """System + user, then one assistant turn per step (a thought and one tool call) and its tool result."""
    out = [{"role": "system", "content": "You are a software engineer."},
           {"role": "user", "content": "Issue: add(1, 2) returns -1."}]
    for i, (name, args, obs) in enumerate(steps):
        cid = f"call_{i:03d}"
        out.append({"role": "assistant", "content": f"I run {name} to see what it shows.", "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
        out.append({"role": "tool", "tool_call_id": cid, "name": name, "content": obs})
    return out


def row(steps=None, *, resolved: bool = True, f2p: tuple[int, int] = (1, 1), patch: str = GOLD_PATCH,
        **extra) -> dict:
    """A graded llm row of ``steps`` (default :func:`good_steps`)."""
    st = good_steps() if steps is None else steps
    r = dict(samples.swe_trajectory(0), policy="llm", messages=messages(st), n_tool_calls=len(st), n_tool_errors=0,
             n_turns=len(st), exit_status="submitted", resolved=resolved, f2p_passed=f2p[0], f2p_total=f2p[1],
             grade="resolved" if resolved else "tests_failing", model_patch=patch, meta={"dropped_files": []},
             tools=[])
    r.update(extra)
    return r


def instance(patch: str = GOLD_PATCH) -> dict:
    return dict(samples.swe_instance(0), patch=patch, FAIL_TO_PASS=["tests/test_core.py::test_add"])


class ScriptedPolicy:
    """A policy that makes the given (tool, arguments) calls in order, one per turn, with a short thought
    (run through crucible.pipelines.agent.loop.run_agent and the real swe tools, its trajectory has their exact
    observation formats)."""

    def __init__(self, script):
        self.script, self.i = list(script), 0

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False):
        from crucible.pipelines.agent.loop import Turn

        name, args = self.script[-1] if force_final else self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        call = {"id": f"call_{self.i:03d}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        return Turn(content=f"Next: {name}.", tool_calls=[call], usage={})
