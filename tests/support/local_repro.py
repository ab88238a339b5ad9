"""A stand-in for the container runs of :mod:`crucible.pipelines.swe.statement_repro`: the snippet (or the step harness)
runs with this Python in the tree's directory, as it would in /testbed of the env image (pure-Python trees
only), and a stand-in :class:`Grounding` for curation tests that must not start containers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crucible.pipelines.swe.statement_facts import parse_run


def run_code_locally(ctx, env, tree: Path, code: str, timeout_s: int) -> dict:
    envv = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tree)}
    try:
        p = subprocess.run([sys.executable, "-W", "ignore", "-"], input=code, cwd=tree, env=envv, capture_output=True,
                           text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return parse_run(None, "", timed_out=True)
    res = parse_run(p.returncode, p.stdout + p.stderr)
    res["output_tail"] = (p.stdout + p.stderr)[-600:]
    return res


def grounding(kind: str = "value", *, reproduced: bool = True):
    """A Grounding of a take_nth-like value failure (or one that did not reproduce)."""
    from crucible.pipelines.swe.statement_repro import Grounding

    snippet = "from toolz import take_nth\n\nprint(repr(list(take_nth(2, [10, 20, 30, 40, 50]))))\n"
    before = {"exit_code": 0, "exc_type": None, "message": None, "value": "[20, 40]", "timed_out": False}
    after = {"exit_code": 0, "exc_type": None, "message": None, "value": "[10, 30, 50]", "timed_out": False}
    record = {"test_id": "t.py::test_x", "snippet": snippet, "kind": kind, "before": before, "after": after,
              "reproduced": reproduced, "reason": "before prints [20, 40]; after prints [10, 30, 50]"
              if reproduced else "before and after both print [10, 30, 50]", "log": None, "tried": []}
    if not reproduced:
        return Grounding(None, record, set())
    facts = {"kind": kind, "snippet": snippet, "before": before, "after": after, "expected_raises": None,
             "call": "take_nth", "names": ["take_nth", "list", "repr", "print"]}
    return Grounding(facts, record, {"toolz", "take_nth", "itertoolz", "seq", "n"})


def patch_grounding(monkeypatch, **kw) -> None:
    """Curation tests without containers: every instance's reproduction is :func:`grounding` (``kw``)."""
    monkeypatch.setattr("crucible.pipelines.swe.statement_repro.ground", lambda ctx, inst, scfg: grounding(**kw))
