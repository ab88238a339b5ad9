"""verl tools (``verl.tools.base_tool.BaseTool`` subclasses) over Crucible's own environments.

- :class:`BrowseTool`: ``search`` / ``visit`` over the configured search backend (``search.backend``: the local
  tantivy corpus, a frozen snapshot, SearXNG, Serper, Brave, Tavily), through the same
  :class:`~crucible.pipelines.browse.search.env.BrowseSession` as the pipeline's rollouts: tool cache, leak filter
  (the question is the forbidden text), page truncation, and the same observation form
  (:func:`crucible.pipelines.agent.loop.observation_text`: cut, repeat note, hint, turn note), so RL rollouts see what
  the SFT rows show.
- :class:`SweTool`: ``bash`` / ``view`` / ``str_replace`` / ``create`` / ``submit`` of
  :func:`crucible.pipelines.swe.tools.make_tools` in a container of the instance's env image (one per trajectory, opened
  on its first call). ``submit`` puts the diff into ``agent_data.extra_fields["crucible_patch"]``, which verl
  hands to the reward as ``extra_info`` (:mod:`crucible.pipelines.integrations.verl.reward` grades it) and closes it.

verl 0.9 creates, executes and releases a tool instance for every call; a trajectory is one
``agent_data.request_id``, so per-trajectory state (session, container) is kept per request id (bounded).
Tool configs: ``tool_config.yaml`` (browse) and ``swe_tool_config.yaml`` next to this file.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from crucible.pipelines.agent.loop import observation_text
from crucible.pipelines.agent.tools import Observation
from crucible.pipelines.browse.search.env import TOOL_SCHEMAS
from crucible.pipelines.config import load_config
from crucible.pipelines.integrations.verl.reward import PATCH_KEY
from crucible.pipelines.swe.envs import checkout_tree, task_env
from crucible.pipelines.swe.tools import REPEAT_NOTE as SWE_REPEAT_NOTE
from crucible.pipelines.swe.tools import make_tools
from crucible.sandbox.container import Sandbox
from crucible.sandbox.workspace import ContainerWorkspace, init_baseline

MAX_TRAJECTORIES = 1024  # per-trajectory states kept at once (the oldest is closed first)


@functools.lru_cache(maxsize=8)
def _config(name: str, overrides: tuple[str, ...]):
    return load_config(name, list(overrides))


class _States:
    """request id -> state, least recently used closed first."""

    def __init__(self, limit: int = MAX_TRAJECTORIES):
        self.limit, self.items, self.lock = limit, OrderedDict(), threading.Lock()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        state = make()
        with self.lock:
            self.items[key] = state
            while len(self.items) > self.limit:
                _, old = self.items.popitem(last=False)
                _close(old)
        return state

    def pop(self, key: str) -> Any:
        with self.lock:
            return self.items.pop(key, None)

    def close_all(self) -> None:
        with self.lock:
            items, self.items = list(self.items.values()), OrderedDict()
        for s in items:
            _close(s)


def _close(state) -> None:
    close = getattr(state, "close", None)
    if close is not None:
        close()


def _schema(schema: dict) -> OpenAIFunctionToolSchema:
    return OpenAIFunctionToolSchema.model_validate(schema)


class _CrucibleTool(BaseTool):
    """Common part: the Crucible config (``config`` / ``overrides`` in the tool config), the tool name
    (``tool``, or the name of a given ``tool_schema``), create kwargs per instance id, trajectory keys."""

    section = ""
    states: _States

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        self.config = dict(config or {})
        self.tool = self.config.get("tool") or (tool_schema.function.name if tool_schema else None)
        if self.tool not in self.tool_names():
            raise ValueError(f"{type(self).__name__}: config.tool {self.tool!r} is not one of {self.tool_names()}")
        self.cfg = _config(str(self.config.get("config") or self.section), tuple(self.config.get("overrides") or ()))
        self._kwargs: dict[str, dict] = {}
        super().__init__(self.config, tool_schema)

    def tool_names(self) -> list[str]:
        return list(self.schemas())

    def schemas(self) -> dict[str, dict]:
        """Tool name -> OpenAI function schema; each subclass (BrowseTool, SweTool) defines its own tools."""
        raise NotImplementedError(f"{type(self).__name__} must define schemas()")

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        return _schema(self.schemas()[self.tool])

    async def create(self, instance_id: str | None = None, **kwargs) -> tuple[str, ToolResponse]:
        iid = instance_id or str(uuid4())
        self._kwargs[iid] = dict(kwargs.get("create_kwargs") or {})
        return iid, ToolResponse()

    async def release(self, instance_id: str, **kwargs) -> None:
        self._kwargs.pop(instance_id, None)

    @staticmethod
    def trajectory_key(instance_id: str, agent_data) -> str:
        """The trajectory a call belongs to: verl's request id, else the instance id (direct use)."""
        return str(getattr(agent_data, "request_id", None) or instance_id)


