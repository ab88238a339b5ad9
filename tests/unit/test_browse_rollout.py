"""`crucible browse rollout` on the toy graph with the scripted fake OpenAI server: real store, index,
tools, agent loop and judge path; resume, gold / no gold, bad input rows."""

import json

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog
from crucible.pipelines.store.records import record_type
from tests.support.fake_browse import responder, write_toy_graph
from tests.support.fake_llm_server import FakeOpenAIServer
from tests.support.judges import yes_judge_responder

QUESTIONS = [
    {"id": "peru", "question": "Which currency is used in Peru?", "gold": "Peruvian sol", "gold_aliases": ["PEN"]},
    {"id": "bolivia", "question": "Which currency is used in Bolivia?", "gold": "Boliviano"},
    {"id": "open", "question": "What is the currency of the country whose capital is Lima?"},
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    files = write_toy_graph(tmp_path)
    with FakeOpenAIServer(responder=responder, latency_s=0.05) as srv:
        yield tmp_path, files, srv


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _args(tmp_path, files, srv, *extra):
    sets = ["llm.engine=openai", f"llm.base_urls=[{srv.base_url}]", "llm.model=fake-model",
            "search.kg.embedded=false", f"search.kg.extra={json.dumps(files)}", "run.progress_every_s=0",
            "browse.policy=json_step", "llm.max_concurrency=3"]
    return [x for s in sets for x in ("--set", s)] + ["--out", str(tmp_path / "out"), *extra]


def _trajs(out):
    cols, rows = catalog.query(str(out), "select * from browse_trajectories order by traj_id")
    rt = record_type("browse_trajectories")
    return [rt.decode(dict(zip(cols, r))) for r in rows]


def test_rollout_judges_with_gold_leaves_no_gold_unjudged_and_resumes(env, capsys):
    tmp_path, files, srv = env
    first = _write(tmp_path / "q2.jsonl", QUESTIONS[:2])
    assert main(["browse", "rollout", "--input", first, "--k", "2", *_args(tmp_path, files, srv)]) == 0
    s1 = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert s1["committed"] == 4 and s1["skipped"] == 0 and s1["workers"] == 3
    n1 = len(srv.chat_requests)
    assert srv.peak_in_flight > 1  # rollouts ran in parallel

    # the superset file: only the new question's rollouts run; nothing is written twice
    full = _write(tmp_path / "q3.jsonl", QUESTIONS)
    assert main(["browse", "rollout", "--input", full, "--k", "2", *_args(tmp_path, files, srv)]) == 0
    s2 = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert s2["skipped"] == 4 and s2["committed"] == 2
    ts = _trajs(tmp_path / "out")
    assert [t["traj_id"] for t in ts] == ["bolivia-0", "bolivia-1", "open-0", "open-1", "peru-0", "peru-1"]
    by = {t["traj_id"]: t for t in ts}
    for t in ts:  # the agent searched, then answered "Peruvian sol"
        assert t["prediction"] == "Peruvian sol" and t["n_search"] == 1 and t["rendered_react"]
        assert t["evidence_recall"] is None and t["split"] is None
        assert t["resolved_entity"] == ("currency/PEN" if t["question_id"] == "bolivia" else None)
    # gold given: the rules decide what they can, then the graph (the gold text resolved: no gold_id), the judge the rest
    assert by["peru-0"]["verdict"] == "correct" and by["peru-0"]["verdict_source"] == "rule"
    assert by["peru-0"]["answer"] == "Peruvian sol" and by["peru-0"]["answer_aliases"] == ["PEN"]
    assert by["peru-0"]["reward_outcome"] == 1.0 and by["peru-0"]["reward_total"] == 1.0
    # "Peruvian sol" for "Boliviano": two currencies of the graph, incorrect without asking the judge
    assert by["bolivia-1"]["verdict"] == "incorrect" and by["bolivia-1"]["verdict_source"] == "graph"
    assert by["bolivia-1"]["judge_raw"].startswith("graph: prediction resolves to currency/PEN (Peruvian sol), "
                                                   "gold to currency/BOB (Boliviano)")
    assert by["bolivia-1"]["reward_total"] == 0.0 and by["bolivia-1"]["judge_model"] is None
    # no gold: not judged, and no reward that would read as a judgement
    o = by["open-0"]
    assert o["verdict"] is None and o["verdict_source"] is None and o["answer"] is None
    assert o["reward_outcome"] is None and o["reward_total"] is None and o["judge_raw"] is None
    assert o["meta"]["verdict_reason"].startswith("not_judged") and o["extracted_answer"] == "Peruvian sol"
    assert s2["verdicts"] == {"correct": 2, "incorrect": 2, "not_judged": 2}
    judged = [b for b in srv.chat_requests
              if "equivalent" in json.dumps((b.get("response_format") or {}).get("json_schema", {}))]
    assert judged == []  # the rules and the graph decided every rollout

    # a finished file again: no LLM request at all
    n2 = len(srv.chat_requests)
    assert n2 > n1
    assert main(["browse", "rollout", "--input", full, "--k", "2", *_args(tmp_path, files, srv)]) == 0
    s3 = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert s3["skipped"] == 6 and s3["committed"] == 0 and len(srv.chat_requests) == n2
    assert len(_trajs(tmp_path / "out")) == 6


@pytest.mark.parametrize("graph_check", [True, False])
def test_a_lenient_judge_accepts_another_entity_only_without_the_graph_check(tmp_path, monkeypatch, capsys,
                                                                           graph_check):
    """"Peruvian sol" for "Boliviano" (an outside question: no graph id) under a judge that says yes to
    everything: the graph check rejects it before the judge; switched off, the judge lets it through."""
    from crucible.pipelines.browse import batch

    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    if not graph_check:
        monkeypatch.setattr(batch, "resolver_of", lambda ctx: None)
    files = write_toy_graph(tmp_path)
    with FakeOpenAIServer(responder=yes_judge_responder(responder)) as srv:
        f = _write(tmp_path / "q.jsonl", [QUESTIONS[1]])
        assert main(["browse", "rollout", "--input", f, "--k", "1", *_args(tmp_path, files, srv)]) == 0
        judged = [b for b in srv.chat_requests
                  if "equivalent" in json.dumps((b.get("response_format") or {}).get("json_schema", {}))]
    capsys.readouterr()
    (t,) = _trajs(tmp_path / "out")
    assert t["prediction"] == "Peruvian sol" and t["answer"] == "Boliviano"
    if graph_check:
        assert (t["verdict"], t["verdict_source"], t["resolved_entity"]) == ("incorrect", "graph", "currency/PEN")
        assert judged == []
    else:
        assert (t["verdict"], t["verdict_source"], t["resolved_entity"]) == ("correct", "judge", None)
        assert len(judged) == 1


def test_stream_prints_each_step(env, capsys):
    tmp_path, files, srv = env
    f = _write(tmp_path / "q.jsonl", QUESTIONS[:1])
    assert main(["browse", "rollout", "--input", f, "--k", "1", "--stream", *_args(tmp_path, files, srv)]) == 0
    out = capsys.readouterr().out
    assert '[peru-0] turn 1: search {"query": "Peru currency"}' in out
    assert "[peru-0]   observation: " in out and "[peru-0] answer: Peruvian sol" in out
    assert "[peru-0] done: correct (rule), 1 tool calls, answered" in out


@pytest.mark.parametrize(("row", "says"), [
    ('{"id": "a", "question": "Q?"', "line 2, column"),  # not JSON
    ('{"question": "Q?"}', "line 2: field $ (the row): 'id' is a required property"),
    ('{"id": "b", "question": "   "}', "line 2: field $.question"),
    ('{"id": "b", "question": "Q?", "answer": "x"}', "line 2: field $ (the row): Additional properties"),
    ('{"id": "b", "question": "Q?", "gold_aliases": ["x"]}', "line 2: field $.gold_aliases given without gold"),
    ('{"id": "a", "question": "Q2?"}', "line 2: field $.id: id 'a' repeats line 1"),
    ('{"id": "a b", "question": "Q2?"}', "line 2: field $.id"),
    ('["id", "question"]', "line 2: field $ (the row): ['id', 'question'] is not of type 'object'"),
])
def test_a_bad_input_row_exits_2_naming_the_file_and_line(env, capsys, row, says):
    tmp_path, files, srv = env
    f = _write(tmp_path / "bad.jsonl", ['{"id": "a", "question": "Q1?", "gold": "x"}', row])
    assert main(["browse", "rollout", "--input", f, *_args(tmp_path, files, srv)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: " in err and says in err, err
    assert srv.chat_requests == []  # refused before any work


def test_swe_rollout_refuses_bad_rows_and_rows_without_labels_before_any_container(tmp_path, capsys):
    bad = _write(tmp_path / "bad.jsonl", ['{"instance_id": "a__b-1", "repo": "a/b"}'])
    assert main(["swe", "rollout", "--instances", bad, "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:1 field " in capsys.readouterr().err
    row = {"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abcdef1", "problem_statement": "x",
           "patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", "test_patch": "--- a/t\n+++ b/t\n@@ -1 +1 @@\n-a\n+b\n"}
    unlabeled = _write(tmp_path / "u.jsonl", [row])
    assert main(["swe", "rollout", "--instances", unlabeled, "--out", str(tmp_path / "o")]) == 2
    assert "FAIL_TO_PASS/PASS_TO_PASS missing" in capsys.readouterr().err
