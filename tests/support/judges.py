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


def yes_judge_responder(base):
    """A fake-server responder (tests/support/fake_llm_server.py) whose answer judge says "equivalent" to
    every prediction; every other request goes to ``base``."""
    import json

    from tests.support.fake_llm_server import Reply

    def respond(body):
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        if "equivalent" in schema.get("properties", {}):
            return Reply(content=json.dumps({"equivalent": "yes", "reason": "scripted: always yes"}))
        return base(body)

    return respond
