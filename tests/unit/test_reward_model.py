"""Reward-model scoring against a loopback server speaking vLLM's pooling protocol."""

from __future__ import annotations

import json

import pytest

from crucible.pipelines.llm.reward import PoolingRewardClient, RewardError, reward_conversation
from tests.support import samples
from tests.support.fake_pooling import FakePoolingServer, expected_score


def _conv(answer):
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]


def test_tool_turns_are_folded_into_text_a_reward_template_accepts():
    conv = reward_conversation(samples.messages(3))
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user", "assistant"]
    assert conv[2]["content"] == '<tool_call>{"name": "search", "arguments": {"query": "city 3", "top_k": 3}}</tool_call>'
    assert conv[3]["content"] == "<tool_response>result 3</tool_response>"
    assert all(set(m) == {"role", "content"} for m in conv)


def test_scores_come_back_in_order_and_a_rerun_is_served_from_the_cache(tmp_path):
    convs = [_conv("Lima"), _conv("correct: Rímac"), samples.messages(1)]
    with FakePoolingServer() as srv:
        client = PoolingRewardClient(srv.url, "rm-test", cache_dir=str(tmp_path), max_concurrency=2)
        got = client.score(convs)
        assert got == [expected_score(reward_conversation(c)) for c in convs]
        assert srv.requests[0]["path"] == "/pooling" and srv.requests[0]["model"] == "rm-test"
        n = len(srv.requests)
        again = PoolingRewardClient(srv.url, "rm-test", cache_dir=str(tmp_path))
        assert again.score(convs) == got and len(srv.requests) == n and again.stats["cache_hits"] == 3


def test_retry_after_429_and_per_token_output():
    with FakePoolingServer(fail_first=2, per_token=True) as srv:
        client = PoolingRewardClient(srv.url, "rm", backoff_initial_s=0.01)
        assert client.score([_conv("abc")]) == [0.03]
        assert client.stats["retries"] == 2 and len(srv.requests) == 3


def test_failures_raise_instead_of_scoring_zero():
    with FakePoolingServer(fail_first=10) as srv:
        with pytest.raises(RewardError, match="429"):
            PoolingRewardClient(srv.url, "rm", max_retries=1, backoff_initial_s=0.0).score([_conv("x")])
    with FakePoolingServer(bad=True) as srv:
        with pytest.raises(RewardError, match="not a number"):
            PoolingRewardClient(srv.url, "rm").score([_conv("x")])
    json.dumps(reward_conversation([]))  # an empty conversation folds to []



def test_score_command_writes_scores_and_refuses_without_a_backend(tmp_path, capsys):
    from crucible.pipelines.cli import main

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "messages": _conv("a" * i)}) for i in (1, 5)) + "\n")
    assert main(["score", "--input", str(src), "--output", str(dst), "--out", str(tmp_path)]) == 2
    assert "backend is none" in capsys.readouterr().err
    with FakePoolingServer() as srv:
        rc = main(["score", "--input", str(src), "--output", str(dst), "--out", str(tmp_path),
                   "--set", "llm.reward_model.backend=pooling", "--set", f"llm.reward_model.base_url={srv.url}",
                   "--set", "llm.reward_model.model=rm"])
    assert rc == 0
    rows = [json.loads(x) for x in dst.read_text().splitlines()]
    assert [(r["id"], r["reward_model_score"], r["reward_model"]) for r in rows] == [(1, 0.01, "rm"), (5, 0.05, "rm")]
    src.write_text('{"id": 1}\n')
    assert main(["score", "--input", str(src), "--output", str(dst), "--out", str(tmp_path),
                 "--set", "llm.reward_model.backend=pooling", "--set", "llm.reward_model.base_url=http://127.0.0.1:9",
                 "--set", "llm.reward_model.model=rm"]) == 2
    assert "in.jsonl:1: field messages: required field missing" in capsys.readouterr().err
