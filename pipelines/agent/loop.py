"""One agent loop for every environment: a policy proposes turns, tools answer them.

The trajectory is kept as OpenAI chat messages (assistant ``tool_calls`` with JSON-string
arguments, ``role: tool`` results with ``tool_call_id``). The loop enforces a turn cap and a
token budget, and on the last allowed turn asks the policy for a final action only
(``force_final``), so every rollout ends with an answer/submission or a recorded reason.

Two policies:
- :class:`NativeToolPolicy` for models that emit OpenAI tool calls (vLLM with a tool parser,
  hosted APIs); text forms (``<tool_call>``, fenced JSON) are parsed by the LLM client.
- :class:`JSONStepPolicy` for small models that only follow constrained decoding: each turn
  is a json_schema-constrained object ``{thought, tool, arguments}`` (``tool`` is a tool name
  or the final action), converted into the same OpenAI messages.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from crucible.pipelines.agent.tools import Observation, Tool


@dataclass
class Turn:
    """What a policy proposes for one assistant turn."""

    content: str | None
    tool_calls: list[dict]
    usage: dict = field(default_factory=dict)
    latency_s: float = 0.0
    cache_hit: bool = False
    error: str | None = None  # the policy failed to produce a usable turn


@dataclass
class AgentResult:
    messages: list[dict]
    termination: str  # answered | forced_answer | turn_cap | token_cap | error
    final: str | None
    n_turns: int
    n_tool_calls: int
    n_tool_errors: int
    tool_counts: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    errors: list[str]
    observations: list[Observation]


def new_call_id(*parts: object) -> str:
    """Deterministic from the conversation position and call, so that a replayed rollout
    produces identical messages (and the LLM cache keys of later turns match)."""
    if not parts:
        return "call_" + uuid.uuid4().hex[:12]
    return "call_" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def session_key(messages: Sequence[dict], sample_index: int = 0) -> str:
    """The trajectory's name for the model pool: its opening messages (system + first user turn) and sample
    index, so every turn of one rollout goes to the endpoint that holds its prefix cache, and distinct
    samples of one task spread over the endpoints."""
    head = [(m.get("role"), m.get("content")) for m in messages[:2]]
    return hashlib.sha256(json.dumps([head, int(sample_index)], sort_keys=True, default=str).encode()).hexdigest()[:16]


def tool_schema_list(tools: Mapping[str, Tool]) -> list[dict]:
    return [t.schema for t in tools.values()]


def run_agent(policy, tools: Mapping[str, Tool], messages: Sequence[dict], *, max_turns: int = 8,
              max_total_tokens: int = 32_000, final_tool: str | None = None,
              observation_suffix: str = "", max_observation_chars: int = 6_000,
              repeat_note: str | None = None, turn_note: str = "", min_tool_calls: int = 0,
              on_event: Callable[[dict], None] | None = None) -> AgentResult:
    """Run ``policy`` against ``tools`` from the starting ``messages`` (system + user).

    ``final_tool``: a tool whose call ends the episode (e.g. ``submit``); without one, an
    assistant turn with no tool calls is the final answer. ``repeat_note``: appended to the
    observation of a call identical (tool + arguments) to an earlier one, so that a small model
    stuck in a loop is told so. ``turn_note``: a format string (``{turn}``, ``{max_turns}``,
    ``{left}``) appended to every observation, so that the model sees its turn budget.
    ``min_tool_calls``: until this many tool calls were made (and unless the turn is forced), the
    policy is asked for a tool call only (``tools_only``): a research agent that answers before it
    looked anything up gives a row nobody can learn search from.
    ``on_event``: called with each step as it happens (``crucible browse rollout --stream``):
    ``{"kind": "tool_call", "turn", "name", "arguments", "thought"}``, ``{"kind": "observation", "turn",
    "name", "content", "error"}`` (the observation as the tool returned it), ``{"kind": "answer", "turn",
    "content"}`` or ``{"kind": "error", "turn", "error"}``.
    """
    emit = on_event or (lambda event: None)
    msgs = [dict(m) for m in messages]
    t0 = time.perf_counter()
    ptok = ctok = 0
    n_calls = n_errors = 0
    counts: dict[str, int] = {}
    errors: list[str] = []
    observations: list[Observation] = []
    seen_calls: set[tuple[str, str]] = set()
    termination, final = "turn_cap", None
    turns = 0
    for turn_no in range(max_turns):
        force = turn_no == max_turns - 1 or ptok + ctok >= max_total_tokens
        turn: Turn = policy.step(msgs, tools, force_final=force, tools_only=not force and n_calls < min_tool_calls)
        turns += 1
        ptok += int(turn.usage.get("prompt_tokens", 0))
        ctok += int(turn.usage.get("completion_tokens", 0))
        if turn.error and not turn.tool_calls and turn.content is None:
            errors.append(f"turn {turn_no}: {turn.error}")
            emit({"kind": "error", "turn": turn_no, "error": str(turn.error)})
            termination = "error"
            break
        msgs.append({"role": "assistant", "content": turn.content, "tool_calls": turn.tool_calls or None})
        if not turn.tool_calls:
            final = turn.content
            termination = "forced_answer" if force else "answered"
            emit({"kind": "answer", "turn": turn_no, "content": final})
            break
        ended = False
        for call in turn.tool_calls:
            n_calls += 1
            name = call["function"]["name"]
            counts[name] = counts.get(name, 0) + 1
            emit({"kind": "tool_call", "turn": turn_no, "name": name, "arguments": call["function"].get("arguments"),
                  "thought": turn.content})
            obs = _invoke(tools, call)
            emit({"kind": "observation", "turn": turn_no, "name": name, "content": obs.content, "error": obs.error})
            if obs.error:
                n_errors += 1
            observations.append(obs)
            sig = (name, call["function"].get("arguments") or "")
            content = observation_text(obs.content, max_chars=max_observation_chars,
                                       repeat_note=repeat_note if sig in seen_calls else None,
                                       suffix="" if final_tool and name == final_tool else observation_suffix,
                                       turn_note=turn_note, turn=turn_no + 1, max_turns=max_turns)
            seen_calls.add(sig)
            msgs.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": content})
            if final_tool and name == final_tool and not obs.error:
                final, ended = obs.content, True
        if ended:
            termination = "forced_answer" if force else "answered"
            break
        if force:
            termination = "token_cap" if ptok + ctok >= max_total_tokens else "turn_cap"
            break
    return AgentResult(
        messages=msgs, termination=termination, final=final, n_turns=turns, n_tool_calls=n_calls,
        n_tool_errors=n_errors, tool_counts=counts, prompt_tokens=ptok, completion_tokens=ctok,
        latency_s=time.perf_counter() - t0, errors=errors, observations=observations,
    )


def observation_text(content: str, *, max_chars: int, repeat_note: str | None = None, suffix: str = "",
                     turn_note: str = "", turn: int = 1, max_turns: int = 1) -> str:
    """The tool-result text a policy sees: the observation cut to ``max_chars``, then the repeat note (a call
    identical to an earlier one), the suffix and the turn note (``{turn}``, ``{max_turns}``, ``{left}``).
    One form for rollouts, the SFT rows made of them and verl's tools (``crucible.pipelines.integrations.verl``)."""
    text = content
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[truncated: {len(content)} characters in all]"
    if repeat_note:
        text = text + "\n\n" + repeat_note
    if suffix:
        text = text + "\n\n" + suffix
    if turn_note:
        text = text + "\n" + turn_note.format(turn=turn, max_turns=max_turns, left=max_turns - turn)
    return text


