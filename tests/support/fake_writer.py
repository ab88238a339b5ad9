"""A scripted LLM client for the question writer: ``structured`` returns the next canned question,
or, for the read-back prompt (a schema with ``relations``), the next canned read-back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Result:
    parsed: dict | None


class ScriptedWriter:
    def __init__(self, questions, read_backs=None):
        self.questions = list(questions)
        self.read_backs = list(read_backs or [])
        self.calls = 0
        self.read_back_calls: list[dict] = []

    def structured(self, messages, schema, **kw):
        if "relations" in schema.get("properties", {}):
            self.read_back_calls.append({"messages": messages, "schema": schema})
            rels = self.read_backs.pop(0) if self.read_backs else None
            return _Result(None if rels is None else {"relations": rels})
        q = self.questions[min(self.calls, len(self.questions) - 1)]
        self.calls += 1
        return _Result({"question": q})
