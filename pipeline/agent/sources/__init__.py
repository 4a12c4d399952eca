"""The agent's sources of events (see :mod:`pipeline.agent.sources.base`)."""
