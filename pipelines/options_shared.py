"""Typed config sections (run, store, llm, search, sandbox), GENERATED from schemas/config_*.json.

Do not edit by hand: change the schema and run ``python -m crucible.pipelines.options_gen``
(tests/unit/test_options.py fails while this file is stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crucible.pipelines.options_base import Section


@dataclass(frozen=True)
class RunOptions(Section):
    """How and where a pipeline runs."""

    out_dir: str
    run_id: str | None
    runner: str
    direct_running_mode: str
    direct_num_workers: int
    beam_args: tuple[str, ...]
    limit: int | None
    progress_every_s: float


@dataclass(frozen=True)
class StoreOptions(Section):
    """Parquet + DuckDB store."""

    commit_every_items: int
    commit_every_s: float
    catalog: str
    compression: str


@dataclass(frozen=True)
class LlmPoolOptions(Section):
    """routing over base_urls (pipelines/llm/pool.py)."""

    sticky: bool
    failover: bool
    down_after_failures: int
    health_interval_s: float
    probe_interval_s: float
    probe_timeout_s: float
    sticky_sessions_max: int
    stats_dir: str | None


@dataclass(frozen=True)
class LlmEmbeddedOptions(Section):
    """engine=embedded."""

    model: str
    model_path: str | None
    cache_dir: str | None
    port: int | None
    n_ctx: int
    n_threads: int | None
    n_parallel: int
    startup_timeout_s: float


@dataclass(frozen=True)
class LlmRewardModelOptions(Section):
    """reward-model scores of whole trajectories (reward_model_score); see pipelines/llm/reward.py."""

    backend: str
    base_url: str | None
    model: str | None
    api_key_env: str | None
    max_concurrency: int
    timeout_s: float
    device: str
    max_length: int


@dataclass(frozen=True)
class LlmVllmOptions(Section):
    """engine=vllm."""

    model: str | None
    host: str
    port: int | None
    tool_call_parser: str | None
    max_model_len: int | None
    tensor_parallel_size: int | None
    gpu_memory_utilization: float | None
    runner: str | None
    convert: str | None
    extra_args: tuple[str, ...]
    startup_timeout_s: float


@dataclass(frozen=True)
class LlmOptions(Section):
    """The one LLM client (OpenAI-compatible) and the server it talks to."""

    engine: str
    model: str
    base_urls: tuple[str, ...]
    api_key_env: str | None
    max_concurrency: int
    requests_per_minute: float | None
    tokens_per_minute: float | None
    timeout_s: float
    max_retries: int
    backoff_initial_s: float
    backoff_max_s: float
    retry_after_max_s: float
    structured_retries: int
    parse_text_tool_calls: bool
    temperature: float
    top_p: float | None
    max_tokens: int
    seed: int | None
    pool: LlmPoolOptions
    cache: bool
    cache_dir: str | None
    embedded: LlmEmbeddedOptions
    reward_model: LlmRewardModelOptions
    vllm: LlmVllmOptions


@dataclass(frozen=True)
class SearchKgOptions(Section):
    """The knowledge graph (crucible kg build)."""

    dir: str | None
    embedded: bool
    min_city_population: int
    airports: str
    wiki: bool
    mendeleev: bool
    extra: tuple[str, ...]


@dataclass(frozen=True)
class SearchLocalOptions(Section):
    """config section search.local."""

    dir: str | None
    pages: str | None


@dataclass(frozen=True)
class SearchFrozenOptions(Section):
    """config section search.frozen."""

    path: str | None


@dataclass(frozen=True)
class SearchCacheOptions(Section):
    """config section search.cache."""

    enabled: bool
    dir: str | None


@dataclass(frozen=True)
class SearchLeakOptions(Section):
    """config section search.leak."""

    ngram: int
    page_action: str


@dataclass(frozen=True)
class SearchVisitOptions(Section):
    """config section search.visit."""

    max_chars: int


@dataclass(frozen=True)
class SearchFetchOptions(Section):
    """config section search.fetch."""

    url_template: str | None


@dataclass(frozen=True)
class SearchHttpOptions(Section):
    """config section search.http."""

    timeout_s: float
    max_retries: int
    backoff_s: float
    rate_limit_per_s: float


@dataclass(frozen=True)
class SearchSearxngOptions(Section):
    """config section search.searxng."""

    base_url: str | None
    api_key_env: str | None


@dataclass(frozen=True)
class SearchSerperOptions(Section):
    """config section search.serper."""

    base_url: str | None
    api_key_env: str


@dataclass(frozen=True)
class SearchBraveOptions(Section):
    """config section search.brave."""

    base_url: str | None
    api_key_env: str


@dataclass(frozen=True)
class SearchTavilyOptions(Section):
    """config section search.tavily."""

    base_url: str | None
    api_key_env: str


@dataclass(frozen=True)
class SearchOptions(Section):
    """Browse environment."""

    backend: str
    top_k: int
    snapshot_id: str | None
    kg: SearchKgOptions
    local: SearchLocalOptions
    frozen: SearchFrozenOptions
    cache: SearchCacheOptions
    leak: SearchLeakOptions
    visit: SearchVisitOptions
    fetch: SearchFetchOptions
    http: SearchHttpOptions
    searxng: SearchSearxngOptions
    serper: SearchSerperOptions
    brave: SearchBraveOptions
    tavily: SearchTavilyOptions


@dataclass(frozen=True)
class SandboxLlmRepairOptions(Section):
    """optional LLM repair after the ladder ends short (sandbox/llm_repair.py, docs/sandbox.md 'LLM ...."""

    enabled: bool
    policy: str
    max_steps: int
    max_seconds: int
    max_commands: int
    command_timeout_s: int
    repos_dir: str | None


@dataclass(frozen=True)
class SandboxOptions(Section):
    """Docker sandboxes (sandbox/)."""

    ca_bundle: str | None
    debian_mirror: str | None
    base_registry_image: str | None
    pythons: tuple[str, ...]
    apt_packages: tuple[str, ...]
    inherit_host_pip: bool
    pip_env: Mapping[str, Any]
    cache_dir: str
    repo_url_template: str
    repos_dir: str
    cpus: float
    memory_mb: int
    pids: int
    test_timeout_s: int
    build_timeout_s: int
    network: str
    reruns: int
    label_network: str | None
    as_of_min_age_days: int
    repair_max_rungs: int
    survey_parallel: int
    reuse_envs: bool
    engines: tuple[Any, ...]
    registry: str | None
    engine_ping_timeout_s: float
    engine_stats_dir: str | None
    llm_repair: SandboxLlmRepairOptions
