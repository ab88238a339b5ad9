"""Beam adapters of the SWE wing's one validation path: :class:`ValidateEnvs` (key by env -> group ->
:func:`crucible.pipelines.swe.validate.validate_env_group`), used by ``crucible swe validate`` and ``make swe-curate``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from crucible.pipelines.store.commit import ItemResult
from crucible.pipelines.swe.bugs import candidates, inject
from crucible.pipelines.swe.envs import ValidateContext, clone_at, env_key
from crucible.pipelines.swe.graph_bounds import CapExceeded, capped_iter
from crucible.pipelines.swe.mining import MiningLimits, mine_commits
from crucible.pipelines.swe.records import (
    FailureKind,
    Stage,
    Status,
    Step,
    SWEInstance,
    failure,
    not_valid,
    validation_failure,
    validation_row,
)
from crucible.pipelines.swe.validate import validate_env_group, validated_instance
from crucible.sandbox.api import settings_from_config
from crucible.sandbox.engine import ensure_engine
from crucible.sandbox.engines import shared_pool
from crucible.sandbox.sources import from_sdist

log = logging.getLogger(__name__)


def workdir_of(cfg: Mapping) -> Path:
    w = cfg["swe"]["workdir"]
    return Path(w).expanduser() if w else settings_from_config(cfg["sandbox"], resolve_host=False).cache_dir / "swe"


def build_ctx(cfg: Mapping, network: str | None = None, client=None):
    """Docker client (the local engine unless given) + sandbox settings pointing at the local mirrors (works
    inside DoFn.setup); ``network`` is the run's network (:func:`crucible.pipelines.swe.envs.run_network`), by default
    ``swe.network`` itself (``internal``: the shared internal network, not one made for the run)."""

    pool = engine_pool(cfg) if client is None else None
    if pool is not None:  # work placed per env group (crucible.pipelines.swe.pooled); ctx.client: a live engine's
        client = pool.live()[0].client
    elif client is None:
        client, _ = ensure_engine(allow_start=True)
    wd = workdir_of(cfg)
    wd.mkdir(parents=True, exist_ok=True)
    # repos made from sdists live in local bare mirrors; every other repo comes through the URL template
    return ValidateContext(client=client, settings=settings_from_config(cfg["sandbox"]), workdir=wd,
                           reruns=int(cfg["swe"]["reruns"]), id_style=cfg["swe"]["id_style"],
                           network=network or cfg["swe"]["network"], max_f2p=int(cfg["swe"]["max_f2p"]),
                           label_network=cfg["sandbox"]["label_network"], mirror_root=wd / "mirrors",
                           recipes=cfg["swe"]["recipes"], pool=pool)


def engine_pool(cfg: Mapping):
    """The process's engine pool when ``sandbox.engines``/``sandbox.registry`` name more than the one local
    engine (a remote or second engine, or a registry); None: the local engine as before, unplaced."""

    sb = cfg["sandbox"]
    engines = list(sb["engines"])
    if len(engines) == 1 and engines[0]["host"] is None and not sb["registry"]:
        return None
    stats_dir = sb["engine_stats_dir"] or str(Path(cfg["run"]["out_dir"]) / "stats" / "engine_pool")
    return shared_pool(engines, ping_timeout_s=float(sb["engine_ping_timeout_s"]), stats_dir=stats_dir)


class Hooks(NamedTuple):
    """What the DoFns of the SWE graph call per element, by default the real functions (None): a test hands
    module-level fakes (from tests/support/) that pickle by reference and so reach other worker processes."""

    ctx: Callable | None = None  # (cfg, network) -> ValidateContext; build_ctx
    validate_group: Callable | None = None  # validate_env_group
    curate: Callable | None = None  # crucible.pipelines.swe.curate.curate_instance


def validation_result(inst: Mapping, val, *, pipeline: str, run_id: str) -> ItemResult:
    """The rows of one validation that is not valid: its swe_validations row and its failures row."""

    return (ItemResult(inst["instance_id"]).add("swe_validations", val.row)
            .add("failures", validation_failure(val.row, pipeline, run_id)))


class ValidateEnvGroup(beam.DoFn):
    """The instances of one env (repo, env commit): its image and clean reference run once, then the
    before/after runs of each instance. Main output: ItemResults of instances that are not valid; ``valid``:
    (validated :class:`~crucible.pipelines.swe.records.SWEInstance`, swe_validations row)."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str, hooks: Hooks = Hooks()):
        self.cfg, self.run_id, self.network, self.pipeline, self.hooks = cfg, run_id, network, pipeline, hooks
        self.n_valid = Metrics.counter("crucible.swe", "valid_instances")

    def setup(self):
        self.ctx = (self.hooks.ctx or build_ctx)(self.cfg, self.network)

    def process(self, keyed):
        insts = sorted(keyed[1], key=lambda i: i["instance_id"])  # validate_env_group's order
        cap = float(self.cfg["swe"]["validation_timeout_s"])
        seen: set[str] = set()
        group_fn = self.hooks.validate_group or validate_env_group
        steps = group_fn(self.ctx, insts, self.run_id, reference=self.cfg["swe"]["reference_run"])
        try:
            for inst, val in capped_iter(steps, cap, cap="swe.validation_timeout_s",
                                         what=lambda n: f"validation of {_next_id(insts, seen)}"):
                seen.add(inst["instance_id"])
                log.info("%s: %s %s (F2P %d, P2P %d, %.1fs)", inst["instance_id"], val.row["status"],
                         val.row["reason"] or "", len(val.row["fail_to_pass"]), len(val.row["pass_to_pass"]),
                         val.row["duration_s"])
                if val.row["status"] == Status.VALID.value:
                    self.n_valid.inc()
                    yield beam.pvalue.TaggedOutput("valid", (validated_instance(inst, val), val.row))
                else:
                    yield validation_result(inst, val, pipeline=self.pipeline, run_id=self.run_id)
        except CapExceeded as exc:
            yield from cap_failures([i for i in insts if i["instance_id"] not in seen], exc,
                                    pipeline=self.pipeline, run_id=self.run_id)


