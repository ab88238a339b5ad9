"""swe-curate SFT rows show the work (#24 item 2): a model policy's row is SFT only if the agent reproduced the
failure before editing, edited only source files, ran the tests after its last edit, resolved, made no call
twice with nothing changed between and read no longer than the limit in a row; each check drops with its named
reason and has a switch-off test. Rows that came close are ``semi`` (semi_resolved), out of SFT exports unless
``--include-semi``. Trajectories are crafted OpenAI messages (tests/support/swe_trajs.py)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.config import load_config
from crucible.pipelines.integrations.export_trl import trl_rows
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from crucible.pipelines.store.stats import compute_stats
from crucible.pipelines.swe import filters, steps
from tests.support import swe_trajs as T

CFG = load_config("swe", []).to_dict()["swe"]["filters"]
INST = T.instance()


def keys(reasons):
    return [filters.reason_key(r) for r in reasons]


def classify(row, **cfg):
    return filters.classify(row, {**CFG, **cfg}, INST)


def test_a_trajectory_that_shows_the_work_is_sft():
    assert classify(T.row()) == ("sft+rl", [])


def test_the_defaults_are_in_the_schema_only():
    from crucible.pipelines.config import section_schema

    props = section_schema("swe")["properties"]["filters"]["properties"]
    assert {k: props[k]["default"] for k in ("sft_require_reproduction", "sft_source_edits_only",
                                             "sft_require_test_after_edit", "sft_require_resolved",
                                             "sft_drop_repeated_calls", "sft_max_idle_reads", "semi_resolved")} == {
        "sft_require_reproduction": True, "sft_source_edits_only": True, "sft_require_test_after_edit": True,
        "sft_require_resolved": True, "sft_drop_repeated_calls": True, "sft_max_idle_reads": 8, "semi_resolved": True}


# ---------------------------------------------------------------- reproduced before editing

EDIT_FIRST = [T.view("pkg/core.py"), T.edit(), T.bash(T.TEST_CMD, T.FAILING_RUN), T.bash(T.TEST_CMD + " -x", T.PASSING_RUN),
              T.SUBMIT]


@pytest.mark.parametrize("st, detail", [
    (EDIT_FIRST, "no test or reproduction run before the first edit"),
    # the run before the edit passed: nothing was reproduced
    ([T.bash(T.TEST_CMD, T.PASSING_RUN), *T.good_steps()[2:]], "none of 1 test/reproduction runs"),
    # the run never started (no pytest): no failure of the code was seen
    ([T.bash(T.TEST_CMD, "exit code 127\nbash: pytest: command not found"), *T.good_steps()[2:]], "none of 1"),
    # an edit through bash (sed -i) is an edit too: it came before the reproduction
    ([T.bash("sed -i 's/a - b/a + b/' pkg/core.py", "exit code 0\n"), T.bash(T.TEST_CMD, T.FAILING_RUN),
      T.bash(T.TEST_CMD + " -q", T.PASSING_RUN), T.SUBMIT], "no test or reproduction run before"),
])
def test_no_reproduction_before_the_first_edit_is_not_sft(st, detail):
    split, reasons = classify(T.row(st))
    assert split == "rl" and keys(reasons) == ["no_reproduction"] and detail in reasons[0]


def test_a_failing_run_of_other_tests_reproduces_nothing():
    """INST's F2P is tests/test_core.py::test_add: a run of another test file that fails (a failure the bug did
    not cause) is no reproduction; the whole suite, or a run whose output names test_add, is."""
    other = T.bash("python -m pytest -q tests/test_io.py", "exit code 1\nFAILED tests/test_io.py::test_read\n1 failed")
    split, reasons = classify(T.row([other, *T.good_steps()[2:]]))
    assert split == "rl" and reasons == ["no_reproduction: none of 1 test/reproduction runs before the first edit "
                                         "showed a failure"]
    assert filters.classify(T.row([other, *T.good_steps()[2:]]), CFG, None) == ("sft+rl", [])  # F2P unknown
    suite = T.bash("python -m pytest -q 2>&1 | tail -2", "exit code 0\n1 failed, 40 passed in 0.3s")
    assert classify(T.row([suite, *T.good_steps()[2:]])) == ("sft+rl", [])
    named = T.bash("python -m pytest -q -k add tests", "exit code 1\nFAILED tests/test_core.py::test_add\n1 failed")
    assert classify(T.row([named, *T.good_steps()[2:]])) == ("sft+rl", [])


def test_without_the_reproduction_check_the_edit_first_row_is_sft():
    assert classify(T.row(EDIT_FIRST), sft_require_reproduction=False) == ("sft+rl", [])


def test_a_reproduction_script_the_agent_writes_and_runs_counts_and_is_no_edit():
    st = [T.create("repro.py", "from pkg.core import add\nassert add(1, 2) == 3\n"),
          T.bash("python repro.py", "exit code 1\nTraceback (most recent call last):\nAssertionError"),
          T.view("pkg/core.py"), T.edit(), T.bash(T.TEST_CMD, T.PASSING_RUN), T.SUBMIT]
    assert classify(T.row(st)) == ("sft+rl", [])
    # written and run in one command, through a pipe that hides the exit code: the text shows the failure
    st = [T.bash("cat > /tmp/r.py <<'EOF'\nfrom pkg.core import add\nprint(add(1, 2))\nEOF\npython /tmp/r.py | tail -3",
                 "exit code 0\nTraceback (most recent call last):\nTypeError: bad operand"), *T.good_steps()[2:]]
    assert classify(T.row(st)) == ("sft+rl", [])


# ---------------------------------------------------------------- only source files

@pytest.mark.parametrize("bad, shown", [
    (T.edit("tests/test_core.py", "    assert True"), "tests/test_core.py (test file)"),
    (T.create("setup.cfg", "[tool:pytest]\naddopts = -p no:x\n"), "setup.cfg (harness file)"),
    (T.create("/usr/lib/python3.11/site.py", "x = 1\n"), "/usr/lib/python3.11/site.py (outside the repository)"),
    (T.edit("../other/core.py"), "../other/core.py (outside the repository)"),
    (T.bash("cat > tests/test_new.py <<'EOF'\ndef test_x(): pass\nEOF", "exit code 0\n"), "tests/test_new.py (test file)"),
])
def test_an_edit_of_a_test_harness_or_outside_file_is_not_sft(bad, shown):
    st = T.good_steps()
    st.insert(4, bad)  # after the source edit, before the last test run
    split, reasons = classify(T.row(st))
    assert split == "rl" and keys(reasons) == ["non_source_edit"] and shown in reasons[0]


def test_without_the_source_check_a_test_edit_is_sft():
    st = T.good_steps()
    st.insert(4, T.edit("tests/test_core.py", "    assert True"))
    assert classify(T.row(st), sft_source_edits_only=False) == ("sft+rl", [])


# ---------------------------------------------------------------- tests after the last edit

@pytest.mark.parametrize("st, detail", [
    (T.good_steps()[:4] + [T.SUBMIT], "no test run after the last edit"),
    # tested, then edited again and submitted untested
    (T.good_steps()[:5] + [T.edit(new="    return b + a"), T.SUBMIT], "no test run after the last edit"),
    # a reproduction script after the edit is no test run; a test run that never started is none either
    (T.good_steps()[:4] + [T.bash("python -c 'from pkg.core import add; print(add(1, 2))'", "exit code 0\n3"),
                           T.bash("pytest tests/test_nope.py", "exit code 4\nERROR: file or directory not found"),
                           T.SUBMIT], "no test run after the last edit"),
    (T.good_steps()[:3] + [T.SUBMIT], "no edit of the code"),
])
def test_no_test_run_after_the_last_edit_is_not_sft(st, detail):
    split, reasons = classify(T.row(st))
    assert split == "rl" and "no_test_after_edit" in keys(reasons)
    assert detail in next(r for r in reasons if r.startswith("no_test_after_edit"))


def test_without_the_test_after_check_an_untested_edit_is_sft():
    assert classify(T.row(T.good_steps()[:4] + [T.SUBMIT]), sft_require_test_after_edit=False) == ("sft+rl", [])


# ---------------------------------------------------------------- resolved

def test_an_unresolved_row_is_not_sft_and_without_the_check_it_is():
    bad = T.row(resolved=False, f2p=(0, 1))
    split, reasons = classify(bad)
    assert split == "rl" and reasons == ["unresolved: F2P 0/1, P2P 1/1"]
    assert classify(bad, sft_require_resolved=False) == ("sft+rl", [])


# ---------------------------------------------------------------- efficiency

def test_the_same_call_again_with_nothing_changed_between_is_not_sft():
    st = T.good_steps()
    st.insert(3, T.view("pkg/core.py"))  # the same view twice, no edit between
    split, reasons = classify(T.row(st))
    assert split == "rl" and keys(reasons) == ["repeated_call"] and "made 2 times" in reasons[0]
    assert classify(T.row(st), sft_drop_repeated_calls=False) == ("sft+rl", [])


def test_rerunning_the_tests_after_an_edit_is_no_repeat():
    """good_steps runs the same test command before and after the edit; three test runs around two edits are
    no loop for the hard filter either (it dropped them as 'one call made 3 times' before)."""
    st = [*T.good_steps()[:5], T.edit(new="    return b + a"), T.bash(T.TEST_CMD, T.PASSING_RUN), T.SUBMIT]
    assert classify(T.row(st)) == ("sft+rl", [])
    loop = [*T.good_steps()[:5], T.bash(T.TEST_CMD, T.PASSING_RUN), T.bash(T.TEST_CMD, T.PASSING_RUN), T.SUBMIT]
    split, reasons = classify(T.row(loop))
    assert split == "none" and reasons == ["repeated_actions: one call made 3 times"]


def test_long_idle_reading_is_not_sft():
    reads = [T.view("pkg/core.py", start=1 + 10 * k) for k in range(5)] + [
        T.bash(f"grep -n add pkg/m{k}.py | head", "1:def add") for k in range(4)]
    st = [T.bash(T.TEST_CMD, T.FAILING_RUN), *reads, *T.good_steps()[3:]]
    split, reasons = classify(T.row(st))
    assert split == "rl" and reasons == ["idle_reading: 9 reads in a row > 8"]
    assert classify(T.row(st), sft_max_idle_reads=None) == ("sft+rl", [])
    assert classify(T.row(st), sft_max_idle_reads=9) == ("sft+rl", [])
    # a run between the reads breaks the streak
    st.insert(5, T.bash(T.TEST_CMD + " -k add", T.FAILING_RUN))
    assert classify(T.row(st)) == ("sft+rl", [])


def test_every_failed_check_is_listed():
    split, reasons = classify(T.row([T.edit("tests/test_core.py"), T.SUBMIT], resolved=False, f2p=(0, 1)))
    assert split == "rl"
    assert keys(reasons) == ["no_reproduction", "non_source_edit", "no_test_after_edit", "unresolved"]


# ---------------------------------------------------------------- semi_resolved

def test_a_close_unresolved_row_is_semi_with_its_reasons():
    close = T.row(resolved=False, f2p=(1, 2))  # edited pkg/core.py (a file of the fix), F2P 1 of 2 pass
    split, reasons = classify(close)
    assert split == "semi" and reasons == ["unresolved: F2P 1/2, P2P 1/1"]
    # a semi row lists every strict check it fails
    split, reasons = classify(T.row(EDIT_FIRST, resolved=False, f2p=(1, 2)))
    assert split == "semi" and keys(reasons) == ["no_reproduction", "unresolved"]


@pytest.mark.parametrize("row, inst, cfg", [
    (T.row(resolved=False, f2p=(1, 2), patch=T.OTHER_PATCH), INST, {}),  # the wrong file
    (T.row(resolved=False, f2p=(0, 2)), INST, {}),  # no F2P test passes
    (T.row(resolved=False, f2p=(1, 2)), None, {}),  # instance unknown: cannot tell
    (T.row(resolved=False, f2p=(1, 2)), INST, {"semi_resolved": False}),  # switched off
])
def test_a_row_that_is_not_close_stays_rl(row, inst, cfg):
    split, reasons = filters.classify(row, {**CFG, **cfg}, inst)
    assert split == "rl" and "unresolved" in keys(reasons)


def test_a_tampering_row_is_never_semi():
    bad = T.row(resolved=False, f2p=(1, 2), grade="harness_tamper", grade_reason="canary")
    assert classify(bad)[0] == "none"


def test_gold_rows_stay_reference():
    assert classify(T.row(EDIT_FIRST, policy="gold")) == ("reference", [])


# ---------------------------------------------------------------- the steps reader

@pytest.mark.parametrize("command, kind", [
    ("python -m pytest -q tests", "test"), ("tox -e py311", "test"), ("python -c 'import pkg'", "run"),
    ("python repro.py 2>&1 | tail -5", "run"), ("grep -rn add pkg | head -20", "read"),
    ("cd pkg && sed -n '1,40p' core.py", "read"), ("git diff", "read"), ("pip install -e .", "other"),
    ("python -m pip install attrs", "other"), ("/usr/bin/python3 repro.py", "run"), ("/opt/venv/bin/pip install x", "other"),
    ("sed -i 's/x/y/' pkg/core.py", "edit"), ("perl -pi -e 's/x/y/' pkg/core.py", "edit"),
    ("echo 'x = 1' >> pkg/core.py", "edit"), ("python -m pytest tests > /tmp/log.txt 2>&1", "test"),
])
def test_bash_commands_are_read_as_kinds(command, kind):
    (s,) = steps.steps(T.messages([T.bash(command, "exit code 0\n")]))
    assert s.kind == kind


def test_a_failed_install_is_no_reproduction_and_a_failed_sed_no_edit():
    st = [T.bash("python -m pip install nosuchpkg", "exit code 1\nERROR: No matching distribution"),
          T.bash("sed -i 's/x/y/' pkg/nope.py", "exit code 2\nsed: can't read pkg/nope.py"), *T.good_steps()[2:]]
    split, reasons = classify(T.row(st))
    assert steps.steps(T.messages(st))[1].ok is False  # the sed changed nothing: no edit
    assert split == "rl" and reasons[0] == "no_reproduction: no test or reproduction run before the first edit"


def test_failure_and_setup_failure_are_told_apart():
    assert steps.shows_failure(T.FAILING_RUN) and not steps.shows_failure(T.PASSING_RUN)
    assert steps.shows_failure("exit code 0\nTraceback (most recent call last):\nKeyError: 'x'")
    assert not steps.shows_failure("exit code 127\nbash: pytest: command not found")
    assert not steps.shows_failure("exit code 5\nno tests ran in 0.01s")
    assert steps.repo_path("/testbed/pkg/core.py") == ("pkg/core.py", False)
    assert steps.repo_path("/etc/passwd") == ("/etc/passwd", True)
    assert steps.repo_path("pkg/../../x.py") == ("../x.py", True)


# ---------------------------------------------------------------- curation, export, stats

def test_curation_passes_the_instance_so_a_close_row_is_semi(monkeypatch):
    from crucible.pipelines.swe import curate

    def fake(ctx, inst, policy, *, policy_name, sample_index=0, run_id="", **kw):
        if policy_name == "gold":
            return T.row(policy="gold", traj_id="g", instance_id=inst["instance_id"])
        return T.row(resolved=False, f2p=(1, 2), traj_id="l", instance_id=inst["instance_id"])

    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", fake)
    from tests.support.local_repro import patch_grounding

    patch_grounding(monkeypatch)  # the statement's reproduction (containers) stands recorded
    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.policies=[gold,llm]"]).to_dict()
    inst = dict(T.instance(), problem_statement="", meta={"function": "add", "path": "pkg/core.py"})
    res = curate.curate_instance(None, inst, T.samples.swe_validation(1), cfg=cfg, run_id="r1", client=object(),
                                 prompt=None)
    assert {t["traj_id"]: t["split"] for t in res.rows["swe_trajectories"]} == {"g": "reference", "l": "semi"}
    # its reasons stay on the row: a kept row is no failure (only split none rows write failures rows)
    assert res.rows["swe_trajectories"][1]["drop_reasons"] == ["unresolved: F2P 1/2, P2P 1/1"]
    assert "failures" not in res.rows


@pytest.fixture
def store(tmp_path):
    rows = {"sft": T.row(traj_id="sft"), "semi": T.row(resolved=False, f2p=(1, 2), traj_id="semi"),
            "rl": T.row(EDIT_FIRST, traj_id="rl"), "none": T.row(exit_status="turn_cap", traj_id="none")}
    items = []
    for k, r in rows.items():
        r["split"], r["drop_reasons"] = classify(r)
        assert r["split"] in (k, "sft+rl")
        items.append(ItemResult(k).add("swe_trajectories", r))
    out = str(tmp_path / "data")
    ensure_layout(out)
    commit_items(out, "swe-curate", "r1", items)
    catalog.refresh_catalog(out)
    return out


def test_the_trl_export_leaves_semi_out_unless_asked_and_marks_it(store, tmp_path, capsys):
    assert [r["id"] for r in trl_rows(store, "swe")] == ["sft"]
    rows = {r["id"]: r["semi_resolved"] for r in trl_rows(store, "swe", include_semi=True)}
    assert rows == {"semi": True, "sft": False}
    dest = tmp_path / "trl.parquet"
    assert main(["export", "--format", "trl", "--source", "swe", "--out", store, "--dest", str(dest),
                 "--include-semi"]) == 0
    t = pq.read_table(dest)
    assert dict(zip(t.column("id").to_pylist(), t.column("semi_resolved").to_pylist())) == rows
    capsys.readouterr()
    rc = main(["export", "--format", "verl", "--source", "swe", "--out", store, "--dest", str(tmp_path / "v.parquet"),
               "--include-semi"])
    err = capsys.readouterr().err
    assert rc == 2 and "--include-semi" in err and len(err.strip().splitlines()) == 1


def test_stats_funnel_shows_the_strict_reasons_and_the_semi_rows(store):
    con = catalog.connect(store)
    try:
        funnel = {st["stage"]: st for st in compute_stats(con)["swe_funnel"]}
    finally:
        con.close()
    t = funnel["trajectories pass filters"]
    assert (t["in"], t["kept"], t["drops"]) == (4, 3, {"not_submitted": 1})
    s = funnel["SFT (strict checks)"]
    assert (s["in"], s["kept"], s["drops"]) == (3, 1, {"no_reproduction": 1, "unresolved": 1})
    semi = funnel["not SFT: semi_resolved (RL / turn-masked SFT)"]
    assert (semi["in"], semi["kept"], semi["drops"]) == (2, 1, {"rl (not close)": 1})


def test_an_edit_in_place_of_a_file_the_agent_then_runs_is_still_an_edit():
    """Only a file written whole (create, a redirect) and then run is a scratch script: str_replace or sed -i of
    a module the tests import is an edit of the code, even when a later command names the file."""
    st = [T.bash("sed -i 's/a - b/a + b/' pkg/core.py", "exit code 0\n"), T.bash("python pkg/core.py", "exit code 0\n"),
          T.bash(T.TEST_CMD, T.PASSING_RUN), T.SUBMIT]
    assert [s.source_edit for s in steps.steps(T.messages(st))] == [True, False, False, False]
    assert keys(classify(T.row(st))[1]) == ["no_reproduction"]


def test_the_real_tools_observations_are_read_right(tmp_path):
    """Through run_agent and the swe tools on a local repo with a real pytest run: the bash tool's 'exit code N'
    and pytest's own output, the view and str_replace answers. Reproduce-edit-test is SFT; edit-first is not."""
    import sys

    from crucible.pipelines.agent.loop import run_agent
    from crucible.pipelines.swe.rollout import task_messages
    from crucible.pipelines.swe.tools import make_tools
    from crucible.sandbox.workspace import LocalWorkspace, init_baseline, workspace_diff

    def rollout(script):
        root = tmp_path / f"repo{len(script)}"
        (root / "pkg").mkdir(parents=True)
        (root / "tests").mkdir()
        (root / "pkg/__init__.py").write_text("")
        (root / "pkg/core.py").write_text("def add(a, b):\n    return a - b\n")
        (root / "tests/test_core.py").write_text("from pkg.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
        ws = LocalWorkspace(root)
        init_baseline(ws)
        res = run_agent(T.ScriptedPolicy(script), make_tools(ws, command_timeout_s=60),
                        task_messages({"repo": "o/r", "problem_statement": "add(1, 2) is -1"}), max_turns=len(script),
                        final_tool="submit")
        return T.row([], messages=res.messages, model_patch=workspace_diff(ws), n_tool_calls=res.n_tool_calls)

    test = ("bash", {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_core.py 2>&1 | tail -5"})
    fix = ("str_replace", {"path": "pkg/core.py", "old_str": "a - b", "new_str": "a + b"})
    look, submit = ("view", {"path": "pkg/core.py"}), ("submit", {"summary": "add subtracted"})
    good = rollout([test, look, fix, test, submit])
    assert "1 failed" in good["messages"][3]["content"] and "1 passed" in good["messages"][9]["content"]
    assert [s.kind for s in steps.steps(good["messages"])] == ["test", "read", "edit", "test", "submit"]
    assert classify(good) == ("sft+rl", [])
    split, reasons = classify(rollout([look, fix, test, submit]))
    assert split == "rl" and keys(reasons) == ["no_reproduction"]
