"""Tool-call normalization: native calls, <tool_call> tags, fenced json blocks -> OpenAI form."""

import json

from crucible.pipelines.llm.toolcalls import (
    extract_tool_calls,
    make_call_id,
    normalize_native,
    parse_text_tool_calls,
)


def _fn(call):
    return call["function"]["name"], json.loads(call["function"]["arguments"])


def test_native_tool_calls_keep_ids_and_stringify_dict_arguments():
    msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"query": "x"}'}},
            {"type": "function", "function": {"name": "visit", "arguments": {"url": "http://a"}}},
        ],
    }
    calls, text = extract_tool_calls(msg)
    assert text is None
    assert calls[0]["id"] == "call_1"
    assert calls[0]["function"]["arguments"] == '{"query": "x"}'
    assert isinstance(calls[1]["function"]["arguments"], str)
    assert _fn(calls[1]) == ("visit", {"url": "http://a"})
    assert calls[1]["id"].startswith("call_") and calls[1]["type"] == "function"


def test_native_calls_win_over_text_forms():
    msg = {"content": '<tool_call>{"name": "other", "arguments": {}}</tool_call>',
           "tool_calls": [{"id": "a", "function": {"name": "search", "arguments": "{}"}}]}
    calls, text = extract_tool_calls(msg)
    assert [c["function"]["name"] for c in calls] == ["search"]
    assert text == msg["content"]


def test_hermes_tool_call_tags_parsed_and_removed_from_text():
    content = ('I will search.\n<tool_call>\n{"name": "search", "arguments": {"query": "capital of France"}}\n'
               '</tool_call>\n<tool_call>{"name": "visit", "arguments": {"url": "u"}}</tool_call>')
    calls, text = extract_tool_calls({"role": "assistant", "content": content})
    assert [_fn(c) for c in calls] == [("search", {"query": "capital of France"}), ("visit", {"url": "u"})]
    assert text == "I will search."
    assert calls[0]["id"] != calls[1]["id"]


def test_unterminated_tool_call_tag_at_end_is_parsed():
    calls, _ = parse_text_tool_calls('<tool_call>{"name": "search", "arguments": {"query": "q"}}')
    assert calls == [("search", '{"query": "q"}')]


def test_fenced_json_block_with_name_and_arguments():
    content = 'Sure.\n```json\n{"name": "search", "arguments": {"query": "Eiffel tower height"}}\n```'
    calls, text = extract_tool_calls({"content": content})
    assert [_fn(c) for c in calls] == [("search", {"query": "Eiffel tower height"})]
    assert text == "Sure."


def test_fenced_list_and_openai_shape_and_parameters_alias():
    content = ('```json\n[{"name": "a", "parameters": {"x": 1}}, '
               '{"type": "function", "function": {"name": "b", "arguments": "{\\"y\\": 2}"}}]\n```')
    calls, text = extract_tool_calls({"content": content})
    assert [_fn(c) for c in calls] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert text is None


def test_plain_json_answer_is_not_a_tool_call():
    content = '```json\n{"answer": "Paris"}\n```'
    calls, text = extract_tool_calls({"content": content})
    assert calls == [] and text == content


def test_malformed_tool_call_block_is_left_in_text():
    content = "<tool_call>{name: search}</tool_call>"
    calls, text = extract_tool_calls({"content": content})
    assert calls == [] and text == content


def test_allowed_names_filter_rejects_unknown_tools():
    content = '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>'
    assert parse_text_tool_calls(content, allowed_names=["search"])[0] == []
    assert parse_text_tool_calls(content, allowed_names=["rm_rf"])[0] == [("rm_rf", "{}")]


def test_non_json_string_arguments_are_wrapped_to_stay_json():
    calls = normalize_native([{"function": {"name": "search", "arguments": "capital of peru"}}])
    assert json.loads(calls[0]["function"]["arguments"]) == {"input": "capital of peru"}
    calls = normalize_native([{"function": {"name": "noargs", "arguments": None}}])
    assert calls[0]["function"]["arguments"] == "{}"


def test_generated_ids_are_deterministic():
    content = '<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>'
    a, _ = extract_tool_calls({"content": content})
    b, _ = extract_tool_calls({"content": content})
    assert a == b
    assert make_call_id(0, "search", "{}") != make_call_id(1, "search", "{}")


def test_parse_text_disabled_and_empty_content():
    content = '<tool_call>{"name": "search", "arguments": {}}</tool_call>'
    assert extract_tool_calls({"content": content}, parse_text=False) == ([], content)
    assert extract_tool_calls({"content": None}) == ([], None)
