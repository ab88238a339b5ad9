"""The tool protocol every agent tool follows.

A tool has a ``name``, an OpenAI function ``schema`` (``{"type": "function", "function": {...}}``)
and ``call(args) -> Observation``. Tools never raise for bad arguments or backend failures: they
return an :class:`Observation` with ``error=True`` and a message the model can read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import jsonschema


@dataclass(frozen=True)
class Observation:
    content: str
    error: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)


@runtime_checkable
class Tool(Protocol):
    """Also satisfies ``crucible.pipelines.agent.loop.Tool`` (``openai_schema()`` + ``call``)."""

    name: str

    @property
    def schema(self) -> dict: ...

    def openai_schema(self) -> dict: ...

    def call(self, args: Mapping[str, Any]) -> Observation: ...


def function_schema(name: str, description: str, properties: dict, required: Sequence[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(required),
                           "additionalProperties": False},
        },
    }


@dataclass
class FunctionTool:
    """A tool from a plain function ``fn(args) -> Observation`` plus its schema."""

    name: str
    schema: dict
    fn: Callable[[Mapping[str, Any]], Observation]

    def openai_schema(self) -> dict:
        return self.schema

    def call(self, args: Mapping[str, Any]) -> Observation:
        try:
            return self.fn(args)
        except Exception as exc:  # a tool failure is an observation, never a crash of the rollout
            return Observation(f"Error: {self.name} failed: {type(exc).__name__}: {exc}", error=True)


def validate_args(schema: dict, args: Any) -> str | None:
    """A readable error when ``args`` does not match the function schema, else None."""
    params = schema["function"]["parameters"]
    if not isinstance(args, Mapping):
        return f"arguments must be a JSON object, got {type(args).__name__}"
    err = next(iter(jsonschema.Draft202012Validator(params).iter_errors(dict(args))), None)
    if err is None:
        return None
    where = ".".join(str(p) for p in err.path) or "arguments"
    return f"{where}: {err.message}"


def call_tool(tools: Mapping[str, Tool] | Sequence[Tool], name: str, arguments: str | Mapping[str, Any]) -> Observation:
    """Dispatch one OpenAI tool call (``arguments`` is the JSON string from the model)."""
    table = tools if isinstance(tools, Mapping) else {t.name: t for t in tools}
    tool = table.get(name)
    if tool is None:
        return Observation(f"Error: unknown tool {name!r}; available: {sorted(table)}", error=True)
    if isinstance(arguments, str):
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return Observation(f"Error: arguments are not valid JSON ({exc.msg})", error=True)
    else:
        args = arguments
    problem = validate_args(tool.schema, args)
    if problem:
        return Observation(f"Error: bad arguments for {name}: {problem}", error=True)
    return tool.call(args)
