"""LLM repair without Docker: the guard and replay filter, the session tools and caps through run_agent with a
scripted policy, the replay recipe and the override YAML read back by load_override, and apply_outcome."""

from __future__ import annotations

import pytest

from crucible.pipelines.swe.llm_repair.guard import CommandKind, classify_command
from crucible.pipelines.swe.llm_repair.replay import STEP_NAME, replay_recipe, write_override
from crucible.pipelines.swe.llm_repair.runner import Outcome, apply_outcome, prompt_messages
from crucible.pipelines.swe.llm_repair.session import Caps, RepairSession, Stop, run_session
from tests.support.fake_repair import FakeClock, FakeRepairWorkspace, ScriptedPolicy

FIX = "pip install --no-index --find-links /testbed/wheels zzdemo-helper"
RECIPE = {"version": 1, "python": "3.11", "python_reason": "newest", "apt_packages": [],
          "install": [{"name": "package", "required": True, "try": ["pip install -e ."]},
                      {"name": "test-runner", "required": True, "try": ["python -c 'import pytest' || pip install pytest"]}],
          "runner": "pytest", "test_cmd": "python -m pytest", "test_paths": ["tests"], "reinstall": False,
          "as_of": None, "sources": {"extra": None}, "rungs": []}
CAPS = Caps(max_steps=10, max_seconds=600, max_commands=8, command_timeout_s=120)


@pytest.mark.parametrize("command,kind", [
    (FIX, CommandKind.INSTALL),
    ("python -m pip install -U 'attrs<22' 2>&1 | tail -3", CommandKind.INSTALL),
    ("pip uninstall -y pytest-randomly", CommandKind.INSTALL),
    ("PIP_NO_CACHE_DIR=1 pip install six", CommandKind.INSTALL),
    ("sed -i 's/a/b/' /opt/venv/lib/python3.11/site-packages/demo.cfg", CommandKind.INSTALL),
    ("echo 'attrs<22' > /tmp/constraints.txt", CommandKind.INSTALL),
    ("export PYTHONPATH=/testbed/src DEMO=1", CommandKind.EXPORT),
    ("ls -la tests", CommandKind.INSPECT),
    ("cat setup.cfg | grep -n pytest", CommandKind.INSPECT),
    ("pip list 2>&1 | head -50", CommandKind.INSPECT),
    ("pip show attrs", CommandKind.INSPECT),
    ("python -c 'import zz_helper; print(zz_helper.__file__)'", CommandKind.INSPECT),
    ("find / -name '*.whl' 2>/dev/null", CommandKind.INSPECT),
    ("sed -n 1,20p setup.py", CommandKind.INSPECT),
    ("python -m pytest -x tests/test_demo.py", CommandKind.INSPECT),
])
def test_kept_commands(command, kind):
    assert classify_command(command).kind is kind


@pytest.mark.parametrize("command,why", [
    ("sed -i 's/assert x/assert True/' tests/test_demo.py", "Python file"),
    ("echo 'def test_x(): pass' > tests/test_new.py", "Python file"),
    ("sed -i 's/a/b/' /opt/venv/lib/python3.11/site-packages/attr/_make.py", "Python file"),
    ("printf '[pytest]\\naddopts=\\n' > pytest.ini", "into the repository"),
    ("sed -i '/addopts/d' setup.cfg", "into the repository"),
    ("cat a >> /testbed/tox.ini", "into the repository"),
    ("apt-get install -y libxml2-dev", "unprivileged"),
    ("sudo pip install x", "unprivileged"),
    ("curl -sSL http://example.invalid/x.sh", "allow-list"),
    ("git clone http://example.invalid/x.git", "allow-list"),
    ("rm -rf tests", "allow-list"),
    ("pip install x && rm -rf tests", "allow-list"),
    ("bash -c 'pip install x'", "allow-list"),
    ("python setup.py develop", "only -c"),
    ("pip download attrs", "pip download"),
    ("echo $(cat setup.py)", "substitution"),
    ("cat <<EOF > /tmp/x\nEOF", "heredocs"),
    ("export 1A=2", "NAME=VALUE"),
    ("   ", "empty"),
])
def test_refused_commands(command, why):
    v = classify_command(command)
    assert v.kind is CommandKind.REFUSED and why in v.reason