def _next_id(insts, seen) -> str:
    return next((i["instance_id"] for i in insts if i["instance_id"] not in seen), "?")


def cap_failures(rest, exc: CapExceeded, *, pipeline: str, run_id: str):
    """A ``failures`` row per instance left when the validation cap fired: the one it fired on, then the rest
    of its env group (abandoned with it: the group's steps share one image and one reference run)."""
    for n, inst in enumerate(rest):
        reason = str(exc) if n == 0 else f"{exc}; not validated: its env group was abandoned"
        yield ItemResult(inst["instance_id"]).add("failures", failure(
            pipeline, Stage.VALIDATE, FailureKind.INFRA, reason, run_id, inst["instance_id"],
            payload={"cap": exc.cap, "seconds": exc.seconds}))


class ValidateEnvs(beam.PTransform):
    """SWEInstance rows -> ``results`` (ItemResults of rows that are not valid) and ``valid``
    ((instance, swe_validations row) pairs)."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str, hooks: Hooks = Hooks()):
        super().__init__()
        self.args = (cfg, run_id, network, pipeline, hooks)

    def expand(self, rows):
        return (rows | "KeyByEnv" >> beam.Map(lambda r: (env_key(r), r))
                | "GroupByEnv" >> beam.GroupByKey()
                | "ValidateEnvGroup" >> beam.ParDo(ValidateEnvGroup(*self.args)).with_outputs("valid", main="results"))


class InjectBugs(beam.DoFn):
    """One sdist -> AST bug candidates committed on its local mirror (:func:`crucible.pipelines.swe.bugs.inject`), as
    instances for :class:`ValidateEnvs` (``rows`` output). Main output: failures of sdists that cannot be set up
    and of bugs that do not apply."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str, done: frozenset[str] = frozenset()):
        self.cfg, self.run_id, self.network, self.pipeline, self.done = cfg, run_id, network, pipeline, done
        self.cands = Metrics.counter("crucible.swe", "bug_candidates")

    def setup(self):
        self.ctx = build_ctx(self.cfg, self.network)

    def process(self, sdist: str):
        swe = self.cfg["swe"]
        try:
            co = from_sdist(sdist, self.ctx.settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"),
                            remote_env=self.ctx.settings.pip_env)
            name = co.name.lower()
            cands = candidates(co.path, seed=int(swe["seed"]), max_candidates=int(swe["max_candidates_per_repo"]),
                               operators=tuple(swe["operators"]), include=swe["include_paths"].get(name))
            insts, broken = inject(co, f"pypi/{name}", self.ctx.workdir / "mirrors", cands,
                                   source_ref=f"sdist:{sdist}", done=self.done)
        except Exception as exc:  # noqa: BLE001 - a repo that cannot be set up is one failure row
            log.warning("swe: %s failed: %s", sdist, exc)
            yield ItemResult(f"sdist:{sdist}").add("failures", failure(
                self.pipeline, Stage.INJECT, FailureKind.INFRA, f"{type(exc).__name__}: {exc}"[:2000], self.run_id,
                f"sdist:{sdist}"))
            return
        self.cands.inc(len(cands))
        log.info("swe: %s: %d bug candidates, %d to validate, %d do not apply", sdist, len(cands), len(insts),
                 len(broken))
        for iid, why in broken:
            row = not_valid(validation_row(iid, self.run_id), Status.ERROR, FailureKind.ERROR, Step.PATCH_APPLY, why)
            yield (ItemResult(iid).add("swe_validations", row)
                   .add("failures", validation_failure(row, self.pipeline, self.run_id)))
        for inst in insts:
            yield beam.pvalue.TaggedOutput("rows", inst)


