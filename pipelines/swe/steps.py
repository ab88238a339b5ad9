"""What a coding agent did, read back from its trajectory (pure): the OpenAI messages of a rollout
(:mod:`crucible.pipelines.agent.loop`: assistant ``tool_calls`` with JSON-string arguments, ``role: tool`` results with
``tool_call_id``) as a list of :class:`Step`, each a tool call with its observation and a kind:

- ``edit``: ``str_replace``/``create``, or a ``bash`` command that writes a ``.py`` file (``sed -i``,
  ``perl -i``, a redirect or ``tee`` into it); ``scratch`` marks a file the agent writes whole (``create``,
  a redirect; not a test file) and later runs itself (``python repro.py``): a reproduction script, not a
  change to the code;
- ``test``: ``bash`` running a test runner (pytest, unittest, tox, nox, ``manage.py test``);
- ``run``: ``bash`` running Python otherwise (``python -c``, a script, a heredoc): a reproduction;
- ``read``: ``view``, or ``bash`` that only inspects (cat, grep, sed -n, ls, git diff, ...);
- ``submit`` and ``other`` (pip, cd, anything else).

Paths are taken relative to the repository root (``/testbed``, the rollout tools' root); ``outside`` marks
a path that leaves it. The checks over these steps are in :mod:`crucible.pipelines.swe.filters`."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crucible.pipelines.swe.patches import is_harness_path, is_test_path

REPO_ROOT = "/testbed"
TEST_RE = re.compile(r"\b(pytest|py\.test|unittest|tox|nox)\b|manage\.py\s+test\b")
PYTHON_RE = re.compile(r"(^|[\s;&|(])(\S*/)?python[0-9.]*(\s|$)")
PIP_RE = re.compile(r"(^|[\s;&|(])(\S*/)?(pip[0-9.]*\s|python[0-9.]*\s+-m\s+pip\b)")
IN_PLACE_RE = re.compile(r"\b(sed|perl)\b[^|;&]*?\s-\w*i")
REDIRECT_RE = re.compile(r"(?:^|[^0-9&>])>>?\s*(?!&)([^\s;&|<>]+\.py)\b")
TEE_RE = re.compile(r"\btee\s+(?:-a\s+)?([^\s;&|<>]+\.py)\b")
PY_TOKEN_RE = re.compile(r"([\w./-]+\.py)\b")
READ_CMDS = {"cat", "grep", "egrep", "rg", "ag", "sed", "head", "tail", "ls", "find", "nl", "wc", "less", "more",
             "tree", "awk", "file", "stat", "pwd", "echo", "git", "diff"}
# a run whose output says the code was never exercised (the command, the file or the tests were not found)
SETUP_FAILURE_RE = re.compile(r"command not found|No such file or directory|file or directory not found|"
                              r"can't open file|no tests ran|collected 0 items|No module named (pytest|tox)\b")
FAILURE_RE = re.compile(r"Traceback \(most recent call last\)|\b\d+ (failed|errors?)\b|^FAILED\b|^E\s+\w+|"
                        r"\b\w*(Error|Exception)\b: |AssertionError|^FAIL:", re.M)
EXIT_RE = re.compile(r"^exit code (-?\d+)")


@dataclass(frozen=True)
class Step:
    """One tool call: ``i`` its position among the calls, ``kind`` as in the module docstring, ``path`` the
    repo-relative file an edit writes (None for other kinds or an unreadable path), ``ok`` false when the
    tool answered with an error (an edit that changed nothing)."""

    i: int
    name: str
    args: Mapping
    obs: str
    kind: str
    path: str | None = None
    outside: bool = False
    scratch: bool = False
    ok: bool = True
    arguments: str = ""  # as the model wrote them

    @property
    def sig(self) -> tuple[str, str]:
        """(tool, arguments as written): two calls with the same signature are the same call."""
        return self.name, self.arguments

    @property
    def source_edit(self) -> bool:
        """An edit of a source file of the repository (not a scratch script, a test, harness or outside file)."""
        return self.kind == "edit" and not self.scratch and non_source_edit(self) is None


def repo_path(path: str) -> tuple[str | None, bool]:
    """(path relative to the repo root, outside?) of a path as an agent wrote it."""
    p = (path or "").strip()
    if not p:
        return None, False
    if p.startswith("/"):
        if p != REPO_ROOT and not p.startswith(REPO_ROOT + "/"):
            return posixpath.normpath(p), True
        p = p[len(REPO_ROOT) + 1:]
    p = posixpath.normpath(p)
    return p, p == ".." or p.startswith("../")


def _args(call: Mapping) -> Mapping:
    try:
        a = json.loads(call["function"].get("arguments") or "{}")
    except (json.JSONDecodeError, TypeError):
        return {}
    return a if isinstance(a, Mapping) else {}


def _bash_kind(cmd: str) -> tuple[str, str | None]:
    """(kind, written .py path or None) of one bash command."""
    m = REDIRECT_RE.search(cmd) or TEE_RE.search(cmd)
    if m:  # a script written and run in one command is a reproduction
        return ("run", None) if _runs(cmd, m.group(1)) else ("edit", m.group(1))
    if IN_PLACE_RE.search(cmd):
        files = PY_TOKEN_RE.findall(cmd[IN_PLACE_RE.search(cmd).end():])
        return "edit", files[-1] if files else None
    if TEST_RE.search(cmd):
        return "test", None
    if PIP_RE.search(cmd):  # installing is neither a test nor a reproduction
        return "other", None
    if PYTHON_RE.search(cmd):
        return "run", None
    try:
        words = shlex.split(cmd, comments=True)
    except ValueError:
        words = cmd.split()
    heads, first = [], True
    for w in words:
        if first:
            heads.append(posixpath.basename(w))
        first = w in ("|", "&&", "||", ";")
    return ("read" if heads and all(h in READ_CMDS or h == "cd" for h in heads) else "other"), None


def _kind(name: str, args: Mapping) -> tuple[str, str | None]:
    if name in ("str_replace", "create"):
        return "edit", str(args.get("path") or "")
    if name == "view":
        return "read", None
    if name == "submit":
        return "submit", None
    if name == "bash":
        return _bash_kind(str(args.get("command") or ""))
    return "other", None


def _runs(cmd: str, path: str) -> bool:
    """Does ``cmd`` run the script ``path`` (as written, or by its base name from the repo root)?"""
    names = {path, posixpath.basename(path), f"{REPO_ROOT}/{path}"}
    return bool(PYTHON_RE.search(cmd) or TEST_RE.search(cmd)) and any(
        re.search(rf"(^|[\s/'\"]){re.escape(n)}(\s|$|['\"])", cmd) for n in names)


def steps(messages: Sequence[Mapping]) -> list[Step]:
    """The tool calls of a trajectory in order, each with its observation, kind and edited path; a file
    written whole (not a test file) that some later step runs with Python or a test runner is ``scratch``."""
    obs = {m.get("tool_call_id"): m.get("content") or "" for m in messages if m.get("role") == "tool"}
    raw = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or ():
            name, args = c["function"]["name"], _args(c)
            kind, path = _kind(name, args)
            text = obs.get(c.get("id"), "")
            raw.append((name, args, text, kind, path, c["function"].get("arguments") or ""))
    out = []
    for i, (name, args, text, kind, path, arguments) in enumerate(raw):
        rel, outside = repo_path(path) if path is not None else (None, False)
        whole = name == "create" or (name == "bash" and not IN_PLACE_RE.search(str(args.get("command") or "")))
        scratch = kind == "edit" and whole and rel is not None and not is_test_path(rel) and any(
            _runs(str(a.get("command") or ""), p) for n, a, _, k, *_ in raw[i + 1:] if n == "bash" and k in ("run", "test")
            for p in {rel, path})
        ok = not text.lstrip().startswith("Error") and (name != "bash" or exit_code(text) in (0, None))
        out.append(Step(i, name, args, text, kind, rel, outside, scratch, ok=ok, arguments=arguments))
    return out


def exit_code(obs: str) -> int | None:
    m = EXIT_RE.match(obs or "")
    return int(m.group(1)) if m else None


def setup_failure(obs: str) -> bool:
    """The run never exercised the code: command, file or tests not found, a usage error, a timeout."""
    return exit_code(obs) in (2, 4, 5, 124, 126, 127) or bool(SETUP_FAILURE_RE.search(obs or ""))


def shows_failure(obs: str) -> bool:
    """The observation of a test or reproduction run shows the code failing: a non-zero exit, a traceback,
    failed tests or an error line (a pipe through ``tail`` hides the exit code, not the text); never a run
    that did not start (:func:`setup_failure`)."""
    if setup_failure(obs):
        return False
    code = exit_code(obs)
    return (code is not None and code != 0) or bool(FAILURE_RE.search(obs or ""))


def non_source_edit(step: Step) -> str | None:
    """Why an edit is not an edit of a source file (None: it is one): a test file, a harness file, a path
    outside the repository. Scratch scripts are no source edit and no violation."""
    if step.kind != "edit" or step.scratch:
        return None
    if step.path is None:
        return "an unreadable path"
    if step.outside:
        return f"{step.path} (outside the repository)"
    if is_test_path(step.path):
        return f"{step.path} (test file)"
    if is_harness_path(step.path):
        return f"{step.path} (harness file)"
    return None
