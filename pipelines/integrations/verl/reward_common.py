"""What the verl kit's reward modules share: the data sources, the extra_info key of a submitted patch, and
the Crucible config each worker loads once (per name and overrides)."""

from __future__ import annotations

import functools

from crucible.pipelines.config import load_config

BROWSE = "crucible/browse"
SWE = "crucible/swe"
DATA_SOURCES = (BROWSE, SWE)
CONFIG = "browse"  # the shipped config the kit reads when reward_kwargs name none
PATCH_KEY = "crucible_patch"  # extra_info key the submit tool fills (verl: agent_data.extra_fields)


@functools.lru_cache(maxsize=8)
def config(name: str, overrides: tuple[str, ...]):
    return load_config(name, list(overrides))
