"""crucible.pipelines.agent.parse: raw responses and rendered ReAct text -> rounds, and back."""

from __future__ import annotations

import json

import pytest

from crucible.pipelines.agent.loop import render_react
from crucible.pipelines.agent.parse import ParseError, parse, to_messages
from tests.support import samples


def _call(i, name, args):
    return {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


MESSAGES = [
    {"role": "system", "content": "You are a research agent."},
    {"role": "user", "content": "Which river flows through the capital of Peru?"},
    {"role": "assistant", "content": "Find the capital first.", "tool_calls": [_call(0, "search", {"query": "capital of Peru"})]},
    {"role": "tool", "tool_call_id": "c0", "content": "Lima is the capital of Peru.\nMore text."},
    {"role": "assistant", "content": None, "tool_calls": [_call(1, "visit", {"url": "kb://lima"}),
                                                            _call(2, "search", {"query": "Rimac river"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "Lima lies on the Rímac."},
    {"role": "tool", "tool_call_id": "c2", "content": "The Rímac river ..."},
    {"role": "assistant", "content": "Rímac"},
]


def test_rendered_react_parses_into_rounds_and_round_trips():
    text = render_react(MESSAGES)
    p = parse(text)
    assert p.form == "react" and p.user.startswith("Which river")
    assert [(r.round, r.turn, r.tool_call["name"]) for r in p.rounds] == [(0, 0, "search"), (1, 1, "visit"), (2, 1, "search")]
    assert p.rounds[0].think == "Find the capital first." and p.rounds[0].observation.startswith("Lima is")
    assert p.rounds[2].observation == "The Rímac river ..." and p.final_answer == "Rímac"
    assert render_react(to_messages(p)) == text


def test_every_sample_trajectory_round_trips():
    for i in range(10):
        text = render_react(samples.messages(i))
        assert render_react(to_messages(parse(text))) == text


def test_raw_multi_round_response_with_qwen_tags():
    raw = ("<think>I should search.</think><tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}"
           "</tool_call><tool_response>x is 3</tool_response><think>So 3.</think><answer>3</answer>")
    p = parse(raw)
    assert p.form == "text" and len(p.rounds) == 1
    assert p.rounds[0].tool_call == {"name": "search", "arguments": {"query": "x"}}
    assert p.rounds[0].observation == "x is 3" and p.final_answer == "3" and p.final_think == "So 3."


def test_openai_message_json_and_plain_answers():
    p = parse(json.dumps({"messages": MESSAGES}))
    assert p.form == "openai" and len(p.rounds) == 3 and p.rounds[1].observation == "Lima lies on the Rímac."
    assert parse("Lima").final_answer == "Lima" and parse("Lima").rounds == []


def test_malformed_tool_call_and_orphan_observation_are_errors():
    with pytest.raises(ParseError, match="not one JSON object"):
        parse("<tool_call>{not json}</tool_call>")
    with pytest.raises(ParseError, match="no tool call before it"):
        parse("<tool_response>stray</tool_response><answer>x</answer>")


def test_parse_command_on_jsonl_and_store(tmp_path, capsys, sample_store):
    from crucible.pipelines.cli import main

    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"response": "<tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"q\"}}</tool_call>"
                                         "<tool_response>r</tool_response><answer>A</answer>"}) + "\n"
                 + json.dumps({"other": 1}) + "\n")
    assert main(["parse", str(f)]) == 2
    assert "rows.jsonl:2: none of the fields" in capsys.readouterr().err
    f.write_text(f.read_text().splitlines()[0] + "\n")
    assert main(["parse", str(f)]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["final_answer"] == "A" and out["rounds"][0]["observation"] == "r"
    assert main(["parse", "--store", str(sample_store)]) == 0  # rows without rendered_react: nothing to check
