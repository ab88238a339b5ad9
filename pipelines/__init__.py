"""Crucible: Beam pipelines that synthesize and curate training data for agents."""

__version__ = "0.1.0"
