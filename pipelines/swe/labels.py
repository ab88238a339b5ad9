"""Labels from test outcomes, pure: outcome maps (test id -> status) in, FAIL_TO_PASS/PASS_TO_PASS out.

F2P = failing or absent before and passing after; P2P = passing both; XFAIL and SKIPPED never count as
passing; tests whose outcome flips between re-runs of one side are flaky, removed from both lists and
recorded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

PASSING = frozenset({"PASSED", "XPASS"})
# a before-run that crashed at collection is still informative: the new tests are absent (F2P candidates)
USABLE_BEFORE_ERRORS = frozenset({"collection"})


def passed(status: str | None) -> bool:
    return status in PASSING


def flaky_from(maps: Iterable[Mapping[str, str]]) -> list[str]:
    """Tests whose pass/fail outcome differs between runs (absent in one run = not passing there)."""
    maps = list(maps)
    if len(maps) < 2:
        return []
    ids = set().union(*maps)
    return sorted(t for t in ids if len({passed(m.get(t)) for m in maps}) > 1)


def compute_labels(before: Mapping[str, str], after: Mapping[str, str], flaky: Iterable[str] = ()) -> dict:
    """Labels from one before map and one after map (test id -> status)."""
    fl = set(flaky)
    ids = (set(before) | set(after)) - fl
    f2p = sorted(t for t in ids if passed(after.get(t)) and not passed(before.get(t)))
    p2p = sorted(t for t in ids if passed(after.get(t)) and passed(before.get(t)))
    p2f = sorted(t for t in ids if passed(before.get(t)) and not passed(after.get(t)))
    f2f = sorted(t for t in ids if t in after and not passed(after.get(t)) and not passed(before.get(t)))
    return {"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "PASS_TO_FAIL": p2f, "FAIL_TO_FAIL": f2f,
            "flaky": sorted(fl)}


def labels_match(given_f2p, given_p2p, f2p, p2p) -> bool | None:
    """Whether computed labels equal given ones as sets (None when none were given)."""
    if given_f2p is None and given_p2p is None:
        return None
    return set(given_f2p or []) == set(f2p) and set(given_p2p or []) == set(p2p)


def labels_hold(given_f2p, given_p2p, before: Mapping[str, str], after: Mapping[str, str],
                flaky: Iterable[str] = ()) -> dict | None:
    """Whether given labels grade as given in this env (None when none were given): every given F2P test
    fails (or is absent) before the fix and passes after it, every given P2P test passes both, none flaky
    here. So the gold patch and an empty patch get the grades the labelling env gave them, even where this
    env runs more tests (``labels_match`` also asks for no extra labels). ``not_held``: the given tests that
    do not hold; ``not_collected``: those of them this env never ran (an id of another pytest, a module that
    is not collected)."""
    if given_f2p is None and given_p2p is None:
        return None
    fl = set(flaky)
    bad_f2p = [t for t in given_f2p or [] if t in fl or not passed(after.get(t)) or passed(before.get(t))]
    bad_p2p = [t for t in given_p2p or [] if t in fl or not (passed(after.get(t)) and passed(before.get(t)))]
    not_held = sorted(set(bad_f2p) | set(bad_p2p))
    return {"hold": not not_held, "not_held": not_held,
            "not_collected": [t for t in not_held if t not in before and t not in after]}


def verdict(labels: Mapping, *, require_p2p: bool = False) -> str | None:
    """Why computed labels make no instance (None: they do)."""
    if not labels["FAIL_TO_PASS"]:
        return "no_fail_to_pass: no test fails before the fix and passes after it"
    if require_p2p and not labels["PASS_TO_PASS"]:
        return "no_pass_to_pass: no test passes both before and after"
    return None


# ---------------------------------------------------------------- runner

PYTEST_TIME = re.compile(r"=+ .*\bin ([0-9.]+)s(?: \([0-9:]+\))? =+\s*$", re.M)


def pytest_seconds(log: str) -> float | None:
    """pytest's own duration from its final summary line (the bare test time inside the container)."""
    m = PYTEST_TIME.findall(log or "")
    return float(m[-1]) if m else None


def outcome_map(run, id_style: str) -> dict[str, str]:
    return dict(run.tests_swebench if id_style == "swebench" else run.tests)
