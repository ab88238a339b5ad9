"""Valid sample records of every type, deterministic in ``i`` (for store tests)."""

from __future__ import annotations

import json

RUN = "test-run"
TS = "2026-01-01T00:00:00+00:00"

SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the corpus",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
                   "required": ["query"]}}}


def question(i: int) -> dict:
    return {
        "question_id": f"q{i:04d}",
        "question": f"Which currency is used in the country whose capital is city number {i}?",
        "answer": f"Currency {i}",
        "answer_aliases": [f"C{i}", f"cur-{i}"],
        "answer_type": "entity",
        "hops": 2 + i % 3,
        "source": "kg",
        "seed_entity": f"city/{i}",
        "pattern_hash": f"p{i % 4}",
        "formalization": {"target": "?x", "triples": [[f"city/{i}", "capital_of", "?c"], ["?c", "currency", "?x"]]},
        "evidence": [{"hop": 0, "url": f"https://kb.local/city/{i}", "fact": "capital of C", "subject": f"city/{i}",
                      "relation": "capital_of", "object": "?c"}],
        "lineage": [{"round": 1, "operator": "obfuscate", "question_before": "a", "question_after": "b",
                     "accepted": True, "checks": {"unique": True, "supported": True}}],
        "difficulty": "medium",
        "pass_rate": 0.5,
        "closed_book_solved": False,
        "split": "rl",
        "model": "fake",
        "prompt_version": "1",
        "meta": {"i": i},
        "run_id": RUN,
        "created_at": TS,
    }


def messages(i: int) -> list[dict]:
    return [
        {"role": "system", "content": "You are a research agent."},
        {"role": "user", "content": f"question {i}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": "search", "arguments": json.dumps({"query": f"city {i}", "top_k": 3})}}]},
        {"role": "tool", "content": f"result {i}", "tool_call_id": f"call_{i}"},
        {"role": "assistant", "content": f"Currency {i}"},
    ]


def browse_trajectory(i: int) -> dict:
    return {
        "traj_id": f"t{i:04d}", "question_id": f"q{i:04d}", "sample_index": i % 2,
        "question": f"question {i}", "answer": f"Currency {i}", "answer_aliases": [],
        "messages": messages(i), "tools": [SEARCH_TOOL], "rendered_react": None,
        "policy_model": "fake", "sampling_params": {"temperature": 0.7}, "env_snapshot_id": "snap",
        "prediction": f"Currency {i}", "extracted_answer": f"Currency {i}",
        "verdict": "correct" if i % 2 == 0 else "incorrect", "verdict_source": "rule",
        "judge_model": None, "judge_prompt_version": None, "judge_raw": None,
        "reward_outcome": float(i % 2 == 0), "reward_format": 1.0, "reward_clue": 0.5,
        "reward_total": 0.5 + (i % 2 == 0) * 0.5, "reward_model_score": None,
        "n_turns": 3, "n_tool_calls": 1, "n_search": 1, "n_visit": 0, "n_tool_errors": 0,
        "n_prompt_tokens": 100 + i, "n_completion_tokens": 20, "latency_s": 1.5, "termination": "answered",
        "retrieved_urls": [f"https://kb.local/city/{i}"], "evidence_recall": 1.0, "pass_rate_k": 0.5,
        "difficulty_band": "medium", "split": "sft" if i % 2 == 0 else "rl", "drop_reasons": [],
        "leak_flags": [], "meta": None, "run_id": RUN, "created_at": TS,
    }


def swe_instance(i: int) -> dict:
    return {
        "instance_id": f"demo__repo-{i}", "repo": "demo/repo", "base_commit": f"{i:040x}",
        "patch": "diff --git a/x.py b/x.py\n", "test_patch": "diff --git a/test_x.py b/test_x.py\n",
        "problem_statement": f"Bug {i}: x() returns the wrong value", "hints_text": "", "created_at": TS,
        "version": "1.0", "environment_setup_commit": None,
        "FAIL_TO_PASS": [f"test_x.py::test_{i}"], "PASS_TO_PASS": ["test_x.py::test_ok"],
        "source": "injected", "source_ref": "demo==1.0", "env_image": "crucible-env:abc",
        "recipe": {"install": ["pip install -e ."]}, "statement_origin": "llm", "statement_prompt_version": "1",
        "bug_operator": "flip_comparison", "meta": {}, "run_id": RUN,
    }


