"""Optional LLM repair (RepoLaunch / SWE-Factory style): when the repair ladder ends short, an agent with a
bash tool in a container from the last env image (the base image when the build itself failed) proposes
and runs setup commands until the clean suite mostly passes; the commands that worked become a recipe
step that replays without the LLM, and only a replay that passes again counts.

Pure parts (tested without Docker): :func:`classify_command` (the guard and the replay filter),
:class:`RepairSession` (the tools ``bash``/``run_tests``/``done`` over any workspace with
``exec(command, timeout_s)`` and ``read_file(path)``, with step, time and command caps),
:func:`replay_recipe` and :func:`write_override` (a ``configs/repos``-style YAML that
``sandbox.recipes.load_override`` reads back). The thin runner :func:`llm_repair` starts the container,
runs the agent, then rebuilds the env from the written override through the ordinary build path
(``sandbox.repair.attempt`` with ``repos_dir`` = the staging directory, no ladder) on the pristine tree.

The guard: the agent may install and configure, never edit tests or source. Commands are split into simple
commands (``&&``, ``||``, ``;``, ``|``); each must be on an allow-list: read-only inspection (``ls``, ``cat``,
``grep``, ``pip list`` ...; run, never replayed), installs (``pip install/uninstall``; replayed), ``export
NAME=VALUE`` (kept in the session and in the recipe's ``test_env``), ``sed -i`` and ``>``/``>>``
redirections onto files outside ``/testbed`` that are not ``*.py`` (replayed). Refused: anything else
(``apt-get``/``sudo``: the agent runs unprivileged; ``curl``/``wget``/``git clone``: the network is for
package installs; ``rm``, ``cp``, ``mv``, ``bash -c``, ``$(...)``, backticks, heredocs, ``tee``), writes to
``*.py`` anywhere and writes into ``/testbed`` (relative paths count as there): the tree is copied in
fresh for every test run, so no edit of it would survive a replay anyway.
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.agent.tools import Observation

log = logging.getLogger(__name__)
WORKDIR = "/testbed"
STEP_NAME = "llm-repair"
PROMPT_ID = "sandbox_llm_repair"
# appended to the result of a call identical to an earlier one (the embedded 1.5B model otherwise repeats
# run_tests unchanged until the step cap: 11 of 11 turns on pycodestyle 2.11.1)
REPEAT_NOTE = ("You made this exact call before and nothing changed since: it will give the same result. "
               "Run a different command (install what the error names) or call done.")
DONE_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": 200}},
               "required": ["summary"], "additionalProperties": False}


class CommandKind(str, enum.Enum):
    INSPECT = "inspect"  # read-only: run, not replayed
    INSTALL = "install"  # pip install/uninstall, sed -i / redirection outside the tree: run and replayed
    EXPORT = "export"  # export NAME=VALUE: kept in the session env and the recipe's test_env
    REFUSED = "refused"  # never run


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


INSPECT_PROGRAMS = frozenset({
    "ls", "cat", "head", "tail", "grep", "egrep", "fgrep", "find", "wc", "pwd", "echo", "printf", "which", "type",
    "env", "printenv", "file", "stat", "tree", "du", "df", "sort", "uniq", "cut", "true", "false", "cd", "test",
    "[", "uname", "id", "whoami", "ldd", "pkg-config", "readlink", "realpath", "basename", "dirname", "diff",
    "pytest", "py.test", "sed",  # sed without -i only prints (checked below)
})
PIP_INSPECT = frozenset({"list", "show", "freeze", "check", "--version", "-V", "debug", "config", "inspect",
                         "help", "index"})
PIP_INSTALL = frozenset({"install", "uninstall"})
REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&"})
SEPARATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")"})
PYTHON = re.compile(r"^(python|python3(\.\d+)?)$")
PIP = re.compile(r"^pip3?(\.\d+)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HIDDEN = re.compile(r"\$\(|`|<<|<\(|>\(")
SAFE_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})


@dataclass(frozen=True)
class Verdict:
    kind: CommandKind
    reason: str = ""
    exports: tuple[tuple[str, str], ...] = ()


def _write_refusal(target: str) -> str | None:
    """Why a write to ``target`` is refused (None: allowed)."""
    if target in SAFE_TARGETS or target.isdigit():
        return None
    path = target if target.startswith("/") else f"{WORKDIR}/{target}"
    if path.endswith(".py"):
        return f"writes to a Python file ({target}): never edit tests or source"
    if path == WORKDIR or path.startswith(WORKDIR + "/"):
        return (f"writes into the repository ({target}): the tree is copied in fresh for every test run, "
                "so an edit of it never replays; change the environment instead")
    return None


def _simple(words: list[str]) -> Verdict:
    """One simple command (no separators; redirections already removed)."""
    if not words:
        return Verdict(CommandKind.INSPECT)
    while words and "=" in words[0] and ENV_NAME.match(words[0].split("=", 1)[0]):
        words = words[1:]  # VAR=value cmd ...
    if not words:
        return Verdict(CommandKind.INSPECT)
    prog, args = words[0].rsplit("/", 1)[-1], words[1:]
    if prog == "export":
        pairs = []
        for a in args:
            k, eq, v = a.partition("=")
            if not eq or not ENV_NAME.match(k):
                return Verdict(CommandKind.REFUSED, f"export {a!r}: only export NAME=VALUE")
            pairs.append((k, v))
        return Verdict(CommandKind.EXPORT, exports=tuple(pairs))
    pip_args = None
    if PIP.match(prog):
        pip_args = args
    elif PYTHON.match(prog):
        if args[:2] == ["-m", "pip"]:
            pip_args = args[2:]
        elif args[:2] == ["-m", "pytest"] or args[:1] in (["-c"], ["-V"], ["--version"]):
            return Verdict(CommandKind.INSPECT)
        else:
            return Verdict(CommandKind.REFUSED, "python: only -c, -V, -m pip and -m pytest")
    if pip_args is not None:
        sub = next((a for a in pip_args if not a.startswith("-")), pip_args[0] if pip_args else None)
        if sub in PIP_INSTALL:
            return Verdict(CommandKind.INSTALL)
        if sub in PIP_INSPECT:
            return Verdict(CommandKind.INSPECT)
        return Verdict(CommandKind.REFUSED, f"pip {sub}: only install, uninstall and read-only subcommands")
    if prog == "sed":
        inplace = [a for a in args if a == "-i" or (a.startswith("-i") and not a.startswith("--")) or
                   a.startswith("--in-place")]
        if not inplace:
            return Verdict(CommandKind.INSPECT)
        files, script_seen, skip = [], False, False
        for a in args:  # the first operand is the script unless -e/-f gave one
            if skip:
                skip, script_seen = False, True
            elif a in ("-e", "--expression", "-f", "--file"):
                skip = True
            elif not a.startswith("-"):
                if script_seen:
                    files.append(a)
                script_seen = True
        if not files:
            return Verdict(CommandKind.REFUSED, "sed -i without a file")
        for f in files:
            why = _write_refusal(f)
            if why:
                return Verdict(CommandKind.REFUSED, "sed -i " + why)
        return Verdict(CommandKind.INSTALL)
    if prog in INSPECT_PROGRAMS:
        return Verdict(CommandKind.INSPECT)
    if prog in ("apt-get", "apt", "dpkg", "sudo", "su", "aptitude"):
        return Verdict(CommandKind.REFUSED, f"{prog}: the agent runs unprivileged; system packages are not "
                       "available to it (set apt_packages in a configs/repos override by hand)")
    return Verdict(CommandKind.REFUSED, f"{prog}: not on the allow-list (inspection, pip install/uninstall, "
                   "export NAME=VALUE, sed -i / redirection onto non-Python files outside /testbed)")


def classify_command(command: str) -> Verdict:
    """The guard and the replay filter for one bash command (see the module docstring)."""
    if not command.strip():
        return Verdict(CommandKind.REFUSED, "empty command")
    if HIDDEN.search(command):
        return Verdict(CommandKind.REFUSED, "command substitution, process substitution and heredocs are not "
                       "allowed (write plain commands)")
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError as exc:
        return Verdict(CommandKind.REFUSED, f"cannot parse the command: {exc}")
    parts: list[list[str]] = [[]]
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in SEPARATORS:
            parts.append([])
        elif t in REDIRECTS or t in ("<", "<>"):
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            if t != "<":
                if not target:
                    return Verdict(CommandKind.REFUSED, "redirection without a target")
                why = _write_refusal(target)
                if why:
                    return Verdict(CommandKind.REFUSED, why)
                if target not in SAFE_TARGETS and not target.isdigit():
                    parts[-1].append("\0write")  # a real write: replayed
            i += 1
        else:
            parts[-1].append(t)
        i += 1
    kinds, exports = [], []
    for words in parts:
        wrote = "\0write" in words
        v = _simple([w for w in words if w != "\0write"])
        if v.kind is CommandKind.REFUSED:
            return v
        kinds.append(CommandKind.INSTALL if wrote and v.kind is CommandKind.INSPECT else v.kind)
        exports.extend(v.exports)
    if all(k is CommandKind.EXPORT for k in kinds):
        return Verdict(CommandKind.EXPORT, exports=tuple(exports))
    if CommandKind.INSTALL in kinds:
        return Verdict(CommandKind.INSTALL)
    return Verdict(CommandKind.INSPECT)


# ---------------------------------------------------------------- the session (tools + caps)

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
    from sandbox.repair import _stage

    if not run.tests:
        return "installed"
    stage, _ = _stage(run)
    return stage if run.ok or stage != "mostly_passing" else "tests_collected"


class RepairSession:
    """The tools and the caps of one LLM-repair episode over ``ws`` (``exec(command, timeout_s) -> (code,
    output)``, ``read_file(path) -> bytes``). ``run_tests`` runs ``sandbox.recipes.test_script`` for the
    recipe (with the exports made so far as ``test_env``) and ``sandbox.testrun.reconcile`` reads the
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
        from sandbox.recipes import test_script
        from sandbox.testrun import reconcile

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
        from pipelines.agent.tools import FunctionTool, function_schema

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
        from pipelines.agent.loop import Turn

        stop = self.session.exhausted()
        if stop:
            return Turn(content=None, tool_calls=[], error=stop.value)
        if self.session.passed_at is not None:
            return Turn(content=None, tool_calls=[], error="passed")
        return self.inner.step(messages, tools, force_final=force_final, tools_only=tools_only)


