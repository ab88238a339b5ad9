"""A scripted LLM client for the question writer: ``structured`` returns the next canned question."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Result:
    parsed: dict | None


class ScriptedWriter:
    def __init__(self, questions):
        self.questions = list(questions)
        self.calls = 0

    def structured(self, messages, schema, **kw):
        q = self.questions[min(self.calls, len(self.questions) - 1)]
        self.calls += 1
        return _Result({"question": q})
