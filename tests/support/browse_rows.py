"""Hand-built browse trajectory rows and a scripted rollout, for selection and solver-loop tests."""

from __future__ import annotations

import json

from crucible.pipelines.agent.loop import new_call_id


def call(name: str, **args) -> dict:
    return {"id": new_call_id(name, args), "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}


def messages(steps: list[tuple[dict, str]], final: str) -> list[dict]:
    """system + user, then one (tool call, observation) pair per step, then the final answer."""
    out = [{"role": "system", "content": "agent"}, {"role": "user", "content": "question?"}]
    for c, obs in steps:
        out.append({"role": "assistant", "content": "thinking", "tool_calls": [c]})
        out.append({"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"], "content": obs})
    out.append({"role": "assistant", "content": final})
    return out


def trajectory(*, steps: list[tuple[dict, str]] | None = None, final: str = "Bahamian dollar",
               verdict: str = "correct", termination: str = "answered", evidence_seen: bool | None = True,
               completion_tokens: int = 60, **extra) -> dict:
    """A trajectory row with the fields the SFT filters read (a clean, keepable one by default)."""
    steps = steps if steps is not None else [
        (call("search", query="currency of the Bahamas"),
         'Search results for "currency of the Bahamas":\n1. The Bahamas\n   URL: https://kb.local/country/BS\n'
         "   The currency of The Bahamas is the Bahamian dollar.")]
    msgs = messages(steps, final)
    row = {"traj_id": "q-0", "question_id": "q", "messages": msgs, "prediction": final, "verdict": verdict,
           "reward_format": 1.0, "n_prompt_tokens": 400, "n_completion_tokens": completion_tokens,
           "n_turns": len(steps) + 1, "n_tool_calls": len(steps), "n_tool_errors": 0, "termination": termination,
           "evidence_seen": evidence_seen, "meta": {"hallucinated_urls": []}}
    row.update(extra)
    return row
