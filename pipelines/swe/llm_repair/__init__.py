"""Optional LLM repair of a source the sandbox's repair ladder left short (``sandbox.llm_repair`` config,
docs/sandbox.md 'LLM repair'): :mod:`.guard` (which commands run and replay), :mod:`.session` (the agent's
tools and caps), :mod:`.replay` (the replayable recipe and its override file), :mod:`.runner` (the episode in a
container, the replay, :class:`~.runner.Repairer`). It runs an agent, so it sits above the sandbox, beside the
SWE pipeline whose environments it repairs."""
