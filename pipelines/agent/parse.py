"""Raw agent text -> rounds: ``{round, turn, think, tool_call {name, arguments}, observation}`` + final answer.

Reads the forms agents and trainers write (pure functions):

- Crucible's ``rendered_react`` (``<|system|>`` / ``<|user|>`` / ``<|assistant|>`` blocks, see
  ``loop.render_react``); ``to_messages`` turns the rounds back into OpenAI messages, and
  ``render_react(to_messages(parse(text)))`` gives ``text`` back;
- a raw model response with Qwen / Hermes tags: ``<think>``, ``<tool_call>{json}</tool_call>``,
  ``<tool_response>``, ``<answer>``, in any number of rounds (Search-R1 / Skywork style);
- OpenAI tool-call JSON: a message list, ``{"messages": [...]}``, or one assistant message.

Tool-call bodies go through the same normalizer as live responses (``llm.toolcalls``), so a call the
pipeline would have accepted parses the same here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crucible.pipelines.llm.toolcalls import parse_text_tool_calls

_ROLE = re.compile(r"^<\|(system|user|assistant)\|>\n", re.M)
_TAG = re.compile(r"<(think|tool_call|tool_response|answer)>(.*?)(?:</\1>|(?=<(?:think|tool_call|tool_response|answer)>)|\Z)",
                  re.S)


@dataclass
class Round:
    round: int
    turn: int  # the assistant turn the call belongs to (several calls may share one)
    think: str | None
    tool_call: dict | None  # {name, arguments (dict)}
    observation: str | None = None


@dataclass
class Parsed:
    rounds: list[Round] = field(default_factory=list)
    final_answer: str | None = None
    final_think: str | None = None
    system: str | None = None
    user: str | None = None
    form: str = "text"  # react | text | openai

    def to_dict(self) -> dict:
        return asdict(self)


class ParseError(ValueError):
    pass


def _call(body: str) -> dict:
    calls, _rest = parse_text_tool_calls(f"<tool_call>{body}</tool_call>")
    if len(calls) != 1:
        raise ParseError(f"tool call is not one JSON object with a name: {body[:120]!r}")
    name, arguments = calls[0]
    return {"name": name, "arguments": json.loads(arguments or "{}")}


def _assistant(text: str, parsed: Parsed, turn: int) -> None:
    """One assistant block (or a whole raw response): tags in order; untagged text is a final answer."""
    tags = list(_TAG.finditer(text))
    if not tags:
        parsed.final_answer = text.strip() or None
        return
    think: str | None = None
    for m in tags:
        kind, body = m.group(1), m.group(2)
        if kind == "think":
            think = body
        elif kind == "tool_call":
            parsed.rounds.append(Round(len(parsed.rounds), turn, think, _call(body)))
            think = None
        elif kind == "tool_response":
            _observe(parsed, body)
        else:
            parsed.final_answer, parsed.final_think = body.strip(), think
            think = None
    if think is not None and parsed.final_answer is None:  # a trailing thought with no action
        parsed.final_think = think


def _observe(parsed: Parsed, body: str) -> None:
    pending = [r for r in parsed.rounds if r.observation is None]
    if not pending:
        raise ParseError("a <tool_response> with no tool call before it")
    pending[0].observation = body


def parse_react(text: str) -> Parsed:
    parsed = Parsed(form="react")
    marks = list(_ROLE.finditer(text))
    turn = 0
    for i, m in enumerate(marks):
        end = marks[i + 1].start() - 1 if i + 1 < len(marks) else len(text)
        role, body = m.group(1), text[m.end():max(m.end(), end)]
        if role == "system":
            parsed.system = body
        elif role == "user":
            if body.startswith("<tool_response>"):
                for r in re.finditer(r"<tool_response>(.*?)</tool_response>", body, re.S):
                    _observe(parsed, r.group(1))
            else:
                parsed.user = body
        else:
            _assistant(body, parsed, turn)
            turn += 1
    return parsed


def parse_messages(messages: Sequence[Mapping]) -> Parsed:
    parsed = Parsed(form="openai")
    by_id: dict[str, Round] = {}
    turn = 0
    for m in messages:
        role = m.get("role")
        if role == "system":
            parsed.system = m.get("content")
        elif role == "user":
            parsed.user = m.get("content")
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            think = m.get("reasoning_content") or m.get("content")
            for j, c in enumerate(calls):
                fn = c.get("function") or {}
                args = fn.get("arguments")
                args = json.loads(args or "{}") if isinstance(args, str) else (args or {})
                r = Round(len(parsed.rounds), turn, think if j == 0 else None, {"name": fn.get("name"), "arguments": args})
                parsed.rounds.append(r)
                by_id[str(c.get("id"))] = r
            if not calls:
                parsed.final_answer = m.get("content")
            turn += 1
        elif role == "tool":
            r = by_id.get(str(m.get("tool_call_id")))
            if r is not None and r.observation is None:
                r.observation = m.get("content")
            else:
                _observe(parsed, m.get("content") or "")
    return parsed


def parse(text_or_messages: Any) -> Parsed:
    """Any supported form -> :class:`Parsed` (raises :class:`ParseError` on a malformed tool call)."""
    obj = text_or_messages
    if isinstance(obj, str):
        s = obj.strip()
        if s[:1] in "[{":
            try:
                obj = json.loads(s)
            except ValueError:
                obj = text_or_messages
    if isinstance(obj, Mapping):
        obj = obj.get("messages") or [obj]
    if isinstance(obj, list):
        return parse_messages(obj)
    text = str(obj)
    if _ROLE.search(text):
        return parse_react(text)
    parsed = Parsed(form="text")
    _assistant(text, parsed, 0)
    return parsed


def to_messages(parsed: Parsed) -> list[dict]:
    """OpenAI messages from rounds (call ids made up, deterministic)."""
    msgs: list[dict] = []
    if parsed.system is not None:
        msgs.append({"role": "system", "content": parsed.system})
    if parsed.user is not None:
        msgs.append({"role": "user", "content": parsed.user})
    turns: dict[int, list[Round]] = {}
    for r in parsed.rounds:
        turns.setdefault(r.turn, []).append(r)
    for turn in sorted(turns):
        rs = turns[turn]
        calls = [{"id": f"call_{r.round}", "type": "function",
                  "function": {"name": r.tool_call["name"], "arguments": json.dumps(r.tool_call["arguments"],
                                                                                   ensure_ascii=False)}}
                 for r in rs if r.tool_call]
        msgs.append({"role": "assistant", "content": rs[0].think, "tool_calls": calls})
        for r in rs:
            if r.observation is not None:
                msgs.append({"role": "tool", "tool_call_id": f"call_{r.round}", "content": r.observation})
    if parsed.final_answer is not None:
        msgs.append({"role": "assistant", "content": parsed.final_answer})
    return msgs
