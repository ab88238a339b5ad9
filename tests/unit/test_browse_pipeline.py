"""synth-browse end to end on a toy user graph: real Beam, store, tantivy index, tools and
agent loop; the LLM is the scripted fake OpenAI server (the real model runs in integration)."""

import json

import pytest

from crucible.pipelines.browse import selection as SEL
from crucible.pipelines.config import load_config
from crucible.pipelines.integrations.export_verl import verl_rows
from crucible.pipelines.store import catalog
from tests.support.fake_browse import responder, write_toy_graph
from tests.support.fake_llm_server import FakeOpenAIServer


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    files = write_toy_graph(tmp_path)
    with FakeOpenAIServer(responder=responder) as srv:
        yield tmp_path, files, srv


def _cfg(tmp_path, files, srv, **extra):
    sets = [f"run.out_dir={tmp_path / 'out'}", "llm.engine=openai", f"llm.base_urls=[{srv.base_url}]",
            "llm.model=fake-model", "search.kg.embedded=false", f"search.kg.extra={json.dumps(files)}",
            "browse.seeds=3", "browse.min_hops=2", "browse.max_hops=3", "browse.k=2", "browse.rounds=2",
            "browse.max_per_pattern=5", "browse.max_share_per_tail_pattern=1.0", "run.progress_every_s=0",
            "browse.policy=json_step"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return load_config("browse", sets)


def test_pipeline_writes_questions_and_trajectories_and_reruns_for_free(env):
    from crucible.pipelines.browse.pipeline import run

    tmp_path, files, srv = env
    cfg = _cfg(tmp_path, files, srv)
    summary = run(cfg)
    assert summary["processed"] >= 1
    out = str(tmp_path / "out")
    cols, rows = catalog.query(out, "select * from questions")
    qs = [dict(zip(cols, r)) for r in rows]
    assert qs and all(q["hops"] >= 2 for q in qs)
    for q in qs:
        form = json.loads(q["formalization"])
        assert form["binding"][form["target"]]
        assert len(q["evidence"]) >= q["hops"] and all(e["url"].startswith("https://kb.local/") for e in q["evidence"])
        assert q["lineage"][0]["operator"] == "write"
        assert q["answer"].lower() not in q["question"].lower()
    cols, rows = catalog.query(out, "select * from browse_trajectories order by traj_id")
    ts = [dict(zip(cols, r)) for r in rows]
    assert len(ts) == 2 * len(qs)
    for t in ts:
        roles = [m["role"] for m in t["messages"]]
        assert roles[:2] == ["system", "user"] and "tool" in roles and roles[-1] == "assistant"
        call = t["messages"][2]["tool_calls"][0]
        assert call["function"]["name"] == "search" and json.loads(call["function"]["arguments"])["query"]
        assert t["messages"][3]["tool_call_id"] == call["id"]
        assert t["prediction"] == "Peruvian sol" and t["verdict"] in ("correct", "incorrect")
        expect_total = t["reward_outcome"] * t["reward_format"] + 0.1 * t["reward_clue"] * t["reward_format"]
        assert t["reward_total"] == pytest.approx(expect_total, abs=1e-6)  # stored rounded to 6 places
        # split follows the rules: SFT needs a correct trajectory, RL a verified question (any pass rate)
        if t["verdict"] != "correct":
            assert t["split"] in ("rl", "none") and "sft: not correct" in t["drop_reasons"]
    by_q = {q["question_id"]: q for q in qs}
    for t in ts:
        assert ("rl" in t["split"]) == (by_q[t["question_id"]]["split"] == "rl")
    for q in qs:
        verified = json.loads(q["meta"])["verified"]
        assert (q["split"] == "rl") == (SEL.rl_drop_reasons(verified) == [])
        assert q["difficulty_score"] == pytest.approx(1 - q["pass_rate"]) and q["solver_model"] == "fake-model"
        assert q["solver_k"] == 2
    # a question no rollout solved is still an RL row (was dropped by a pass-rate band (0, 1))
    assert any(q["pass_rate"] == 0 and q["split"] == "rl" for q in qs)
    assert len(verl_rows(out)) == sum(q["split"] == "rl" for q in qs) >= 1
    answers = {q["question_id"]: q["answer"] for q in qs}
    for t in ts:
        assert (t["verdict"] == "correct") == (answers[t["question_id"]] == "Peruvian sol")
    n_requests = len(srv.chat_requests)
    assert n_requests > 0
    # rerun: every item is finished -> nothing processed, no LLM request
    again = run(cfg)
    assert again["processed"] == 0 and again["skipped"] == summary["planned"]
    assert len(srv.chat_requests) == n_requests


def test_check_unique_and_judge_commands(env, capsys, monkeypatch, default_kg_cache):
    from crucible.pipelines.browse.pipeline import run
    from crucible.pipelines.cli import main

    tmp_path, files, srv = env
    cfg = _cfg(tmp_path, files, srv)
    run(cfg)
    args = ["--set", f"search.kg.extra={json.dumps(files)}", "--set", "search.kg.embedded=false",
            "--out", str(tmp_path / "out")]
    assert main(["browse", "check-unique", *args]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines and all(x["unique"] for x in lines)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Currency of Peru?", "gold": ["Peruvian sol", "PEN"], "prediction": "PEN"},
        {"question": "Currency of Peru?", "gold": ["Peruvian sol"], "prediction": "It cannot be determined."},
        {"question": "Currency of Peru?", "gold": ["Peruvian sol"], "prediction": "Sol or Boliviano"},
    ]) + "\n")
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(default_kg_cache))  # the judge reads the default graph: built once
    assert main(["browse", "judge", str(preds), "--rules-only"]) == 0
    verdicts = [json.loads(x)["verdict"] for x in capsys.readouterr().out.splitlines()]
    assert verdicts == ["correct", "not_attempted", "incorrect"]
    # near-miss format: gold_id loads the graph; the graph check stops a wrong entity whatever the judge says
    near = tmp_path / "near.jsonl"
    near.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Currency of Peru?", "gold": ["Peruvian sol", "sol", "PEN"], "gold_id": "currency/PEN",
         "answer_type": "currency", "prediction": "Boliviano", "expected": "incorrect", "kind": "neighbour's currency"},
        {"question": "Currency of Peru?", "gold": ["Peruvian sol", "sol", "PEN"], "gold_id": "currency/PEN",
         "answer_type": "currency", "prediction": "the Sol", "expected": "correct", "kind": "article"},
    ]) + "\n")
    assert main(["browse", "judge", str(near), "--rules-only", "--json", *args]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in doc["results"]] == ["graph", "rule"]
    assert doc["results"][0]["resolved_entity"] == "currency/BOB"
    assert doc["summary"]["near_misses_accepted"] == 0 and doc["summary"]["paraphrases_accepted"] == 1
    assert main(["browse", "judge", str(near), "--rules-only", "--no-graph", "--json", *args]) == 0
    off = json.loads(capsys.readouterr().out)["results"][0]  # the graph off: the undecided row goes to the judge
    assert (off["source"], off["resolved_entity"]) == ("judge", None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "gold": [], "prediction": "x"}) + "\n")
    assert main(["browse", "judge", str(bad), "--rules-only"]) == 2
    assert "bad.jsonl:1: field gold: [] is not allowed" in capsys.readouterr().err


