"""The base of the typed config sections (generated: `options_shared`, `options_pipelines`), its builder.

A section is a frozen dataclass with one field per schema property and no defaults: it is built from the
validated, defaults-resolved config (:func:`build_section`), so a missing or unknown key is an error
here, not a silent second default somewhere else. Sections pickle by reference (module-level classes),
so Beam ships them to workers as they are.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any


class OptionsError(ValueError):
    """A config mapping does not fit its typed section (a key missing, unknown, or of the wrong kind)."""


class Section:
    """Read access by attribute (``opts.k``) and, for modules that still take a mapping, by item
    (``opts["k"]``); no ``get``: every key exists, its default came from the schema."""

    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in _field_names(type(self))

    def keys(self) -> list[str]:
        return list(_field_names(type(self)))

    def to_dict(self) -> dict:
        """Plain data again (tuples as lists), e.g. for a client that still takes a dict."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any):
        """A copy with some fields changed (tests, per-call variations)."""
        return dataclasses.replace(self, **changes)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(v: Any) -> Any:
    if isinstance(v, Section):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _nested_class(hint: Any) -> type | None:
    """The Section class inside ``X`` or ``X | None``, else None."""
    for arg in (hint, *typing.get_args(hint)):
        if isinstance(arg, type) and issubclass(arg, Section):
            return arg
    return None


def _convert(hint: Any, value: Any, where: str) -> Any:
    cls = _nested_class(hint)
    if cls is not None and value is not None:
        if not isinstance(value, Mapping):
            raise OptionsError(f"{where}: expected a mapping for {cls.__name__}, got {type(value).__name__}")
        return build_section(cls, value, where)
    if isinstance(value, list):
        return tuple(_convert(Any, v, where) for v in value)
    if isinstance(value, Mapping):
        return {k: _convert(Any, v, f"{where}.{k}") for k, v in value.items()}
    return value


def build_section(cls: type, data: Mapping, where: str = ""):
    """``cls`` from a resolved config mapping: every field present, no unknown key."""
    hints = typing.get_type_hints(cls)
    names = _field_names(cls)
    missing = [n for n in names if n not in data]
    unknown = sorted(k for k in data if k not in names)
    if missing or unknown:
        raise OptionsError(f"{where or cls.__name__}: config does not match {cls.__name__}"
                           + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else "")
                           + " (was the config validated and its defaults filled? are the generated options stale?)")
    return cls(**{n: _convert(hints[n], data[n], f"{where}.{n}" if where else n) for n in names})


def fill_defaults(schema: Mapping, data: Any) -> Any:
    """``data`` with every key its JSON schema gives a default, and every missing object, filled in (nested)."""
    if schema.get("type") != "object" or not isinstance(data, Mapping):
        return data
    out = dict(data)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key not in out and sub.get("type") == "object" and "properties" in sub:
            out[key] = {}
        if key in out:
            out[key] = fill_defaults(sub, out[key])
    return out
