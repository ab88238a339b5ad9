"""What a browse worker holds: the graph, the LLM client, the search environment, prompts and typed options.

:func:`build_context` makes it from the typed :class:`crucible.pipelines.options.Options` (in ``DoFn.setup``, or
once in ``crucible browse rollout``); every stage function takes the :class:`Context` it returns.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crucible.pipelines.browse.api import load_kg, open_environment
from crucible.pipelines.llm import LLMClient, load_prompt
from crucible.pipelines.llm.cache import run_cache_dir
from crucible.pipelines.llm.reward import make_reward_scorer
from crucible.pipelines.options import BrowseOptions, Options, PolicyKind

if TYPE_CHECKING:
    from crucible.pipelines.browse.kg.model import Graph
    from crucible.pipelines.browse.search.env import BrowseEnv
    from crucible.pipelines.llm.prompts import Prompt
    from crucible.pipelines.llm.reward import RewardScorer

PROMPTS = {"write": "browse_write_question", "read_back": "browse_read_back", "closed_book": "browse_closed_book",
           "agent": "browse_agent", "judge": "browse_judge"}


@dataclass
class Context:
    """What a worker needs: the graph (None for outside questions without gold), an LLM client (None:
    template questions, no closed-book check, no judge), the browse env, prompts and the options."""

    graph: Graph | None
    client: LLMClient | None
    env: BrowseEnv | None
    opts: BrowseOptions
    run_id: str
    model: str
    prompts: Mapping[str, Prompt | None]
    policy: PolicyKind
    reward: RewardScorer | None  # a reward-model scorer (llm.reward_model), None = scores stay null


def build_context(options: Options, llm_cfg: Mapping | None, run_id: str, with_graph: bool = True) -> Context:
    """Everything a worker needs from the typed options and the LLM endpoint config (``llm_cfg``: the
    ``llm`` section with the live base URLs, :func:`crucible.pipelines.llm.endpoint_config`; None: no client).
    ``with_graph`` False: ``ctx.graph`` is None (outside questions: nothing to resolve against)."""
    out_dir = options.run.out_dir
    client = LLMClient.from_config(llm_cfg, out_dir=out_dir) if llm_cfg else None
    ctx = Context(graph=load_kg(options.search) if with_graph else None, client=client,
                  env=open_environment(options.search), opts=options.browse, run_id=run_id,
                  model=llm_cfg["model"] if llm_cfg else "none",
                  prompts={k: load_prompt(v) for k, v in PROMPTS.items()}, policy=options.rollout_policy,
                  reward=make_reward_scorer(options.llm.to_dict(), cache_dir=str(run_cache_dir(out_dir, "reward"))))
    if client is not None:  # a context shared by several DoFns closes its client when the last one lets go
        weakref.finalize(ctx, client.close)
    return ctx
