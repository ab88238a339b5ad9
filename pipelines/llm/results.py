"""What one model call gives back (:class:`ChatResult`, :class:`LLMError`) and the pure helpers around it:
which errors are transient, JSON out of model text, structured-output validation, prompt and tool names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai

TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class LLMError(RuntimeError):
    """A call failed for good (non-retryable status, or retries exhausted)."""

    def __init__(self, message: str, *, attempts: int, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.endpoint = endpoint


@dataclass
class ChatResult:
    """One model call. ``raw`` is the server's JSON response (or the cached copy of it)."""

    text: str | None
    tool_calls: list[dict]
    finish_reason: str | None
    usage: dict[str, int]
    latency_s: float
    retries: int
    cache_hit: bool
    raw: dict | None
    model: str
    endpoint: str | None = None
    cache_key: str | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    parsed: Any = None
    error: str | None = None
    attempts: int = 1  # generations made (structured() may make several)
    queue_wait_s: float = 0.0  # time spent waiting for an endpoint slot (all attempts)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> dict:
        """The assistant message in OpenAI form, ready to append to a trajectory."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg

    def accounting(self) -> dict:
        """Flat per-call usage for storing in rows."""
        return {
            "model": self.model,
            "prompt_id": self.prompt_id,
            "prompt_version": self.prompt_version,
            "prompt_tokens": int(self.usage.get("prompt_tokens", 0)),
            "completion_tokens": int(self.usage.get("completion_tokens", 0)),
            "latency_s": round(self.latency_s, 4),
            "retries": self.retries,
            "attempts": self.attempts,
            "cache_hit": self.cache_hit,
        }


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
    return False


def is_endpoint_failure(exc: BaseException) -> bool:
    """The endpoint itself failed (refused, reset, 5xx), as opposed to a slow or rate-limited one: counted
    against its health. A timeout is not: a long generation is no sign of a dead server."""
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def parse_json_text(text: str | None) -> Any:
    """Parse a JSON value from model text: plain, fenced, or the outermost {...} in prose."""
    if text is None:
        raise ValueError("empty reply (no content)")
    s = text.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    m = _FENCE.match(s)
    if m:
        try:
            return json.loads(m.group(1))
        except ValueError:
            pass
    a, b = s.find("{"), s.rfind("}")
    if 0 <= a < b:
        try:
            return json.loads(s[a:b + 1])
        except ValueError:
            pass
    raise ValueError(f"not JSON: {s[:120]!r}")


def validate_structured(text: str | None, validator) -> tuple[Any, str | None]:
    """(parsed, None) if ``text`` holds JSON valid for the schema, else (None, reason)."""
    try:
        obj = parse_json_text(text)
    except ValueError as exc:
        return None, str(exc)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        return None, f"schema violation at {where}: {e.message}"
    return obj, None


def json_schema_response_format(schema: Mapping, name: str = "response", strict: bool = True) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": strict}}


def estimate_tokens(messages: Sequence[Mapping], max_tokens: int | None) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // 4 + 1 + int(max_tokens or 0)


def prompt_ref(prompt: Any) -> tuple[str | None, str | None]:
    """``(id, version)`` of a loaded Prompt, a ``(id, version)`` pair or a mapping; ``(None, None)`` for none."""
    if prompt is None:
        return None, None
    if isinstance(prompt, (tuple, list)):
        return str(prompt[0]), None if prompt[1] is None else str(prompt[1])
    if isinstance(prompt, Mapping):
        return prompt.get("id"), None if prompt.get("version") is None else str(prompt["version"])
    version = getattr(prompt, "version", None)
    return getattr(prompt, "id", None), None if version is None else str(version)


def tool_names(tools: Iterable[Mapping] | None) -> list[str]:
    names = []
    for t in tools or []:
        fn = t.get("function") if isinstance(t, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name"):
            names.append(fn["name"])
    return names
