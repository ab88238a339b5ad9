"""The LLM layer: one OpenAI-compatible client, prompts, and the servers behind it.

Stable API (what the browse / SWE / agent pipelines use)::

    from crucible.pipelines.llm import LLMClient, ChatResult, LLMError, load_prompt, llm_endpoint, endpoint_config

    with llm_endpoint(cfg.llm) as base_urls:              # starts the embedded server if configured
        llm_cfg = endpoint_config(cfg.llm, base_urls)    # plain dict for Beam DoFns
        client = LLMClient.from_config(llm_cfg, out_dir=cfg.run.out_dir)   # in DoFn.setup
        p = load_prompt("smoke_capital")
        res = client.structured(p.render(country="France"), p.schema, prompt=p)
        res.parsed, res.error, res.accounting(), p.ref

    # in coroutines (one event loop per process; hundreds of requests in flight, no thread each):
    res = await client.achat(messages, session=trajectory_id)   # later turns stay on the first turn's endpoint
    client.stats()["endpoints"]                                  # per endpoint: in flight, done, failed, waits

Names are resolved lazily so importing a submodule (e.g. ``crucible.pipelines.llm.toolcalls``) stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LLMClient": "crucible.pipelines.llm.client",
    "ChatResult": "crucible.pipelines.llm.client",
    "LLMError": "crucible.pipelines.llm.client",
    "report_beam_metrics": "crucible.pipelines.llm.metrics",
    "report_pool_metrics": "crucible.pipelines.llm.metrics",
    "Prompt": "crucible.pipelines.llm.prompts",
    "PromptError": "crucible.pipelines.llm.prompts",
    "load_prompt": "crucible.pipelines.llm.prompts",
    "llm_endpoint": "crucible.pipelines.llm.serve",
    "endpoint_config": "crucible.pipelines.llm.serve",
    "extract_tool_calls": "crucible.pipelines.llm.toolcalls",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'crucible.pipelines.llm' has no attribute {name!r}")