def swe_validation(i: int) -> dict:
    return {
        "instance_id": f"demo__repo-{i}", "status": "valid" if i % 3 else "invalid",
        "reason": None if i % 3 else "no FAIL_TO_PASS tests",
        "fail_to_pass": [f"test_x.py::test_{i}"], "pass_to_pass": ["test_x.py::test_ok"], "flaky_tests": [],
        "network_tests": [], "labels_match": True, "env_image": "crucible-env:abc",
        "tests_before": {f"test_x.py::test_{i}": "failed"}, "tests_after": {f"test_x.py::test_{i}": "passed"},
        "n_runs": 2, "duration_s": 3.0, "test_duration_s": 1.0, "meta": None, "run_id": RUN, "created_at": TS,
    }


def swe_trajectory(i: int) -> dict:
    return {
        "traj_id": f"st{i:04d}", "instance_id": f"demo__repo-{i}", "sample_index": 0, "policy": "llm",
        "policy_model": None, "messages": messages(i), "tools": [SEARCH_TOOL], "model_patch": "diff",
        "resolved": True, "f2p_passed": 1, "f2p_total": 1, "p2p_passed": 1, "p2p_total": 1,
        "grade_reason": None, "exit_status": "submitted", "n_turns": 3, "n_tool_calls": 1, "n_tool_errors": 0,
        "n_prompt_tokens": 10, "n_completion_tokens": 5, "latency_s": 0.1, "reward": 1.0, "split": "sft",
        "drop_reasons": [], "meta": None, "run_id": RUN, "created_at": TS,
    }


def failure(i: int) -> dict:
    return {
        "failure_id": f"f{i:04d}", "pipeline": "test", "stage": "demo", "table_name": None, "item_key": f"item{i}",
        "kind": "error", "reason": "demo failure", "path": None, "payload": None, "run_id": RUN, "created_at": TS,
    }


def sandbox_survey(i: int) -> dict:
    return {"survey_id": f"sv{i}", "source": f"sdist:pkg{i}==1.0", "commit": "c" * 40, "source_date": "2023-01-02",
            "stage": "mostly_passing", "python": "3.11", "as_of": "2023-01-02T23:59:59Z", "env_key": "k" * 16,
            "tests_collected": 10, "passed": 9, "failed": 1, "skipped": 0,
            "rungs": [{"kind": "pytest_plugin", "arg": "pytest-mock", "trigger": "E  fixture 'mocker' not found",
                       "phase": "test"}], "stop_rung": None, "stop_reason": None, "stop_line": None, "attempts": 2,
            "build_seconds": 10.5, "test_seconds": 2.0, "seconds": 13.0, "recipe": {"python": "3.11"},
            "run_id": "r1", "created_at": "2026-12-01T00:00:00Z"}


def swe_grade(i: int) -> dict:
    return {"grade_id": f"g{i:04d}", "instance_id": f"o__r-{i}", "model_name_or_path": "m", "patch_sha256": "a" * 64,
            "resolved": i % 2 == 0, "grade": "resolved" if i % 2 == 0 else "unresolved", "reason": "demo",
            "f2p_passed": 1, "f2p_failed": 0, "p2p_passed": 3, "p2p_failed": 0, "dropped_files": [], "run_id": RUN,
            "created_at": TS}


ALL = {
    "questions": question,
    "browse_trajectories": browse_trajectory,
    "swe_instances": swe_instance,
    "swe_validations": swe_validation,
    "swe_trajectories": swe_trajectory,
    "sandbox_surveys": sandbox_survey,
    "swe_grades": swe_grade,
    "failures": failure,
}
