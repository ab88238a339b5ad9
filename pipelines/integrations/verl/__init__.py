"""The verl kit: train on Crucible's exports with verl unchanged (see README.md next to this file).

- :func:`crucible.pipelines.integrations.verl.reward.compute_score`: ``custom_reward_function`` for the data sources
  ``crucible/browse`` (the pipeline's verification + format + clue terms) and ``crucible/swe`` (sandbox grading);
- :mod:`crucible.pipelines.integrations.verl.tools`: ``BrowseTool`` (search, visit) and ``SweTool`` (bash, view,
  str_replace, create, submit), ``verl.tools.base_tool.BaseTool`` subclasses;
- ``tool_config.yaml`` / ``swe_tool_config.yaml``: verl tool configs naming them.

Nothing here imports verl at package import; ``tools`` needs it (``make train-deps``)."""

from pathlib import Path

KIT_DIR = Path(__file__).resolve().parent
BROWSE_TOOL_CONFIG = KIT_DIR / "tool_config.yaml"
SWE_TOOL_CONFIG = KIT_DIR / "swe_tool_config.yaml"
REWARD_PATH = KIT_DIR / "reward.py"
