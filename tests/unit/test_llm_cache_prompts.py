"""Response cache keys and storage; prompt template loading and rendering."""

import os

import pytest

from crucible.pipelines.llm.cache import ResponseCache, cache_key
from crucible.pipelines.llm.prompts import PromptError, list_prompts, load_prompt, parse_prompt

MSGS = [{"role": "user", "content": "hi"}]


def test_cache_key_ignores_param_and_dict_order_and_none_values():
    a = cache_key("m", MSGS, {"temperature": 0, "max_tokens": 5, "top_p": None}, "p", 1)
    b = cache_key("m", [{"content": "hi", "role": "user"}], {"max_tokens": 5, "temperature": 0}, "p", "1")
    assert a == b and len(a) == 64


@pytest.mark.parametrize("change", [
    dict(model="m2"), dict(messages=[{"role": "user", "content": "hi!"}]), dict(params={"temperature": 1}),
    dict(prompt_id="q"), dict(prompt_version=2), dict(sample_index=1),
])
def test_cache_key_changes_with_each_input(change):
    base = dict(model="m", messages=MSGS, params={"temperature": 0}, prompt_id="p", prompt_version=1,
                sample_index=0)
    assert cache_key(**base) != cache_key(**{**base, **change})


def test_cache_roundtrip_atomic_and_corrupt_file_is_a_miss(tmp_path):
    c = ResponseCache(tmp_path)
    k = cache_key("m", MSGS)
    assert c.get(k) is None
    c.put(k, {"choices": [{"message": {"content": "x"}}]}, {"model": "m"})
    assert c.get(k) == {"choices": [{"message": {"content": "x"}}]}
    assert len(c) == 1
    # written through fsio's atomic writer: the one file, no temp left beside it, mkstemp's private mode
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [c.path(k)]
    assert c.path(k).stat().st_mode & 0o777 == 0o600
    c.path(k).write_text("{truncated")
    assert c.get(k) is None
    c.put(k, {"ok": 1})
    assert c.get(k) == {"ok": 1}


def test_disabled_cache_neither_reads_nor_writes(tmp_path):
    c = ResponseCache(tmp_path, enabled=False)
    c.put("ab" * 32, {"x": 1})
    assert c.get("ab" * 32) is None
    assert not any(tmp_path.iterdir())


def test_shipped_example_prompt_renders_few_shot_and_records_version():
    p = load_prompt("smoke_capital")
    assert "smoke_capital" in list_prompts()
    assert p.ref == {"id": "smoke_capital", "version": "1"}
    msgs = p.render(country="Peru")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "What is the capital city of Japan?"
    assert msgs[2]["content"] == '{"country": "Japan", "capital": "Tokyo"}'
    assert msgs[-1]["content"] == "What is the capital city of Peru?"
    assert p.schema["required"] == ["country", "capital"]
    assert p.params == {"temperature": 0, "max_tokens": 64}


def test_missing_template_variable_names_file_and_field():
    p = load_prompt("smoke_capital")
    with pytest.raises(PromptError, match=r"smoke_capital\.yaml: field 'user': 'country' is undefined"):
        p.render()


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text, match", [
    ("id: x\nuser: hi\n", "field 'version' is required"),
    ("id: x\nversion: 1\nuser: hi\ncolour: red\n", r"unknown field\(s\) \['colour'\]"),
    ("id: x\nversion: 1\nuser: '{{ a'\n", "field 'user': Jinja2 syntax error"),
    ("id: x\nversion: 1\nuser: hi\nschema: {type: nonsense}\n", "field 'schema' is not a valid JSON Schema"),
    ("id: x\nversion: 1\nuser: hi\nexamples: [{input: {a: 1}}]\n", r"examples\[0\] needs"),
    ("id: y\nversion: 1\nuser: hi\n", "field 'id' is 'y' but the file is named 'x'"),
    ("- a\n- b\n", "top level must be a mapping"),
])
def test_bad_prompt_files_give_clear_errors(tmp_path, text, match):
    _write(tmp_path, "x", text)
    with pytest.raises(PromptError, match=match):
        load_prompt("x", tmp_path)


def test_unknown_prompt_lists_available(tmp_path):
    _write(tmp_path, "a", "id: a\nversion: 1\nuser: hi\n")
    with pytest.raises(PromptError, match=r"no such prompt 'b'; available: \['a'\]"):
        load_prompt("b", tmp_path)


def test_parse_prompt_minimal_has_no_system():
    p = parse_prompt({"id": "a", "version": 3, "user": "Q: {{ q }}"}, "inline")
    assert p.render(q="why") == [{"role": "user", "content": "Q: why"}]
    assert p.version == "3" and os.fspath(p.path) == "inline"