class _BrowseState:
    def __init__(self, session):
        self.session, self.calls, self.seen = session, 0, set()


@functools.lru_cache(maxsize=4)
def _environment(config: str, overrides: tuple[str, ...]):
    # lazy, measured: browse.api loads the graph and corpus code (0.6 s), which a swe-only run never needs
    from crucible.pipelines.browse.api import open_environment

    return open_environment(_config(config, overrides))


class BrowseTool(_CrucibleTool):
    """``search`` or ``visit`` (see the module docstring)."""

    section = "browse"
    states = _States()

    def schemas(self) -> dict[str, dict]:
        return {s["function"]["name"]: s for s in TOOL_SCHEMAS}

    @property
    def env(self):
        return _environment(str(self.config.get("config") or self.section), tuple(self.config.get("overrides") or ()))

    def run(self, key: str, parameters: dict, create_kwargs: dict, turn: int | None = None) -> tuple[str, bool]:
        """One call in trajectory ``key``: the observation text (the rollouts' form) and its error flag."""
        # lazy, measured: the browse rollout's notes come with its trajectory code (0.9 s), needed on a browse call only
        from crucible.pipelines.browse.stages import OBSERVATION_SUFFIX, REPEAT_NOTE, TURN_NOTE

        question = str(create_kwargs.get("question") or "")
        state = self.states.get(key, lambda: _BrowseState(self.env.session([question] if question else [])))
        state.calls += 1
        tool = state.session.tool_map[self.tool]
        try:
            obs = tool.call(parameters)
        except Exception as exc:  # a tool bug is an observation with an error flag, as in the agent loop
            obs = Observation(f"error: {type(exc).__name__}: {exc}", error=True)
        sig = (self.tool, json.dumps(parameters, sort_keys=True))
        repeated = sig in state.seen
        state.seen.add(sig)
        opts = self.cfg["browse"]
        text = observation_text(obs.content, max_chars=int(opts["max_observation_chars"]),
                                repeat_note=REPEAT_NOTE if repeated else None,
                                suffix=OBSERVATION_SUFFIX if opts["observation_hint"] else "",
                                turn_note=TURN_NOTE if opts["turn_budget_hint"] else "",
                                turn=turn or state.calls, max_turns=int(opts["max_turns"]))
        return text, bool(obs.error)

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        agent_data = kwargs.get("agent_data")
        key = self.trajectory_key(instance_id, agent_data)
        turn = getattr(agent_data, "assistant_turns", None) or None
        text, error = await asyncio.to_thread(self.run, key, dict(parameters or {}),
                                              self._kwargs.get(instance_id, {}), turn)
        return ToolResponse(text=text), 0.0, {"error": int(error)}


# ------------------------------------------------------------------ SWE

class _SweState:
    def __init__(self, ws, close: Callable[[], None], tools: dict):
        self.ws, self._close, self.tools, self.calls, self.seen = ws, close, tools, 0, set()

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()


