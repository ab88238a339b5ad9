"""Fakes of one rollout and one grading on a fake engine (:class:`tests.support.registry_fake.FakeEngineClient`),
in the shapes of :func:`crucible.pipelines.swe.rollout.rollout_here` and :func:`crucible.pipelines.swe.grade.grade_here`: on the
engine named ``die_on`` the engine stops (what a dockerd killed mid-rollout does) and the call ends as the real
ones do then (a ``rollout_error`` row, an ``infra`` grade); elsewhere it succeeds and says where it ran and
whether the env image was on that engine."""

from __future__ import annotations

from collections.abc import Mapping


def fake_rollout_here(die_on: str | None, calls: list):
    def rollout_here(ctx, inst: Mapping, policy, **kw) -> dict:
        c = ctx.client
        calls.append(c.name)
        row = {"instance_id": inst["instance_id"], "policy": kw["policy_name"], "sample_index": kw["sample_index"],
               "exit_status": "submitted", "grade": "resolved", "grade_reason": None, "resolved": True,
               "meta": {"image_there": inst["env_image"] in c.store}}
        if c.name == die_on:
            c.down = True
            row.update(exit_status="error", grade=None, resolved=False,
                       grade_reason=f"rollout_error: ConnectionError: engine {c.name}: connection refused")
        return row
    return rollout_here


def fake_grade_here(die_on: str | None, calls: list):
    def grade_here(ctx, inst: Mapping, model_patch, *, defenses) -> dict:
        c = ctx.client
        calls.append(c.name)
        if c.name == die_on:
            c.down = True
            return {"resolved": False, "grade": "infra", "grade_reason": "run_infra/daemon: engine gone",
                    "f2p_passed": 0, "f2p_total": 1, "p2p_passed": 0, "p2p_total": 0, "dropped_files": []}
        return {"resolved": True, "grade": "resolved", "grade_reason": None, "f2p_passed": 1, "f2p_total": 1,
                "p2p_passed": 0, "p2p_total": 0, "dropped_files": []}
    return grade_here
