"""``crucible browse rollout``: the search agent over outside questions from a JSONL file.

Each input line is ``{id, question, gold?, gold_aliases?, answer_type?, meta?}``
(``schemas/browse_rollout_input.json``). Every question gets ``k`` rollouts through the pipeline's own
:func:`crucible.pipelines.browse.trajectory.rollout` and row builder :func:`crucible.pipelines.browse.trajectory.trajectory_row`
(judged when a gold is given: the rules, the graph, then the LLM judge; without a gold the verdict is null).
An outside gold carries no graph id: its text and the prediction are resolved against the configured graph
(:mod:`crucible.pipelines.browse.ground`), so a prediction naming another entity ("Ireland" for Dublin, "Nairobi" for
its airport) is ``incorrect`` with ``verdict_source`` ``graph`` and ``resolved_entity`` set, no judge asked.
The graph is loaded only when some question has a gold.
Trajectories run in parallel up to the LLM client's concurrency and are committed to the store as they
finish (:func:`crucible.pipelines.store.batch.run_items`, pipeline ``browse-rollout``, one item per
``<id>-<sample index>``): a killed run loses only its in-flight rollouts, a rerun skips the committed ones.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema

from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.context import build_context
from crucible.pipelines.browse.ground import natural_kind
from crucible.pipelines.browse.resolve import name_index
from crucible.pipelines.browse.trajectory import rollout, trajectory_row
from crucible.pipelines.browse.writers import make_judge
from crucible.pipelines.llm import endpoint_config, llm_endpoint
from crucible.pipelines.options import build_options
from crucible.pipelines.store import catalog
from crucible.pipelines.store.batch import BatchSummary, run_items
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ItemResult, ensure_layout, recover, stable_hash
from crucible.pipelines.textio import InputError, read_jsonl

log = logging.getLogger(__name__)
PIPELINE = "browse-rollout"
INPUT_SCHEMA = "browse_rollout_input.json"


@dataclass(frozen=True)
class OutsideQuestion:
    """One input question; ``gold`` None: not judged."""

    id: str
    question: str
    gold: V.Gold | None
    line: int
    meta: Mapping[str, Any] = field(default_factory=dict)


def _validator():
    schema = json.loads(resources.files("crucible.schemas").joinpath(INPUT_SCHEMA).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def gold_of(row: Mapping) -> V.Gold | None:
    """The :class:`~crucible.pipelines.browse.verify.Gold` of an input row (None without ``gold``): its names are the
    gold and its aliases, no graph entity, the kind from ``answer_type`` (free text when absent)."""
    if row.get("gold") is None:
        return None
    gold = row["gold"]
    text = str(int(gold)) if isinstance(gold, float) and gold.is_integer() else str(gold)
    names = tuple(dict.fromkeys([text, *(row.get("gold_aliases") or [])]))
    answer_type = row.get("answer_type") or natural_kind(str(row.get("question") or ""))
    return V.Gold(names, None, answer_type, V.kind_for(answer_type) if answer_type else V.AnswerKind.TEXT)


def read_questions(path: str) -> list[OutsideQuestion]:
    """The questions of a JSONL file; a bad line raises :class:`~crucible.pipelines.textio.InputError` naming the file,
    the line, the field and the fix."""
    validator = _validator()
    out: list[OutsideQuestion] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path, "questions file"):
        errors = sorted(validator.iter_errors(row), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path) or " (the row)"
            raise InputError(f"{path}: line {line}: field ${where}: {e.message}; each line must be an object "
                             "{id, question, gold?, gold_aliases?, answer_type?, meta?} "
                             f"(schemas/{INPUT_SCHEMA})")
        if isinstance(row.get("gold"), bool):
            raise InputError(f"{path}: line {line}: field $.gold: a boolean is not a gold answer; give a string")
        if row.get("gold_aliases") and row.get("gold") is None:
            raise InputError(f"{path}: line {line}: field $.gold_aliases given without gold; add the gold answer "
                             "or drop the aliases")
        qid = str(row["id"])
        if qid in seen:
            raise InputError(f"{path}: line {line}: field $.id: id {qid!r} repeats line {seen[qid]}; ids must be "
                             "unique (k rollouts per question come from --k)")
        seen[qid] = line
        out.append(OutsideQuestion(qid, row["question"].strip(), gold_of(row), line, row.get("meta") or {}))
    if not out:
        raise InputError(f"{path}: no questions (the file is empty)")
    return out


def traj_key(qid: str, sample_index: int) -> str:
    """The store item key of one rollout, equal to its row's ``traj_id``."""
    return f"{qid}-{sample_index}"


def plan(questions: Sequence[OutsideQuestion], k: int) -> dict[str, tuple[OutsideQuestion, int]]:
    """Item key -> (question, sample index), ``k`` per question, in input order."""
    if k < 1:
        raise ValueError(f"--k {k}: needs at least 1 rollout per question")
    out: dict[str, tuple[OutsideQuestion, int]] = {}
    for q in questions:
        for i in range(k):
            key = traj_key(q.id, i)
            if key in out:  # "a-1" with k=2 and "a" with k>=2 would both give "a-1-..."; refuse, never overwrite
                raise ValueError(f"question ids {out[key][0].id!r} and {q.id!r} give the same trajectory id {key!r}")
            out[key] = (q, i)
    return out