def run_session(policy, session: RepairSession, messages: list[dict]) -> tuple[Stop | None, object]:
    """Run the agent; returns (the stop reason when the session did not pass, the AgentResult)."""
    from pipelines.agent.loop import run_agent

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


# ---------------------------------------------------------------- replay

def replay_recipe(recipe: dict, commands: list[str], test_env: Mapping[str, str], *, from_base: bool) -> dict:
    """The recipe that replays a session: the recipe's install steps (none when the session started from the
    base image because the build failed, only the test runner) plus a required ``llm-repair`` step running
    ``commands`` in order, and the session's exports in ``test_env``."""
    r = {k: v for k, v in recipe.items() if k not in ("rungs", "sources", "version", "python_reason")}
    steps = [s for s in recipe["install"] if not from_base or s["name"] == "test-runner"]
    if commands:
        steps = steps + [{"name": STEP_NAME, "required": True, "try": [" && ".join(f"{{ {c}; }}" for c in commands)]}]
    r["install"] = steps
    if from_base:
        r["apt_packages"] = []
    env = {**(recipe.get("test_env") or {}), **dict(test_env)}
    if env:
        r["test_env"] = env
    else:
        r.pop("test_env", None)
    return r


def override_file_name(name: str) -> str:
    return ("".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower()).strip("-.") or "repo") + ".yaml"


