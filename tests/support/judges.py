"""Scripted judges for verifier tests (no model)."""

from __future__ import annotations


class AlwaysYesJudge:
    """Says every prediction is equivalent to the gold: the worst judge the rules and the graph
    must guard against. Counts its calls."""

    def __init__(self):
        self.calls = 0
        self.messages: list[list[dict]] = []

    def __call__(self, messages, schema):
        self.calls += 1
        self.messages.append(messages)
        return {"equivalent": "yes", "reason": "scripted: always yes"}
