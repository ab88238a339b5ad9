import json

from pipelines.agent.loop import run_agent
from pipelines.swe.patches import apply_patch, file_diff
from pipelines.swe.rollout import GoldPolicy, post_patch_files, task_messages
from pipelines.swe.tools import LocalWorkspace, init_baseline, make_tools, workspace_diff

BUGGY = "def add(a, b):\n    return a - b\n\n\ndef one():\n    return 1\n"
FIXED = BUGGY.replace("a - b", "a + b")


def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/core.py").write_text(BUGGY)
    (root / "pkg/old.py").write_text("x = 1\n")
    ws = LocalWorkspace(root)
    init_baseline(ws)
    return root, ws


def test_tools_view_edit_create_bash_and_submit_diff(tmp_path):
    root, ws = repo(tmp_path)
    tools = make_tools(ws, command_timeout_s=5)
    assert set(tools) == {"bash", "view", "str_replace", "create", "submit"}
    for t in tools.values():
        assert t.schema["type"] == "function" and t.schema["function"]["parameters"]["type"] == "object"
    v = tools["view"].call({"path": "pkg/core.py"})
    assert "    2      return a - b" in v.content and not v.error
    assert tools["view"].call({"path": "nope.py"}).error
    bad = tools["str_replace"].call({"path": "pkg/core.py", "old_str": "return", "new_str": "yield"})
    assert bad.error and "occurs 2 times" in bad.content
    ok = tools["str_replace"].call({"path": "pkg/core.py", "old_str": "a - b", "new_str": "a + b"})
    assert not ok.error and (root / "pkg/core.py").read_text() == FIXED
    tools["create"].call({"path": "pkg/new/mod.py", "content": "y = 'é'\n"})
    assert (root / "pkg/new/mod.py").read_text() == "y = 'é'\n"
    out = tools["bash"].call({"command": "echo hi; exit 3"})
    assert out.content.startswith("exit code 3") and "hi" in out.content
    slow = tools["bash"].call({"command": "sleep 5", "timeout": 1})
    assert slow.error and "timed out" in slow.content
    diff = tools["submit"].call({}).content
    assert "+    return a + b" in diff and "b/pkg/new/mod.py" in diff


def test_gold_policy_replays_patch_through_the_tools(tmp_path):
    root, ws = repo(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    (base / "pkg").mkdir()
    (base / "pkg/core.py").write_text(BUGGY)
    (base / "pkg/old.py").write_text("x = 1\n")
    patch = file_diff("pkg/core.py", BUGGY, FIXED) + (
        "diff --git a/pkg/old.py b/pkg/old.py\ndeleted file mode 100644\n--- a/pkg/old.py\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-x = 1\n")
    edits = post_patch_files(base, patch)
    assert edits == [("pkg/core.py", FIXED), ("pkg/old.py", None)]
    inst = {"repo": "o/r", "problem_statement": "add subtracts"}
    res = run_agent(GoldPolicy(edits), make_tools(ws), task_messages(inst), max_turns=10, final_tool="submit")
    assert res.termination == "answered" and res.n_tool_errors == 0
    assert [m["role"] for m in res.messages[:3]] == ["system", "user", "assistant"]
    calls = [m["tool_calls"][0]["function"] for m in res.messages if m["role"] == "assistant"]
    assert [c["name"] for c in calls] == ["bash", "view", "create", "bash", "submit"]
    assert json.loads(calls[2]["arguments"])["content"] == FIXED
    # the submitted diff reproduces the reference patch's effect on a fresh copy
    fresh = tmp_path / "fresh"
    import shutil

    shutil.copytree(base, fresh)
    apply_patch(fresh, res.final)
    assert (fresh / "pkg/core.py").read_text() == FIXED and not (fresh / "pkg/old.py").exists()
    assert workspace_diff(ws) == res.final


def test_forced_submit_at_turn_cap(tmp_path):
    root, ws = repo(tmp_path)
    edits = [("pkg/core.py", FIXED)] * 5
    res = run_agent(GoldPolicy(edits), make_tools(ws), task_messages({"repo": "o/r", "problem_statement": "x"}),
                    max_turns=4, final_tool="submit")
    assert res.termination == "forced_answer" and "a + b" in res.final
