"""One LLM-repair episode's tools and caps: :class:`RepairSession` (``bash``/``run_tests``/``done`` over any
workspace with ``exec(command, timeout_s)`` and ``read_file(path)``, with step, time and command caps) and
:func:`run_session` (the agent loop over it, ended once the suite mostly passes or a cap is reached).
Pure: tested without Docker (``tests/support/fake_repair.py``)."""

from __future__ import annotations

import enum
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crucible.pipelines.agent.loop import Turn, run_agent
from crucible.pipelines.agent.tools import FunctionTool, Observation, function_schema
from crucible.pipelines.swe.llm_repair.guard import WORKDIR, CommandKind, Verdict, classify_command
from crucible.sandbox.recipes import test_script
from crucible.sandbox.repair import stage_of
from crucible.sandbox.testrun import reconcile

# appended to the result of a call identical to an earlier one (the embedded 1.5B model otherwise repeats
# run_tests unchanged until the step cap: 11 of 11 turns on pycodestyle 2.11.1)
REPEAT_NOTE = ("You made this exact call before and nothing changed since: it will give the same result. "
               "Run a different command (install what the error names) or call done.")


class Stop(str, enum.Enum):
    REPLAYED = "replayed"  # the session passed and the replayed recipe passed again: success
    REPLAY_FAILED = "replay_failed"  # the session passed, the rebuilt env did not
    NOT_PASSING = "not_passing"  # the agent ended (done / answered) without a mostly passing run
    STEP_CAP = "step_cap"
    TIME_CAP = "time_cap"
    COMMAND_CAP = "command_cap"
    POLICY_ERROR = "policy_error"  # the policy produced no usable turn
    NO_IMAGE = "no_image"  # nothing to start a session from (no recipe could be inferred)
    INFRA = "infra"  # the LLM endpoint or the Docker daemon failed (Outcome.summary says how)



@dataclass(frozen=True)
class Caps:
    max_steps: int
    max_seconds: float
    max_commands: int
    command_timeout_s: int
    test_timeout_s: int = 900


@dataclass
class CommandRecord:
    command: str
    kind: str
    exit_code: int | None  # None: refused, never run
    seconds: float = 0.0
    note: str = ""


@dataclass
class TestRecord:
    __test__ = False

    status: str
    kind: str
    reason: str
    stage: str
    counts: dict
    after_commands: int  # how many command records preceded it


def run_stage(run) -> str:
    """The funnel stage of a verdict, as the repair loop computes it, and only for a run the sandbox calls
    ``ok`` (an ``error`` verdict -- forged summary, exit mismatch -- is never mostly passing here)."""
    if not run.tests:
        return "installed"
    stage, _ = stage_of(run)
    return stage if run.ok or stage != "mostly_passing" else "tests_collected"


class RepairSession:
    """The tools and the caps of one LLM-repair episode over ``ws`` (``exec(command, timeout_s) -> (code,
    output)``, ``read_file(path) -> bytes``). ``run_tests`` runs ``crucible.sandbox.recipes.test_script`` for the
    recipe (with the exports made so far as ``test_env``) and ``crucible.sandbox.testrun.reconcile`` reads the
    verdict."""

    def __init__(self, ws, recipe: dict, caps: Caps, *, clock: Callable[[], float] = time.monotonic,
                 max_output_chars: int = 3000, guard: bool = True):
        self.ws, self.recipe, self.caps, self.clock = ws, recipe, caps, clock
        self.guard = guard  # False (tests only): every command runs, and all but inspection is replayed
        self.t0 = clock()
        self.max_output_chars = max_output_chars
        self.commands: list[CommandRecord] = []
        self.tests: list[TestRecord] = []
        self.env: dict[str, str] = {}
        self.passed_at: int | None = None  # command count at the first mostly passing run
        self.passed_env: dict[str, str] = {}
        self.done_summary: str | None = None

    # caps
    def left_s(self) -> float:
        return self.caps.max_seconds - (self.clock() - self.t0)

    def exhausted(self) -> Stop | None:
        if self.left_s() <= 0:
            return Stop.TIME_CAP
        if sum(1 for c in self.commands if c.exit_code is not None) >= self.caps.max_commands:
            return Stop.COMMAND_CAP
        return None

    def _prefix(self) -> str:
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.env.items())
        return f"{exports}cd {WORKDIR} && "

    def _cut(self, text: str) -> str:
        n = self.max_output_chars
        return text if len(text) <= n else text[: n // 3] + "\n[... output cut ...]\n" + text[-(2 * n) // 3:]

    # tools
    def bash(self, args: Mapping) -> Observation:
        command = str(args.get("command") or "")
        stop = self.exhausted()
        if stop:
            return Observation(f"error: {stop.value}: no more commands in this episode", error=True)
        v = classify_command(command)
        if v.kind is CommandKind.REFUSED and not self.guard:
            v = Verdict(CommandKind.INSTALL)
        if v.kind is CommandKind.REFUSED:
            self.commands.append(CommandRecord(command, v.kind.value, None, note=v.reason))
            return Observation(f"refused: {v.reason}", error=True)
        if v.kind is CommandKind.EXPORT:
            self.env.update(dict(v.exports))
            self.commands.append(CommandRecord(command, v.kind.value, 0, note="kept in test_env"))
            return Observation("exit code 0\n(set for every later command and test run: "
                               + ", ".join(k for k, _ in v.exports) + ")")
        timeout = max(1, int(min(self.caps.command_timeout_s, self.left_s())))
        t = self.clock()
        code, out = self.ws.exec(self._prefix() + command, timeout)
        self.commands.append(CommandRecord(command, v.kind.value, code, round(self.clock() - t, 1)))
        return Observation(f"exit code {code}\n{self._cut(out)}", error=code == 124, meta={"exit_code": code})

    def run_tests(self, args: Mapping) -> Observation:
        if self.left_s() <= 0:
            return Observation(f"error: {Stop.TIME_CAP.value}", error=True)
        recipe = dict(self.recipe, test_env={**(self.recipe.get("test_env") or {}), **self.env})
        junit = f"/tmp/crucible-junit-{secrets.token_hex(8)}.xml"
        timeout = max(1, int(min(self.caps.test_timeout_s, self.left_s())))
        t = self.clock()
        code, log = self.ws.exec("export HOME=/tmp PYTHONDONTWRITEBYTECODE=1\n" + test_script(recipe, junit),
                                 timeout)
        try:
            xml = self.ws.read_file(junit).decode(errors="replace")
        except Exception:  # noqa: BLE001 - no JUnit file: the verdict says so
            xml = None
        timed_out = code == 124
        run = reconcile(None if timed_out else code, log, xml, timed_out=timed_out, seconds=self.clock() - t)
        stage = run_stage(run)
        self.tests.append(TestRecord(run.status, run.kind, run.reason, stage, dict(run.counts), len(self.commands)))
        if stage == "mostly_passing" and self.passed_at is None:
            self.passed_at, self.passed_env = len(self.commands), dict(self.env)
        tail = "\n".join([ln for ln in log.splitlines() if ln.strip()][-25:])
        c = run.counts
        return Observation(f"verdict: {run.status}{'/' + run.kind if run.kind else ''} ({run.reason}); stage "
                           f"{stage}; passed {c.get('PASSED', 0)}, failed {c.get('FAILED', 0)}, errors "
                           f"{c.get('ERROR', 0)}, skipped {c.get('SKIPPED', 0)}\n"
                           + ("The suite mostly passes: call done.\n" if stage == "mostly_passing" else "")
                           + f"last lines:\n{self._cut(tail)}")

    def done(self, args: Mapping) -> Observation:
        self.done_summary = str(args.get("summary") or "")
        return Observation("done" + ("" if self.passed_at is not None else
                                     " (no test run mostly passed: the repair failed)"))

    def tools(self) -> dict:
        s = {"type": "string"}
        return {
            "bash": FunctionTool("bash", function_schema(
                "bash", "Run one shell command in /testbed (unprivileged; network for pip only). Only "
                "installs (pip install/uninstall), export NAME=VALUE and read-only inspection are allowed.",
                {"command": {**s, "description": "the command"}}, ["command"]), self.bash),
            "run_tests": FunctionTool("run_tests", function_schema(
                "run_tests", "Run the repository's test suite; returns the verdict, counts and the last lines.",
                {}, []), self.run_tests),
            "done": FunctionTool("done", function_schema(
                "done", "End the episode.", {"summary": {**s, "description": "one line on what fixed it"}},
                ["summary"]), self.done),
        }

    def replay_commands(self) -> list[str]:
        """The commands to replay: those that ran, exited 0 and change the env, in order, up to the first
        mostly passing test run."""
        upto = self.commands[: self.passed_at] if self.passed_at is not None else self.commands
        return [c.command for c in upto if c.kind == CommandKind.INSTALL.value and c.exit_code == 0]


class _CappedPolicy:
    """Ends the episode (a turn with an error) once the session passed or a cap is reached."""

    def __init__(self, inner, session: RepairSession):
        self.inner, self.session = inner, session

    def step(self, messages, tools, *, force_final: bool, tools_only: bool = False):
        stop = self.session.exhausted()
        if stop:
            return Turn(content=None, tool_calls=[], error=stop.value)
        if self.session.passed_at is not None:
            return Turn(content=None, tool_calls=[], error="passed")
        return self.inner.step(messages, tools, force_final=force_final, tools_only=tools_only)


def run_session(policy, session: RepairSession, messages: list[dict]) -> tuple[Stop | None, object]:
    """Run the agent; returns (the stop reason when the session did not pass, the AgentResult)."""
    res = run_agent(_CappedPolicy(policy, session), session.tools(), messages, max_turns=session.caps.max_steps,
                    max_total_tokens=10**9, final_tool="done", repeat_note=REPEAT_NOTE)
    if session.passed_at is not None:
        return None, res
    stop = session.exhausted()
    if stop:
        return stop, res
    if res.termination == "error":
        return Stop.POLICY_ERROR, res
    if res.termination in ("turn_cap", "forced_answer"):  # the last allowed turn was spent
        return Stop.STEP_CAP, res
    return Stop.NOT_PASSING, res
