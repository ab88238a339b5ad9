"""Crucible: Beam pipelines that synthesize and curate training data for agents."""

__version__ = "0.1.0"

# The folder installs as crucible.pipelines (setup.py); importing it under a second name would load every module twice.
if __name__ != "crucible.pipelines":
    raise ImportError(f"import crucible.pipelines, not {__name__}: the folder pipelines/ is the package "
                      "crucible.pipelines (install the project: make venv)")
