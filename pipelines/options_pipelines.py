"""Typed config sections (browse, swe), GENERATED from schemas/config_*.json.

Do not edit by hand: change the schema and run ``python -m crucible.pipelines.options_gen``
(tests/unit/test_options.py fails while this file is stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crucible.pipelines.options_base import Section


@dataclass(frozen=True)
class BrowseOptions(Section):
    """make synth-browse."""

    seeds: int
    seed: int
    min_hops: int
    max_hops: int
    max_per_pattern: int
    max_per_answer: int
    max_share_per_tail_pattern: float
    max_per_tail: int
    max_share_per_entity: float
    skip_trivial_hops: bool
    inverse_hops: bool
    attribute_answer_share: float
    text_grounded_share: float
    seed_types: tuple[str, ...]
    rounds: int
    harden_rounds: int
    target_pass_rate_max: float
    closed_book_k: int
    write_with_llm: bool
    read_back: bool
    findable_check: bool
    findable_top_k: int
    k: int
    policy: str
    max_turns: int
    min_tool_calls: int
    max_total_tokens: int
    temperature: float
    max_tokens: int
    max_observation_chars: int
    max_thought_chars: int
    turn_budget_hint: bool
    observation_hint: bool
    judge: bool
    rel_tol: float
    reward_formula: str
    sft_max_tokens: int
    sft_max_turns: int
    sft_min_tool_calls: int
    sft_drop_repeated_calls: bool
    sft_require_evidence: bool
    sft_drop_forced_answer: bool
    sft_max_length_factor: float | None
    max_tool_error_rate: float
    batch_size: int | None
    rollout_timeout_s: float
    plan_shard_size: int


@dataclass(frozen=True)
class SweMineLimitsOptions(Section):
    """config section swe.mine.limits."""

    max_source_files: int
    max_source_lines: int
    max_patch_chars: int
    python_only: bool


@dataclass(frozen=True)
class SweMineOptions(Section):
    """commit mining (R2E-Gym style)."""

    repos: tuple[str, ...]
    rev: str
    max_commits: int
    max_candidates_per_repo: int
    limits: SweMineLimitsOptions


@dataclass(frozen=True)
class SweStatementsOptions(Section):
    """config section swe.statements."""

    use_llm: bool
    prompt: str
    attempts: int
    llm_max_instances: int | None
    style: str
    repro_timeout_s: int
    repro_max_tests: int


@dataclass(frozen=True)
class SweRolloutsOptions(Section):
    """config section swe.rollouts."""

    policies: tuple[str, ...]
    k: int
    llm_max_instances: int | None
    llm_policy: str
    max_arg_chars: int | None
    max_turns: int
    max_total_tokens: int
    command_timeout_s: int
    max_observation_chars: int
    rollout_timeout_s: float


@dataclass(frozen=True)
class SweGithubOptions(Section):
    """GitHub PR crawl (crucible swe crawl, pipelines/swe/github.py)."""

    api_url: str
    token_env: str
    repos: tuple[str, ...]
    max_pulls: int | None
    since: str | None
    max_rate_limit_wait_s: float


@dataclass(frozen=True)
class SweFiltersOptions(Section):
    """config section swe.filters."""

    max_context_tokens: int
    max_tool_error_rate: float
    max_repeated_actions: int
    sft_require_reproduction: bool
    sft_source_edits_only: bool
    sft_require_test_after_edit: bool
    sft_require_resolved: bool
    sft_drop_repeated_calls: bool
    sft_max_idle_reads: int | None
    semi_resolved: bool


@dataclass(frozen=True)
class SweOptions(Section):
    """make swe-curate (pipelines/swe)."""

    sdists: tuple[str, ...]
    include_paths: Mapping[str, Any]
    instances_file: str | None
    mine: SweMineOptions
    max_candidates_per_repo: int
    operators: tuple[str, ...]
    seed: int
    max_f2p: int
    curate_threads: int | None
    validation_timeout_s: float
    reruns: int
    reference_run: bool
    id_style: str
    recipes: str
    network: str
    workdir: str | None
    statements: SweStatementsOptions
    rollouts: SweRolloutsOptions
    github: SweGithubOptions
    filters: SweFiltersOptions
