"""The snippet of a reduced test (:class:`Reduced`, made by :mod:`crucible.pipelines.swe.statement_source`): its imports,
prelude and steps up to the failing one, rendered as a reader would run it (pure)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class Step:
    """One top-level statement of the reduced body; ``raises``: the exception source a ``with raises(E):``
    block expects (``code`` is then its body)."""

    code: str
    raises: str | None = None


@dataclass
class Reduced:
    test_id: str
    imports: list[str]
    prelude: list[str]  # module-level helpers and parametrize bindings the body needs
    steps: list[Step]
    names: set[str] = field(default_factory=set)  # names the snippet uses (what a user calls)


def _indent(code: str) -> str:
    return "\n".join("    " + ln for ln in code.splitlines())


def value_parts(code: str) -> tuple[str, str] | None:
    """(actual, expected) of ``assert A == B`` (a literal on the left is the expected side, unittest order)."""
    try:
        node = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return None
    left, right = node.test.left, node.test.comparators[0]
    if _is_literal(left) and not _is_literal(right):
        left, right = right, left
    return ast.unparse(left), ast.unparse(right)


def _is_literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False


def is_check(code: str) -> bool:
    """An ``assert`` that only reads (no call but ``len``, no subscript, no walrus): dropping it before the
    failing step leaves the state as it was (the before/after runs confirm it)."""
    node = ast.parse(code).body[0]
    if not isinstance(node, ast.Assert):
        return False
    return not any(isinstance(n, (ast.Subscript, ast.NamedExpr, ast.Await, ast.Yield)) or
                   isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id == "len")
                   for n in ast.walk(node))


def render(red: Reduced, k: int, kind: str, *, prune: bool = False) -> str:
    """The snippet: imports, prelude, the steps before ``k`` (a passing ``raises`` step as try/except; with
    ``prune``, read-only checks left out) and step ``k`` as ``kind``: ``value`` (print what the assertion
    compares), ``raise`` (as is), ``no_raise`` (the body that should have raised)."""
    lines = list(red.imports) + ([""] if red.imports else []) + list(red.prelude)
    for s in red.steps[:k]:
        if prune and not s.raises and is_check(s.code):
            continue
        lines.append(f"try:\n{_indent(s.code)}\nexcept {s.raises}:\n    pass" if s.raises else s.code)
    step = red.steps[k]
    if kind == "value":
        actual, _ = value_parts(step.code)
        lines.append(f"print(repr({actual}))")
    else:
        lines.append(step.code)
    return "\n".join(lines).strip() + "\n"
