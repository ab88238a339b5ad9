"""The guard of the LLM repair agent, and the replay filter: which bash commands it may run and which of
them a replay repeats.

The agent may install and configure, never edit tests or source. Commands are split into simple
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
import re
import shlex
from dataclasses import dataclass

WORKDIR = "/testbed"


class CommandKind(str, enum.Enum):
    INSPECT = "inspect"  # read-only: run, not replayed
    INSTALL = "install"  # pip install/uninstall, sed -i / redirection outside the tree: run and replayed
    EXPORT = "export"  # export NAME=VALUE: kept in the session env and the recipe's test_env
    REFUSED = "refused"  # never run



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
