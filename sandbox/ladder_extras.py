"""Which of a package's declared extras provides a distribution the tests miss: a suite that stops on
``No module named 'simplejson'`` where ``setup.py`` declares ``'reco': ['python-dateutil', 'simplejson']``
assumes the whole extra, not the one module (marshmallow 2.19: its conftest imports simplejson, and
``test_from_datestring`` needs python-dateutil from the same extra; installing simplejson alone starts the
suite and leaves that test failing). The ladder (``crucible.sandbox.ladder.candidates``) then prefers the extra's rung
to the module's.

:func:`extra_requirements` is pure over the tree's files: ``[project.optional-dependencies]`` of
pyproject.toml, ``[options.extras_require]`` of setup.cfg, and the literal dicts of setup.py (an
``extras_require={...}`` argument or an ``EXTRAS = {...}`` assignment; entries built at run time are not read).
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Mapping, Sequence
from pathlib import Path

from crucible.sandbox.repofacts import req_name
from crucible.sandbox.testfacts import file_text, tomllib


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _literal_extras(node: ast.Dict) -> dict[str, list[str]]:
    """A dict literal of str -> list/tuple of str constants (other entries skipped)."""
    out: dict[str, list[str]] = {}
    for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant) and isinstance(k.value, str) and isinstance(v, (ast.List, ast.Tuple)):
            reqs = [e.value for e in v.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if reqs:
                out[k.value] = reqs
    return out


def _setup_py_extras(text: str) -> dict[str, list[str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require" and isinstance(node.value, ast.Dict):
            out.update(_literal_extras(node.value))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and "EXTRA" in t.id.upper() for t in node.targets):
            out.update(_literal_extras(node.value))
    return out


def extra_requirements(repo: Path) -> dict[str, list[str]]:
    """Each declared extra -> the distribution names it requires (normalised), from the files above."""
    out: dict[str, list[str]] = {}
    py = file_text(repo / "pyproject.toml")
    if py:
        try:
            out.update((tomllib.loads(py).get("project") or {}).get("optional-dependencies") or {})
        except Exception:  # noqa: BLE001 - a malformed pyproject declares nothing readable
            pass
    cfg = file_text(repo / "setup.cfg")
    if cfg:
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(cfg)
            if cp.has_section("options.extras_require"):
                out.update({k: [x for x in v.splitlines() if x.strip()] for k, v in cp["options.extras_require"].items()})
        except configparser.Error:
            pass
    out.update(_setup_py_extras(file_text(repo / "setup.py")))
    return {k: sorted({_norm(req_name(r)) for r in v if req_name(r)}) for k, v in out.items()
            if isinstance(v, list)}


def extra_providing(dist: str, extras: Mapping[str, Sequence[str]], current: str | None) -> str | None:
    """The declared extra (other than the one installed) that requires ``dist``; the smallest where several
    do (``reco`` rather than ``dev``, which repeats it), the first declared on a tie."""
    fits = [(len(reqs), i, name) for i, (name, reqs) in enumerate(extras.items())
            if name != current and _norm(dist) in reqs]
    return min(fits)[2] if fits else None
