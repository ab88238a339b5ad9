"""swe-curate end to end on a real sdist in Docker, with a scripted OpenAI-compatible server standing in for
the model (the embedded model run is `make swe-curate`)."""

import json
import re

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def responder(body):
    from tests.support.fake_llm_server import Reply

    if body.get("response_format"):  # one agent step: look at a file, then submit
        seen = sum(m["role"] == "user" and m["content"].startswith("Observation") for m in body["messages"])
        step = ({"thought": "look", "tool": "view", "arguments": {"path": "toolz/itertoolz.py"}} if seen == 0 else
                {"thought": "done", "tool": "submit", "arguments": {"summary": "nothing changed"}})
        return Reply(content=json.dumps(step))
    # the statement: the observed runs the prompt gives, said back (a statement that contradicts them is refused)
    user = body["messages"][-1]["content"]
    got, want = (re.search(rf"{cue}: it (.*)", user).group(1) for cue in ("What happened", "What should happen"))
    return Reply(content=f"When I call this helper on an ordinary list it {got}, but I expected that it {want}, "
                         "as the documentation promises.")


def test_swe_curate_writes_instances_validations_trajectories_and_drop_reasons(tmp_path):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.pipeline import run
    from tests.support.fake_llm_server import FakeOpenAIServer

    out = tmp_path / "out"
    with FakeOpenAIServer(responder=responder) as srv:
        cfg = load_config("swe", ["llm.engine=openai", f"llm.base_urls=[{srv.base_url}]", "llm.model=fake",
                                  "swe.sdists=[toolz==0.12.0,nosuchpkg-crucible==0.0.1]",
                                  "swe.max_candidates_per_repo=3", f"run.out_dir={out}",
                                  f"swe.workdir={tmp_path / 'work'}", "swe.rollouts.llm_max_instances=1",
                                  "swe.rollouts.policies=[gold,llm]"])
        summary = run(cfg)
        counts = {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0]
                  for t in ("swe_instances", "swe_validations", "swe_trajectories", "failures")}
        n_requests = len(srv.chat_requests)
        # rerun: committed instances are skipped, nothing is written twice, no LLM call is made
        run(cfg)
        assert counts == {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0] for t in counts}
        assert len(srv.chat_requests) == n_requests
    assert summary["instances"] >= 1 and summary["trajectories"]["gold/resolved"] == summary["instances"]
    cols, rows = catalog.query(str(out), "select instance_id, source, statement_origin, problem_statement, "
                               "len(FAIL_TO_PASS), bug_operator from swe_instances")
    for r in rows:
        assert r[1] == "injected" and r[2] == "llm" and r[4] >= 1 and r[5]
    _, trajs = catalog.query(str(out), "select policy, resolved, exit_status, split, n_tool_calls, messages "
                             "from swe_trajectories order by policy")
    llm = [t for t in trajs if t[0] == "llm"]
    assert len(llm) == 1 and llm[0][1] is False and llm[0][2] == "submitted" and llm[0][3] == "rl"
    assert llm[0][4] == 2  # view + submit
    assert all(t[3] == "reference" for t in trajs if t[0] == "gold")  # a plumbing check, never SFT or RL
    _, vals = catalog.query(str(out), "select status, count(*) from swe_validations group by 1")
    assert dict(vals).get("valid") == summary["instances"]
    _, fails = catalog.query(str(out), "select stage, kind, reason from failures")
    assert any(s == "inject" and k == "infra" and "nosuchpkg-crucible" in r for s, k, r in fails)
