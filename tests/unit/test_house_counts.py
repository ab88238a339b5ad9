"""The house counts (issue #26, items 2-5), read with ``ast`` (never imported) over ``schemas/``, ``pipelines/``,
``sandbox/`` and ``benchmarks/``; each count may shrink and must not grow beyond its recorded ceiling (:data:`CEILINGS`):

- ``modules_over_400``: modules longer than 400 lines;
- ``functions_over_80``: functions (methods and nested ones too) longer than 80 lines, ``end_lineno - lineno + 1``;
- ``config_get_defaults``: ``x.get("key", literal)`` where ``key`` is a property of a ``schemas/config_*.json``
  schema, i.e. a second default in code beside the schema's (a data dict that shares a key name counts too: the
  listing names every hit);
- ``imports_in_functions``: ``import`` statements inside a function, except in ``pipelines/commands/`` (commands
  load their pipelines lazily), in a class's ``setup`` method (a Beam DoFn's worker-side setup), and of the
  packages :data:`LAZY_IMPORTS` names (optional extras, and heavy loads only one path needs), each with its reason;
- ``atomic_writes_outside_fsio``: temp-then-rename written by hand (``os.replace``/``os.rename``/``shutil.move``
  of a temp path, or ``tmp.rename(...)``/``tmp.replace(...)``) anywhere but ``pipelines/store/fsio.py``;
- ``pacers``: functions that book a request slot by advancing a stored time (``self.t = max(now, self.t) + ...``,
  or ``max(now, self.t)`` then ``self.t = ...``); the one pacer is :class:`crucible.pipelines.llm.pacing.RatePacer`.

``python tests/unit/test_house_counts.py [ROOT]`` prints every count with its hits (ROOT: another checkout, e.g.
``git archive HEAD`` unpacked, for a before/after).
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "pipelines", "sandbox", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
FSIO = "pipelines/store/fsio.py"
PACER = "pipelines/llm/pacing.py"
LAZY_IMPORT_DIRS = ("pipelines/commands/",)
# top-level package -> (the only files where it may be imported in a function, or None: anywhere; why)
LAZY_IMPORTS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "boto3": (None, "the aws extra: only a store on s3:// needs it"),
    "botocore": (None, "the aws extra"),
    "torch": (None, "the reward-model extra (a GPU trainer's), never installed by make venv"),
    "transformers": (None, "the reward-model extra"),
    "xllamacpp": (None, "the embedded extra: its absence is turned into an error that says how to install it"),
    "matplotlib": (("pipelines/store/report.py",), "crucible report only; the Agg backend is chosen before pyplot loads"),
    "trafilatura": (None, "0.8 s to import, needed only on the first live web page"),
    "crucible": (("pipelines/integrations/verl/reward.py", "pipelines/integrations/verl/tools.py"),
                 "verl's reward and tools import a source's code on its first row or call (measured 0.6-2 s each): a "
                 "browse run must not load Docker and Beam, nor a swe run the browse graph"),
    "apache_beam": ((FSIO,), "sandbox/ and the CLI write local files through fsio; Beam's filesystems take over a "
                             "second to load (and log a warning), so they load on the first bucket path"),
}

# Recorded after the sweep of issue #26 items 2-5; lower a ceiling when a count drops, never raise one.
CEILINGS = {
    "modules_over_400": 0,
    "functions_over_80": 0,
    "config_get_defaults": 3,
    "imports_in_functions": 0,
    "atomic_writes_outside_fsio": 0,
    "pacers": 1,
}

FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def sources(root: Path, packages=PACKAGES) -> Iterator[tuple[str, str]]:
    """(path relative to ``root``, text) of every ``.py`` file under the packages."""
    for top in packages:
        for p in sorted((root / top).rglob("*.py")):
            yield p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")


def config_keys(root: Path) -> frozenset[str]:
    """Every property name, at any depth, of the config section schemas."""
    keys: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties") or {})
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for p in sorted((root / "schemas").glob("config_*.json")):
        walk(json.loads(p.read_text(encoding="utf-8")))
    return frozenset(keys)


def long_module(rel: str, text: str) -> list[str]:
    n = len(text.splitlines())
    return [f"{rel}: {n} lines"] if n > MAX_MODULE_LINES else []


def long_functions(rel: str, tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, FUNCS):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append(f"{rel}:{node.lineno}: {node.name} {n} lines")
    return out


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return True
    if isinstance(node, ast.Constant):
        return node.value is not None  # ``.get(k, None)`` is ``.get(k)``: no second default
    return isinstance(node, (ast.List, ast.Tuple, ast.Dict, ast.Set))


def config_get_defaults(rel: str, tree: ast.AST, keys: frozenset[str]) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in keys and _is_literal(node.args[1])):
            out.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return out


def imports_in_functions(rel: str, tree: ast.AST) -> list[str]:
    """Imports whose nearest enclosing scope is a function (a class's ``setup`` method and everything in it
    excepted; every module of :data:`LAZY_IMPORT_DIRS` excepted; a package of :data:`LAZY_IMPORTS` where allowed)."""
    if rel.startswith(LAZY_IMPORT_DIRS):
        return []
    out: list[str] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FUNCS):
                if not (isinstance(node, ast.ClassDef) and child.name == "setup"):
                    visit(child, child.name)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)) and func is not None and not _lazy_allowed(rel, child):
                names = ", ".join(a.name for a in child.names)
                src = f"from {'.' * child.level}{child.module or ''} " if isinstance(child, ast.ImportFrom) else ""
                out.append(f"{rel}:{child.lineno}: in {func}: {src}import {names}")
            visit(child, func)

    visit(tree, None)
    return out


def _lazy_allowed(rel: str, node: ast.Import | ast.ImportFrom) -> bool:
    roots = {a.name.split(".")[0] for a in node.names} if isinstance(node, ast.Import) else \
        {"" if node.level else (node.module or "").split(".")[0]}
    allowed = [LAZY_IMPORTS.get(r) for r in roots]
    return all(a is not None and (a[0] is None or rel in a[0]) for a in allowed)


def _mentions_temp(node: ast.AST) -> bool:
    text = ast.unparse(node).lower()
    return "tmp" in text or "temp" in text


def atomic_writes(rel: str, tree: ast.AST) -> list[str]:
    """Temp-then-rename by hand outside the one atomic writer."""
    if rel == FSIO:
        return []
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        f = node.func
        moved = ast.unparse(f) in ("os.replace", "os.rename", "shutil.move") and _mentions_temp(node.args[0])
        method = (isinstance(f, ast.Attribute) and f.attr in ("rename", "replace") and len(node.args) == 1
                  and not node.keywords and _mentions_temp(f.value))
        if moved or method:
            out.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return out


def _self_attrs(nodes) -> set[str]:
    return {n.attr for x in nodes for n in ast.walk(x)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}


def pacers(rel: str, tree: ast.AST) -> list[str]:
    """Functions that read a clock and book the next request slot: a ``self`` attribute both inside ``max(...)``
    and assigned (``self.t = max(now, self.t) + interval``)."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, FUNCS):
            continue
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
        clock = any(ast.unparse(c.func).endswith(("monotonic", "clock", "time.time")) for c in calls)
        in_max = _self_attrs(a for c in calls if ast.unparse(c.func) == "max" for a in c.args)
        assigned = _self_attrs(t for n in ast.walk(fn) if isinstance(n, (ast.Assign, ast.AugAssign))
                               for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
        if clock and in_max & assigned:
            out.append(f"{rel}:{fn.lineno}: {fn.name} (advances self.{', self.'.join(sorted(in_max & assigned))})")
    return out


def count(root: Path, packages=PACKAGES) -> dict[str, list[str]]:
    """Every count's hits in the tree at ``root``."""
    keys = config_keys(root)
    found: dict[str, list[str]] = {name: [] for name in CEILINGS}
    for rel, text in sources(root, packages):
        tree = ast.parse(text, filename=rel)
        found["modules_over_400"] += long_module(rel, text)
        found["functions_over_80"] += long_functions(rel, tree)
        found["config_get_defaults"] += config_get_defaults(rel, tree, keys)
        found["imports_in_functions"] += imports_in_functions(rel, tree)
        found["atomic_writes_outside_fsio"] += atomic_writes(rel, tree)
        found["pacers"] += pacers(rel, tree)
    return found


def report(found: dict[str, list[str]], hits: bool = True) -> str:
    lines = []
    for name, items in found.items():
        lines.append(f"{name}: {len(items)} (ceiling {CEILINGS[name]})")
        lines += [f"    {h}" for h in items] if hits else []
    return "\n".join(lines)


# ---------------------------------------------------------------- the real tree


def test_no_count_grows_beyond_its_ceiling():
    found = count(REPO)
    print("\n" + report(found, hits=False))
    over = {k: len(v) for k, v in found.items() if len(v) > CEILINGS[k]}
    assert not over, "counts over their ceilings (fix the new hits):\n" + report(
        {k: found[k] for k in over})


# ---------------------------------------------------------------- each count, on tiny sources


def _hits(fn, text: str, rel: str = "pipelines/x.py", *extra) -> list[str]:
    return fn(rel, ast.parse(text), *extra)


def test_long_modules_and_functions_are_counted_at_the_line_past_the_limit():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    assert _hits(long_functions, "def f():\n" + body) == []  # exactly 80 lines
    method = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert _hits(long_functions, "class C:\n    async def f(self):\n" + method) == ["pipelines/x.py:2: f 81 lines"]
    assert long_module("m.py", "x = 1\n" * MAX_MODULE_LINES) == []
    assert long_module("m.py", "x = 1\n" * (MAX_MODULE_LINES + 1)) == ["m.py: 401 lines"]


def test_a_literal_default_of_a_config_key_is_counted_and_a_data_key_or_no_default_is_not():
    src = ("a = cfg.get('k', 5)\nb = cfg.get('k', -1)\nc = cfg.get('k', [])\nd = cfg.get('k')\n"
           "e = cfg.get('k', None)\nf = cfg.get('k', other)\ng = row.get('title', '')\n")
    got = _hits(config_get_defaults, src, "pipelines/x.py", frozenset({"k"}))
    assert got == ["pipelines/x.py:1: cfg.get('k', 5)", "pipelines/x.py:2: cfg.get('k', -1)",
                   "pipelines/x.py:3: cfg.get('k', [])"]
    assert _hits(config_get_defaults, src, "pipelines/x.py", frozenset()) == []  # no such schema key


def test_config_keys_are_read_from_the_config_schemas_at_every_depth(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "config_a.json").write_text(json.dumps(
        {"properties": {"top": {"properties": {"inner": {"type": "integer"}}},
                        "many": {"items": {"properties": {"deep": {}}}}}}))
    (tmp_path / "schemas" / "question.json").write_text(json.dumps({"properties": {"row_field": {}}}))
    assert config_keys(tmp_path) == {"top", "inner", "many", "deep"}


def test_imports_in_functions_are_counted_but_not_at_top_in_setup_or_in_commands():
    src = ("import os\nif os:\n    import sys\n\n\ndef f():\n    import json\n\n    def g():\n"
           "        from . import y\n\n\nclass D:\n    def setup(self):\n        import numpy\n\n"
           "    def process(self, x):\n        import re\n")
    assert _hits(imports_in_functions, src) == ["pipelines/x.py:7: in f: import json",
                                                "pipelines/x.py:10: in g: from . import y",
                                                "pipelines/x.py:18: in process: import re"]
    assert _hits(imports_in_functions, src, "pipelines/commands/x_cmd.py") == []


def test_a_lazy_import_is_allowed_only_for_a_listed_package_and_where_listed():
    src = "def f():\n    import boto3\n    from apache_beam.io.filesystems import FileSystems\n    import json\n"
    assert [h.split(": ", 2)[2] for h in _hits(imports_in_functions, src)] == [
        "from apache_beam.io.filesystems import FileSystems", "import json"]  # beam is lazy in fsio only
    assert [h.split(": ", 2)[2] for h in _hits(imports_in_functions, src, FSIO)] == ["import json"]
    # switched off (nothing listed): every one counts
    saved = dict(LAZY_IMPORTS)
    LAZY_IMPORTS.clear()
    try:
        assert len(_hits(imports_in_functions, src, FSIO)) == 3
    finally:
        LAZY_IMPORTS.update(saved)


def test_a_temp_renamed_into_place_by_hand_is_counted_outside_fsio_only():
    src = ("os.replace(tmp, dest)\nos.rename(path + '.tmp', path)\ntmp_dir.rename(d)\n"
           "os.replace(old, new)\ntext.replace('a', 'b')\nrow.replace(tmp=1)\n")
    assert [h.split(": ", 1)[1] for h in _hits(atomic_writes, src)] == [
        "os.replace(tmp, dest)", "os.rename(path + '.tmp', path)", "tmp_dir.rename(d)"]
    assert _hits(atomic_writes, src, FSIO) == []


def test_a_pacer_advances_a_stored_slot_after_reading_a_clock():
    one_line = ("class P:\n    def wait(self):\n        now = time.monotonic()\n"
                "        self._next_at = max(now, self._next_at) + self.gap\n")
    two_steps = ("class P:\n    def reserve(self, n):\n        now = self._clock()\n"
                 "        start = max(now, self._next)\n        self._next = start + n\n        return start - now\n")
    running_max = "class M:\n    def add(self, x):\n        self.best = max(x, self.best)\n"  # no clock
    no_slot = "def f(self):\n    now = time.monotonic()\n    return max(now, self.t)\n"  # nothing booked
    assert _hits(pacers, one_line) == ["pipelines/x.py:2: wait (advances self._next_at)"]
    assert _hits(pacers, two_steps) == ["pipelines/x.py:2: reserve (advances self._next)"]
    assert _hits(pacers, running_max) == [] and _hits(pacers, no_slot) == []


def test_a_count_over_its_ceiling_is_reported_with_its_hits(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "a.py").write_text("def f():\n    import os\n")
    found = count(tmp_path)
    assert found["imports_in_functions"] == ["pipelines/a.py:2: in f: import os"]
    assert "imports_in_functions: 1 (ceiling" in report(found) and "    pipelines/a.py:2" in report(found)
    assert "    pipelines/a.py:2" not in report(found, hits=False)


if __name__ == "__main__":
    print(report(count(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)))
