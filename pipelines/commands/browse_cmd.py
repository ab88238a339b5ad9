"""`crucible browse run | rollout | check-unique | judge | audit`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("browse", help="research questions + search-agent trajectories (make synth-browse)")
    bsub = p.add_subparsers(dest="browse_command", metavar="ACTION")
    bsub.required = True
    r = bsub.add_parser("run", help="run the synth-browse pipeline")
    add_config_args(r, default="browse")
    r.set_defaults(func=_run)
    ro = bsub.add_parser("rollout", help="run the search agent over outside questions from a JSONL file "
                                         "{id, question, gold?, gold_aliases?}; judged when gold is given; resumable")
    ro.add_argument("--input", required=True, metavar="FILE.jsonl",
                    help="one question per line (schemas/browse_rollout_input.json)")
    ro.add_argument("--k", type=int, default=None, help="rollouts per question (default: browse.k)")
    ro.add_argument("--stream", action="store_true", help="print each step live: tool call, observation head, answer")
    add_config_args(ro, default="browse")
    ro.set_defaults(func=_rollout)
    c = bsub.add_parser("check-unique", help="execute every stored question's formalization against the graph")
    add_config_args(c, default="browse")
    c.set_defaults(func=_check_unique)
    j = bsub.add_parser("judge", help="grade outside predictions: JSONL rows {question, gold: [...], prediction}; "
                                      "prints accepted near misses and paraphrases")
    j.add_argument("file", help="JSONL file; optional fields per row: gold_id (the gold's graph entity; without "
                                "it the gold text is resolved), answer_type, expected, kind, evidence "
                                "(see pipelines/browse/judge_suite.py)")
    j.add_argument("--rules-only", action="store_true", help="no LLM judge (undecided rows become incorrect)")
    j.add_argument("--no-graph", action="store_true", help="switch the graph check off (to see what it stops)")
    j.add_argument("--json", action="store_true", help="one JSON object: summary and per-row results")
    add_config_args(j, default="browse")
    j.set_defaults(func=_judge)
    a = bsub.add_parser("audit", help="precision proxies of a browse store, re-checked against the graph")
    a.add_argument("--json", action="store_true", help="print the audit as JSON")
    a.add_argument("--no-graph", action="store_true", help="skip the graph-grounded lines (reported as not checked)")
    a.add_argument("--strict", action="store_true", help="exit 1 when a hard line fails")
    add_config_args(a, default="browse")
    a.set_defaults(func=_audit)


def _run(args) -> int:
    from crucible.pipelines.browse.pipeline import run
    from crucible.pipelines.cli import config_from_args

    cfg = config_from_args(args)
    summary = run(cfg)
    print(json.dumps(summary))
    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.stats import compute_stats, format_stats

    con = catalog.connect(cfg.run.out_dir, cfg.store.catalog)
    try:
        print(format_stats(compute_stats(con)))
    finally:
        con.close()
    return 0


def _rollout(args) -> int:
    from crucible.pipelines.browse.batch import run
    from crucible.pipelines.cli import config_from_args

    cfg = config_from_args(args)
    summary = run(cfg, args.input, k=args.k, stream=args.stream)
    print(json.dumps(summary))
    return 1 if summary["errors"] else 0


def _check_unique(args) -> int:
    from crucible.pipelines.browse import synth as S
    from crucible.pipelines.browse.api import load_kg
    from crucible.pipelines.browse.kg.executor import execute
    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.records import record_type

    cfg = config_from_args(args)
    graph = load_kg(cfg)
    cols, rows = catalog.query(cfg.run.out_dir, "select * from questions order by question_id", cfg.store.catalog)
    rt = record_type("questions")
    bad = 0
    for r in rows:
        q = rt.decode(dict(zip(cols, r)))
        form = {k: v for k, v in q["formalization"].items() if k != "binding"}
        binding = q["formalization"].get("binding", {})
        got = execute(graph, form, limit=2)
        ok = len(got) == 1 and got == {binding.get(form["target"])} and S.is_unique(
            graph, S.Draft(form, binding, q.get("seed_entity") or ""))
        bad += not ok
        print(json.dumps({"question_id": q["question_id"], "unique": ok, "answers": sorted(got)[:5],
                          "answer": q["answer"]}))
    print(f"{len(rows) - bad}/{len(rows)} questions have exactly their one answer", file=sys.stderr)
    return 1 if bad else 0


def _judge(args) -> int:
    from crucible.pipelines.browse import judge_suite as JS
    from crucible.pipelines.browse import verify as V
    from crucible.pipelines.cli import config_from_args

    rows = JS.read_rows(args.file)
    cfg = config_from_args(args)
    graph = None
    if not args.no_graph:  # gold_id or not: a gold's text is resolved too (pipelines/browse/ground.py)
        from crucible.pipelines.browse.api import load_kg

        graph = load_kg(cfg)

    def grade(judge, prompt):
        results = JS.grade_rows(rows, judge, graph, float(cfg.browse.rel_tol), prompt=prompt,
                                use_graph=not args.no_graph)
        summary = JS.summarize(results)
        if args.json:
            print(json.dumps({"summary": summary, "results": results}, ensure_ascii=False))
        else:
            for r in results:
                print(json.dumps({k: r[k] for k in ("verdict", "extracted_answer", "reason", "source",
                                                    "resolved_entity", "expected", "kind")}, ensure_ascii=False))
            print(JS.format_summary(summary), file=sys.stderr)

    if args.rules_only:
        grade(lambda m, s: None, None)
        return 0
    from crucible.pipelines.llm import LLMClient, endpoint_config, llm_endpoint

    with llm_endpoint(cfg.llm) as urls:
        client = LLMClient.from_config(endpoint_config(cfg.llm, urls), out_dir=cfg.run.out_dir)
        prompt = V.judge_prompt()
        try:
            grade(lambda m, s: client.structured(m, s, prompt=prompt, temperature=0).parsed, prompt)
        finally:
            client.close()
    return 0


def graph_checks(graph) -> dict:
    """The graph-grounded callables of the audit: the answer resolver, the asked-type check, the
    world check (relation cards, ranges that pin alone) and the text grounding, each recomputed from the
    stored rows."""
    from crucible.pipelines.browse.grounding import graph_page_text, recheck_row
    from crucible.pipelines.browse.harden import row_world_problems
    from crucible.pipelines.browse.qtype import row_type_mismatch
    from crucible.pipelines.browse.resolve import resolve_answer

    return {"resolve": lambda text: resolve_answer(graph, text),
            "type_check": lambda row: row_type_mismatch(graph, row),
            "world_check": lambda row: row_world_problems(graph, row),
            "text_check": lambda row, pages=graph_page_text(graph): recheck_row(graph, row, pages)}


def compute_browse_audit(cfg, with_graph: bool = True) -> dict:
    from crucible.pipelines.browse import audit as A
    from crucible.pipelines.browse.api import load_kg
    from crucible.pipelines.store import catalog

    con = catalog.connect(cfg.run.out_dir, cfg.store.catalog)
    try:
        questions, trajectories, failures = A.load_rows(con)
    finally:
        con.close()
    checks = graph_checks(load_kg(cfg)) if with_graph and questions else {}
    if with_graph and any(q.get("findability") for q in questions):
        checks["findable_search"] = findable_search(cfg)
    return A.audit_rows(questions, trajectories, failures, **checks)


def findable_search(cfg):
    """question -> a findability Search over the run's own backend (tool cache, leak filter), for the
    audit to re-run the stored queries; None (the audit reads the stored ranks) when no backend opens
    without building one: a local corpus not built yet, a live backend without its key."""
    from crucible.pipelines.browse.api import corpus_dir, open_environment
    from crucible.pipelines.browse.findable import env_search
    from crucible.pipelines.browse.search.backends import BackendConfigError

    if cfg.search["backend"] == "local" and not (corpus_dir(cfg) / "corpus.json").exists():
        return None
    try:
        env = open_environment(cfg)
    except BackendConfigError:
        return None
    return lambda question: env_search(env, question)


def _audit(args) -> int:
    from crucible.pipelines.browse import audit as A
    from crucible.pipelines.cli import config_from_args

    cfg = config_from_args(args)
    result = compute_browse_audit(cfg, with_graph=not args.no_graph)
    print(json.dumps(result, indent=1, default=str, ensure_ascii=False) if args.json else A.format_audit(result))
    return 1 if args.strict and A.problems(result) else 0
