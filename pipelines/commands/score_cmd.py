"""`crucible score --input FILE.jsonl --output FILE.jsonl`: reward-model scores for trajectories."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("score", help="reward-model scores (llm.reward_model) for JSONL rows with OpenAI messages")
    p.add_argument("--input", required=True, help="JSONL: one row per line with a `messages` list")
    p.add_argument("--output", required=True, help="JSONL: each row plus reward_model_score and reward_model")
    add_config_args(p)
    p.set_defaults(func=_score)


def _score(args) -> int:
    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.llm.cache import run_cache_dir
    from crucible.pipelines.llm.reward import RewardError, make_reward_scorer
    from crucible.pipelines.store.fsio import write_bytes_atomic
    from crucible.pipelines.textio import InputError, check_output_file

    try:  # the input first: a bad row is said before any model, cache or output is touched
        rows = read_rows(args.input)
        check_output_file(args.output, "--output file")
    except InputError as exc:
        print(f"crucible score: {exc}", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    scorer = make_reward_scorer(cfg.llm, cache_dir=str(run_cache_dir(cfg.run.out_dir, "reward")))
    if scorer is None:
        print("crucible score: llm.reward_model.backend is none; set it, e.g. --set llm.reward_model.backend=pooling "
              "--set llm.reward_model.base_url=http://127.0.0.1:8000 --set llm.reward_model.model=NAME", file=sys.stderr)
        return 2
    try:
        scores = scorer.score([r["messages"] for r in rows])
    except RewardError as exc:
        print(f"crucible score: {exc}", file=sys.stderr)
        return 1
    out = "".join(json.dumps({**r, "reward_model_score": s, "reward_model": scorer.model_id}, ensure_ascii=False) + "\n"
                  for r, s in zip(rows, scores))
    write_bytes_atomic(args.output, out.encode("utf-8"))
    print(json.dumps({"rows": len(rows), "scored": sum(s is not None for s in scores), "model": scorer.model_id}))
    return 0


def read_rows(path: str) -> list[dict]:
    """The rows of a trajectories file: each an object whose ``messages`` are OpenAI messages
    (schemas/messages_row.json); an empty file, a bad line or a bad message raises InputError naming it."""
    from crucible.pipelines.rowcheck import check_messages, check_row
    from crucible.pipelines.textio import read_jsonl

    rows = []
    for n, row in read_jsonl(path, "trajectories file", allow_empty=False):
        check_row("messages_row", row, f"{path}:{n}")
        check_messages(row["messages"], f"{path}:{n}")
        rows.append(row)
    return rows
