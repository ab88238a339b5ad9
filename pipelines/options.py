"""Typed options, built once from the validated, defaults-resolved config and passed down.

    from crucible.pipelines.options import build_options
    opts = build_options(load_config("browse"))   # Options: frozen, picklable (Beam ships it to workers)
    opts.browse.k, opts.run.out_dir, opts.llm.pool.sticky, opts.rollout_policy

The section classes are generated from ``schemas/config_*.json`` (:mod:`crucible.pipelines.options_gen`), a field per
schema property and no defaults of their own. Decisions made once from several sections travel here too:
``rollout_policy`` (``browse.policy`` ``auto`` resolved against ``llm.engine``), so no stage reads another
section to decide it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from crucible.pipelines.options_base import OptionsError, Section, build_section
from crucible.pipelines.options_pipelines import BrowseOptions, SweOptions
from crucible.pipelines.options_shared import (
    LlmOptions,
    RunOptions,
    SandboxOptions,
    SearchOptions,
    StoreOptions,
)

__all__ = ["BrowseOptions", "LlmOptions", "Options", "OptionsError", "PolicyKind", "RunOptions", "SECTION_TYPES",
           "SandboxOptions", "SearchOptions", "Section", "StoreOptions", "SweOptions", "build_options",
           "rollout_policy"]

SECTION_TYPES: dict[str, type[Section]] = {
    "run": RunOptions, "store": StoreOptions, "llm": LlmOptions, "search": SearchOptions,
    "sandbox": SandboxOptions, "browse": BrowseOptions, "swe": SweOptions,
}


class PolicyKind(str, Enum):
    """How the research agent talks to the model: json_schema-constrained steps (small models) or the
    endpoint's native tool calls."""

    JSON_STEP = "json_step"
    NATIVE = "native"


def rollout_policy(browse: BrowseOptions, llm: LlmOptions) -> PolicyKind:
    """``browse.policy``, with ``auto`` decided by the engine: json_step for the embedded model, native
    tool calls for any other endpoint."""
    if browse.policy != "auto":
        return PolicyKind(browse.policy)
    return PolicyKind.JSON_STEP if llm.engine == "embedded" else PolicyKind.NATIVE


@dataclass(frozen=True)
class Options:
    """Every config section, typed, plus the decisions made once from them."""

    run: RunOptions
    store: StoreOptions
    llm: LlmOptions
    search: SearchOptions
    sandbox: SandboxOptions
    browse: BrowseOptions
    swe: SweOptions
    rollout_policy: PolicyKind


def build_options(cfg: Mapping) -> Options:
    """:class:`Options` from a loaded config (:func:`crucible.pipelines.config.load_config`: validated, defaults
    filled). Raises :class:`OptionsError` when a section does not match its schema's fields."""
    sections = {}
    for name, cls in SECTION_TYPES.items():
        if name not in cfg:
            raise OptionsError(f"config has no {name!r} section (load it with crucible.pipelines.config.load_config)")
        sections[name] = build_section(cls, cfg[name], name)
    return Options(**sections, rollout_policy=rollout_policy(sections["browse"], sections["llm"]))
