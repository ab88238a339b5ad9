"""Versioned prompt templates: ``configs/prompts/<id>.yaml``.

File format (Jinja2 templates, ``StrictUndefined`` so a missing variable is an error)::

    id: judge_equivalence          # must equal the file name
    version: 1                     # bump on ANY change of wording/schema: it is in the cache key and rows
    description: one line
    system: |                      # optional
      You are ...
    user: |                        # required
      Question: {{ question }}
    schema: {...}                  # optional JSON Schema of the structured answer
    params: {temperature: 0}       # optional sampling defaults for this prompt
    examples:                      # optional few-shot pairs, rendered before the real user turn
      - input: {question: "..."}   # variables for the user template
        output: {"verdict": "yes"} # assistant reply; a mapping is sent as JSON

``load_prompt(id).render(**vars)`` gives OpenAI chat messages; pass the prompt to
``LLMClient.chat(..., prompt=p)`` so its id and version enter the cache key and accounting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jsonschema import Draft202012Validator, SchemaError

from crucible.pipelines.textio import InputError, load_yaml, read_text

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "configs" / "prompts"
_ALLOWED = {"id", "version", "description", "system", "user", "schema", "params", "examples"}


class PromptError(ValueError):
    """A prompt file is invalid or a render variable is missing; names file and field."""


@dataclass(frozen=True)
class Prompt:
    id: str
    version: str
    description: str
    user: str
    system: str | None = None
    schema: dict | None = None
    params: dict = field(default_factory=dict)
    examples: tuple = ()
    path: str | None = None

    @property
    def ref(self) -> dict:
        """``{"id", "version"}``: store this in every row the prompt produced."""
        return {"id": self.id, "version": self.version}

    def _env(self) -> jinja2.Environment:
        return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                  autoescape=False)

    def _render(self, field_name: str, template: str, variables: Mapping[str, Any]) -> str:
        try:
            return self._env().from_string(template).render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{self.path or self.id}: field {field_name!r}: {exc.message}; "
                              f"pass it to render()") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{self.path or self.id}: field {field_name!r}: template error: {exc}") from None

    def render(self, **variables: Any) -> list[dict]:
        """System message, few-shot user/assistant pairs, then the real user message."""
        msgs: list[dict] = []
        if self.system:
            msgs.append({"role": "system", "content": self._render("system", self.system, variables)})
        for i, ex in enumerate(self.examples):
            ex_vars = {**variables, **(ex.get("input") or {})}
            msgs.append({"role": "user", "content": self._render(f"examples[{i}].input", self.user, ex_vars)})
            out = ex.get("output")
            text = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)
            msgs.append({"role": "assistant", "content": text})
        msgs.append({"role": "user", "content": self._render("user", self.user, variables)})
        return msgs


def parse_prompt(data: Any, source: str) -> Prompt:
    """Validate a loaded YAML mapping into a Prompt (pure; errors name ``source`` and the field)."""
    if not isinstance(data, Mapping):
        raise PromptError(f"{source}: top level must be a mapping with id, version, user")
    unknown = set(data) - _ALLOWED
    if unknown:
        raise PromptError(f"{source}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED)}")
    for req in ("id", "version", "user"):
        if data.get(req) in (None, ""):
            raise PromptError(f"{source}: field {req!r} is required")
    if not isinstance(data["user"], str) or (data.get("system") is not None and not isinstance(data["system"], str)):
        raise PromptError(f"{source}: fields 'system' and 'user' must be strings (Jinja2 templates)")
    schema = data.get("schema")
    if schema is not None:
        if not isinstance(schema, Mapping):
            raise PromptError(f"{source}: field 'schema' must be a JSON Schema mapping")

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise PromptError(f"{source}: field 'schema' is not a valid JSON Schema: {exc.message}") from None
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise PromptError(f"{source}: field 'params' must be a mapping of sampling params")
    examples = data.get("examples") or []
    if not isinstance(examples, list):
        raise PromptError(f"{source}: field 'examples' must be a list of {{input, output}}")
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping) or "output" not in ex or not isinstance(ex.get("input", {}), Mapping):
            raise PromptError(f"{source}: examples[{i}] needs 'input' (mapping of variables) and 'output'")
    env = jinja2.Environment()
    for fname in ("system", "user"):
        if data.get(fname):
            try:
                env.parse(data[fname])
            except jinja2.TemplateSyntaxError as exc:
                raise PromptError(f"{source}: field {fname!r}: Jinja2 syntax error line {exc.lineno}: "
                                  f"{exc.message}") from None
    return Prompt(
        id=str(data["id"]), version=str(data["version"]), description=str(data.get("description") or ""),
        user=data["user"], system=data.get("system"), schema=dict(schema) if schema else None,
        params=dict(params), examples=tuple(dict(e) for e in examples), path=source,
    )


def load_prompt(prompt_id: str, prompts_dir: str | Path | None = None) -> Prompt:
    """Load ``<prompts_dir>/<prompt_id>.yaml`` (default ``configs/prompts``)."""
    directory = Path(prompts_dir) if prompts_dir else DEFAULT_PROMPTS_DIR
    path = directory / f"{prompt_id}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []
        raise PromptError(f"{path}: no such prompt {prompt_id!r}; available: {have}")

    try:  # textio's YAML limits: size, nesting, alias expansion, a key twice
        data = load_yaml(read_text(path, "prompt file"), str(path))
    except InputError as exc:
        raise PromptError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML: {exc}") from None
    prompt = parse_prompt(data, str(path))
    if prompt.id != prompt_id:
        raise PromptError(f"{path}: field 'id' is {prompt.id!r} but the file is named {prompt_id!r}.yaml; "
                          "make them equal")
    return prompt


def list_prompts(prompts_dir: str | Path | None = None) -> list[str]:
    directory = Path(prompts_dir) if prompts_dir else DEFAULT_PROMPTS_DIR
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []
