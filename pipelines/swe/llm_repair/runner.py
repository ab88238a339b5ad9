"""The LLM-repair runner (RepoLaunch / SWE-Factory style): when the repair ladder ends short, an agent with a
bash tool in a container from the last env image (the base image when the build itself failed) proposes
and runs setup commands until the clean suite mostly passes; the commands that worked become a recipe
step that replays without the LLM, and only a replay that passes again counts.

:func:`llm_repair` starts the container, runs the agent (:mod:`.session`), then rebuilds the env from the
written override (:mod:`.replay`) through the ordinary build path (``crucible.sandbox.repair.attempt`` with
``repos_dir`` = the staging directory, no ladder) on the pristine tree. :class:`Repairer` is what
``crucible sandbox test --repair`` and ``sandbox survey`` call for a source the ladder left short.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crucible.pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy
from crucible.pipelines.llm import LLMClient, endpoint_config, llm_endpoint, load_prompt
from crucible.pipelines.swe.llm_repair.replay import replay_recipe, write_override
from crucible.pipelines.swe.llm_repair.session import Caps, RepairSession, Stop, run_session
from crucible.sandbox.container import Sandbox
from crucible.sandbox.images import build_env_vars
from crucible.sandbox.repair import attempt
from crucible.sandbox.workspace import ContainerWorkspace

log = logging.getLogger(__name__)
PROMPT_ID = "sandbox_llm_repair"
DONE_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": 200}},
               "required": ["summary"], "additionalProperties": False}


@dataclass
class Outcome:
    ok: bool
    stop: str
    commands: list[dict] = field(default_factory=list)  # every bash command, with its exit code
    replay_commands: list[str] = field(default_factory=list)
    test_env: dict = field(default_factory=dict)
    tests: list[dict] = field(default_factory=list)  # every run_tests verdict of the session
    steps: int = 0
    seconds: float = 0.0
    replay: dict | None = None  # the replay attempt (stage, counts, stop) when one ran
    override_path: str | None = None
    recipe: dict | None = None  # the replayed recipe when ok
    summary: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def prompt_messages(recipe: dict, res: dict, *, caps: Caps, from_base: bool, prompt=None) -> list[dict]:
    p = prompt or load_prompt(PROMPT_ID)
    stop = res.get("stop") or {}
    steps = [] if from_base else [f"{s['name']}: {s['try'][0]}" for s in recipe["install"]]
    return p.render(reason=stop.get("reason") or "", line=stop.get("line") or "",
                    log_tail="\n".join((res.get("log_tail") or "").splitlines()[-30:]),
                    install_steps="\n".join(steps) or "(none: the build failed; nothing is installed yet)",
                    python=recipe["python"], test_cmd=recipe["test_cmd"], max_steps=caps.max_steps,
                    max_commands=caps.max_commands)


def session_env(settings, recipe: dict) -> tuple[dict, dict]:
    """(environment, files) of the session container: what env builds get (``build_env_vars``: pip index
    settings, the CA bundle) plus the recipe's as-of cut-off, so the agent resolves as the replay will."""
    env, files = build_env_vars(settings.ca_bundle, settings.pip_env)
    env.update({"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    if recipe.get("as_of"):
        env["PIP_UPLOADED_PRIOR_TO"] = recipe["as_of"]
    return env, files


def llm_repair(client, settings, tree: Path, name: str, res: dict, policy, *, caps: Caps, out_repos_dir: Path,
               date: str | None, prompt=None) -> Outcome:
    """One LLM-repair episode for the failed ``res`` of ``crucible.sandbox.repair.attempt``; on success the override
    is written to ``out_repos_dir`` and ``Outcome.recipe`` is the replayed recipe."""
    t0 = time.monotonic()
    recipe, image = res.get("recipe"), res.get("image")
    if not recipe or not image:
        return Outcome(False, Stop.NO_IMAGE.value)
    from_base = res["stage"] == "attempted"
    env, files = session_env(settings, recipe)
    sb = Sandbox(client, image, tree=tree, network="bridge", limits=settings.limits, env=env, include_git=False)
    try:
        for path, data in files.items():
            sb.put_file(path, data)
        session = RepairSession(ContainerWorkspace(sb), dict(recipe, install=[] if from_base else recipe["install"]),
                                dataclasses.replace(caps, test_timeout_s=settings.limits.timeout_s))
        stop, agent = run_session(policy, session, prompt_messages(recipe, res, caps=caps, from_base=from_base,
                                                                   prompt=prompt))
    finally:
        sb.close()
    out = Outcome(False, (stop or Stop.REPLAY_FAILED).value, commands=[asdict(c) for c in session.commands],
                  replay_commands=session.replay_commands(), test_env=dict(session.passed_env if session.passed_at is not None else session.env),
                  tests=[asdict(t) for t in session.tests], steps=agent.n_turns, summary=session.done_summary)
    if stop is None:
        rec = replay_recipe(recipe, out.replay_commands, out.test_env, from_base=from_base)
        notes = (f"LLM repair of {name}: {len(out.replay_commands)} command(s) after the ladder stopped at "
                 f"{res['stage']} ({(res.get('stop') or {}).get('line', '')[:200]})")
        with tempfile.TemporaryDirectory(prefix="crucible-llm-repair-") as staging:
            write_override(Path(staging), name, rec, notes)
            again = attempt(client, dataclasses.replace(settings, repos_dir=Path(staging)), tree, name, date=date,
                            max_rungs=0)
        out.replay = {k: again.get(k) for k in ("stage", "counts", "stop", "run_kind", "env_key", "tests_collected")}
        if again["stage"] == "mostly_passing" and not again.get("run_kind"):
            out.ok, out.stop, out.recipe = True, Stop.REPLAYED.value, again["recipe"]
            out.override_path = str(write_override(Path(out_repos_dir), name, rec, notes))
    out.seconds = round(time.monotonic() - t0, 1)
    return out


def apply_outcome(res: dict, outcome: Outcome) -> dict:
    """``res`` (from ``crucible.sandbox.repair.attempt``) with the ``llm_repair`` rung appended: on success the replay's
    stage, counts and recipe; otherwise the ladder's stop with ``stop.rung = "llm_repair"``, the LLM stop
    reason added to ``stop.reason`` and the ladder's deciding ``stop.line`` kept."""
    res = dict(res)
    stop = dict(res.get("stop") or {})
    rung = {"kind": "llm_repair", "arg": " && ".join(outcome.replay_commands)[:500] or outcome.stop,
            "trigger": (stop.get("line") or "")[:500], "phase": "llm", "stop": outcome.stop,
            "commands": [{"command": c["command"][:300], "exit_code": c["exit_code"], "kind": c["kind"]}
                         for c in outcome.commands][:60],
            "override": outcome.override_path, "steps": outcome.steps, "seconds": outcome.seconds}
    res["seconds"] = round(float(res.get("seconds") or 0.0) + outcome.seconds, 1)
    res["rungs"] = list(res.get("rungs") or []) + [rung]
    if outcome.ok:
        rep = outcome.replay or {}
        res.update(stage=rep["stage"], counts=rep.get("counts") or {}, tests_collected=rep.get("tests_collected", 0),
                   env_key=rep.get("env_key"), recipe=outcome.recipe, stop=None, run_kind=rep.get("run_kind"))
    else:
        ladder_last = stop.get("rung")
        stop["rung"] = "llm_repair"
        stop["reason"] = (f"{stop.get('reason', '')}; llm_repair: {outcome.stop} after {len(outcome.commands)} "
                          f"command(s) (ladder's last rung: {ladder_last or 'none'})"
                          + (f": {outcome.summary}" if outcome.stop == Stop.INFRA.value else ""))
        if outcome.replay:
            rs = (outcome.replay.get("stop") or {})
            stop["reason"] += f"; replay stopped at {outcome.replay.get('stage')}: {rs.get('line', '')[:200]}"
        res["stop"] = stop
    return res


def make_policy(client, kind: str):
    """The agent policy for ``sandbox.llm_repair.policy``: ``native`` (OpenAI tool calls) or ``json_step``
    (constrained JSON steps, for the embedded model)."""
    p = load_prompt(PROMPT_ID)
    if kind == "native":
        return NativeToolPolicy(client, prompt=p)
    return JSONStepPolicy(client, final_action="done", final_schema=DONE_SCHEMA, final_tool="done", prompt=p,
                          max_arg_chars=400, max_tokens=384)


def caps_from(settings) -> Caps:
    lr = settings.llm_repair
    return Caps(max_steps=int(lr["max_steps"]), max_seconds=float(lr["max_seconds"]),
                max_commands=int(lr["max_commands"]), command_timeout_s=int(lr["command_timeout_s"]))


class Repairer:
    """``repairer(docker_client, tree, name, res, date) -> res``: one episode for a source the ladder left
    short (``res`` returned as is when it mostly passes), with :func:`apply_outcome` applied."""

    def __init__(self, settings, policy_factory: Callable[[], object], out_repos_dir: Path):
        self.settings, self.policy_factory, self.out_repos_dir = settings, policy_factory, Path(out_repos_dir)

    def __call__(self, client, tree: Path, name: str, res: dict, date: str | None) -> dict:
        if res["stage"] == "mostly_passing":
            return res
        try:
            outcome = llm_repair(client, self.settings, tree, name, res, self.policy_factory(),
                                 caps=caps_from(self.settings), out_repos_dir=self.out_repos_dir, date=date)
        except Exception as exc:  # the LLM endpoint or the daemon failed: the ladder's row stands, with why
            log.exception("llm repair of %s", name)
            outcome = Outcome(False, Stop.INFRA.value, summary=f"{type(exc).__name__}: {exc}"[:300])
        return apply_outcome(res, outcome)


@contextmanager
def repairer_for(cfg, settings, enabled: bool | None = None):
    """A :class:`Repairer` on the ``llm`` section's endpoint (started here for ``engine: embedded``, as
    ``crucible.pipelines.swe.pipeline`` does), or None when ``sandbox.llm_repair.enabled`` (or ``enabled``) is off.
    The override goes to ``sandbox.llm_repair.repos_dir``, else ``<run.out_dir>/repos``."""
    on = settings.llm_repair["enabled"] if enabled is None else enabled
    if not on:
        yield None
        return
    repos = settings.llm_repair["repos_dir"] or str(Path(cfg.run.out_dir) / "repos")
    with llm_endpoint(cfg.llm) as base_urls:
        llm = LLMClient.from_config(endpoint_config(cfg.llm, base_urls), out_dir=cfg.run.out_dir)
        try:
            yield Repairer(settings, lambda: make_policy(llm, settings.llm_repair["policy"]), Path(repos))
        finally:
            llm.close()