class MineCommits(beam.DoFn):
    """One git repo (through the URL template) -> SWE-bench-format candidates from its history (commits that
    change source and tests, small enough), and a failure row per rejected commit."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str):
        self.cfg, self.run_id, self.network, self.pipeline = cfg, run_id, network, pipeline
        self.mined = Metrics.counter("crucible.swe", "mined_candidates")

    def setup(self):
        self.ctx = build_ctx(self.cfg, self.network)

    def process(self, repo: str):
        m = self.cfg["swe"]["mine"]
        try:
            co = clone_at(self.ctx, repo, m["rev"])
            cands, rejected = mine_commits(co.path, repo, rev=co.commit, max_commits=int(m["max_commits"]),
                                           limits=MiningLimits(**m["limits"]))
        except Exception as exc:  # noqa: BLE001 - a repo that cannot be mined is one failure row
            log.warning("swe: mining %s failed: %s", repo, exc)
            yield ItemResult(f"mine:{repo}").add("failures", failure(
                self.pipeline, Stage.MINE, FailureKind.INFRA, f"{type(exc).__name__}: {exc}"[:2000], self.run_id,
                f"mine:{repo}"))
            return
        keep = cands[: int(m["max_candidates_per_repo"])]
        log.info("swe: mined %s: %d candidates (%d kept), %d commits rejected", repo, len(cands), len(keep),
                 len(rejected))
        self.mined.inc(len(keep))
        for r in rejected:
            key = f"mine:{repo}@{r['commit']}"
            yield ItemResult(key).add("failures", failure(self.pipeline, Stage.MINE, FailureKind.FILTERED, r["reason"],
                                                          self.run_id, key))
        for c in keep:
            yield beam.pvalue.TaggedOutput("rows", SWEInstance.from_row(
                c, source="mined", source_ref=f"{repo}@{c['instance_id']}", meta={"commit_message": c.get("hints_text")}))
