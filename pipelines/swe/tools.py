"""Agent tools for SWE rollouts, as OpenAI function tools: ``bash`` (a shell command with a timeout),
``view`` (a file with line numbers), ``str_replace`` (replace one unique occurrence), ``create`` (write a
whole file) and ``submit`` (end the episode; the diff against the starting tree is the answer).

Tools act on a *workspace* (:mod:`crucible.sandbox.workspace`): :class:`crucible.sandbox.workspace.ContainerWorkspace` over the
instance's env image, or :class:`crucible.sandbox.workspace.LocalWorkspace` in a host directory (unit tests only).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from crucible.pipelines.agent.tools import FunctionTool, Observation, function_schema
from crucible.sandbox.workspace import workspace_diff

# what the agent is told when it repeats a call exactly (the rollouts' and the verl kit's SweTool's)
REPEAT_NOTE = ("Note: this is exactly a call you made before; repeating it gets you no further. Do something "
               "different: view the function's code, change it with str_replace, run a check, or submit.")
MAX_FILE_BYTES = 1_000_000


def _path(ws, path: str) -> str:
    p = path.strip()
    return p if p.startswith("/") else f"{ws.root.rstrip('/')}/{p}"


def _write(ws, path: str, text: str) -> tuple[int, str]:
    """Write through the workspace's ``write_file`` (a tar stream into the container: no size limit from argv)."""
    try:
        ws.write_file(_path(ws, path), text.encode())
    except Exception as exc:  # noqa: BLE001 - reported to the agent as a failed write
        return 1, f"{type(exc).__name__}: {exc}"
    return 0, ""


def _read(ws, path: str) -> tuple[str | None, str]:
    p = shlex.quote(_path(ws, path))
    code, out = ws.exec(f"test -f {p} || {{ echo 'no such file: {path}'; exit 3; }}; "
                        f"test $(stat -c %s {p}) -le {MAX_FILE_BYTES} || {{ echo 'file too large'; exit 4; }}", 60)
    if code != 0:
        return None, out.strip()
    try:
        return ws.read_file(_path(ws, path)).decode(errors="replace"), ""
    except Exception as exc:  # noqa: BLE001 - reported to the agent
        return None, f"cannot read {path}: {type(exc).__name__}: {exc}"


def make_tools(ws, *, command_timeout_s: int = 60, max_output_chars: int = 4000) -> dict[str, FunctionTool]:
    def bash(args: Mapping) -> Observation:
        code, out = ws.exec(f"cd {shlex.quote(ws.root)} && {args['command']}", int(args.get("timeout") or
                                                                                    command_timeout_s))
        if len(out) > max_output_chars:
            out = out[: max_output_chars // 2] + "\n[... output truncated ...]\n" + out[-max_output_chars // 2:]
        return Observation(f"exit code {code}\n{out}", error=code == 124, meta={"exit_code": code})

    def view(args: Mapping) -> Observation:
        text, err = _read(ws, args["path"])
        if text is None:
            return Observation(f"Error: {err}", error=True)
        lines = text.splitlines()
        a = max(1, int(args.get("start_line") or 1))
        b = min(len(lines), int(args.get("end_line") or min(len(lines), a + 199)))
        body = "\n".join(f"{i:5d}  {lines[i - 1]}" for i in range(a, b + 1))
        more = f"\n[lines {a}-{b} of {len(lines)}]" if (a > 1 or b < len(lines)) else ""
        return Observation(body + more)

    def str_replace(args: Mapping) -> Observation:
        text, err = _read(ws, args["path"])
        if text is None:
            return Observation(f"Error: {err}", error=True)
        n = text.count(args["old_str"])
        if n != 1 or not args["old_str"]:
            return Observation(f"Error: old_str occurs {n} times in {args['path']}; it must occur exactly once "
                               "(include more surrounding lines)", error=True)
        code, out = _write(ws, args["path"], text.replace(args["old_str"], args["new_str"], 1))
        if code != 0:
            return Observation(f"Error: write failed: {out[-300:]}", error=True)
        return Observation(f"Edited {args['path']}: replaced 1 occurrence.")

    def create(args: Mapping) -> Observation:
        code, out = _write(ws, args["path"], args["content"])
        if code != 0:
            return Observation(f"Error: write failed: {out[-300:]}", error=True)
        return Observation(f"Wrote {args['path']} ({len(args['content'])} characters).")

    def submit(args: Mapping) -> Observation:
        return Observation(workspace_diff(ws) or "(no changes)")

    s = {"type": "string"}
    return {
        "bash": FunctionTool("bash", function_schema(
            "bash", "Run a shell command in the repository root (/testbed). No network.",
            {"command": {**s, "description": "bash command"},
             "timeout": {"type": "integer", "minimum": 1, "maximum": 600}}, ["command"]), bash),
        "view": FunctionTool("view", function_schema(
            "view", "Show a file with line numbers (200 lines from start_line).",
            {"path": {**s, "description": "path relative to the repository root"},
             "start_line": {"type": "integer", "minimum": 1}, "end_line": {"type": "integer", "minimum": 1}},
            ["path"]), view),
        "str_replace": FunctionTool("str_replace", function_schema(
            "str_replace", "Replace the one occurrence of old_str in a file with new_str.",
            {"path": s, "old_str": s, "new_str": s}, ["path", "old_str", "new_str"]), str_replace),
        "create": FunctionTool("create", function_schema(
            "create", "Create or overwrite a file with the given content.",
            {"path": s, "content": s}, ["path", "content"]), create),
        "submit": FunctionTool("submit", function_schema(
            "submit", "Submit your changes (the diff of the repository) and end the task.",
            {"summary": {**s, "description": "one line on what you changed"}}, []), submit),
    }