@functools.lru_cache(maxsize=2)
def _swe_ctx(config: str, overrides: tuple[str, ...]):
    # lazy, measured: the swe context comes with the Beam transforms (2.0 s, apache_beam), needed on a swe call only
    from crucible.pipelines.swe.transforms import build_ctx

    return build_ctx(_config(config, overrides))


def open_container_workspace(cfg, inst: dict, config: str, overrides: tuple[str, ...]):
    """A container of the instance's env image with the repo at /testbed and a git baseline (what
    :func:`crucible.pipelines.swe.rollout.run_rollout` starts from); returns ``(workspace, close)``."""
    ctx = _swe_ctx(config, overrides)
    tmp = Path(tempfile.mkdtemp(prefix="crucible-verl-", dir=ctx.workdir))
    try:
        tree = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "tree")
        env = task_env(ctx, inst, tree, tmp / "env")  # the env the instance was validated in
        box = Sandbox(ctx.client, env.image, tree=tree, limits=ctx.settings.limits, network=ctx.network_for(env.network),
                      include_git=False)
        box.__enter__()
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ws = ContainerWorkspace(box)

    def close():
        try:
            box.__exit__(None, None, None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    try:
        init_baseline(ws)
    except Exception:
        close()
        raise
    return ws, close


class SweTool(_CrucibleTool):
    """``bash`` / ``view`` / ``str_replace`` / ``create`` / ``submit`` (see the module docstring)."""

    section = "swe"
    states = _States()
    # (cfg, instance dict, config name, overrides) -> (workspace, close); tests put a host-directory one here
    workspace_factory: Callable = staticmethod(open_container_workspace)

    def schemas(self) -> dict[str, dict]:
        return {name: t.schema for name, t in make_tools(None).items()}

    def _state(self, key: str, create_kwargs: dict) -> _SweState:
        def make():
            inst = create_kwargs.get("instance")
            inst = json.loads(inst) if isinstance(inst, str) else dict(inst or {})
            if not inst.get("repo"):
                raise ValueError("swe tool: create_kwargs carry no instance (export with `crucible export --format "
                                 "verl --source swe`, which keys tools_kwargs by the tool names)")
            ws, close = type(self).workspace_factory(self.cfg, inst, str(self.config.get("config") or self.section),
                                                     tuple(self.config.get("overrides") or ()))
            timeout = int(self.cfg["swe"]["rollouts"]["command_timeout_s"])
            return _SweState(ws, close, make_tools(ws, command_timeout_s=timeout))

        return self.states.get(key, make)

    def run(self, key: str, parameters: dict, create_kwargs: dict) -> tuple[str, bool, str | None]:
        """One call: (observation text, error flag, the diff when this was ``submit``)."""
        ro = self.cfg["swe"]["rollouts"]
        state = self._state(key, create_kwargs)
        state.calls += 1
        try:
            obs = state.tools[self.tool].call(parameters)
        except Exception as exc:
            obs = Observation(f"error: {type(exc).__name__}: {exc}", error=True)
        patch = None
        if self.tool == "submit" and not obs.error:
            patch = "" if obs.content == "(no changes)" else obs.content
            self.states.pop(key)
            state.close()
        sig = (self.tool, json.dumps(parameters, sort_keys=True))
        repeated = sig in state.seen
        state.seen.add(sig)
        text = observation_text(obs.content, max_chars=int(ro["max_observation_chars"]),
                                repeat_note=SWE_REPEAT_NOTE if repeated else None)
        return text, bool(obs.error), patch

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        agent_data = kwargs.get("agent_data")
        key = self.trajectory_key(instance_id, agent_data)
        text, error, patch = await asyncio.to_thread(self.run, key, dict(parameters or {}),
                                                     self._kwargs.get(instance_id, {}))
        if patch is not None and agent_data is not None:
            agent_data.extra_fields[PATCH_KEY] = patch
        return ToolResponse(text=text), 0.0, {"error": int(error)}


atexit.register(SweTool.states.close_all)
