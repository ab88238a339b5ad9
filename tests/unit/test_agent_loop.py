import json
from types import SimpleNamespace

import jsonschema
import pytest

from crucible.pipelines.agent.loop import (
    JSONStepPolicy,
    NativeToolPolicy,
    Turn,
    json_step_schema,
    render_react,
    run_agent,
)
from crucible.pipelines.agent.tools import Observation


class EchoSearch:
    name = "search"

    def __init__(self):
        self.calls = []

    @property
    def schema(self):
        return {"type": "function", "function": {"name": "search", "description": "search", "parameters": {
            "type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
            "required": ["query"]}}}

    def call(self, args):
        self.calls.append(args)
        if args["query"] == "boom":
            raise RuntimeError("backend down")
        return Observation(f"results for {args['query']}")


def call(name, args, i="c1"):
    return {"id": i, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


class Scripted:
    def __init__(self, turns):
        self.turns, self.forced = list(turns), []

    def step(self, messages, tools, *, force_final, tools_only=False):
        self.forced.append(force_final)
        self.tools_only = getattr(self, "tools_only", []) + [tools_only]
        t = self.turns.pop(0)
        return t if not (force_final and t.tool_calls) else Turn("forced answer", [], {"prompt_tokens": 1})


SYS = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]


def test_answer_after_a_search_is_openai_shaped():
    tool = EchoSearch()
    pol = Scripted([Turn("looking", [call("search", {"query": "lima"})], {"prompt_tokens": 10, "completion_tokens": 5}),
                    Turn("Peruvian sol", [], {"prompt_tokens": 20, "completion_tokens": 3})])
    r = run_agent(pol, {"search": tool}, SYS, max_turns=5)
    assert r.termination == "answered" and r.final == "Peruvian sol"
    assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert r.messages[3] == {"role": "tool", "tool_call_id": "c1", "name": "search", "content": "results for lima"}
    assert (r.n_turns, r.n_tool_calls, r.prompt_tokens, r.completion_tokens) == (2, 1, 30, 8)
    assert tool.calls == [{"query": "lima"}]


def test_turn_cap_forces_a_final_answer_on_the_last_turn():
    pol = Scripted([Turn(None, [call("search", {"query": str(i)}, f"c{i}")]) for i in range(3)])
    r = run_agent(pol, {"search": EchoSearch()}, SYS, max_turns=3)
    assert pol.forced == [False, False, True]
    assert r.termination == "forced_answer" and r.final == "forced answer"


def test_token_budget_forces_final():
    pol = Scripted([Turn(None, [call("search", {"query": "a"})], {"prompt_tokens": 900}),
                    Turn(None, [call("search", {"query": "b"})], {"prompt_tokens": 900})])
    r = run_agent(pol, {"search": EchoSearch()}, SYS, max_turns=10, max_total_tokens=500)
    assert pol.forced == [False, True] and r.termination == "forced_answer"


def test_a_repeated_identical_call_gets_the_repeat_note():
    pol = Scripted([Turn(None, [call("search", {"query": "a"}, "c1")], {}),
                    Turn(None, [call("search", {"query": "b"}, "c2")], {}),
                    Turn(None, [call("search", {"query": "a"}, "c3")], {}),
                    Turn("done", [], {})])
    r = run_agent(pol, {"search": EchoSearch()}, SYS, max_turns=6, repeat_note="NOTE: same call again.")
    obs = [m["content"] for m in r.messages if m["role"] == "tool"]
    assert obs == ["results for a", "results for b", "results for a\n\nNOTE: same call again."]
    plain = run_agent(Scripted([Turn(None, [call("search", {"query": "a"})], {}),
                                Turn(None, [call("search", {"query": "a"})], {}), Turn("done", [], {})]),
                      {"search": EchoSearch()}, SYS, max_turns=6)
    assert [m["content"] for m in plain.messages if m["role"] == "tool"] == ["results for a"] * 2  # off by default


def test_tool_errors_are_observations_not_crashes():
    pol = Scripted([Turn(None, [call("search", {"query": "boom"}, "a"), call("browse", {}, "b"),
                                {"id": "c", "type": "function", "function": {"name": "search", "arguments": "{x"}}]),
                    Turn("done", [])])
    r = run_agent(pol, {"search": EchoSearch()}, SYS)
    tool_msgs = [m["content"] for m in r.messages if m["role"] == "tool"]
    assert "RuntimeError: backend down" in tool_msgs[0]
    assert "unknown tool 'browse'" in tool_msgs[1]
    assert "not valid JSON" in tool_msgs[2]
    assert r.n_tool_errors == 3 and r.termination == "answered"


