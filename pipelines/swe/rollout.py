"""Agent rollouts on SWE instances: a policy (the LLM through :mod:`crucible.pipelines.agent.loop`, or ``gold``,
which replays the reference patch through the same tools) works in a fresh container of the instance's env
image; its diff is graded in another fresh container (:mod:`crucible.pipelines.swe.grade`)."""

from __future__ import annotations

import difflib
import json
import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from crucible.pipelines.agent.loop import Turn, new_call_id, run_agent, tool_schema_list
from crucible.pipelines.store.commit import stable_hash, utc_now
from crucible.pipelines.swe.envs import checkout_tree, task_env
from crucible.pipelines.swe.filters import reward_of
from crucible.pipelines.swe.grade import Grade, grade_patch, test_files_of
from crucible.pipelines.swe.patches import PatchError, apply_patch, check_patch, resolve_inside
from crucible.pipelines.swe.pooled import pool_of, pooled_call
from crucible.pipelines.swe.tools import REPEAT_NOTE, make_tools  # noqa: F401 - REPEAT_NOTE: the rollout's note
from crucible.sandbox.container import Sandbox
from crucible.sandbox.workspace import ContainerWorkspace, init_baseline, workspace_diff

SYSTEM = ("You are a software engineer fixing a bug in the Python repository at /testbed. Use the tools to "
          "explore the code, reproduce the problem, edit source files, and run tests. Do not modify tests. "
          "When the fix is done, call submit.")
EXIT_STATUS = {"answered": "submitted", "forced_answer": "forced_submit", "turn_cap": "turn_cap",
               "token_cap": "token_cap", "error": "error"}


def task_messages(inst: Mapping, system: str = SYSTEM) -> list[dict]:
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Repository: {inst['repo']} (checked out at /testbed)\n\n"
                                        f"Issue:\n{inst['problem_statement']}\n\n"
                                        "Work in steps: first reproduce the failure before any edit (run the test "
                                        "that shows it with python -m pytest, or a few lines of python with bash, "
                                        "and see it fail); then find the code the issue is about (bash grep, view), "
                                        "edit it with str_replace, run the tests again, and only then call submit. "
                                        "Submitting without an edit solves nothing."}]


def post_patch_files(base_tree: Path, patch: str) -> list[tuple[str, str | None]]:
    """(path, new content or None if deleted) for every file ``patch`` touches. The paths are the ones the
    strict parse and ``git apply`` agree on, each resolved inside the patched tree (never a host file).
    See :func:`gold_edits` for the edit steps made from them."""
    with tempfile.TemporaryDirectory(prefix="crucible-gold-") as tmp:
        t = Path(tmp) / "t"
        shutil.copytree(base_tree, t, symlinks=True)
        files = check_patch(t, patch, what="gold patch")
        apply_patch(t, patch, what="gold patch")
        out = []
        for fd in files:
            for path in dict.fromkeys(fd.paths):  # a rename: the old path goes, the new one comes
                f = resolve_inside(t, path, what="gold patch")
                if f.is_symlink() or (f.exists() and not f.is_file()):
                    raise PatchError(f"gold patch: {path!r} is not a regular file after applying")
                out.append((path, f.read_text(encoding="utf-8") if f.exists() else None))
        return out


