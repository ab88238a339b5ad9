"""The embedded model through the whole swe-curate graph on one injected toolz bug (Docker + model)."""

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.model]


def test_embedded_model_writes_statement_and_rolls_out(tmp_path):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.pipeline import run

    out = tmp_path / "out"
    cfg = load_config("swe", ["swe.sdists=[toolz==0.12.0]", "swe.max_candidates_per_repo=1",
                              "swe.include_paths.toolz=[toolz/itertoolz.py]", f"run.out_dir={out}",
                              f"swe.workdir={tmp_path / 'work'}", "swe.rollouts.max_turns=2",
                              "swe.rollouts.llm_max_instances=1", "swe.rollouts.policies=[gold,llm]"])
    summary = run(cfg)
    assert summary["instances"] == 1, summary
    _, inst = catalog.query(str(out), "select statement_origin, statement_prompt_version, problem_statement "
                            "from swe_instances")
    origin, version, text = inst[0]
    assert origin in ("llm", "observed") and len(text) >= 60  # observed: every model sample was refused
    if origin == "llm":
        assert version == "swe_statement@2"
    _, trajs = catalog.query(str(out), "select policy, policy_model, n_turns, n_tool_calls, exit_status, resolved "
                             "from swe_trajectories order by policy")
    assert [t[0] for t in trajs] == ["gold", "llm"]
    gold, llm = trajs
    assert gold[5] is True
    assert llm[1] == cfg.llm.model and 1 <= llm[2] <= 2 and llm[3] >= 1  # the model called tools
    assert llm[4] in ("submitted", "forced_submit")
