"""pytest parametrize ids -> the values they stand for (pure ``ast``), for reducing a parametrized test to a
snippet (:mod:`crucible.pipelines.swe.statement_source`)."""

from __future__ import annotations

import ast
import itertools
import math


class Unresolved(Exception):
    """A parametrize id that cannot be tied to one row of values."""


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def param_values(func: ast.FunctionDef, param: str | None, mod: ast.Module | None = None) -> dict[str, ast.expr]:
    """Bindings of a ``pytest.mark.parametrize`` id (``[2-x]``) to the decorators' values: pytest's id of a
    simple value is its str, of anything else argname+index, ``pytest.param(id=...)`` and ``ids=[...]`` win,
    stacked decorators join bottom first, a repeated id gets its index appended; rows given by a module-level
    name are looked up in ``mod``."""
    decos = [d for d in func.decorator_list if isinstance(d, ast.Call) and _dotted(d.func).endswith("parametrize")]
    if param is None:
        if decos:
            raise Unresolved("parametrized test without its id")
        return {}
    if not decos:
        raise Unresolved(f"id [{param}] of a test that is not parametrized")
    per = [_param_rows(d, mod) for d in reversed(decos)]
    if any(r is None for r in per) or math.prod(len(r) for r in per) > 20000:
        raise Unresolved("parametrize ids not resolvable (computed)")
    combos = list(itertools.product(*per))
    ids = ["-".join(rid for rid, _ in combo) for combo in combos]
    dup = {k for k in ids if ids.count(k) > 1} if len(ids) < 2000 else set()
    seen: dict[str, int] = {}
    hits = []
    for rid, combo in zip(ids, combos):
        if rid in dup:
            seen[rid] = seen.get(rid, -1) + 1
            rid = f"{rid}{seen[rid]}"
        if rid == param:
            hits.append({k: v for _, row in combo for k, v in row.items()})
    if len(hits) != 1:
        raise Unresolved(f"parametrize id [{param}] matches {len(hits)} rows")
    return hits[0]


def _param_rows(deco: ast.Call, mod: ast.Module | None) -> list[tuple[str, dict]] | None:
    """[(id, {name: value node})] of one parametrize decorator (None: rows not written out)."""
    if len(deco.args) < 2:
        return None
    names_node, rows = deco.args[0], deco.args[1]
    if isinstance(rows, ast.Name) and mod is not None:
        binds = module_bindings(mod, rows.id)
        if len(binds) != 1 or not isinstance(binds[0], ast.Assign):
            return None  # bound more than once (DATES += [...]): which value a test saw depends on its line
        rows = binds[0].value
    if not isinstance(rows, (ast.List, ast.Tuple)):
        return None
    if isinstance(names_node, ast.Constant) and isinstance(names_node.value, str):
        names = [n.strip() for n in names_node.value.split(",") if n.strip()]
    elif isinstance(names_node, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) for e in names_node.elts):
        names = [e.value for e in names_node.elts]
    else:
        return None
    explicit = next((k.value for k in deco.keywords if k.arg == "ids"), None)
    out = []
    for i, row in enumerate(rows.elts):
        rid = None
        if isinstance(row, ast.Call) and _dotted(row.func).endswith("param"):
            rid = next((k.value.value for k in row.keywords if k.arg == "id" and isinstance(k.value, ast.Constant)),
                       None)
            row = ast.Tuple(elts=row.args) if len(names) > 1 else row.args[0]
        vals = list(row.elts) if len(names) > 1 and isinstance(row, (ast.Tuple, ast.List)) else [row]
        if len(vals) != len(names):
            return None
        if rid is None and isinstance(explicit, (ast.List, ast.Tuple)) and i < len(explicit.elts):
            rid = explicit.elts[i].value if isinstance(explicit.elts[i], ast.Constant) else None
        if rid is None:
            rid = "-".join(_id_part(v, n, i, mod) for v, n in zip(vals, names))
        out.append((str(rid), dict(zip(names, vals))))
    return out


def _id_part(v: ast.expr, name: str, i: int, mod: ast.Module | None = None) -> str:
    if isinstance(v, ast.Constant) and isinstance(v.value, (int, float, str, bool)) or \
            isinstance(v, ast.Constant) and v.value is None:
        val = v.value
        return val.encode("unicode_escape").decode("ascii") if isinstance(val, str) else str(val)
    if isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub) and isinstance(v.operand, ast.Constant):
        return f"-{v.operand.value}"
    if isinstance(v, ast.Name) and mod is not None and any(  # a function or class: pytest uses its __name__
            isinstance(b, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
            for b in module_bindings(mod, v.id)):
        return v.id
    return f"{name}{i}"


def module_bindings(mod: ast.Module, name: str) -> list[ast.stmt]:
    """Every module-level statement that binds ``name`` (assignments, augmented ones, defs, imports)."""
    out = []
    for n in mod.body:
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets) or \
                isinstance(n, (ast.AugAssign, ast.AnnAssign)) and isinstance(n.target, ast.Name) and n.target.id == name or \
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name or \
                isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                    (a.asname or a.name.split(".")[0]) == name for a in n.names):
            out.append(n)
    return out
