"""A test helper method whose body is one ``return <expr>`` inlined at its call (pure ``ast``), so a test that
calls ``self.decorator(maxsize=2)`` reduces to the expression the helper returns
(:mod:`crucible.pipelines.swe.statement_source`)."""

from __future__ import annotations

import ast
import copy


def returned_expr(method: ast.FunctionDef) -> ast.expr | None:
    """The expression of a method whose body (docstring aside) is one ``return``."""
    body = [s for s in method.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
        return body[0].value
    return None


def inline_call(method: ast.FunctionDef, call: ast.Call) -> ast.expr | None:
    """``call`` (``self.m(...)``) replaced by ``m``'s returned expression with its parameters bound to the
    call's arguments (defaults for the rest, ``**kwargs`` spread back as keywords); None: not inlinable
    (a body of more than a return, ``*args``, a starred argument, a parameter bound twice or never)."""
    expr = returned_expr(method)
    a = method.args
    if expr is None or a.vararg or a.posonlyargs or any(isinstance(x, ast.Starred) for x in call.args) or \
            any(k.arg is None for k in call.keywords):
        return None
    params = [p.arg for p in a.args][1:]  # self
    if len(call.args) > len(params):
        return None
    bound = dict(zip(params, call.args))
    defaults = dict(zip(params[len(params) - len(a.defaults):], a.defaults)) if a.defaults else {}
    kwonly = {p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults)}
    extra = []
    for k in call.keywords:
        if k.arg in bound:
            return None
        if k.arg in params or k.arg in kwonly:
            bound[k.arg] = k.value
        elif a.kwarg:
            extra.append(k)
        else:
            return None
    for p in params + list(kwonly):
        if p not in bound:
            d = defaults.get(p, kwonly.get(p))
            if d is None:
                return None
            bound[p] = d
    return _Bind(bound, a.kwarg.arg if a.kwarg else None, extra).visit(copy.deepcopy(expr))


class _Bind(ast.NodeTransformer):
    def __init__(self, bound: dict, kwarg: str | None, extra: list):
        self.bound, self.kwarg, self.extra = bound, kwarg, extra

    def visit_Name(self, node):
        if node.id == self.kwarg:
            raise ValueError("**kwargs used as a value")
        return copy.deepcopy(self.bound[node.id]) if node.id in self.bound else node

    def visit_Call(self, node):
        spread = [k for k in node.keywords if k.arg is None and isinstance(k.value, ast.Name)
                  and k.value.id == self.kwarg] if self.kwarg is not None else []
        node.keywords = [k for k in node.keywords if k not in spread]
        self.generic_visit(node)
        if spread:
            node.keywords += copy.deepcopy(self.extra)
        return node
