"""A failing test reduced to a few lines a reader can run (pure, ``ast`` over the tree at the instance's commit).

:func:`reduce_test` finds the test function of a test id (module function, method of a test class or of a
mixin it inherits from a module of the tree), binds ``pytest.mark.parametrize`` values by the id's bracket,
rewrites unittest assertions (``self.assertEqual(a, b)`` -> ``assert a == b``, ``with self.assertRaises(E):``)
and class attributes (``self.Cache`` -> ``MRUCache``) and keeps only the imports and module-level helpers the
body uses. A test it cannot reduce honestly (fixtures, ``self`` state, test-only helpers, other ``pytest`` use)
gives a reason instead. :func:`snippet` renders the reduction up to the failing statement."""

from __future__ import annotations

import ast
import builtins
import copy
import re
from pathlib import Path

from crucible.pipelines.swe.statement_inline import inline_call
from crucible.pipelines.swe.statement_params import Unresolved, _dotted, module_bindings, param_values
from crucible.pipelines.swe.statement_snippet import (  # noqa: F401 - the snippet of a Reduced
    Reduced,
    Step,
    is_check,
    render,
    value_parts,
)

CMP = {"assertEqual": ast.Eq, "assertEquals": ast.Eq, "assertListEqual": ast.Eq, "assertDictEqual": ast.Eq,
       "assertTupleEqual": ast.Eq, "assertSetEqual": ast.Eq, "assertSequenceEqual": ast.Eq,
       "assertMultiLineEqual": ast.Eq, "assertNotEqual": ast.NotEq, "assertIs": ast.Is, "assertIsNot": ast.IsNot,
       "assertIn": ast.In, "assertNotIn": ast.NotIn, "assertGreater": ast.Gt, "assertGreaterEqual": ast.GtE,
       "assertLess": ast.Lt, "assertLessEqual": ast.LtE}
MAX_STATEMENTS = 60  # a test longer than this is no reproduction a reader follows


class Unreducible(Exception):
    """Why a test cannot become a stand-alone snippet."""


def split_id(test_id: str) -> tuple[str, list[str], str | None]:
    """``path::Class::test[param]`` -> (path, [Class, test], param)."""
    m = re.match(r"^(.*?)(\[(.*)\])?$", test_id, re.S)
    head, param = m.group(1), m.group(3)
    parts = head.split("::")
    return parts[0], parts[1:], param


def _module(tree: Path, rel: str) -> ast.Module:
    try:
        return ast.parse((tree / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise Unreducible(f"cannot parse {rel}: {type(exc).__name__}") from exc


def _import_target(rel: str, node: ast.ImportFrom) -> str | None:
    """The tree-relative file an ``from X import Y`` names (relative or absolute), or None."""
    base = Path(rel).parent
    if node.level:
        for _ in range(node.level - 1):
            base = base.parent
        parts = list(base.parts) + (node.module.split(".") if node.module else [])
    else:
        parts = (node.module or "").split(".")
    stem = "/".join(p for p in parts if p)
    return stem


def _find_class(tree: Path, rel: str, mod: ast.Module, name: str, depth: int = 0):
    """(file, module, ClassDef) of a class name visible in ``mod`` (defined there or imported from the tree)."""
    for node in mod.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return rel, mod, node
    for node in mod.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names) and depth < 3:
            stem = _import_target(rel, node)
            for cand in (f"{stem}.py", f"{stem}/__init__.py"):
                if stem is not None and (tree / cand).is_file():
                    orig = next(a.name for a in node.names if (a.asname or a.name) == name)
                    return _find_class(tree, cand, _module(tree, cand), orig, depth + 1)
    return None


def _lookup(tree: Path, rel: str, mod: ast.Module, cls: ast.ClassDef, attr: str, depth: int = 0):
    """(value node, file, module) of ``attr`` in ``cls`` or its bases (function or class attribute)."""
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attr:
            return node, rel, mod
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attr for t in node.targets):
            return node.value, rel, mod
    for base in cls.bases:
        if isinstance(base, ast.Name) and depth < 5:
            found = _find_class(tree, rel, mod, base.id)
            if found:
                hit = _lookup(tree, found[0], found[1], found[2], attr, depth + 1)
                if hit:
                    return hit
    return None


