"""Module-level hooks (:class:`crucible.pipelines.swe.transforms.Hooks`) for a Curate DoFn whose per-instance work calls
the LLM client on a thread of its own, as a capped rollout does (:func:`crucible.pipelines.swe.graph_bounds.run_capped`):
no sandbox, one chat per instance."""

from __future__ import annotations

import threading

from crucible.pipelines.store.commit import ItemResult


def no_ctx(cfg, network):
    return None


def chat_on_a_thread(ctx, inst, val, *, cfg, run_id, client, **kw) -> ItemResult:
    t = threading.Thread(target=lambda: client.chat([{"role": "user", "content": inst["instance_id"]}]))
    t.start()
    t.join(30)
    return ItemResult(inst["instance_id"])


SEEN: list[tuple[str, bool, bool, str]] = []  # (instance_id, with_llm, llm_statement, thread name), per call


def record_flags(ctx, inst, val, *, cfg, run_id, client, with_llm, llm_statement, **kw) -> ItemResult:
    """Curates nothing: records which LLM work the DoFn allowed this instance, and on which thread."""
    SEEN.append((inst["instance_id"], with_llm, llm_statement, threading.current_thread().name))
    return ItemResult(inst["instance_id"])
