"""Generate the typed, frozen config sections from ``schemas/config_*.json``.

    python -m crucible.pipelines.options_gen            # rewrite pipelines/options_shared.py and options_pipelines.py
    python -m crucible.pipelines.options_gen --check    # exit 1 when a file is stale (the unit test does the same)

The shared sections (``configs/defaults.yaml``: run, store, llm, search, sandbox) go to
:mod:`crucible.pipelines.options_shared`, the pipelines' own (browse, swe) to :mod:`crucible.pipelines.options_pipelines`.

One frozen dataclass per config section and per nested object with ``properties``; a field per schema
property, typed from the schema (integer -> int, number -> float, array -> tuple, a ``null`` type ->
``| None``, an enum of strings -> str, an object without properties -> a mapping). No field has a default:
defaults live only in the schemas, and options are built from the resolved config
(:func:`crucible.pipelines.options.build_options`).
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {HERE / "options_shared.py": ("run", "store", "llm", "search", "sandbox"),
           HERE / "options_pipelines.py": ("browse", "swe")}
SCALARS = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}
HEADER = '''"""Typed config sections ({names}), GENERATED from schemas/config_*.json.

Do not edit by hand: change the schema and run ``python -m crucible.pipelines.options_gen``
(tests/unit/test_options.py fails while this file is stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crucible.pipelines.options_base import Section
'''


def class_name(path: tuple[str, ...]) -> str:
    return "".join(p.title().replace("_", "") for p in path) + "Options"


def _scalar(schema: dict) -> str:
    t = schema.get("type")
    if t is None and "enum" in schema:
        kinds = {type(v).__name__ for v in schema["enum"]}
        return "str" if kinds == {"str"} else "Any"
    return SCALARS.get(t, "Any") if isinstance(t, str) else "Any"


def field_type(schema: dict, path: tuple[str, ...]) -> str:
    """The annotation of one property (nested classes are named by their path)."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    nullable = "null" in types
    rest = [t for t in types if t != "null"]
    if rest == ["object"] and "properties" in schema:
        base = class_name(path)
    elif rest == ["object"]:
        base = "Mapping[str, Any]"
    elif rest == ["array"]:
        base = f"tuple[{_scalar(schema.get('items') or {})}, ...]"
    elif len(rest) == 1:
        base = _scalar({**schema, "type": rest[0]})
    elif not rest:
        base = _scalar(schema)
    else:
        base = "Any"
    return f"{base} | None" if nullable and base != "Any" else base


def classes(schema: dict, path: tuple[str, ...]) -> list[str]:
    """Source of the dataclass for ``schema`` (an object) and, first, of its nested objects."""
    out: list[str] = []
    lines = ["@dataclass(frozen=True)", f"class {class_name(path)}(Section):"]
    doc = (schema.get("description") or f"config section {'.'.join(path)}").split(". ")[0].split(": ")[0]
    doc = doc.rstrip(".") if len(doc) <= 96 else doc[:96].rsplit(" ", 1)[0] + " ..."
    lines.append(f'    """{doc}."""')
    lines.append("")
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            out.extend(classes(sub, path + (key,)))
        lines.append(f"    {key}: {field_type(sub, path + (key,))}")
    out.append("\n".join(lines) + "\n")
    return out


def section_schema(section: str) -> dict:
    return json.loads(resources.files("crucible.schemas").joinpath(f"config_{section}.json").read_text(encoding="utf-8"))


def render(sections: tuple[str, ...]) -> str:
    parts = [HEADER.replace("{names}", ", ".join(sections))]
    for section in sections:
        parts.extend("\n" + c for c in classes(section_schema(section), (section,)))
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def stale() -> list[Path]:
    """The generated files that differ from what the schemas give now."""
    return [t for t, secs in TARGETS.items() if not t.exists() or t.read_text(encoding="utf-8") != render(secs)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        for t in stale():
            print(f"{t} is stale: run python -m crucible.pipelines.options_gen", file=sys.stderr)
        return 1 if stale() else 0
    for target, sections in TARGETS.items():
        target.write_text(render(sections), encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