class _Rewrite(ast.NodeTransformer):
    """unittest assertions -> plain asserts; ``self.X`` -> the class attribute's value; ``pytest``/``self``
    anywhere else -> Unreducible."""

    def __init__(self, attr_of):
        self.attr_of = attr_of

    def visit_Expr(self, node):
        call = node.value
        if isinstance(call, ast.Call) and _is_self_attr(call.func):
            name = call.func.attr
            args = [self.visit(a) for a in call.args]
            if name in CMP and len(args) >= 2:
                return ast.copy_location(ast.Assert(test=ast.Compare(
                    left=args[0], ops=[CMP[name]()], comparators=[args[1]])), node)
            if name in ("assertTrue", "assert_") and args:
                return ast.copy_location(ast.Assert(test=args[0]), node)
            if name == "assertFalse" and args:
                return ast.copy_location(ast.Assert(test=ast.UnaryOp(op=ast.Not(), operand=args[0])), node)
            if name in ("assertIsNone", "assertIsNotNone") and args:
                op = ast.Is() if name == "assertIsNone" else ast.IsNot()
                return ast.copy_location(ast.Assert(test=ast.Compare(left=args[0], ops=[op],
                                                                     comparators=[ast.Constant(None)])), node)
            if name == "assertIsInstance" and len(args) >= 2:
                return ast.copy_location(ast.Assert(test=ast.Call(func=ast.Name("isinstance", ast.Load()),
                                                                  args=args[:2], keywords=[])), node)
            if name in ("assertRaisesRegex", "assertRaisesRegexp") and len(args) >= 3:
                name, args = "assertRaises", [args[0], *args[2:]]
            if name == "assertRaises" and len(args) >= 2:
                return ast.copy_location(ast.With(items=[_raises_item(args[0])], body=[ast.Expr(ast.Call(
                    func=args[1], args=args[2:], keywords=[self.visit(k) for k in call.keywords]))]), node)
            raise Unreducible(f"uses self.{name}")
        return self.generic_visit(node)

    def visit_FunctionDef(self, node):
        if any(a.arg == "self" for a in node.args.args):  # a nested class's method: its self is its own
            return node
        return self.generic_visit(node)

    def visit_With(self, node):
        if len(node.items) == 1:
            ctx = node.items[0].context_expr
            if isinstance(ctx, ast.Call) and _is_self_attr(ctx.func) and ctx.func.attr == "subTest":
                return [self.visit(s) for s in node.body]  # a subtest's label is no behaviour
            if isinstance(ctx, ast.Call) and ctx.args and _is_self_attr(ctx.func) and \
                    ctx.func.attr in ("assertRaisesRegex", "assertRaisesRegexp"):
                ctx = ast.Call(func=ast.Attribute(ast.Name("self", ast.Load()), "assertRaises", ast.Load()),
                               args=ctx.args[:1], keywords=[])
                node = ast.With(items=[ast.withitem(context_expr=ctx)], body=node.body)
            if isinstance(ctx, ast.Call) and (_is_self_attr(ctx.func) and ctx.func.attr == "assertRaises" or
                                              _dotted(ctx.func) == "pytest.raises") and ctx.args \
                    and node.items[0].optional_vars is None and all(k.arg == "match" for k in ctx.keywords):
                return ast.copy_location(ast.With(items=[_raises_item(self.visit(ctx.args[0]))],
                                                  body=[self.visit(s) for s in node.body]), node)
        return self.generic_visit(node)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            value = self.attr_of(node.attr)
            if isinstance(value, ast.FunctionDef):
                raise Unreducible(f"uses self.{node.attr}")
            return self.visit(value)
        return self.generic_visit(node)

    def visit_Call(self, node):
        if _is_self_attr(node.func) and isinstance(method := self.attr_of(node.func.attr), ast.FunctionDef):
            try:
                inlined = inline_call(method, node)  # a helper that only returns an expression
            except ValueError:
                inlined = None
            if inlined is None:
                raise Unreducible(f"uses self.{node.func.attr}")
            return self.visit(inlined)
        return self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in ("self", "pytest"):
            raise Unreducible(f"uses {node.id}")
        return node


def _raises_item(exc) -> ast.withitem:
    return ast.withitem(context_expr=ast.Call(func=ast.Name("__raises__", ast.Load()), args=[exc], keywords=[]))


def _is_self_attr(node) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _steps(body: list[ast.stmt]) -> list[Step]:
    out = []
    for s in body:
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
            continue  # docstring
        if isinstance(s, ast.With) and len(s.items) == 1 and isinstance(s.items[0].context_expr, ast.Call) \
                and _dotted(s.items[0].context_expr.func) == "__raises__":
            out.append(Step("\n".join(ast.unparse(b) for b in s.body),
                            ast.unparse(s.items[0].context_expr.args[0])))
        else:
            code = ast.unparse(s)
            if "__raises__" in code:
                raise Unreducible("expects an exception inside a nested block")
            out.append(Step(code))
    return out


def _locate(tree: Path, test_id: str):
    rel, names, param = split_id(test_id)
    if not names or not rel.endswith(".py"):
        raise Unreducible(f"not a pytest node id: {test_id}")
    mod = _module(tree, rel)
    if len(names) == 1:
        func = next((n for n in mod.body if isinstance(n, ast.FunctionDef) and n.name == names[0]), None)
        return rel, mod, None, func, param
    found = _find_class(tree, rel, mod, names[0])
    if not found or len(names) != 2:
        raise Unreducible(f"class {names[0]} not found")
    hit = _lookup(tree, rel, mod, found[2], names[1])
    func = hit[0] if hit and isinstance(hit[0], ast.FunctionDef) else None
    return (hit[1] if hit else rel), (hit[2] if hit else mod), found[2], func, param


