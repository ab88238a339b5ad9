"""Browse environment for research-agent data: knowledge graph, document corpus, search index and
the ``search``/``visit`` tools over local, frozen or live backends.

Stable API (imported lazily, no side effects at import)::

    from pipelines.browse import load_kg, execute, is_unique, open_environment
    graph = load_kg(cfg)                       # pipelines.browse.kg.model.Graph
    execute(graph, formalization)              # set of entity ids for the target variable
    env = open_environment(cfg)                # BrowseEnv; env.session(forbidden_texts).tools
    resolve_answer(graph, "Lima, Peru")        # ['city/3936456']: graph entities an answer names

See docs/browse-env.md.
"""

from __future__ import annotations

import importlib

_API = {
    "load_kg": "pipelines.browse.api", "open_environment": "pipelines.browse.api",
    "make_backend": "pipelines.browse.api", "make_tools": "pipelines.browse.api",
    "make_cache": "pipelines.browse.api", "ensure_corpus": "pipelines.browse.api",
    "build_corpus": "pipelines.browse.api", "kg_options": "pipelines.browse.api",
    "execute": "pipelines.browse.kg.executor", "is_unique": "pipelines.browse.kg.executor",
    "count_answers": "pipelines.browse.kg.executor", "Formalization": "pipelines.browse.kg.executor",
    "Graph": "pipelines.browse.kg.model", "Hop": "pipelines.browse.kg.model", "Entity": "pipelines.browse.kg.model", "Triple": "pipelines.browse.kg.model",
    "relation_sentence": "pipelines.browse.corpus", "evidence": "pipelines.browse.corpus",
    "page_fact": "pipelines.browse.corpus", "answer_aliases": "pipelines.browse.corpus", "count_chains": "pipelines.browse.kg.chains",
    "TOOL_SCHEMAS": "pipelines.browse.search.env", "BrowseEnv": "pipelines.browse.search.env",
    "resolve_answer": "pipelines.browse.resolve", "name_index": "pipelines.browse.resolve",
    "Gold": "pipelines.browse.gold", "gold_for_entity": "pipelines.browse.gold",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'pipelines.browse' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