def _invoke(tools: Mapping[str, Tool], call: dict) -> Observation:
    name = call["function"]["name"]
    tool = tools.get(name)
    if tool is None:
        return Observation(f"error: unknown tool {name!r}; available: {', '.join(tools)}", error=True)
    try:
        args = json.loads(call["function"].get("arguments") or "{}")
    except json.JSONDecodeError as exc:
        return Observation(f"error: arguments are not valid JSON ({exc.msg})", error=True)
    if not isinstance(args, dict):
        return Observation("error: arguments must be a JSON object", error=True)
    try:
        obs = tool.call(args)
    except Exception as exc:  # a tool bug is an observation with an error flag, not a crash
        return Observation(f"error: {type(exc).__name__}: {exc}", error=True)
    if isinstance(obs, str):
        return Observation(obs)
    return obs


# ---------------------------------------------------------------- policies

FINAL_NUDGE = "You have no more tool calls. Give your final answer now, as briefly as possible."


class NativeToolPolicy:
    """OpenAI tool calling through the LLM client (``client.chat(messages, tools=...)``)."""

    def __init__(self, client, *, prompt=None, sample_index: int = 0, **params):
        self.client, self.prompt, self.sample_index, self.params = client, prompt, sample_index, params

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False) -> Turn:
        msgs = [m for m in messages]
        extra = {}
        if force_final:
            msgs = msgs + [{"role": "user", "content": FINAL_NUDGE}]
            extra["tool_choice"] = "none"
        elif tools_only:
            extra["tool_choice"] = "required"
        res = self.client.chat(msgs, tools=tool_schema_list(tools), prompt=self.prompt,
                               sample_index=self.sample_index, session=session_key(messages, self.sample_index),
                               **extra, **self.params)
        calls = [] if force_final else list(res.tool_calls or [])
        return Turn(content=res.text, tool_calls=calls, usage=res.usage, latency_s=res.latency_s,
                    cache_hit=res.cache_hit)