def replacements(old: str, new: str, context: int = 2) -> list[tuple[str, str]] | None:
    """``old`` -> ``new`` as (old_str, new_str) blocks (each changed region with ``context`` lines around it),
    applied in order, each occurring exactly once in the text it is applied to; None when some block is not
    unique (the caller writes the whole file instead)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out, text = [], old
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        o, n = "".join(a[i1:i2]), "".join(b[j1:j2])
        if not o or text.count(o) != 1:
            return None
        text = text.replace(o, n, 1)
        out.append((o, n))
    return out if text == new else None


def gold_edits(base_tree: Path, patch: str) -> list[tuple[str, dict]]:
    """The gold policy's edit steps for ``patch``: ``str_replace`` of each changed block of a modified file
    (as an agent edits; a whole-file ``create`` of a 4,000-line module made trajectories too long to train
    on), ``create`` for new files and where a block is not unique, ``rm`` for deletions."""
    steps: list[tuple[str, dict]] = []
    for path, content in post_patch_files(base_tree, patch):
        f = Path(base_tree) / path
        if content is None:
            steps.append(("bash", {"command": f"rm -f -- {shlex.quote(path)}"}))
            continue
        blocks = replacements(f.read_text(encoding="utf-8"), content) if f.is_file() else None
        if blocks is None:
            steps.append(("create", {"path": path, "content": content}))
            continue
        for o, n in blocks:
            line = f.read_text(encoding="utf-8").count("\n", 0, f.read_text(encoding="utf-8").find(o)) + 1
            steps.append(("view", {"path": path, "start_line": max(1, line - 5), "end_line": line + 15}))
            steps.append(("str_replace", {"path": path, "old_str": o, "new_str": n}))
    return steps


class GoldPolicy:
    """Replays the reference patch: look around, edit each changed file (:func:`gold_edits`: ``str_replace``
    per changed block, ``create`` where that cannot be exact, ``rm`` for deletions), run the failing tests
    once, submit. Checks the harness end to end."""

    name = "gold"

    def __init__(self, edits: list[tuple[str, dict]], test_files: list[str] | None = None):
        self.script = [("bash", {"command": "git status --short | head -20; ls"})]
        self.script += list(edits)
        if test_files:
            files = " ".join(shlex.quote(f) for f in test_files[:5])
            self.script.append(("bash", {"command": f"for f in {files}; do test -f \"$f\" && echo \"$f\"; done | "
                                                    "xargs -r python -m pytest -q -p no:cacheprovider 2>&1 | tail -3"}))
        self.script.append(("submit", {"summary": "applied the reference fix"}))
        self.i = 0

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False) -> Turn:
        name, args = self.script[-1] if force_final else self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        call = {"id": new_call_id(len(messages), name, args), "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)}}
        return Turn(content=f"Step {self.i}: {name}.", tool_calls=[call], usage={})


def run_rollout(ctx, inst: Mapping, policy, *, policy_name: str, sample_index: int = 0, model: str | None = None,
                max_turns: int = 12, max_total_tokens: int = 16000, command_timeout_s: int = 60,
                max_observation_chars: int = 6000, grade: bool = True, run_id: str = "") -> dict:
    """One rollout -> a swe_trajectories row (graded). Infrastructure failures become exit_status error. On an
    engine pool (``ctx.pool``) it runs on the engine holding the env image, and again on another engine when
    that one stops answering (``meta.engine``, ``meta.engine_retries``): one row either way."""
    kw = dict(policy_name=policy_name, sample_index=sample_index, model=model, max_turns=max_turns,
              max_total_tokens=max_total_tokens, command_timeout_s=command_timeout_s,
              max_observation_chars=max_observation_chars, grade=grade, run_id=run_id)
    if pool_of(ctx) is None:
        return rollout_here(ctx, inst, policy, **kw)
    what = f"{policy_name} rollout {sample_index} of {inst['instance_id']}"
    row, engine, retries = pooled_call(ctx, inst, what, lambda on: rollout_here(on, inst, policy, **kw),
                                       is_infra=rollout_infra)
    row["meta"]["engine"] = engine
    if retries:
        row["meta"]["engine_retries"] = retries
    return row


def rollout_infra(row: Mapping) -> bool:
    """Did the rollout end on the infrastructure (its container or engine), not on the policy or the tests?"""
    return row["grade"] == Grade.INFRA.value or (row["exit_status"] == "error"
                                                 and (row["grade_reason"] or "").startswith("rollout_error"))


def rollout_here(ctx, inst: Mapping, policy, *, policy_name: str, sample_index: int, model: str | None,
                 max_turns: int, max_total_tokens: int, command_timeout_s: int, max_observation_chars: int,
                 grade: bool, run_id: str) -> dict:
    """:func:`run_rollout` on ``ctx.client``'s engine."""
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="crucible-rollout-", dir=ctx.workdir))
    tools = None
    row = {"traj_id": stable_hash(inst["instance_id"], policy_name, model, sample_index, n=16),
           "instance_id": inst["instance_id"], "sample_index": sample_index, "policy": policy_name,
           "policy_model": model, "messages": task_messages(inst), "tools": [], "model_patch": None,
           "resolved": False, "f2p_passed": 0, "f2p_total": len(inst["FAIL_TO_PASS"]), "p2p_passed": 0,
           "p2p_total": len(inst["PASS_TO_PASS"]), "grade": None, "grade_reason": None, "exit_status": "error", "n_turns": 0,
           "n_tool_calls": 0, "n_tool_errors": 0, "n_prompt_tokens": 0, "n_completion_tokens": 0,
           "latency_s": 0.0, "reward": 0.0, "split": None, "drop_reasons": [], "meta": {}, "run_id": run_id,
           "created_at": utc_now()}
    try:
        tree = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "tree")
        env = task_env(ctx, inst, tree, tmp / "env")
        if policy == "gold":
            policy = GoldPolicy(gold_edits(tree, inst["patch"]), test_files_of(inst["FAIL_TO_PASS"]))
        with Sandbox(ctx.client, env.image, tree=tree, limits=ctx.settings.limits,
                     network=ctx.network_for(env.network), include_git=False) as box:
            ws = ContainerWorkspace(box)
            init_baseline(ws)
            tools = make_tools(ws, command_timeout_s=command_timeout_s)
            res = run_agent(policy, tools, task_messages(inst), max_turns=max_turns,
                            max_total_tokens=max_total_tokens, final_tool="submit",
                            max_observation_chars=max_observation_chars, repeat_note=REPEAT_NOTE)
            patch = res.final if res.termination in ("answered", "forced_answer") else workspace_diff(ws)
            if patch == "(no changes)":
                patch = ""
        row.update(messages=res.messages, tools=tool_schema_list(tools), model_patch=patch,
                   exit_status=EXIT_STATUS[res.termination], n_turns=res.n_turns, n_tool_calls=res.n_tool_calls,
                   n_tool_errors=res.n_tool_errors, n_prompt_tokens=res.prompt_tokens,
                   n_completion_tokens=res.completion_tokens, meta={"tool_counts": res.tool_counts,
                                                                    "errors": res.errors[:5]})
        if grade:
            g = grade_patch(ctx, inst, patch)
            row.update({k: g[k] for k in ("resolved", "grade", "f2p_passed", "f2p_total", "p2p_passed",
                                          "p2p_total", "grade_reason")})
            row["meta"]["dropped_files"] = g["dropped_files"]
            row["reward"] = reward_of(g)
    except Exception as exc:  # noqa: BLE001 - an infra failure is this rollout's outcome
        row["grade_reason"] = f"rollout_error: {type(exc).__name__}: {exc}"[:1000]
        if tools:
            row["tools"] = tool_schema_list(tools)
    finally:
        row["latency_s"] = round(time.monotonic() - t0, 3)
        shutil.rmtree(tmp, ignore_errors=True)
    return row
