"""Tool-call normalization (pure functions).

Whatever the server returns, callers get OpenAI-form tool calls::

    {"id": "call_…", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"x\"}"}}

with ``arguments`` always a JSON *string*. Sources, in order of preference:

1. native ``message.tool_calls`` (vLLM with a tool parser, OpenAI); dict arguments are
   serialized, missing ids generated;
2. ``<tool_call>{json}</tool_call>`` blocks in the content (Hermes / Qwen template);
3. fenced code blocks (```json … ```) holding ``{"name": …, "arguments": …}`` (what small Qwen
   models write when given ``tools=``), or a list of such objects.

Generated ids are deterministic (hash of index, name and arguments), so cached replays and
reruns produce identical trajectories.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|tool_call|tool|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def make_call_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\x00{name}\x00{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def _arguments_to_str(args: Any) -> str:
    if args is None:
        return "{}"
    if isinstance(args, str):
        s = args.strip()
        if not s:
            return "{}"
        # keep the model's string if it is JSON; else wrap so the result stays JSON
        try:
            json.loads(s)
            return s
        except ValueError:
            return json.dumps({"input": args}, ensure_ascii=False)
    return json.dumps(args, ensure_ascii=False, sort_keys=False)


def _call_from_obj(obj: Any) -> tuple[str, str] | None:
    """(name, arguments-string) from one parsed object, accepting the common shapes."""
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("function"), Mapping):  # OpenAI shape inside text
        obj = obj["function"]
    name = obj.get("name") or obj.get("tool") or obj.get("tool_name")
    if not isinstance(name, str) or not name.strip():
        return None
    for key in ("arguments", "parameters", "args", "input"):
        if key in obj:
            return name.strip(), _arguments_to_str(obj[key])
    return name.strip(), "{}"


def _calls_from_json_text(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        call = _call_from_obj(item)
        if call is None:
            return []  # a list with a non-call element is not a tool call block
        out.append(call)
    return out


def parse_text_tool_calls(
    content: str | None, allowed_names: Iterable[str] | None = None
) -> tuple[list[tuple[str, str]], str]:
    """Find tool calls written as text. Returns ``([(name, arguments_json)], remaining_text)``.

    ``remaining_text`` is the content with the recognised blocks removed (stripped).
    Unparseable ``<tool_call>`` blocks are left in the text, not guessed at. With
    ``allowed_names`` (the offered tools), a block naming another tool is not a call.
    """
    allowed = set(allowed_names) if allowed_names is not None else None
    if not content:
        return [], content or ""
    calls: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for m in _TOOL_CALL_RE.finditer(content):
        found = _calls_from_json_text(m.group(1))
        if found and (allowed is None or all(n in allowed for n, _ in found)):
            calls.extend(found)
            spans.append(m.span())
    if not calls:
        for m in _FENCE_RE.finditer(content):
            found = _calls_from_json_text(m.group(1).strip())
            if found and (allowed is None or all(n in allowed for n, _ in found)):
                calls.extend(found)
                spans.append(m.span())
    if not calls:
        return [], content
    rest, last = [], 0
    for a, b in spans:
        rest.append(content[last:a])
        last = b
    rest.append(content[last:])
    return calls, "".join(rest).strip()


def normalize_native(tool_calls: Iterable[Any] | None) -> list[dict]:
    """Native ``tool_calls`` (dicts or SDK objects) -> OpenAI dicts with string arguments."""
    out = []
    for i, tc in enumerate(tool_calls or []):
        if hasattr(tc, "model_dump"):
            tc = tc.model_dump()
        if not isinstance(tc, Mapping):
            continue
        fn = tc.get("function") or {}
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not name:
            continue
        args = _arguments_to_str(fn.get("arguments"))
        out.append({
            "id": tc.get("id") or make_call_id(i, name, args),
            "type": "function",
            "function": {"name": name, "arguments": args},
        })
    return out


def extract_tool_calls(
    message: Mapping[str, Any] | Any, parse_text: bool = True, allowed_names: Iterable[str] | None = None
) -> tuple[list[dict], str | None]:
    """Tool calls of an assistant message, plus its content with text-form calls removed.

    Native calls win; text forms are only parsed when there are none (and ``parse_text``).
    """
    if hasattr(message, "model_dump"):
        message = message.model_dump()
    content = message.get("content")
    native = normalize_native(message.get("tool_calls"))
    if native or not parse_text:
        return native, content
    found, rest = parse_text_tool_calls(content, allowed_names)
    if not found:
        return [], content
    calls = [
        {"id": make_call_id(i, name, args), "type": "function", "function": {"name": name, "arguments": args}}
        for i, (name, args) in enumerate(found)
    ]
    return calls, (rest or None)
