"""Rewards for browse trajectories: outcome, format, clue recall, combined by a formula.

Each term is stored in its own column; ``reward_total`` comes from a config formula over
the terms (e.g. ``"outcome * format + 0.1 * clue"``), evaluated by a small safe evaluator
(arithmetic, min/max, comparisons; no names other than the terms).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Mapping, Sequence

DEFAULT_FORMULA = "outcome * format + 0.1 * clue * format"

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CMP = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Eq: operator.eq}
_FUNCS = {"min": min, "max": max}


class FormulaError(ValueError):
    pass


def check_formula(formula: str, names: Sequence[str]) -> ast.Expression:
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"reward formula {formula!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCS:
            raise FormulaError(f"reward formula {formula!r}: unknown name {node.id!r} (allowed: {', '.join(names)})")
        if not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.Constant, ast.Name,
                                 ast.Load, ast.Call, ast.Compare, ast.IfExp, *_BIN, *_CMP)):
            raise FormulaError(f"reward formula {formula!r}: {type(node).__name__} is not allowed")
    return tree


def eval_formula(formula: str, terms: Mapping[str, float]) -> float:
    tree = check_formula(formula, list(terms))

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return float(n.value)
        if isinstance(n, ast.Name):
            return float(terms[n.id] or 0.0)
        if isinstance(n, ast.BinOp):
            return _BIN[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS:
            return float(_FUNCS[n.func.id](*[ev(a) for a in n.args]))
        if isinstance(n, ast.Compare) and len(n.ops) == 1:
            return float(_CMP[type(n.ops[0])](ev(n.left), ev(n.comparators[0])))
        if isinstance(n, ast.IfExp):
            return ev(n.body) if ev(n.test) else ev(n.orelse)
        raise FormulaError(f"reward formula {formula!r}: cannot evaluate {ast.dump(n)}")

    return ev(tree)


def outcome_reward(verdict: str | None) -> float:
    return 1.0 if verdict == "correct" else 0.0


def format_reward(messages: Sequence[dict], tool_names: Sequence[str]) -> tuple[float, list[str]]:
    """1.0 when every assistant turn is well formed: tool calls name known tools with JSON-object
    arguments, each call gets a tool result, and the last assistant turn gives an answer."""
    problems: list[str] = []
    pending: set[str] = set()
    assistants = [m for m in messages if m.get("role") == "assistant"]
    if not assistants:
        return 0.0, ["no assistant turn"]
    for i, m in enumerate(messages):
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or []:
                fn = c.get("function", {})
                if fn.get("name") not in tool_names:
                    problems.append(f"turn {i}: unknown tool {fn.get('name')!r}")
                try:
                    if not isinstance(json.loads(fn.get("arguments") or ""), dict):
                        problems.append(f"turn {i}: arguments are not a JSON object")
                except json.JSONDecodeError:
                    problems.append(f"turn {i}: arguments are not valid JSON")
                pending.add(c.get("id"))
            if not m.get("tool_calls") and not (m.get("content") or "").strip():
                problems.append(f"turn {i}: empty assistant turn")
        elif m.get("role") == "tool":
            if m.get("tool_call_id") not in pending:
                problems.append(f"turn {i}: tool result without a matching call")
            pending.discard(m.get("tool_call_id"))
    last = assistants[-1]
    if last.get("tool_calls") or not (last.get("content") or "").strip():
        problems.append("no final answer")
    return (0.0 if problems else 1.0), problems


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", (s or "").lower()).strip()


def clue_recall(evidence: Sequence[Mapping], visited_urls: Sequence[str], observations: Sequence[str]) -> float:
    """Fraction of evidence hops the trajectory surfaced: the hop's URL was visited, or the
    hop's fact text (or its object name) appeared in an observation."""
    if not evidence:
        return 0.0
    urls = {u.rstrip("/") for u in visited_urls}
    seen = _norm(" \n ".join(observations))
    hit = 0
    for ev in evidence:
        if (ev.get("url") or "").rstrip("/") in urls:
            hit += 1
            continue
        fact = _norm(ev.get("fact", ""))
        obj = _norm(ev.get("object") or "")
        obj_seen = obj and not obj.startswith("?") and len(obj) > 2 and re.search(rf"\b{re.escape(obj)}\b", seen)
        if (fact and fact in seen) or obj_seen:
            hit += 1
    return hit / len(evidence)


def combine(terms: Mapping[str, float], formula: str = DEFAULT_FORMULA) -> float:
    return round(eval_formula(formula, terms), 6)