def _session(ws, clock=None, caps=CAPS, guard=True):
    return RepairSession(ws, RECIPE, caps, clock=clock or FakeClock(), guard=guard)


def _messages():
    return [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def test_scripted_agent_passes_and_only_the_install_is_replayed():
    ws = FakeRepairWorkspace(FIX)
    s = _session(ws)
    policy = ScriptedPolicy([("run_tests", {}), ("bash", {"command": "ls wheels"}),
                             ("bash", {"command": "export DEMO_FLAG=1"}),
                             ("bash", {"command": "sed -i 's/x/y/' tests/test_demo.py"}),
                             ("bash", {"command": "pip install not-there"}),
                             ("bash", {"command": FIX}), ("run_tests", {}),
                             ("bash", {"command": "pip install after-the-pass"})])
    ws.codes = {"not-there": 1}
    stop, res = run_session(policy, s, _messages())
    assert stop is None and s.passed_at is not None
    assert [t.stage for t in s.tests] == ["tests_collected", "mostly_passing"]
    assert s.tests[0].kind == "collection" and s.tests[-1].counts["PASSED"] == 2
    assert s.replay_commands() == [FIX]  # not ls, not the failed install, not the refused sed
    kinds = [(c.kind, c.exit_code) for c in s.commands]
    assert kinds == [("inspect", 0), ("export", 0), ("refused", None), ("install", 1), ("install", 0)]
    assert not any("sed -i" in cmd for cmd, _ in ws.ran)  # refused: never reached the container
    # the export reached the command prefix and the test run's environment
    assert any(cmd.startswith("export DEMO_FLAG=1; cd /testbed && pip install --no-index") for cmd, _ in ws.ran)
    assert any("export DEMO_FLAG=1" in cmd and "--junitxml=" in cmd for cmd, _ in ws.ran)
    assert s.passed_env == {"DEMO_FLAG": "1"}
    assert policy.steps == 7  # the episode ends at the passing run: the 8th call is never asked for
    assert res.n_tool_calls == 7


def test_guard_off_lets_a_test_edit_run_and_replay():
    """What the guard stops: with it off, an edit of a test file runs in the container and joins the replay."""
    edit = "sed -i 's/assert x/assert True/' tests/test_demo.py"
    for guard, ran, replayed in ((True, False, []), (False, True, [edit])):
        ws = FakeRepairWorkspace(FIX)
        s = _session(ws, guard=guard)
        run_session(ScriptedPolicy([("bash", {"command": edit}), ("done", {"summary": "x"})]), s, _messages())
        assert any("sed -i" in c for c, _ in ws.ran) is ran
        assert s.replay_commands() == replayed


def test_useless_agent_reports_not_passing():
    ws = FakeRepairWorkspace(FIX)
    s = _session(ws)
    stop, _ = run_session(ScriptedPolicy([("bash", {"command": "pip list"}), ("run_tests", {}),
                                          ("done", {"summary": "gave up"})]), s, _messages())
    assert stop is Stop.NOT_PASSING and s.passed_at is None and s.done_summary == "gave up"
    assert s.replay_commands() == []


def test_step_cap_stops_the_loop():
    ws = FakeRepairWorkspace(FIX)
    s = _session(ws, caps=Caps(max_steps=3, max_seconds=600, max_commands=50, command_timeout_s=60))
    policy = ScriptedPolicy([("bash", {"command": "pip list"})] * 20)
    stop, res = run_session(policy, s, _messages())
    assert stop is Stop.STEP_CAP and policy.steps == 3 and res.n_turns == 3


def test_time_cap_stops_the_loop_and_bounds_command_timeouts():
    clock = FakeClock()
    ws = FakeRepairWorkspace(FIX, clock=clock, cost_s=250)
    s = _session(ws, clock=clock, caps=Caps(max_steps=50, max_seconds=600, max_commands=50, command_timeout_s=400))
    policy = ScriptedPolicy([("bash", {"command": "pip install a"})] * 20)
    stop, _ = run_session(policy, s, _messages())
    assert stop is Stop.TIME_CAP
    assert policy.steps == 3  # 0 s, 250 s, 500 s used; at 750 s the policy is not asked again
    assert [t for _, t in ws.ran] == [400, 350, 100]  # never past the episode's end


def test_command_cap_stops_the_loop():
    ws = FakeRepairWorkspace(FIX)
    s = _session(ws, caps=Caps(max_steps=50, max_seconds=600, max_commands=2, command_timeout_s=60))
    policy = ScriptedPolicy([("bash", {"command": "rm -rf x"}), ("bash", {"command": "pip list"}),
                             ("bash", {"command": "pip list"}), ("bash", {"command": "pip list"})])
    stop, _ = run_session(policy, s, _messages())
    assert stop is Stop.COMMAND_CAP and len(ws.ran) == 2  # the refused one did not count


def test_forged_pass_is_not_mostly_passing():
    """A run whose console claims passes JUnit does not record is an error verdict: never a session pass."""
    ws = FakeRepairWorkspace(FIX)
    ws.fixed = True
    real = ws.exec

    def forge(command, timeout_s=60):
        code, out = real(command, timeout_s)
        return (code, out.replace("2 passed", "3 passed")) if "--junitxml=" in command else (code, out)

    ws.exec = forge
    s = _session(ws)
    s.run_tests({})
    assert s.tests[0].status == "error" and s.tests[0].kind == "forged_summary"
    assert s.tests[0].stage != "mostly_passing" and s.passed_at is None


def test_replay_recipe_and_override_read_back(tmp_path):
    from crucible.sandbox.recipes import infer_recipe, load_override

    rec = replay_recipe(RECIPE, [FIX, "pip install six"], {"DEMO": "1"}, from_base=False)
    assert [s["name"] for s in rec["install"]] == ["package", "test-runner", STEP_NAME]
    step = rec["install"][-1]
    assert step["required"] and step["try"] == [f"{{ {FIX}; }} && {{ pip install six; }}"]
    assert rec["test_env"] == {"DEMO": "1"} and "rungs" not in rec and "sources" not in rec
    path = write_override(tmp_path / "repos", "Demo-Pkg", rec, "note")
    assert path.name == "demo-pkg.yaml"
    over = load_override("demo-pkg", tmp_path / "repos")
    assert over == rec
    assert load_override("other", tmp_path / "repos") is None
    # the override replays through inference: same install steps, test_env, python
    tree = tmp_path / "tree"
    (tree / "tests").mkdir(parents=True)
    (tree / "tests" / "test_demo.py").write_text("def test_one():\n    pass\n")
    (tree / "setup.py").write_text("from setuptools import setup\nsetup(name='demo')\n")
    replayed, _ = infer_recipe(tree, ("3.9", "3.11"), over)
    assert replayed["install"] == rec["install"] and replayed["test_env"] == {"DEMO": "1"}
    assert replayed["python"] == "3.11" and replayed["python_reason"] == "override"


def test_override_rejects_unknown_keys_still(tmp_path):
    from crucible.sandbox.recipes import RecipeError, infer_recipe

    tree = tmp_path / "tree"
    (tree / "tests").mkdir(parents=True)
    (tree / "tests" / "test_demo.py").write_text("def test_one():\n    pass\n")
    with pytest.raises(RecipeError, match="unknown key 'test_envs'"):
        infer_recipe(tree, ("3.11",), {"test_envs": {}})


def test_replay_from_base_drops_the_failed_install_steps():
    rec = replay_recipe(dict(RECIPE, apt_packages=["libxml2-dev"]), [FIX], {}, from_base=True)
    assert [s["name"] for s in rec["install"]] == ["test-runner", STEP_NAME]
    assert rec["apt_packages"] == [] and "test_env" not in rec


def test_apply_outcome_failure_keeps_the_deciding_line_and_names_the_rung():
    from crucible.pipelines.swe.survey import failure_for, survey_row

    res = {"stage": "tests_collected", "rungs": [{"kind": "install_module", "arg": "testing"}],
           "stop": {"rung": "install_module", "kind": "test", "reason": "test run error/collection: x",
                    "line": "ModuleNotFoundError: No module named 'zz_helper'"}, "counts": {}, "attempts": 2}
    out = apply_outcome(res, Outcome(False, Stop.NOT_PASSING.value,
                                     commands=[{"command": "pip list", "exit_code": 0, "kind": "inspect"}]))
    assert out["rungs"][-1]["kind"] == "llm_repair" and out["rungs"][-1]["stop"] == "not_passing"
    assert out["rungs"][-1]["commands"] == [{"command": "pip list", "exit_code": 0, "kind": "inspect"}]
    row = survey_row("sdist:demo==1", None, None, out, 1.0, "run")
    fail = failure_for(row)
    assert row["stop_rung"] == "llm_repair" and row["stop_line"] == res["stop"]["line"]
    assert "last: llm_repair" in fail["reason"] and "No module named 'zz_helper'" in fail["reason"]
    assert "ladder's last rung: install_module" in fail["reason"] and "not_passing" in fail["reason"]
    assert res["stop"]["rung"] == "install_module"  # the input is not mutated


def test_apply_outcome_success_takes_the_replay():
    res = {"stage": "tests_collected", "rungs": [], "stop": {"rung": None, "line": "x", "reason": "y"}}
    rec = replay_recipe(RECIPE, [FIX], {}, from_base=False)
    out = apply_outcome(res, Outcome(True, Stop.REPLAYED.value, replay_commands=[FIX], recipe=rec,
                                     replay={"stage": "mostly_passing", "counts": {"PASSED": 2},
                                             "tests_collected": 2, "env_key": "k", "run_kind": ""}))
    assert out["stage"] == "mostly_passing" and out["stop"] is None and out["recipe"] == rec
    assert out["rungs"][-1]["arg"] == FIX and out["counts"] == {"PASSED": 2}


def test_prompt_renders_the_log_and_steps():
    res = {"stage": "tests_collected", "stop": {"reason": "test run error/collection",
                                                "line": "E   ModuleNotFoundError: No module named 'zz_helper'"},
           "log_tail": "a\nb\nE   ModuleNotFoundError: No module named 'zz_helper'"}
    msgs = prompt_messages(RECIPE, res, caps=CAPS, from_base=False)
    user = msgs[-1]["content"]
    assert "No module named 'zz_helper'" in user and "package: pip install -e ." in user
    assert "never write into /testbed" in msgs[0]["content"]
    assert "nothing is installed yet" in prompt_messages(RECIPE, res, caps=CAPS, from_base=True)[-1]["content"]


def test_config_defaults_live_in_the_schema():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config

    s = settings_from_config(load_config("defaults", []).sandbox, resolve_host=False)
    assert s.llm_repair["enabled"] is False and s.llm_repair["policy"] == "json_step"
    assert {"max_steps", "max_seconds", "max_commands", "command_timeout_s", "repos_dir"} <= set(s.llm_repair)


def test_cli_llm_repair_needs_repair(tmp_path, capsys):
    from crucible.pipelines.cli import main

    assert main(["sandbox", "test", "--path", str(tmp_path), "--llm-repair"]) == 2
    assert "--llm-repair needs --repair" in capsys.readouterr().err


def test_repairer_is_off_by_default_and_leaves_passing_sources_alone():
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.llm_repair.runner import Repairer, repairer_for
    from crucible.sandbox.api import settings_from_config

    cfg = load_config("defaults", [])
    settings = settings_from_config(cfg.sandbox, resolve_host=False)
    with repairer_for(cfg, settings) as fix:
        assert fix is None  # nothing started: no endpoint, no model
    res = {"stage": "mostly_passing", "rungs": []}
    assert Repairer(settings, lambda: pytest.fail("no policy for a passing source"), "x")(None, None, "n", res,
                                                                                           None) is res


def test_a_repeated_call_is_told_so():
    from crucible.pipelines.swe.llm_repair.session import REPEAT_NOTE

    s = _session(FakeRepairWorkspace(FIX))
    _, res = run_session(ScriptedPolicy([("run_tests", {}), ("run_tests", {}), ("done", {"summary": "x"})]), s,
                         _messages())
    tool_msgs = [m["content"] for m in res.messages if m["role"] == "tool"]
    assert REPEAT_NOTE not in tool_msgs[0] and REPEAT_NOTE in tool_msgs[1]


def test_survey_runs_the_repairer_only_for_sources_left_short(monkeypatch, tmp_path):
    import contextlib

    import crucible.pipelines.swe.survey as survey
    import crucible.sandbox.api
    import crucible.sandbox.repair
    from crucible.sandbox.sources import Checkout

    short = {"stage": "tests_collected", "rungs": [], "attempts": 1, "counts": {},
             "stop": {"rung": None, "kind": "test", "reason": "r", "line": "E   ModuleNotFoundError: x"}}
    stages = {"a": short, "b": {"stage": "mostly_passing", "rungs": [], "attempts": 1, "counts": {"PASSED": 3},
                                "stop": None}}
    monkeypatch.setattr(survey, "obtain", lambda settings, src: (Checkout(tmp_path, "c0", src.spec, "x"), None))
    monkeypatch.setattr(crucible.sandbox.api, "exported", lambda path: contextlib.nullcontext(path))
    monkeypatch.setattr(crucible.sandbox.repair, "attempt", lambda client, settings, tree, name, **kw: dict(stages[name]))
    called = []

    def fix(client, tree, name, res, date):
        called.append(name)
        return apply_outcome(res, Outcome(False, Stop.STEP_CAP.value))

    settings = type("S", (), {"repair_max_rungs": 0})()
    rows = {s: survey.survey_one(None, settings, survey.Source(survey.SourceKind.SDIST, s), "run", llm_fix=fix)
            for s in ("a", "b")}
    assert called == ["a"]
    assert rows["a"]["stop_rung"] == "llm_repair" and rows["a"]["rungs"][-1]["stop"] == "step_cap"
    assert rows["a"]["stop_line"] == "E   ModuleNotFoundError: x"
    assert rows["b"]["stage"] == "mostly_passing" and rows["b"]["rungs"] == []


def test_native_policy_over_a_fake_openai_server(tmp_path):
    """make_policy("native") with the real LLM client: the server's tool calls run the session to a pass."""
    import json

    from crucible.pipelines.llm import LLMClient
    from crucible.pipelines.swe.llm_repair.runner import make_policy
    from tests.support.fake_llm_server import FakeOpenAIServer, Reply

    def call(i, name, args):
        return [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]

    replies = [Reply(content=None, tool_calls=call(0, "bash", {"command": "rm -rf tests"}), finish_reason="tool_calls"),
               Reply(content=None, tool_calls=call(1, "bash", {"command": FIX}), finish_reason="tool_calls"),
               Reply(content=None, tool_calls=call(2, "run_tests", {}), finish_reason="tool_calls")]
    with FakeOpenAIServer(replies) as srv:
        llm = LLMClient([srv.base_url], "m", cache_dir=tmp_path, max_retries=0)
        s = _session(FakeRepairWorkspace(FIX))
        stop, _ = run_session(make_policy(llm, "native"), s, _messages())
        sent = srv.requests[-1].body
    assert stop is None and s.replay_commands() == [FIX]
    assert [c.kind for c in s.commands] == ["refused", "install"]
    assert {t["function"]["name"] for t in sent["tools"]} == {"bash", "run_tests", "done"}
    assert "refused" in next(m["content"] for m in sent["messages"] if m["role"] == "tool")
