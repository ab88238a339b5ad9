"""Search backends, tools, cache, leak filter and the local search server."""