def test_audit_command_rechecks_a_real_run_against_the_graph(env, capsys):
    from crucible.pipelines.browse.pipeline import run
    from crucible.pipelines.cli import main

    tmp_path, files, srv = env
    cfg = _cfg(tmp_path, files, srv)
    run(cfg)
    out = str(tmp_path / "out")
    sets = ["--set", "search.kg.embedded=false", "--set", f"search.kg.extra={json.dumps(files)}"]
    capsys.readouterr()
    assert main(["browse", "audit", "--out", out, "--json", *sets]) == 0
    a = json.loads(capsys.readouterr().out)
    cols, rows = catalog.query(out, "select count(*) from questions")
    assert a["questions"] == rows[0][0] >= 1
    assert a["contradicted"] == 0 and a["type_mismatch"] == 0  # graph-grounded lines ran (not None)
    assert sum(a["pass_rate_histogram"].values()) == a["questions"]
    assert a["sft_strict_violations"] == 0
    # findable clues: every question measured on the run's tantivy index, the stored queries re-run
    fa = a["findability"]
    assert fa["source"] == "rerun" and fa["questions_measured"] == a["questions"] and fa["without_findable_entry"] == 0
    # the same numbers in the report
    assert main(["report", "--out", out, *sets]) == 0
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "Browse audit" in page and "kept rows contradicted by the graph (must be 0): 0" in page


def test_reward_model_scores_fill_the_column_when_configured(env):
    from crucible.pipelines.browse.pipeline import run
    from crucible.pipelines.llm.reward import reward_conversation
    from tests.support.fake_pooling import FakePoolingServer, expected_score

    tmp_path, files, srv = env
    with FakePoolingServer() as rm:
        cfg = _cfg(tmp_path, files, srv, **{"llm.reward_model.backend": "pooling",
                                            "llm.reward_model.base_url": rm.url, "llm.reward_model.model": "rm-x"})
        run(cfg)
    out = str(tmp_path / "out")
    cols, rows = catalog.query(out, "select messages, reward_model_score, meta from browse_trajectories")
    assert rows
    for messages, score, meta in rows:
        msgs = json.loads(messages) if isinstance(messages, str) else messages
        assert score == pytest.approx(expected_score(reward_conversation(msgs)))
        assert json.loads(meta)["reward_model"] == "rm-x"
