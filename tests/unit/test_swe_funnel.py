"""The swe-curate funnel in `crucible stats`, and the gold check in curation (rollouts faked: no Docker)."""

from __future__ import annotations

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.config import load_config
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout, failure_row
from crucible.pipelines.store.stats import compute_stats
from crucible.pipelines.swe import curate as swe_pipeline
from tests.support import samples


def instance(i: int) -> dict:
    return dict(samples.swe_instance(i), problem_statement="", meta={"function": "f", "path": "pkg/x.py"})


def validation(i: int, status: str = "valid", reason: str | None = None) -> dict:
    return dict(samples.swe_validation(i), status=status, reason=reason)


@pytest.fixture
def fake_rollouts(monkeypatch):
    """run_rollout replaced: gold resolves unless the instance id is in ``gold_fails``; llm never resolves."""
    calls, gold_fails = [], set()

    def fake(ctx, inst, policy, *, policy_name, sample_index=0, run_id="", **kw):
        calls.append((inst["instance_id"], policy_name, sample_index))
        ok = policy_name == "gold" and inst["instance_id"] not in gold_fails
        return dict(samples.swe_trajectory(0), traj_id=f"{inst['instance_id']}-{policy_name}-{sample_index}",
                    instance_id=inst["instance_id"], policy=policy_name, sample_index=sample_index,
                    resolved=ok, grade_reason=None if ok else "f2p failed: 1/1", reward=1.0 if ok else 0.0,
                    run_id=run_id, meta={"dropped_files": []})

    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", fake)
    # the statement's reproduction runs in containers: here it is the recorded take_nth failure
    monkeypatch.setattr("crucible.pipelines.swe.statement_repro.ground", lambda ctx, inst, scfg: samples_grounding())
    return calls, gold_fails


def samples_grounding():
    from tests.support.local_repro import grounding

    return grounding()


def curate(inst, val, cfg, *, client=object()):
    return swe_pipeline.curate_instance(None, inst, val, cfg=cfg, run_id="r1", client=client, prompt=None)


def test_gold_unresolved_rejects_the_instance_and_runs_no_llm_rollout(fake_rollouts):
    calls, gold_fails = fake_rollouts
    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.k=2", "swe.rollouts.policies=[gold,llm]"]).to_dict()
    good = curate(instance(1), validation(1), cfg)
    assert [c[1:] for c in calls] == [("gold", 0), ("llm", 0), ("llm", 1)]
    assert [r["instance_id"] for r in good.rows["swe_instances"]] == ["demo__repo-1"]
    assert good.rows["swe_validations"][0]["status"] == "valid"
    splits = {t["policy"] + str(t["sample_index"]): t["split"] for t in good.rows["swe_trajectories"]}
    # the gold replay is a plumbing check of rollouts and grading, in a split of its own: never SFT or RL
    assert splits == {"gold0": "reference", "llm0": "rl", "llm1": "rl"}
    assert good.rows["swe_instances"][0]["statement_origin"] == "observed"
    assert good.rows["swe_instances"][0]["statement_repro"]["reproduced"] is True
    assert "failures" not in good.rows  # no LLM by configuration (use_llm false): nothing refused to report

    calls.clear()
    gold_fails.add("demo__repo-2")
    bad = curate(instance(2), validation(2), cfg)
    assert [c[1] for c in calls] == ["gold"]  # no LLM rollout on an instance the harness cannot resolve
    assert "swe_instances" not in bad.rows
    v = bad.rows["swe_validations"][0]
    assert v["status"] == "invalid" and v["reason"].startswith("gold_unresolved: f2p failed")
    (t,) = bad.rows["swe_trajectories"]
    assert t["split"] == "none" and any(r.startswith("gold_unresolved") for r in t["drop_reasons"])
    assert {f["stage"] for f in bad.rows["failures"]} >= {"gold_check", "filter_trajectory"}


