"""What a successful LLM-repair session leaves: :func:`replay_recipe` (the recipe plus one ``llm-repair`` step that
replays the session's commands without the LLM) and :func:`write_override` (a ``configs/repos``-style YAML
that ``crucible.sandbox.recipes.load_override`` reads back, written atomically)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from crucible.pipelines.store import fsio

STEP_NAME = "llm-repair"


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
    path = Path(repos_dir) / override_file_name(name)
    text = yaml.safe_dump({"match": [name], "notes": notes, "recipe": recipe}, sort_keys=False,
                          default_flow_style=False, width=1000)
    head = "# written by crucible's LLM repair (pipelines/swe/llm_repair/); replays without the LLM\n"
    fsio.write_bytes_atomic(str(path), (head + text).encode(), mode=0o644)
    return path