def json_step_schema(tools: Mapping[str, Tool], final_action: str, final_schema: dict | None,
                     only_final: bool, max_thought_chars: int = 300, max_arg_chars: int | None = None,
                     tools_only: bool = False) -> dict:
    """The constrained schema for one JSONStepPolicy turn: one branch per tool (its own
    parameters schema) plus the final action (only the final action with ``only_final``, only the
    tools with ``tools_only``). ``max_arg_chars`` caps every string argument, so that
    a step always closes within its token budget (a truncated step is not JSON)."""
    final_args = final_schema or {"type": "object",
                                  "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": 120}},
                                  "required": ["answer"], "additionalProperties": False}
    # a bounded thought keeps small models from rambling (constrained decoding enforces it)
    thought = {"type": "string", "maxLength": max_thought_chars}
    branches = [] if only_final else [
        {"type": "object",
         "properties": {"thought": thought, "tool": {"const": name},
                        "arguments": _strict_params(tool.schema["function"].get("parameters") or {},
                                                    max_arg_chars)},
         "required": ["thought", "tool", "arguments"], "additionalProperties": False}
        for name, tool in tools.items() if name != final_action
    ]
    if not (tools_only and branches):
        branches.append({"type": "object",
                         "properties": {"thought": thought, "tool": {"const": final_action},
                                        "arguments": final_args},
                         "required": ["thought", "tool", "arguments"], "additionalProperties": False})
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _strict_params(params: dict, max_chars: int | None = None) -> dict:
    """Tool parameters as a closed object of its required properties (small models fill
    optional ones badly); string properties capped at ``max_chars``."""
    props = params.get("properties") or {}
    req = [k for k in params.get("required", list(props)) if k in props]

    def capped(p: dict) -> dict:
        if max_chars is None or p.get("type") != "string":
            return p
        return dict(p, maxLength=min(int(p.get("maxLength", max_chars)), max_chars))

    return {"type": "object", "properties": {k: capped(props[k]) for k in req}, "required": req,
            "additionalProperties": False}