def resolver_of(ctx):
    """The graph's name index for the graph check of outside golds (None without a graph)."""
    return name_index(ctx.graph) if ctx.graph is not None else None


def rollout_item(ctx, q: OutsideQuestion, i: int, judge, on_event: Callable[[dict], None] | None = None) -> ItemResult:
    """One verified trajectory of ``q`` as a store item (raises on a rollout that could not run)."""
    ro = rollout(ctx, q.question, i, on_event=on_event)
    row = trajectory_row(ctx, ro, q.id, i, q.question, q.gold, judge, resolver=resolver_of(ctx))
    row["meta"]["input"] = {"line": q.line, **({"meta": dict(q.meta)} if q.meta else {})}
    return ItemResult(traj_key(q.id, i)).add("browse_trajectories", row)


class StreamPrinter:
    """``--stream``: one line per step, prefixed with the trajectory id (threads print whole lines)."""

    def __init__(self, out=None, head_chars: int = 160):
        self.out, self.head, self.lock = out or sys.stdout, head_chars, threading.Lock()

    def _line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.out, flush=True)

    def events(self, key: str) -> Callable[[dict], None]:
        def on_event(ev: dict) -> None:
            kind = ev["kind"]
            if kind == "tool_call":
                self._line(f"[{key}] turn {ev['turn'] + 1}: {ev['name']} {ev.get('arguments') or ''}")
            elif kind == "observation":
                head = " ".join((ev.get("content") or "").split())[: self.head]
                self._line(f"[{key}]   {'error' if ev.get('error') else 'observation'}: {head}")
            elif kind == "answer":
                self._line(f"[{key}] answer: {' '.join((ev.get('content') or '').split())[:300]}")
            else:
                self._line(f"[{key}] error: {ev.get('error')}")
        return on_event

    def done(self, res: ItemResult) -> None:
        for t in res.rows.get("browse_trajectories") or []:
            how = f"{t['verdict']} ({t['verdict_source']})" if t["verdict"] else "not judged"
            self._line(f"[{res.key}] done: {how}, {t['n_tool_calls']} tool calls, {t['termination']}")
        for f in res.rows.get("failures") or []:
            self._line(f"[{f['item_key']}] failed: {f['reason']}")


def verdict_counts(out_dir: str, run_keys: Sequence[str], catalog_name: str) -> dict:
    """Verdicts of the given trajectory ids in the store (``not_judged`` for null)."""
    keys = set(run_keys)
    _, rows = catalog.query(out_dir, "select traj_id, verdict from browse_trajectories", catalog_name)
    return dict(Counter(v or "not_judged" for t, v in rows if t in keys))


def run(cfg, input_path: str, *, k: int | None = None, stream: bool = False) -> dict:
    """Roll out every question of ``input_path`` ``k`` times (default ``browse.k``) into ``run.out_dir``;
    returns the run summary (resumable: committed rollouts are skipped)."""

    opts = build_options(cfg)
    questions = read_questions(input_path)
    k = int(opts.browse.k if k is None else k)
    items = plan(questions, k)
    out_dir = opts.run.out_dir
    run_id = opts.run.run_id or f"{PIPELINE}-{stable_hash(input_path.rsplit('/', 1)[-1], opts.llm.model, n=8)}"
    printer = StreamPrinter() if stream else None
    ensure_layout(out_dir)
    done = recover(out_dir, PIPELINE).done_keys
    if all(key in done for key in items):  # a finished file: no LLM endpoint is started, nothing runs
        summary = {**BatchSummary(planned=len(items), skipped=len(items)).to_dict(), "workers": 0}
    else:
        with llm_endpoint(cfg.llm) as urls:
            ctx = build_context(opts, endpoint_config(cfg.llm, urls), run_id,
                                with_graph=any(q.gold is not None for q in questions))
            resolver_of(ctx)  # the name index, built once before the workers start
            judge = make_judge(ctx)
            workers = max(1, int(opts.llm.max_concurrency) * len(urls))

            def work(key: str) -> ItemResult:
                q, i = items[key]
                return rollout_item(ctx, q, i, judge, printer.events(key) if printer else None)

            try:
                summary = run_items(out_dir, PIPELINE, run_id, list(items), work, workers=workers, stage="rollout",
                                    compression=opts.store.compression,
                                    progress_every_s=float(opts.run.progress_every_s),
                                    on_result=printer.done if printer else None).to_dict()
            finally:
                if ctx.client is not None:
                    ctx.client.close()
        summary["workers"] = workers
    summary.update({"questions": len(questions), "k": k, "with_gold": sum(q.gold is not None for q in questions),
                    "run_id": run_id, "catalog": refresh_catalog(out_dir, opts.store.catalog)})
    summary["verdicts"] = verdict_counts(out_dir, list(items), opts.store.catalog)
    return summary
