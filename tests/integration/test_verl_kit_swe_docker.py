"""The verl kit's SWE side in Docker: the kit's SweTool works in a container of the instance's env image (as verl
would call it: create/execute/release per call, one trajectory per request id), submit records the diff, and
compute_score grades it with crucible.pipelines.swe.grade in a fresh container (toolz 0.12.0 fixture instance)."""

import asyncio
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("verl.tools.base_tool", reason="verl is not installed (make train-deps)")

from tests.integration.swe_helpers import *  # noqa: E402, F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def run_trajectory(tools, inst_json, request_id, steps):
    ad = SimpleNamespace(request_id=request_id, assistant_turns=1, extra_fields={})

    async def call(name, args):
        iid, _ = await tools[name].create(create_kwargs={"instance_id": "x", "instance": inst_json})
        try:
            return (await tools[name].execute(iid, args, agent_data=ad))[0].text
        finally:
            await tools[name].release(iid)

    return [asyncio.run(call(n, a)) for n, a in steps], ad


def test_kit_tools_edit_in_the_env_container_and_the_reward_grades_the_submitted_patch(swe_ctx, toolz_instance,
                                                                                      monkeypatch, tmp_path):
    from verl.tools.tool_registry import initialize_tools_from_config

    from crucible.pipelines.integrations.export_verl import SWE_GRADE_FIELDS
    from crucible.pipelines.integrations.verl import SWE_TOOL_CONFIG
    from crucible.pipelines.integrations.verl import reward as K
    from crucible.pipelines.integrations.verl import tools as T
    from crucible.pipelines.swe.grade import grade_patch
    from crucible.pipelines.swe.rollout import post_patch_files
    from crucible.pipelines.swe.validate import checkout_tree

    monkeypatch.setattr(T, "_swe_ctx", lambda config, overrides: swe_ctx)
    tools = {t.name: t for t in initialize_tools_from_config(str(SWE_TOOL_CONFIG))}
    inst = {k: toolz_instance.get(k) for k in SWE_GRADE_FIELDS}
    inst_json = json.dumps(inst)
    gt = json.dumps({"FAIL_TO_PASS": inst["FAIL_TO_PASS"], "PASS_TO_PASS": inst["PASS_TO_PASS"]})
    edits = post_patch_files(checkout_tree(swe_ctx, inst["repo"], inst["base_commit"], tmp_path / "base"),
                             toolz_instance["patch"])
    steps = [("bash", {"command": "pwd && git status --short | head -3"})]
    steps += [("create", {"path": p, "content": c}) for p, c in edits if c is not None]
    steps += [("submit", {"summary": "the fix"})]
    outs, ad = run_trajectory(tools, inst_json, "fix-1", steps)
    assert outs[0].startswith("exit code 0\n/testbed")
    patch = ad.extra_fields[K.PATCH_KEY]
    assert patch == outs[-1] and patch.startswith("diff --git")
    assert "fix-1" not in T.SweTool.states.items  # submit closed the trajectory's container

    def grader(i, p):
        return grade_patch(swe_ctx, i, p)

    fixed = K.compute_score("crucible/swe", "", gt, {"instance": inst_json, **ad.extra_fields}, grader=grader)
    assert fixed["score"] == 1.0 and fixed["resolved"] == 1.0
    # a trajectory that submits without an edit earns nothing
    _, idle = run_trajectory(tools, inst_json, "idle-1", [("view", {"path": "setup.py"}), ("submit", {})])
    assert idle.extra_fields[K.PATCH_KEY] == ""
    assert K.compute_score("crucible/swe", "", gt, {"instance": inst_json, **idle.extra_fields},
                           grader=grader)["score"] == 0.0