def _loaded(code: str) -> tuple[set[str], set[str]]:
    """(names read, names bound) by a piece of code."""
    tree = ast.parse(code)
    read, bound = set(), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            (read if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
    return read, bound


def _binding(mod: ast.Module, name: str):
    for node in mod.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if (a.asname or a.name.split(".")[0]) == name:
                    return "import", f"import {a.name}" + (f" as {a.asname}" if a.asname else ""), node
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if (a.asname or a.name) == name:
                    return "import", f"from {'.' * node.level}{node.module or ''} import {a.name}" + \
                        (f" as {a.asname}" if a.asname else ""), node
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return "def", ast.unparse(node), node
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return "def", ast.unparse(node), node
    return None


def _needs(mods: list[ast.Module], codes: list[str]) -> tuple[list[str], list[str], set[str]]:
    """(import lines, module-level helpers, names used) that ``codes`` need from the test module(s)."""
    imports: list[str] = []
    helpers: list[tuple[int, str]] = []
    used: set[str] = set()
    todo = list(codes)
    seen: set[str] = set()
    local = set().union(*(_loaded(c)[1] for c in codes)) if codes else set()  # bound by the body itself
    while todo:
        read, bound = _loaded(todo.pop())
        used |= read
        for name in sorted(read - bound - local - seen - set(dir(builtins)) - {"__raises__"}):
            seen.add(name)
            hit = next((b for b in (_binding(m, name) for m in mods) if b), None)
            if hit is None:
                raise Unreducible(f"name {name} not found in the test module")
            kind, text, node = hit
            if sum(len(module_bindings(m, name)) for m in mods[:1]) > 1:
                raise Unreducible(f"the test module binds {name} more than once")
            if kind == "import":
                mod = text.split()[1]
                if mod.startswith(".") or re.search(r"(^|\.)(tests?|conftest|testing)(\.|$)", mod) or mod == "pytest":
                    raise Unreducible(f"{name} comes from test code ({mod})")
                if text not in imports:
                    imports.append(text)
            else:
                if name.startswith("_") or name.lower().startswith("test"):
                    raise Unreducible(f"uses the test module's helper {name}")
                if len(helpers) >= 3 or text.count("\n") > 12:
                    raise Unreducible("needs too much of the test module")
                helpers.append((getattr(node, "lineno", 0), text))
                todo.append(text)
    return imports, [t for _, t in sorted(set(helpers))], used


def reduce_test(tree: Path, test_id: str) -> Reduced:
    """The test of ``test_id`` in ``tree`` as imports + prelude + steps (raises :class:`Unreducible`)."""
    rel, mod, cls, func, param = _locate(tree, test_id)
    if func is None:
        raise Unreducible(f"test function of {test_id} not found")
    cls_file = split_id(test_id)[0]
    cls_mod = _module(tree, cls_file) if cls is not None else mod
    if cls is not None:
        for hook in ("setUp", "setup_method", "setup", "setUpClass", "setup_class"):
            if _lookup(tree, cls_file, cls_mod, cls, hook):
                raise Unreducible(f"the test class sets up state ({hook})")
    args = [a.arg for a in func.args.args][1 if cls is not None else 0:]
    try:
        binds = param_values(func, param, mod)
    except Unresolved as exc:
        raise Unreducible(str(exc)) from exc
    extra = [a for a in args if a not in binds]
    if extra or func.args.vararg or func.args.kwarg or func.args.kwonlyargs:
        raise Unreducible(f"uses fixtures ({', '.join(extra) or 'varargs'})")
    for d in func.decorator_list:
        name = _dotted(d.func if isinstance(d, ast.Call) else d)
        if not name.startswith(("pytest.mark.", "mark.")):
            raise Unreducible(f"decorated with {name}")

    def attr_of(name: str):
        hit = _lookup(tree, cls_file, cls_mod, cls, name) if cls is not None else None
        node = hit[0] if hit else None
        if isinstance(node, ast.Call) and _dotted(node.func) == "staticmethod" and len(node.args) == 1:
            node = node.args[0]
        if not isinstance(node, (ast.Name, ast.Attribute, ast.Constant, ast.FunctionDef)):
            raise Unreducible(f"uses self.{name}")
        return copy.deepcopy(node)

    body = [_Rewrite(attr_of).visit(copy.deepcopy(s)) for s in func.body]
    steps = _steps(body)
    if not steps or len(steps) > MAX_STATEMENTS:
        raise Unreducible(f"{len(steps)} statements")
    prelude = [f"{n} = {ast.unparse(v)}" for n, v in binds.items()]
    codes = [s.code for s in steps] + [s.raises for s in steps if s.raises] + prelude
    imports, helpers, used = _needs([mod, cls_mod] if cls_mod is not mod else [mod], codes)
    return Reduced(test_id, imports, helpers + prelude, steps, used)