def test_final_tool_ends_episode():
    class Submit:
        name = "submit"

        schema = {"type": "function", "function": {"name": "submit", "parameters": {"type": "object", "properties": {}}}}

        def call(self, args):
            return Observation("diff --git a/x b/x")

    pol = Scripted([Turn(None, [call("submit", {})]), Turn("never", [])])
    r = run_agent(pol, {"submit": Submit()}, SYS, final_tool="submit")
    assert r.termination == "answered" and r.final.startswith("diff") and r.n_turns == 1


def _client_returning(*parsed):
    seq = list(parsed)
    seen = []

    def structured(messages, schema, **kw):
        seen.append((messages, schema))
        p = seq.pop(0)
        jsonschema.validate(p, schema) if p is not None else None
        return SimpleNamespace(parsed=p, usage={"prompt_tokens": 7, "completion_tokens": 3}, latency_s=0.01,
                               cache_hit=False, error=None if p else "invalid structured output")

    return SimpleNamespace(structured=structured), seen


def test_json_step_policy_converts_steps_to_tool_calls_and_answer():
    client, seen = _client_returning(
        {"thought": "search it", "tool": "search", "arguments": {"query": "capital of Peru"}},
        {"thought": "found", "tool": "answer", "arguments": {"answer": "Lima"}},
    )
    r = run_agent(JSONStepPolicy(client), {"search": EchoSearch()}, SYS, max_turns=4,
                  observation_suffix="If this answers the question, use tool=answer.")
    assert r.final == "Lima" and r.termination == "answered"
    c = r.messages[2]["tool_calls"][0]
    assert c["function"]["name"] == "search" and json.loads(c["function"]["arguments"]) == {"query": "capital of Peru"}
    # the model saw its own step as JSON and the observation (with the nudge) as a user turn
    second = seen[1][0]
    assert json.loads(second[2]["content"])["tool"] == "search"
    assert second[3]["role"] == "user" and "use tool=answer" in second[3]["content"]


def test_json_step_policy_forced_schema_allows_only_the_final_action():
    tools = {"search": EchoSearch()}
    schema = json_step_schema(tools, "answer", None, only_final=True)
    jsonschema.validate({"thought": "", "tool": "answer", "arguments": {"answer": "x"}}, schema)
    try:
        jsonschema.validate({"thought": "", "tool": "search", "arguments": {"query": "x"}}, schema)
        raise AssertionError("search must not be allowed when forced")
    except jsonschema.ValidationError:
        pass
    full = json_step_schema(tools, "answer", None, only_final=False)
    # optional tool parameters are dropped for small models
    assert full["anyOf"][0]["properties"]["arguments"]["required"] == ["query"]
    assert "top_k" not in full["anyOf"][0]["properties"]["arguments"]["properties"]


def test_json_step_schema_caps_string_arguments_when_asked():
    tools = {"search": EchoSearch()}
    step = {"thought": "", "tool": "search", "arguments": {"query": "q" * 81}}
    jsonschema.validate(step, json_step_schema(tools, "answer", None, only_final=False))  # no cap by default
    capped = json_step_schema(tools, "answer", None, only_final=False, max_arg_chars=80)
    try:
        jsonschema.validate(step, capped)
        raise AssertionError("an 81-character argument must not fit a cap of 80")
    except jsonschema.ValidationError:
        pass
    jsonschema.validate(dict(step, arguments={"query": "q" * 80}), capped)
    # the tool's own schema is left as it is (what a native-tools model sees)
    assert "maxLength" not in EchoSearch().schema["function"]["parameters"]["properties"]["query"]
    seen = []

    class Client:
        def structured(self, msgs, schema, **kw):
            seen.append(schema)
            return SimpleNamespace(parsed={"thought": "", "tool": "answer", "arguments": {"answer": "x"}},
                                   usage={}, latency_s=0.0, cache_hit=False, error=None)

    JSONStepPolicy(Client(), max_arg_chars=80).step(SYS, tools, force_final=False)
    assert seen[0]["anyOf"][0]["properties"]["arguments"]["properties"]["query"]["maxLength"] == 80


def test_json_step_policy_failure_is_an_error_termination():
    client, _ = _client_returning(None)
    r = run_agent(JSONStepPolicy(client), {"search": EchoSearch()}, SYS)
    assert r.termination == "error" and "invalid structured output" in r.errors[0]


def test_call_ids_are_deterministic_for_replay():
    a, _ = _client_returning({"thought": "", "tool": "search", "arguments": {"query": "q"}},
                             {"thought": "", "tool": "answer", "arguments": {"answer": "x"}})
    b, _ = _client_returning({"thought": "", "tool": "search", "arguments": {"query": "q"}},
                             {"thought": "", "tool": "answer", "arguments": {"answer": "x"}})
    ra = run_agent(JSONStepPolicy(a), {"search": EchoSearch()}, SYS)
    rb = run_agent(JSONStepPolicy(b), {"search": EchoSearch()}, SYS)
    assert ra.messages == rb.messages