def write_override(repos_dir: Path, name: str, recipe: dict, notes: str) -> Path:
    """``repos_dir/<name>.yaml`` in the ``configs/repos`` format (``match: [name]``, ``recipe: {...}``)."""
    import yaml

    repos_dir = Path(repos_dir)
    repos_dir.mkdir(parents=True, exist_ok=True)
    path = repos_dir / override_file_name(name)
    text = yaml.safe_dump({"match": [name], "notes": notes, "recipe": recipe}, sort_keys=False,
                          default_flow_style=False, width=1000)
    path.write_text("# written by crucible's LLM repair (sandbox/llm_repair.py); replays without the LLM\n" + text)
    return path


# ---------------------------------------------------------------- the runner

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
    from pipelines.llm import load_prompt

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
    from sandbox.images import build_env_vars

    env, files = build_env_vars(settings.ca_bundle, settings.pip_env)
    env.update({"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    if recipe.get("as_of"):
        env["PIP_UPLOADED_PRIOR_TO"] = recipe["as_of"]
    return env, files


def llm_repair(client, settings, tree: Path, name: str, res: dict, policy, *, caps: Caps, out_repos_dir: Path,
               date: str | None, prompt=None) -> Outcome:
    """One LLM-repair episode for the failed ``res`` of ``sandbox.repair.attempt``; on success the override
    is written to ``out_repos_dir`` and ``Outcome.recipe`` is the replayed recipe."""
    import dataclasses
    import tempfile

    from pipelines.swe.tools import ContainerWorkspace
    from sandbox.container import Sandbox
    from sandbox.repair import attempt

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
    """``res`` (from ``sandbox.repair.attempt``) with the ``llm_repair`` rung appended: on success the replay's
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
    from pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy
    from pipelines.llm import load_prompt

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
    ``pipelines.swe.pipeline`` does), or None when ``sandbox.llm_repair.enabled`` (or ``enabled``) is off.
    The override goes to ``sandbox.llm_repair.repos_dir``, else ``<run.out_dir>/repos``."""
    on = settings.llm_repair["enabled"] if enabled is None else enabled
    if not on:
        yield None
        return
    from pipelines.llm import LLMClient, endpoint_config, llm_endpoint

    repos = settings.llm_repair["repos_dir"] or str(Path(cfg.run.out_dir) / "repos")
    with llm_endpoint(cfg.llm) as base_urls:
        llm = LLMClient.from_config(endpoint_config(cfg.llm, base_urls), out_dir=cfg.run.out_dir)
        try:
            yield Repairer(settings, lambda: make_policy(llm, settings.llm_repair["policy"]), Path(repos))
        finally:
            llm.close()
