
from crucible.pipelines.agent.loop import run_agent
from crucible.pipelines.swe.patches import apply_patch, file_diff
from crucible.pipelines.swe.rollout import (
    GoldPolicy,
    gold_edits,
    post_patch_files,
    replacements,
    task_messages,
)
from crucible.pipelines.swe.tools import make_tools
from crucible.sandbox.workspace import LocalWorkspace, init_baseline, workspace_diff

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
    assert post_patch_files(base, patch) == [("pkg/core.py", FIXED), ("pkg/old.py", None)]
    edits = gold_edits(base, patch)
    assert [name for name, _ in edits] == ["view", "str_replace", "bash"]  # an agent's edit, not a whole file
    assert edits[1][1] == {"path": "pkg/core.py", "old_str": "def add(a, b):\n    return a - b\n\n\n",
                           "new_str": "def add(a, b):\n    return a + b\n\n\n"}
    inst = {"repo": "o/r", "problem_statement": "add subtracts"}
    res = run_agent(GoldPolicy(edits), make_tools(ws), task_messages(inst), max_turns=10, final_tool="submit")
    assert res.termination == "answered" and res.n_tool_errors == 0
    assert [m["role"] for m in res.messages[:3]] == ["system", "user", "assistant"]
    calls = [m["tool_calls"][0]["function"] for m in res.messages if m["role"] == "assistant"]
    assert [c["name"] for c in calls] == ["bash", "view", "str_replace", "bash", "submit"]
    # the submitted diff reproduces the reference patch's effect on a fresh copy
    fresh = tmp_path / "fresh"
    import shutil

    shutil.copytree(base, fresh)
    apply_patch(fresh, res.final)
    assert (fresh / "pkg/core.py").read_text() == FIXED and not (fresh / "pkg/old.py").exists()
    assert workspace_diff(ws) == res.final


def test_replacements_are_unique_blocks_or_none():
    """Each block occurs once where it is applied, and applying them in order gives the new text; a change
    whose block repeats elsewhere cannot be a str_replace (None: the gold policy writes the file)."""
    old = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(40))
    new = old.replace("return 3\n", "return -3\n").replace("return 30\n", "return 31\n")
    blocks = replacements(old, new)
    assert len(blocks) == 2 and all(old.count(o) == 1 for o, _ in blocks)
    text = old
    for o, n in blocks:
        text = text.replace(o, n, 1)
    assert text == new
    twice = "x = 1\ny = 2\nx = 1\ny = 2\n"
    assert replacements(twice, twice.replace("y = 2\n", "y = 3\n", 1), context=0) is None
    assert replacements(old, old) == []


def test_forced_submit_at_turn_cap(tmp_path):
    root, ws = repo(tmp_path)
    edits = [("create", {"path": "pkg/core.py", "content": FIXED})] * 5
    res = run_agent(GoldPolicy(edits), make_tools(ws), task_messages({"repo": "o/r", "problem_statement": "x"}),
                    max_turns=4, final_tool="submit")
    assert res.termination == "forced_answer" and "a + b" in res.final


def test_trajectory_filters_and_split():
    from crucible.pipelines.swe.filters import classify

    def call(name, args):
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": name, "arguments": args}}]}

    base = {"messages": [{"role": "user", "content": "x"}, call("view", '{"path": "a"}'), call("submit", "{}")],
            "tools": [], "n_tool_calls": 2, "n_tool_errors": 0, "exit_status": "submitted", "resolved": True,
            "meta": {"dropped_files": []}}
    from crucible.pipelines.config import load_config

    # the hard filters; the strict SFT checks (reproduction, source edits, tests after) are off here
    # (tests/unit/test_swe_sft_strict.py has them)
    cfg = dict(load_config("swe", []).to_dict()["swe"]["filters"], max_context_tokens=1000,
               sft_require_reproduction=False, sft_source_edits_only=False, sft_require_test_after_edit=False)
    assert classify(base, cfg) == ("sft+rl", [])
    assert classify(dict(base, resolved=False), cfg) == ("rl", ["unresolved: F2P 0/0, P2P 0/0"])
    loop = dict(base, messages=base["messages"] + [call("view", '{"path": "a"}')] * 2)
    split, reasons = classify(loop, cfg)
    assert split == "none" and reasons == ["repeated_actions: one call made 3 times"]
    bad = dict(base, n_tool_errors=2, exit_status="turn_cap", meta={"dropped_files": ["conftest.py"]},
               messages=base["messages"] + [{"role": "tool", "content": "x" * 5000}])
    split, reasons = classify(bad, cfg)
    assert split == "none" and [r.split(":")[0] for r in reasons] == [
        "not_submitted", "too_long", "tool_errors", "edits_tests"]


def test_caches_never_enter_the_submitted_diff(tmp_path):
    root, ws = repo(tmp_path)
    (root / "tests/__pycache__").mkdir(parents=True)
    (root / "tests/__pycache__/t.cpython-311.pyc").write_bytes(b"\x00\x01")
    (root / "pkg/x.egg-info").mkdir()
    (root / "pkg/x.egg-info/PKG-INFO").write_text("x")
    assert workspace_diff(ws) == ""


def test_executable_files_do_not_show_as_modified_after_baseline(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "setup.py").write_text("print(1)\n")
    (root / "setup.py").chmod(0o755)
    ws = LocalWorkspace(root)
    init_baseline(ws)
    code, out = ws.exec("git status --short")
    assert code == 0 and out.strip() == ""
    assert workspace_diff(ws) == ""