class JSONStepPolicy:
    """Constrained-decoding policy for small models (see module docstring)."""

    def __init__(self, client, *, final_action: str = "answer", final_schema: dict | None = None,
                 final_key: str = "answer", final_tool: str | None = None, prompt=None, sample_index: int = 0,
                 max_thought_chars: int = 300, max_arg_chars: int | None = None, **params):
        self.max_thought_chars, self.max_arg_chars = max_thought_chars, max_arg_chars
        self.client, self.final_action, self.final_schema = client, final_action, final_schema
        self.final_key, self.final_tool = final_key, final_tool
        self.prompt, self.sample_index, self.params = prompt, sample_index, params

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False) -> Turn:
        schema = json_step_schema(tools, self.final_action, self.final_schema, only_final=force_final,
                                  max_thought_chars=self.max_thought_chars, max_arg_chars=self.max_arg_chars,
                                  tools_only=tools_only)
        msgs = _as_plain_chat(messages)
        if force_final:
            msgs.append({"role": "user", "content": FINAL_NUDGE + f' Use "tool": "{self.final_action}".'})
        res = self.client.structured(msgs, schema, prompt=self.prompt, sample_index=self.sample_index,
                                     session=session_key(messages, self.sample_index), **self.params)
        if res.parsed is None:
            return Turn(content=None, tool_calls=[], usage=res.usage, latency_s=res.latency_s,
                        error=res.error or "no structured output")
        step = res.parsed
        thought = (step.get("thought") or "").strip() or None
        if step["tool"] == self.final_action:
            args = step.get("arguments") or {}
            if self.final_tool:  # the final action is itself a tool (e.g. submit)
                call = {"id": new_call_id(len(messages), self.final_tool, args), "type": "function",
                        "function": {"name": self.final_tool, "arguments": json.dumps(args)}}
                return Turn(content=thought, tool_calls=[call], usage=res.usage, latency_s=res.latency_s,
                            cache_hit=res.cache_hit)
            return Turn(content=str(args.get(self.final_key, "")).strip() or None, tool_calls=[], usage=res.usage,
                        latency_s=res.latency_s, cache_hit=res.cache_hit)
        call = {"id": new_call_id(len(messages), step["tool"], step.get("arguments")), "type": "function",
                "function": {"name": step["tool"], "arguments": json.dumps(step.get("arguments") or {})}}
        return Turn(content=thought, tool_calls=[call], usage=res.usage, latency_s=res.latency_s,
                    cache_hit=res.cache_hit)


def _as_plain_chat(messages: Sequence[dict]) -> list[dict]:
    """Render tool calls/results as plain text turns for servers in json_schema mode: the
    model sees its earlier steps as the JSON it wrote and each observation as a user turn."""
    out = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            c = m["tool_calls"][0]["function"]
            out.append({"role": "assistant", "content": json.dumps(
                {"thought": m.get("content") or "", "tool": c["name"], "arguments": json.loads(c["arguments"])})})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": f"Observation from {m.get('name') or 'tool'}:\n{m['content']}"})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return out


def render_react(messages: Sequence[dict], final_tag: str = "answer") -> str:
    """The Qwen ReAct text form of a trajectory, for text-only trainers:
    ``<think>..</think><tool_call>{json}</tool_call>`` per assistant turn, ``<tool_response>..</tool_response>``
    per tool result, and ``<answer>..</answer>`` for the final assistant text."""
    parts = []
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role in ("system", "user"):
            parts.append(f"<|{role}|>\n{content}")
        elif role == "assistant":
            if m.get("tool_calls"):
                text = f"<think>{content}</think>" if content else ""
                for c in m["tool_calls"]:
                    call = {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
                    text += f"<tool_call>{json.dumps(call, ensure_ascii=False)}</tool_call>"
                parts.append(f"<|assistant|>\n{text}")
            else:
                parts.append(f"<|assistant|>\n<{final_tag}>{content}</{final_tag}>")
        elif role == "tool":
            parts.append(f"<|user|>\n<tool_response>{content}</tool_response>")
    return "\n".join(parts)
