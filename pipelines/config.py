"""Configuration: YAML files in ``configs/`` validated by JSON Schema on load.

- ``configs/defaults.yaml`` holds the shared sections (run, store, llm, search, sandbox);
  a pipeline file (``configs/browse.yaml``, ``configs/swe.yaml``) names it in ``extends``
  and adds its own section.
- Every section has its own schema file ``schemas/config_<section>.json``; defaults in the
  schema are filled in, unknown keys are errors.
- Any key can be overridden on the command line: ``--set llm.max_concurrency=8``
  (the value is parsed as YAML).
- A bad config raises :class:`ConfigError` naming the file, the key path and what is allowed,
  before any work starts.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from crucible.pipelines.llm.embedded import cache_root
from crucible.pipelines.options_base import fill_defaults
from crucible.pipelines.textio import InputError, closest, load_yaml, read_text

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
SECTIONS = ("run", "store", "llm", "search", "sandbox", "browse", "swe")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names file, key path and fix."""


def section_schema(section: str) -> dict:
    text = resources.files("crucible.schemas").joinpath(f"config_{section}.json").read_text(encoding="utf-8")
    return json.loads(text)


def config_schema() -> dict:
    props = {}
    for s in SECTIONS:
        try:
            props[s] = section_schema(s)
        except FileNotFoundError:
            continue
    return {
        "type": "object",
        "properties": {"extends": {"type": "string"}, **props},
        "additionalProperties": False,
    }


class Config(Mapping):
    """Read-only nested mapping with attribute access: ``cfg.llm.base_url``."""

    def __init__(self, data: Mapping[str, Any], source: str = "<config>"):
        self._data = {k: Config(v, source) if isinstance(v, Mapping) else v for k, v in data.items()}
        self._source = source

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"{self._source}: no config key {key!r}") from None

    def __repr__(self) -> str:
        return f"Config({self.to_dict()!r})"

    @property
    def source(self) -> str:
        return self._source

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else copy.deepcopy(v) for k, v in self._data.items()}

    def dotted(self, path: str, default: Any = None) -> Any:
        node: Any = self
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out




def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (see {CONFIG_DIR} for the shipped ones)")
    try:  # a regular file only; size, nesting and alias expansion limited (textio)
        data = load_yaml(read_text(path, "config file"), str(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; write at least `extends: defaults.yaml` or one "
                          f"section ({', '.join(SECTIONS)})")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections ({', '.join(SECTIONS)})")
    _check_keys(data, str(path))
    return data


def _check_keys(data: Any, where: str, at: str = "") -> None:
    """Every mapping key a string (YAML reads `1:` or `true:` as a number or a boolean)."""
    stack = [(data, at)]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            if isinstance(node, dict) and not isinstance(k, str):
                raise ConfigError(f"{where}: {path or '<top level>'}: key {k!r} is not a name; config keys are "
                                  f"strings (quote it: '{k}')")
            stack.append((v, f"{path}.{k}" if path else str(k)))


def _load_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    given, path = path, path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    data = _read_yaml(given)  # errors name the path the user gave (a link's name, not its target)
    parent = data.pop("extends", None)
    if parent:
        base = _load_chain((path.parent / parent), seen + (path,))
        data = _deep_merge(base, data)
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set llm.max_concurrency=8")

    try:
        value = load_yaml(raw, f"--set {key.strip()}") if raw != "" else ""
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    out = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[path[-1]] = value
    return out


def _allowed(err: jsonschema.ValidationError) -> str:
    s = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        known = sorted(s.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in known) if isinstance(err.instance, dict) else []
        near = [f"{k!r}: did you mean {c!r}?" for k in unknown if (c := closest(k, known))]
        return "; ".join(near + ["allowed keys: " + (", ".join(known) or "none")])
    if "enum" in s:
        return "allowed: " + ", ".join(map(str, s["enum"]))
    bits = []
    if "type" in s:
        bits.append(f"type {s['type']}")
    for k, word in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if k in s:
            bits.append(f"{word} {s[k]}")
    if "pattern" in s:
        bits.append(f"matching {s['pattern']}")
    if "description" in s:
        bits.append(s["description"])
    return "allowed: " + "; ".join(bits) if bits else ""


def validate(data: dict, source: str) -> None:
    schema = config_schema()
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            allowed = _allowed(err)
            lines.append(f"{source}: {path}: {err.message}" + (f" ({allowed})" if allowed else ""))
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def resolve_section(section: str, data: Mapping, source: str = "<mapping>") -> dict:
    """One section given as a plain mapping (an API caller's partial dict), validated against its schema,
    its defaults filled: the same result as that section of a loaded config."""
    plain = data.to_dict() if isinstance(data, Config) else copy.deepcopy(dict(data))
    validate({section: plain}, source)
    return fill_defaults(section_schema(section), plain)


def resolve_path(name: str | Path) -> Path:
    p = Path(name)
    if p.exists() or p.is_absolute() or p.parent != Path("."):
        return p
    for cand in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if cand.exists():
            return cand
    return p


def load_config(name: str | Path = "defaults", overrides: Iterable[str] = ()) -> Config:
    """Load ``name`` (a path, or a shipped config name like ``browse``), apply ``--set``
    overrides, fill schema defaults and validate. Raises ConfigError on any problem."""
    path = resolve_path(name)
    data = _load_chain(path)
    overrides = list(overrides)
    data = _apply_overrides(data, overrides)
    source = str(path) + (" (with --set overrides)" if overrides else "")
    _check_keys(data, source)
    validate(data, source)
    data = fill_defaults(config_schema(), data)
    return Config(data, source)


_WARNED_OUT_DIRS: set[Path] = set()


def out_dir_outside(cfg: Config, cwd: Path | None = None) -> Path | None:
    """``run.out_dir`` resolved, when it lies outside the working directory and the cache directories
    (``run.out_dir=../../etc`` is legal, but rarely meant); None for a path inside them or a bucket URL."""
    raw = str(cfg.run.out_dir)
    if "://" in raw:
        return None

    resolved = Path(raw).expanduser().resolve()
    homes = [(cwd or Path.cwd()).resolve(), cache_root(cfg.dotted("llm.embedded.cache_dir")).resolve()]
    if cfg.dotted("sandbox.cache_dir"):
        homes.append(Path(cfg.dotted("sandbox.cache_dir")).expanduser().resolve())
    return None if any(resolved == h or h in resolved.parents for h in homes) else resolved


def warn_out_dir(cfg: Config) -> None:
    """One line on stderr, once per directory and process, when ``run.out_dir`` is outside the working tree
    (a warning, not a refusal: writing elsewhere is often meant)."""

    resolved = out_dir_outside(cfg)
    if resolved is None or resolved in _WARNED_OUT_DIRS:
        return
    _WARNED_OUT_DIRS.add(resolved)
    print(f"crucible: warning: run.out_dir {cfg.run.out_dir!r} is {resolved}, outside the working directory "
          f"{Path.cwd()}; using it (give --out a path inside the working directory if that was not meant)",
          file=sys.stderr)

