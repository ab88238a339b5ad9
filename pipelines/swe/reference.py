"""The clean reference run of an env: the repo's own tests at the env commit, unmodified, run once per
(env image, tree, test selection) and kept on disk, so every candidate of that env (injected bugs, mined
commits, SWE-bench rows) is compared with one trusted run, and a rerun of the pipeline does not redo it.

The cache is content-addressed: the key hashes the env image (itself a hash of base + recipe + inputs),
the git tree id of the checkout (its content, not its name), the test selection, the number of re-runs and
the test-id style. Only runs that are usable (``ok``) are kept: an infra failure may be transient and is
retried next time. Entries are written atomically; an unreadable entry is ignored and recomputed.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crucible.pipelines.store.commit import stable_hash
from crucible.pipelines.store.fsio import write_bytes_atomic
from crucible.pipelines.swe.envs import run_side
from crucible.pipelines.swe.labels import flaky_from, outcome_map, pytest_seconds

log = logging.getLogger(__name__)
# 2: an old pytest's "FAIL <id>" summary lines are read as FAILED (crucible.sandbox.parsers.OLD_FAIL_RE)
REFERENCE_VERSION = 3


@dataclass
class Reference:
    key: str
    image: str
    tree: str
    selection: list[str] | None
    ok: bool
    reason: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> status (first usable run)
    flaky: list[str] = field(default_factory=list)  # outcome flips between re-runs of the clean tree
    n_runs: int = 0
    seconds: float = 0.0  # wall time of the runs (container start included)
    pytest_s: float = 0.0  # pytest's own time
    reconciled: str | None = None  # ok although JUnit merged cases of one id (crucible.sandbox.testrun.collisions)
    cached: bool = False

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("cached")
        return d


def tree_id(path: Path) -> str:
    """Content id of a checkout: its git tree hash (the same files give the same id whatever the commit)."""
    p = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=path, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{path}: not a git checkout ({p.stderr.strip()[-200:]}); the reference run needs "
                           "a committed tree to key its cache")
    return p.stdout.strip()


def reference_key(image: str, tree: str, selection: list[str] | None, reruns: int, id_style: str,
                  network: str = "none") -> str:
    sel = sorted(selection) if selection else None
    key = {"v": REFERENCE_VERSION, "image": image, "tree": tree, "selection": sel, "reruns": int(reruns),
           "id_style": id_style}
    if network != "none":  # outcomes can differ between networks (keys made under none stay valid)
        key["network"] = network
    return stable_hash(key, n=20)


def cache_path(workdir: Path, key: str) -> Path:
    return Path(workdir) / "reference" / f"{key}.json"


def load_cached(path: Path) -> Reference | None:
    try:
        data = json.loads(path.read_text())
        return Reference(**data, cached=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("swe: ignoring unreadable reference cache %s (%s); running again", path, exc)
        return None


def reference_run(ctx, env, tree: Path, tree_key: str, selection: list[str] | None = None, *,
                  runner: Callable | None = None) -> Reference:
    """The reference outcomes of ``tree`` in ``env`` (a :class:`crucible.pipelines.swe.envs.TaskEnv`): from the cache
    when this exact run was made before, else ``ctx.reruns`` fresh runs (``runner(ctx, env, tree, selection,
    k)`` -> list of TestRun)."""
    k = max(1, int(ctx.reruns))
    key = reference_key(env.image, tree_key, selection, k, env.id_style, env.network)
    path = cache_path(ctx.workdir, key)
    hit = load_cached(path)
    if hit is not None and hit.ok:
        ctx.stats["reference_hits"] = ctx.stats.get("reference_hits", 0) + 1
        return hit
    t0 = time.monotonic()
    runs = (runner or run_side)(ctx, env, tree, selection, k)
    ctx.stats["reference_runs"] = ctx.stats.get("reference_runs", 0) + 1
    ok = [r for r in runs if r.ok]
    ref = Reference(key=key, image=env.image, tree=tree_key, selection=sorted(selection) if selection else None,
                    ok=bool(ok), n_runs=len(runs), seconds=round(time.monotonic() - t0, 3),
                    pytest_s=round(sum(pytest_seconds(r.log_tail) or 0.0 for r in runs), 3))
    if not ok:
        r = runs[0]
        ref.reason = f"{r.status}/{r.kind}: {r.reason}"[:2000]
        return ref
    maps = [outcome_map(r, env.id_style) for r in ok]
    ref.outcomes, ref.flaky = maps[0], flaky_from(maps)
    ref.reconciled = next((r.reconciled for r in ok if r.reconciled), None)
    write_bytes_atomic(str(path), json.dumps(ref.as_dict(), sort_keys=True).encode())
    return ref