def test_stats_show_the_swe_funnel_with_drop_reasons(fake_rollouts, tmp_path, capsys):
    calls, gold_fails = fake_rollouts
    gold_fails.add("demo__repo-3")
    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.k=1", "swe.rollouts.policies=[gold,llm]"]).to_dict()
    out = str(tmp_path / "data")
    ensure_layout(out)
    items = [curate(instance(i), validation(i), cfg) for i in (1, 2, 3)]
    for i, reason in ((4, "no_fail_to_pass: no test goes pass -> fail"), (5, "no_fail_to_pass: none"),
                      (6, "bug_run_error/infra: timeout")):
        items.append(ItemResult(f"v{i}").add("swe_validations", validation(i, "invalid", reason)))
    for i, (stage, reason) in enumerate([("mine", "no_test_change"), ("mine", "no_test_change"),
                                         ("crawl", "no_linked_issue"), ("filter_trajectory", "repeated_actions")]):
        items.append(ItemResult(f"f{i}").add("failures", failure_row(
            pipeline="swe-curate", stage=stage, kind="filtered", reason=reason, run_id="r1", table="swe_instances",
            item_key=f"k{i}")))
    commit_items(out, "swe-curate", "r1", items)
    catalog.refresh_catalog(out)
    con = catalog.connect(out)
    try:
        funnel = {st["stage"]: st for st in compute_stats(con)["swe_funnel"]}
    finally:
        con.close()
    first = funnel["candidates reach the tests"]
    assert (first["in"], first["kept"]) == (9, 6)  # 3 rejected before tests + 6 validation rows
    assert first["drops"] == {"mine/no_test_change": 2, "crawl/no_linked_issue": 1}
    v = funnel["validated (F2P/P2P)"]
    assert (v["in"], v["kept"], v["drops"]) == (6, 3, {"no_fail_to_pass": 2, "bug_run_error/infra": 1})
    g = funnel["gold patch resolves"]
    assert (g["in"], g["kept"], g["drops"]) == (3, 2, {"gold_unresolved": 1})
    assert (funnel["instances written"]["kept"], funnel["instances written"]["drops"]) == (2, {})
    t = funnel["trajectories pass filters"]  # 2 llm + the rejected instance's gold (the 2 reference rows are not in it)
    assert (t["in"], t["kept"], t["drops"]) == (3, 2, {"gold_unresolved": 1})
    s = funnel["SFT (strict checks)"]  # the fake llm rows: unresolved, and no work shown (no edit, no test run)
    assert (s["in"], s["kept"], s["drops"]) == (2, 0, {"no_reproduction": 2, "no_test_after_edit": 2,
                                                       "unresolved": 2})
    semi = funnel["not SFT: semi_resolved (RL / turn-masked SFT)"]
    assert (semi["in"], semi["kept"], semi["drops"]) == (2, 0, {"rl (not close)": 2})
    con = catalog.connect(out)
    try:
        traj = compute_stats(con)["swe_trajectories"]
    finally:
        con.close()
    assert traj["reference"] == {"rows": 2, "policies": "gold"} and ["reference", 2] in traj["split"]

    assert main(["stats", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "swe_funnel:" in text
    assert "gold patch resolves" in text and "gold_unresolved=1" in text and "no_fail_to_pass=2" in text
    assert "rows=2  policies=gold" in text  # the reference split, shown apart from the funnel


class ScriptedLLM:
    """A chat client whose every statement passes the leak check."""

    def __init__(self):
        self.calls = 0

    def chat(self, msgs, prompt=None, sample_index=0):
        from types import SimpleNamespace

        self.calls += 1
        return SimpleNamespace(text="Calling take_nth(2, [10, 20, 30, 40, 50]) returns [20, 40] where I "
                                    "expected [10, 30, 50], every second item from the first.", error=None)


def test_llm_statements_and_rollouts_stop_at_their_caps(fake_rollouts):
    """statements.llm_max_instances: the first N curated instances get an LLM statement, the rest the one written
    from the reproduction (no failure row: as configured); rollouts.llm_max_instances caps LLM rollouts the same way."""
    import logging

    from crucible.pipelines.llm import load_prompt
    from crucible.pipelines.store.commit import Progress

    calls, _ = fake_rollouts
    cfg = load_config("swe", ["swe.statements.llm_max_instances=2", "swe.rollouts.policies=[gold,llm]",
                              "swe.rollouts.llm_max_instances=1"]).to_dict()
    dofn = swe_pipeline.Curate(cfg, None, "r1", "none")
    llm = ScriptedLLM()
    dofn.ctx, dofn.client, dofn.prompt, dofn.model = None, llm, load_prompt("swe_statement"), "m"
    dofn.progress = Progress("t", None, 60.0, logging.getLogger("t"))
    dofn.pool = None  # inline, in order (what setup makes of one thread)
    out = [next(iter(dofn.process((instance(i), validation(i))))) for i in (1, 2, 3, 4)]
    origins = [r.rows["swe_instances"][0]["statement_origin"] for r in out]
    assert origins == ["llm", "llm", "observed", "observed"] and llm.calls == 2
    assert not any("failures" in r.rows for r in out)
    assert [c[1] for c in calls].count("llm") == 1  # one LLM rollout: the first instance only
    assert load_config("swe", []).to_dict()["swe"]["statements"]["llm_max_instances"] == 4  # configs/swe.yaml
    from crucible.pipelines.config import section_schema

    stm = section_schema("swe")["properties"]["statements"]["properties"]
    assert stm["llm_max_instances"]["default"] is None  # the schema's default: every instance
