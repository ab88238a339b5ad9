"""The ``llm`` config section resolved against its schema (schemas/config_llm.json), the only place its
defaults live: callers may hand the client a partial dict (a test, verl's reward config) and the client
still reads every key without a second, literal default."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from crucible.pipelines.options_base import fill_defaults


@lru_cache(maxsize=1)
def llm_schema() -> dict:
    return json.loads(resources.files("crucible.schemas").joinpath("config_llm.json").read_text(encoding="utf-8"))




def resolve(cfg: Mapping[str, Any] | None = None) -> dict:
    """``cfg`` (a plain dict or Config, possibly partial) with every missing key set to its schema default."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else copy.deepcopy(dict(cfg or {}))
    return fill_defaults(llm_schema(), data)
