"""Browse environment for research-agent data: knowledge graph, document corpus, search index and
the ``search``/``visit`` tools over local, frozen or live backends.

Stable API (imported lazily, no side effects at import)::

    from crucible.pipelines.browse import load_kg, execute, is_unique, open_environment
    graph = load_kg(cfg)                       # crucible.pipelines.browse.kg.model.Graph
    execute(graph, formalization)              # set of entity ids for the target variable
    env = open_environment(cfg)                # BrowseEnv; env.session(forbidden_texts).tools
    resolve_answer(graph, "Lima, Peru")        # ['city/3936456']: graph entities an answer names

See docs/browse-env.md.
"""

from __future__ import annotations

import importlib

_API = {
    "load_kg": "crucible.pipelines.browse.api", "open_environment": "crucible.pipelines.browse.api",
    "make_backend": "crucible.pipelines.browse.api", "make_tools": "crucible.pipelines.browse.api",
    "make_cache": "crucible.pipelines.browse.api", "ensure_corpus": "crucible.pipelines.browse.api",
    "build_corpus": "crucible.pipelines.browse.api", "kg_options": "crucible.pipelines.browse.api",
    "execute": "crucible.pipelines.browse.kg.executor", "is_unique": "crucible.pipelines.browse.kg.executor",
    "count_answers": "crucible.pipelines.browse.kg.executor", "Formalization": "crucible.pipelines.browse.kg.executor",
    "Graph": "crucible.pipelines.browse.kg.model", "Hop": "crucible.pipelines.browse.kg.model", "Entity": "crucible.pipelines.browse.kg.model", "Triple": "crucible.pipelines.browse.kg.model",
    "relation_sentence": "crucible.pipelines.browse.corpus", "evidence": "crucible.pipelines.browse.corpus",
    "page_fact": "crucible.pipelines.browse.corpus", "answer_aliases": "crucible.pipelines.browse.corpus", "count_chains": "crucible.pipelines.browse.kg.chains",
    "TOOL_SCHEMAS": "crucible.pipelines.browse.search.env", "BrowseEnv": "crucible.pipelines.browse.search.env",
    "resolve_answer": "crucible.pipelines.browse.resolve", "name_index": "crucible.pipelines.browse.resolve",
    "Gold": "crucible.pipelines.browse.gold", "gold_for_entity": "crucible.pipelines.browse.gold",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'crucible.pipelines.browse' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