def test_native_policy_forces_no_tools_on_final_turn():
    calls = []

    def chat(messages, **kw):
        calls.append(kw)
        return SimpleNamespace(text="Lima", tool_calls=[call("search", {"query": "x"})], usage={}, latency_s=0.0,
                               cache_hit=False)

    r = run_agent(NativeToolPolicy(SimpleNamespace(chat=chat)), {"search": EchoSearch()}, SYS, max_turns=1)
    assert calls[0]["tool_choice"] == "none" and r.final == "Lima" and r.termination == "forced_answer"


def test_render_react_text_form():
    tool = EchoSearch()
    pol = Scripted([Turn("look it up", [call("search", {"query": "lima"})]), Turn("Peruvian sol", [])])
    r = run_agent(pol, {"search": tool}, SYS)
    text = render_react(r.messages)
    assert '<think>look it up</think><tool_call>{"name": "search", "arguments": {"query": "lima"}}</tool_call>' in text
    assert "<tool_response>results for lima</tool_response>" in text
    assert text.endswith("<answer>Peruvian sol</answer>")


def test_turn_note_shows_the_budget_after_every_observation():
    from crucible.pipelines.browse.stages import TURN_NOTE

    tool = EchoSearch()
    pol = Scripted([Turn("a", [call("search", {"query": "x"}, "c1")]), Turn("b", [call("search", {"query": "y"}, "c2")]),
                    Turn("Lima", [])])
    r = run_agent(pol, {"search": tool}, SYS, max_turns=4, turn_note=TURN_NOTE)
    tool_msgs = [m["content"] for m in r.messages if m["role"] == "tool"]
    assert tool_msgs[0].endswith("[Turn 1 of 4: 3 left; the last one must be the answer.]")
    assert tool_msgs[1].endswith("[Turn 2 of 4: 2 left; the last one must be the answer.]")
    assert r.termination == "answered"
    # without it, observations are the tool's text alone
    pol = Scripted([Turn("a", [call("search", {"query": "x"}, "c1")]), Turn("Lima", [])])
    r = run_agent(pol, {"search": EchoSearch()}, SYS, max_turns=4)
    assert [m["content"] for m in r.messages if m["role"] == "tool"] == ["results for x"]


def test_min_tool_calls_holds_the_answer_back_until_the_agent_has_looked_something_up():
    """The embedded model answered a three-hop question from memory on its first turn ("US Dollar",
    0 tool calls): with min_tool_calls=1 the first step's schema has no answer branch."""
    tools = {"search": EchoSearch()}
    held = json_step_schema(tools, "answer", None, only_final=False, tools_only=True)
    jsonschema.validate({"thought": "", "tool": "search", "arguments": {"query": "x"}}, held)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"thought": "", "tool": "answer", "arguments": {"answer": "x"}}, held)
    seen = []

    class Client:
        """answers whenever its schema lets it, otherwise searches"""

        def structured(self, msgs, schema, **kw):
            seen.append(schema)
            allowed = json.dumps(schema)
            step = ({"thought": "", "tool": "answer", "arguments": {"answer": "US Dollar"}}
                    if '"const": "answer"' in allowed else {"thought": "", "tool": "search", "arguments": {"query": "q"}})
            return SimpleNamespace(parsed=step, usage={}, latency_s=0.0, cache_hit=False, error=None)

    r = run_agent(JSONStepPolicy(Client()), tools, SYS, max_turns=4, min_tool_calls=1)
    assert r.n_tool_calls == 1 and r.final == "US Dollar" and r.termination == "answered"
    # switched off (the default 0), the same model answers with no search at all
    off = run_agent(JSONStepPolicy(Client()), tools, SYS, max_turns=4)
    assert off.n_tool_calls == 0 and off.final == "US Dollar"
    # a forced last turn still answers: min_tool_calls never outlasts the turn cap
    one = run_agent(JSONStepPolicy(Client()), tools, SYS, max_turns=1, min_tool_calls=3)
    assert one.termination == "forced_answer" and one.n_tool_calls == 0


def test_native_policy_requires_a_tool_call_until_min_tool_calls():
    calls = []

    def chat(messages, **kw):
        calls.append(kw)
        tc = [call("search", {"query": "x"}, f"c{len(calls)}")] if len(calls) == 1 else []
        return SimpleNamespace(text="Lima", tool_calls=tc, usage={}, latency_s=0.0, cache_hit=False)

    r = run_agent(NativeToolPolicy(SimpleNamespace(chat=chat)), {"search": EchoSearch()}, SYS, max_turns=4,
                  min_tool_calls=1)
    assert calls[0]["tool_choice"] == "required" and "tool_choice" not in calls[1]
    assert r.n_tool_calls == 1 and r.final == "Lima"
